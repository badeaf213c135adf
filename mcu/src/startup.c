/* Reset and interrupt vectors for the Cortex-M4 of QEMU's mps2-an386 (CMSDK peripherals). */
#include <stdint.h>
#include <string.h>
#include "board.h"

extern uint32_t __data_load, __data_start, __data_end, __bss_start, __bss_end, __stack_top;
#ifndef BOARD_SEMIHOSTING
#define BOARD_SEMIHOSTING 1
#endif
#if BOARD_SEMIHOSTING
extern void initialise_monitor_handles(void);
#endif
extern int main(void);

void Reset_Handler(void);
void Default_Handler(void);

void Reset_Handler(void) {
  memcpy(&__data_start, &__data_load, (size_t)((char *)&__data_end - (char *)&__data_start));
  memset(&__bss_start, 0, (size_t)((char *)&__bss_end - (char *)&__bss_start));
  board_paint_stack();
#if BOARD_SEMIHOSTING
  initialise_monitor_handles();
#endif
  board_exit(main());
}

void Default_Handler(void) {
  board_fault("unexpected interrupt or fault");
}

/* Names the faulting instruction: the stacked PC is word 6 of the exception frame. A stack that
   ran into its guard (the MPU region below __stack_limit, board_mps2.c) is named as such: the
   frame could not even be stacked then (MMFSR MSTKERR) or the faulting data address is the guard. */
#define SCB_CFSR (*(volatile uint32_t *)0xE000ED28u)
#define SCB_MMFAR (*(volatile uint32_t *)0xE000ED34u)
extern char __stack_guard[], __stack_limit[];

__attribute__((used)) static void fault_report(const uint32_t *frame) {
  static char msg[48];
  static const char hex[] = "0123456789abcdef";
  uint32_t cfsr = SCB_CFSR, mmfar = SCB_MMFAR;
  if ((cfsr & (1u << 4)) || ((cfsr & (1u << 7)) && mmfar >= (uint32_t)__stack_guard && mmfar < (uint32_t)__stack_limit)) {
    board_fault("stack overflow: the stack reached its guard");
  }
  uint32_t pc = frame[6];
  memcpy(msg, "hard fault at pc 0x", 19);
  for (int i = 0; i < 8; i++) msg[19 + i] = hex[(pc >> (28 - 4 * i)) & 15u];
  msg[27] = 0;
  board_fault(msg);
}

/* Never returns: the report runs on a fresh stack (the old one may be the one that overflowed). */
__attribute__((naked)) static void HardFault_Handler(void) {
  __asm volatile("tst lr, #4\n ite eq\n mrseq r0, msp\n mrsne r0, psp\n ldr r1, =__stack_top\n mov sp, r1\n b fault_report");
}

/* Cortex-M core vectors, then the mps2-an386 interrupts: UART0 RX is IRQ 0. */
__attribute__((section(".vectors"), used)) static void (*const vectors[16 + 32])(void) = {
  (void (*)(void))(&__stack_top),
  Reset_Handler,
  Default_Handler,     /* NMI */
  HardFault_Handler,   /* HardFault */
  HardFault_Handler,   /* MemManage */
  HardFault_Handler,   /* BusFault */
  HardFault_Handler,   /* UsageFault */
  0, 0, 0, 0,
  Default_Handler,     /* SVC */
  Default_Handler,     /* DebugMon */
  0,
  Default_Handler,     /* PendSV */
  SysTick_Handler,
  UART0_RX_Handler,    /* IRQ 0 */
  Default_Handler, Default_Handler, Default_Handler, Default_Handler, Default_Handler, Default_Handler,
  Default_Handler, Default_Handler, Default_Handler, Default_Handler, Default_Handler, Default_Handler,
  Default_Handler, Default_Handler, Default_Handler, Default_Handler, Default_Handler, Default_Handler,
  Default_Handler, Default_Handler, Default_Handler, Default_Handler, Default_Handler, Default_Handler,
  Default_Handler, Default_Handler, Default_Handler, Default_Handler, Default_Handler, Default_Handler,
  Default_Handler,
};
