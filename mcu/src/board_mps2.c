/* Board layer for QEMU mps2-an386: CMSDK UART0, SysTick at the 25 MHz system clock, an MPU stack
   guard and a heap bounded by the linker's __heap_limit. Two builds of this file:
   BOARD_SEMIHOSTING=1, the debug image the host tools drive: the command line, the log and the
   persistent-memory file through semihosting (BKPT 0xAB, which hard-faults on a board without a
   debugger attached);
   BOARD_SEMIHOSTING=0, the release image: no semihosting at all. The log goes out on UART1, a wake
   ends by a reset request (board_exit), and the configuration block and the persistent memory
   live in the board's PSRAM, which QEMU maps from a host file (mcu/README in docs/engines.md). */
#include "board.h"
#include <errno.h>
#include <malloc.h>
#include <stddef.h>
#include <stdlib.h>
#include <string.h>
#ifndef BOARD_SEMIHOSTING
#define BOARD_SEMIHOSTING 1
#endif
#if BOARD_SEMIHOSTING
#include <fcntl.h>
#include <unistd.h>
#endif

#define REG(addr) (*(volatile uint32_t *)(addr))
#define UART0 0x40004000u
#define UART_DATA REG(UART0 + 0x0)
#define UART_STATE REG(UART0 + 0x4)
#define UART_CTRL REG(UART0 + 0x8)
#define UART_INT REG(UART0 + 0xC)
#define UART_BAUDDIV REG(UART0 + 0x10)
#define SYST_CSR REG(0xE000E010u)
#define SYST_RVR REG(0xE000E014u)
#define SYST_CVR REG(0xE000E018u)
#define NVIC_ISER0 REG(0xE000E100u)
#define SCB_AIRCR REG(0xE000ED0Cu)
#define SCB_SHCSR REG(0xE000ED24u)
#define MPU_CTRL REG(0xE000ED94u)
#define MPU_RNR REG(0xE000ED98u)
#define MPU_RBAR REG(0xE000ED9Cu)
#define MPU_RASR REG(0xE000EDA0u)
#define UART1 0x40005000u
#define SYSCLK_HZ 25000000u
#define TICKS_PER_MS (SYSCLK_HZ / 1000u)
#define NS_PER_TICK (1000000000u / SYSCLK_HZ)

static volatile uint64_t uptime_ms;

void SysTick_Handler(void) { uptime_ms++; }

/* Receive ring: the interrupt handler fills it; when full it masks the RX interrupt and leaves the
   byte in the UART, which holds off the sender (QEMU keeps the rest in the chardev). */
#define RX_RING 512u
static volatile uint8_t rx_ring[RX_RING];
static volatile uint32_t rx_head, rx_tail;

void UART0_RX_Handler(void) {
  UART_INT = 2u;
  while (UART_STATE & 2u) {
    if (rx_head - rx_tail >= RX_RING) {
      UART_CTRL &= ~8u;
      return;
    }
    rx_ring[rx_head % RX_RING] = (uint8_t)UART_DATA;
    rx_head++;
  }
}

int board_uart_read(void) {
  if (rx_tail == rx_head) {
    UART_CTRL |= 8u; /* room again: let the interrupt take the byte the UART holds */
    return -1;
  }
  int b = rx_ring[rx_tail % RX_RING];
  rx_tail++;
  if ((UART_CTRL & 8u) == 0) UART_CTRL |= 8u;
  return b;
}

void board_uart_write(const uint8_t *bytes, size_t len) {
  for (size_t i = 0; i < len; i++) {
    while (UART_STATE & 1u) {
    }
    UART_DATA = bytes[i];
  }
}

extern char __stack_guard[], __heap_start[], __heap_limit[];

/* The stack guard: 32 bytes below the stack that no code may touch (PMSAv7 region 0: no access,
   execute never). A stack that grows into it takes a MemManage fault (board_fault names the pc)
   instead of silently overwriting the heap. */
static void stack_guard_init(void) {
  MPU_RNR = 0;
  MPU_RBAR = (uint32_t)__stack_guard;
  MPU_RASR = (1u << 28) /* XN */ | (0u << 24) /* AP: no access */ | (4u << 1) /* 2^(4+1) = 32 B */ | 1u;
  MPU_CTRL = 4u /* PRIVDEFENA: the default map elsewhere */ | 1u;
  SCB_SHCSR |= 1u << 16; /* MemManage faults enabled (else they escalate to HardFault) */
  __asm volatile("dsb\n isb" ::: "memory");
}

void board_init(void) {
  stack_guard_init();
#if !BOARD_SEMIHOSTING
  REG(UART1 + 0x10) = 16u; /* BAUDDIV */
  REG(UART1 + 0x8) = 1u;   /* TX */
#endif
  SYST_RVR = TICKS_PER_MS - 1u;
  SYST_CVR = 0;
  SYST_CSR = 7u; /* processor clock, interrupt, enable */
  UART_BAUDDIV = 16u;
  UART_CTRL = 1u | 2u | 8u; /* TX, RX, RX interrupt */
  NVIC_ISER0 = 1u << 0;     /* UART0 RX */
}

uint64_t board_uptime_ms(void) { return uptime_ms; }

uint64_t board_virtual_ns(void) {
  uint64_t ms;
  uint32_t cvr;
  do {
    ms = uptime_ms;
    cvr = SYST_CVR;
  } while (ms != uptime_ms);
  return ms * 1000000u + (uint64_t)(TICKS_PER_MS - 1u - cvr) * NS_PER_TICK;
}

void board_idle(void) { __asm volatile("wfi"); }

/* The heap: newlib's malloc grows it through _sbrk (linked as __wrap__sbrk, -Wl,--wrap=_sbrk, so
   that rdimon's own _sbrk, which only compares against SP, is never used). Past __heap_limit the
   call fails with ENOMEM and malloc returns NULL: the engine reports out of memory, the wake ends
   with a counted error (main.c), and nothing is written. */
static char *heap_top = __heap_start;
static uint32_t alloc_failures;

void *__wrap__sbrk(ptrdiff_t increment) {
  char *old = heap_top;
  if (increment > __heap_limit - heap_top || increment < __heap_start - heap_top) {
    alloc_failures++;
    errno = ENOMEM;
    return (void *)-1;
  }
  heap_top += increment;
  return old;
}

uint32_t board_alloc_failures(void) { return alloc_failures; }

static size_t flash_size;

#if BOARD_SEMIHOSTING
/* Semihosting: QEMU runs the host's open/read/write for these (newlib's rdimon). */
static int flash_fd = -1;

int board_flash_open(const char *path, size_t size) {
  flash_fd = open(path, O_RDWR);
  flash_size = size;
  return flash_fd < 0 ? -1 : 0;
}

int board_flash_read(uint32_t offset, uint8_t *out, size_t len) {
  if (flash_fd < 0 || offset + len > flash_size) return -1;
  if (lseek(flash_fd, (off_t)offset, SEEK_SET) < 0) return -1;
  return read(flash_fd, out, len) == (int)len ? 0 : -1;
}

int board_flash_write(uint32_t offset, const uint8_t *bytes, size_t len) {
  if (flash_fd < 0 || offset + len > flash_size) return -1;
  if (lseek(flash_fd, (off_t)offset, SEEK_SET) < 0) return -1;
  /* Semihosting SYS_WRITE returns after the host's write(2): the bytes are in the file. */
  return write(flash_fd, bytes, len) == (int)len ? 0 : -1;
}

static char cmdline[256];

const char *board_cmdline(void) {
  struct { char *buf; int len; } block = { cmdline, (int)sizeof cmdline - 1 };
  register int r0 __asm("r0") = 0x15; /* SYS_GET_CMDLINE */
  register void *r1 __asm("r1") = &block;
  __asm volatile("bkpt 0xAB" : "+r"(r0) : "r"(r1) : "memory");
  if (r0 != 0) cmdline[0] = 0;
  return cmdline;
}

void board_log(const char *line) {
  write(1, line, strlen(line));
  write(1, "\n", 1);
}

void board_fault(const char *why) {
  write(2, "fault: ", 7);
  write(2, why, strlen(why));
  write(2, "\n", 1);
  _exit(99);
}

void board_exit(int code) { _exit(code); }
#else
/* The board's 16 MiB PSRAM at 0x21000000 is QEMU's machine RAM, which the host maps from a file
   (-object memory-backend-file,share=on): stores reach the file as they retire, like flash that
   is written by the word. Layout: the configuration block (the command line, NUL-terminated)
   written at provisioning, then at 4 KiB the persistent memory (region + board block). */
#define PSRAM_BASE 0x21000000u
#define CONFIG_BYTES 256u
#define FLASH_OFFSET 0x1000u
#define FLASH_BYTES_MAX 0x1000u

int board_flash_open(const char *path, size_t size) {
  (void)path;
  flash_size = size;
  return size <= FLASH_BYTES_MAX ? 0 : -1;
}

int board_flash_read(uint32_t offset, uint8_t *out, size_t len) {
  if (offset + len > flash_size) return -1;
  memcpy(out, (const uint8_t *)(PSRAM_BASE + FLASH_OFFSET + offset), len);
  return 0;
}

int board_flash_write(uint32_t offset, const uint8_t *bytes, size_t len) {
  if (offset + len > flash_size) return -1;
  memcpy((uint8_t *)(PSRAM_BASE + FLASH_OFFSET + offset), bytes, len);
  __asm volatile("dsb" ::: "memory"); /* retired: in the mapped file before the datagram goes out */
  return 0;
}

static char cmdline[CONFIG_BYTES];

const char *board_cmdline(void) {
  memcpy(cmdline, (const char *)PSRAM_BASE, CONFIG_BYTES - 1);
  cmdline[CONFIG_BYTES - 1] = 0;
  return cmdline;
}

static void uart1_write(const char *s, size_t n) {
  for (size_t i = 0; i < n; i++) {
    while (REG(UART1 + 0x4) & 1u) {
    }
    REG(UART1 + 0x0) = (uint8_t)s[i];
  }
}

void board_log(const char *line) {
  uart1_write(line, strlen(line));
  uart1_write("\n", 1);
}

void board_exit(int code) {
  char line[16] = "exit ";
  size_t n = 5;
  if (code < 0 || code > 255) code = 255;
  if (code >= 100) line[n++] = (char)('0' + code / 100);
  if (code >= 10) line[n++] = (char)('0' + code / 10 % 10);
  line[n++] = (char)('0' + code % 10);
  line[n] = 0;
  board_log(line);
  __asm volatile("dsb" ::: "memory");
  SCB_AIRCR = 0x05FA0004u; /* VECTKEY | SYSRESETREQ */
  for (;;) __asm volatile("wfi");
}

void board_fault(const char *why) {
  uart1_write("fault: ", 7);
  board_log(why);
  board_exit(99);
}
#endif

/* Stack high-water by painting: everything below the live frame is filled with a pattern at
   reset; the lowest word that no longer holds it is as deep as the stack ever went. */
extern uint32_t __stack_limit, __stack_top, __data_start, __noinit_end;
#define PAINT 0xA5C3E1F0u

__attribute__((noinline)) void board_paint_stack(void) {
  uint32_t *p = &__stack_limit;
  uint32_t *sp;
  __asm volatile("mov %0, sp" : "=r"(sp));
  while (p < sp - 16) *p++ = PAINT;
}

uint32_t board_stack_high_water(void) {
  uint32_t *p = &__stack_limit;
  while (p < &__stack_top && *p == PAINT) p++;
  return (uint32_t)((char *)&__stack_top - (char *)p);
}

/* newlib's allocator only ever grows its arena (no trim below 128 KiB), so the arena is the heap's high-water. */
uint32_t board_heap_high_water(void) { return (uint32_t)mallinfo().arena; }
uint32_t board_heap_in_use(void) { return (uint32_t)mallinfo().uordblks; }
/* .data, .bss and .noinit (the retained record and counters). */
uint32_t board_static_ram(void) { return (uint32_t)((char *)&__noinit_end - (char *)&__data_start); }
