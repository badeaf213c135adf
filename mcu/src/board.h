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

/* Persistent memory: a host file through semihosting on QEMU (the debug image), the board's
   file-backed PSRAM standing in for flash on QEMU (the release image), a flash page on a board. */
int board_flash_open(const char *path, size_t size);
int board_flash_read(uint32_t offset, uint8_t *out, size_t len);
/* Returns only once the bytes are on the medium (the ABI's write-before-send rule). */
int board_flash_write(uint32_t offset, const uint8_t *bytes, size_t len);

/* The command line the image was started with: semihosting SYS_GET_CMDLINE in the debug image,
   a configuration block written at provisioning in the release image. */
const char *board_cmdline(void);
/* One log line: semihosting stdout in the debug image, UART1 in the release image. */
void board_log(const char *line);
__attribute__((noreturn)) void board_fault(const char *why);
/* The end of a wake: deep sleep on a board. The debug image exits QEMU through semihosting with
   `code`; the release image logs "exit CODE" and requests a system reset (AIRCR SYSRESETREQ),
   which QEMU's -no-reboot turns into exiting and a board's standby turns into the next wake. */
__attribute__((noreturn)) void board_exit(int code);

/* Heap allocations refused because they would pass the linker's __heap_limit (own _sbrk). */
uint32_t board_alloc_failures(void);

/* RAM accounting for the benchmarks. */
void board_paint_stack(void);
uint32_t board_stack_high_water(void);
uint32_t board_heap_high_water(void);
uint32_t board_heap_in_use(void);
uint32_t board_static_ram(void);

void SysTick_Handler(void);
void UART0_RX_Handler(void);
#endif
