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

/* Names the faulting instruction: the stacked PC is word 6 of the exception frame. */
__attribute__((used)) static void fault_report(const uint32_t *frame) {
  static char msg[48];
  static const char hex[] = "0123456789abcdef";
  uint32_t pc = frame[6];
  memcpy(msg, "hard fault at pc 0x", 19);
  for (int i = 0; i < 8; i++) msg[19 + i] = hex[(pc >> (28 - 4 * i)) & 15u];
  msg[27] = 0;
  board_fault(msg);
}

__attribute__((naked)) static void HardFault_Handler(void) {
  __asm volatile("tst lr, #4\n ite eq\n mrseq r0, msp\n mrsne r0, psp\n b fault_report");
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
