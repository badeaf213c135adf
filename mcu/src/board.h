/* The board layer: what the firmware module needs from a microcontroller (docs/engines.md,
   "Porting the board layer"). This file is the whole contract; board_mps2.c implements it for
   QEMU's mps2-an386, and a real board replaces only that file. */
#ifndef BOARD_H
#define BOARD_H
#include <stddef.h>
#include <stdint.h>

void board_init(void);
/* Milliseconds since reset (a hardware timer). Wall time is rtc_base_ms + this. */
uint64_t board_uptime_ms(void);
/* Virtual nanoseconds since reset at the timer's resolution (40 ns). Under QEMU -icount shift=0
   one instruction is one virtual nanosecond, so differences count instructions. */
uint64_t board_virtual_ns(void);
/* Sleeps (WFI) until an interrupt: the 1 ms tick or a received UART byte. */
void board_idle(void);

/* UART0 (to the modem / host). Reception is interrupt driven with flow control: when the ring is
   full the UART is left unread, so the sender waits instead of losing bytes. */
void board_uart_write(const uint8_t *bytes, size_t len);
/* Next received byte, or -1 when none is waiting. */
int board_uart_read(void);

/* Persistent memory: a host file through semihosting on QEMU, a flash page on a board. */
int board_flash_open(const char *path, size_t size);
int board_flash_read(uint32_t offset, uint8_t *out, size_t len);
/* Returns only once the bytes are on the medium (the ABI's write-before-send rule). */
int board_flash_write(uint32_t offset, const uint8_t *bytes, size_t len);

/* The command line the image was started with (semihosting SYS_GET_CMDLINE). */
const char *board_cmdline(void);
void board_log(const char *line);
__attribute__((noreturn)) void board_fault(const char *why);

/* RAM accounting for the benchmarks. */
void board_paint_stack(void);
uint32_t board_stack_high_water(void);
uint32_t board_heap_high_water(void);
uint32_t board_heap_in_use(void);
uint32_t board_static_ram(void);

void SysTick_Handler(void);
void UART0_RX_Handler(void);
#endif
