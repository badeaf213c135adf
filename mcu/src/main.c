/* The image: the firmware module on the board. Two modes, chosen on the command line:
   mode=wake  a sleepy device (boot from flash, publish, relay datagrams over the UART until
              prepare_sleep says 0), then exit = deep sleep; or with sleep=retained, several
              wakes with System ON idle between them (RAM and the compiled module kept).
              Used by `sleepy-session mcu`.
   mode=cmd   executes ABI calls sent by the host over the UART (the conformance engine and the
              benchmarks): the host drives, the image reports results and instruction counts. */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include "board.h"
#include "fw.h"
#include "slip.h"

#define REGION_BYTES 1280u
/* After the firmware's region, the board's own block: the entropy seed written at provisioning
   and a boot counter, so every wake seeds the DRBG with a value never used before. */
#define BOARD_BLOCK_OFFSET REGION_BYTES
#define BOARD_BLOCK_BYTES 40u
#define FLASH_BYTES (REGION_BYTES + BOARD_BLOCK_BYTES)
#define FRAME_CAP 1100u

static uint8_t frame[FRAME_CAP];
static uint64_t load_ns;
static uint32_t load_heap_bytes; /* heap in use once the module is instantiated and started */

/* The command line split once into words; arg("k") is the value of the word "k=value". */
static char words_buf[256];
static const char *words[16];
static int nwords = -1;

static const char *arg(const char *key) {
  if (nwords < 0) {
    strncpy(words_buf, board_cmdline(), sizeof words_buf - 1);
    nwords = 0;
    for (char *w = strtok(words_buf, " "); w && nwords < 16; w = strtok(NULL, " ")) words[nwords++] = w;
  }
  size_t klen = strlen(key);
  for (int i = 0; i < nwords; i++) {
    if (strncmp(words[i], key, klen) == 0 && words[i][klen] == '=') return words[i] + klen + 1;
  }
  return NULL;
}

/* Kept while the RAM is powered (not zeroed at reset): wakes that ended with an error. */
#define KEPT_MAGIC 0x4B455054u
static struct { uint32_t magic; uint32_t wake_errors; } kept __attribute__((section(".noinit")));

/* mode=wake: a failed load or a trap (an allocation refused at the heap bound included) ends the
   wake with a counted error and exit code 3. Whatever the failed call queued is never drained, so
   persistent memory keeps the last complete write: the session is untouched and the next wake
   boots from it. */
__attribute__((noreturn)) static void wake_error(const char *where, const char *why) {
  if (kept.magic != KEPT_MAGIC) {
    kept.magic = KEPT_MAGIC;
    kept.wake_errors = 0;
  }
  kept.wake_errors++;
  char line[200];
  snprintf(line, sizeof line, "wake-error errors=%lu alloc-failures=%lu in %s: %s", (unsigned long)kept.wake_errors,
           (unsigned long)board_alloc_failures(), where, why);
  board_log(line);
  board_exit(3);
}

static int64_t call(const char *name, int argc, const uint64_t *args) {
  uint64_t r = 0;
  int has = 0;
  const char *trap = fw_call(name, argc, args, &r, &has);
  if (trap) wake_error(name, trap);
  return (int64_t)r;
}

static int64_t call0(const char *name) { return call(name, 0, NULL); }
static int64_t call1(const char *name, uint64_t a) { return call(name, 1, &a); }
static int64_t call2(const char *name, uint64_t a, uint64_t b) {
  uint64_t v[2] = { a, b };
  return call(name, 2, v);
}
static int64_t call3(const char *name, uint64_t a, uint64_t b, uint64_t c) {
  uint64_t v[3] = { a, b, c };
  return call(name, 3, v);
}

static uint8_t *io(void) {
  uint32_t size;
  return fw_memory(&size) + (uint32_t)call0("io_ptr");
}

/* ---- mode=wake ---------------------------------------------------------------------------- */
static uint64_t rtc_base_ms;
static uint64_t now_ms(void) { return rtc_base_ms + board_uptime_ms(); }

/* newlib-nano's printf has no %lld: every value printed here fits 32 bits. */
static void say(const char *fmt, unsigned long a, unsigned long b) {
  char line[80];
  snprintf(line, sizeof line, fmt, a, b);
  board_log(line);
}

/* Where the persisted region lives. sleep=reset (deep sleep, RAM lost): all of it on flash.
   sleep=retained (System ON idle, RAM kept): the credentials block (written once at provisioning)
   on flash and the two session slots in retained RAM, as on a board with BKPSRAM or retained RAM
   sections (docs/engines.md): a wake writes no flash. A power loss takes the slots, keys and
   session together (the magic is gone: they read as erased and the next boot handshakes). */
#define CREDENTIALS_BYTES 192u
#define RETAINED_MAGIC 0x534C4F54u
static struct {
  uint32_t magic;
  uint8_t slots[REGION_BYTES - CREDENTIALS_BYTES];
} retained_ram __attribute__((section(".noinit")));
static int slots_in_ram;

static void region_read(uint8_t *out) {
  if (!slots_in_ram) {
    if (board_flash_read(0, out, REGION_BYTES) != 0) board_fault("flash read failed");
    return;
  }
  if (board_flash_read(0, out, CREDENTIALS_BYTES) != 0) board_fault("flash read failed");
  if (retained_ram.magic != RETAINED_MAGIC) {
    memset(retained_ram.slots, 0xff, sizeof retained_ram.slots); /* powered up: nothing retained */
    retained_ram.magic = RETAINED_MAGIC;
  }
  memcpy(out + CREDENTIALS_BYTES, retained_ram.slots, sizeof retained_ram.slots);
}

static int region_write(uint32_t offset, const uint8_t *bytes, uint32_t len) {
  if (offset + len > REGION_BYTES) return -1;
  if (!slots_in_ram) return board_flash_write(offset, bytes, len);
  if (offset < CREDENTIALS_BYTES) { /* the credentials: flash (provisioning writes them, a wake never) */
    uint32_t n = len < CREDENTIALS_BYTES - offset ? len : CREDENTIALS_BYTES - offset;
    if (board_flash_write(offset, bytes, n) != 0) return -1;
    offset += n, bytes += n, len -= n;
  }
  memcpy(retained_ram.slots + (offset - CREDENTIALS_BYTES), bytes, len);
  return 0;
}

/* The ABI's host contract: persistent writes first, then events, then datagrams. */
static void drain(void) {
  for (int n; (n = (int)call0("poll_store")) > 0;) {
    uint8_t *b = io();
    uint32_t offset = (uint32_t)b[0] | (uint32_t)b[1] << 8 | (uint32_t)b[2] << 16 | (uint32_t)b[3] << 24;
    if (region_write(offset, b + 4, (uint32_t)(n - 4)) != 0) board_fault("persistent write failed");
  }
  for (int n; (n = (int)call0("poll_event")) > 0;) {
    uint8_t *b = io();
    uint32_t a = (uint32_t)b[4] | (uint32_t)b[5] << 8 | (uint32_t)b[6] << 16 | (uint32_t)b[7] << 24;
    say("event %lu %lu", b[0], a);
  }
  for (int n; (n = (int)call0("poll_transmit")) > 0;) slip_send(io(), (size_t)n);
}

static int hex_decode(const char *hex, uint8_t *out, size_t cap) {
  size_t n = strlen(hex);
  if (n % 2 || n / 2 > cap) return -1;
  for (size_t i = 0; i < n / 2; i++) {
    unsigned v;
    if (sscanf(hex + 2 * i, "%2x", &v) != 1) return -1;
    out[i] = (uint8_t)v;
  }
  return (int)(n / 2);
}

/* Power-on: the module loaded (parsed; wasm3 compiles each function at its first call) and its
   DRBG seeded from seed (provisioning) ‖ power-on counter ‖ RTC. The counter is on flash before
   use; it moves once per power-on, so in retained sleep no wake writes flash for it. */
static uint32_t power_on(void) {
  uint8_t block[BOARD_BLOCK_BYTES];
  if (board_flash_read(BOARD_BLOCK_OFFSET, block, sizeof block) != 0 || memcmp(block, "BRD1", 4) != 0) {
    board_fault("flash has no board block (provision the device)");
  }
  uint32_t boots;
  memcpy(&boots, block + 4, 4);
  boots++;
  memcpy(block + 4, &boots, 4);
  if (board_flash_write(BOARD_BLOCK_OFFSET + 4, block + 4, 4) != 0) board_fault("boot counter write failed");

  const char *why = fw_load();
  if (why) wake_error("load", why);
  uint8_t *b = io();
  memcpy(b, block + 8, 32);
  memcpy(b + 32, &boots, 4);
  uint64_t t = now_ms();
  memcpy(b + 36, &t, 8);
  memset(b + 44, 0, 4);
  memset(block, 0, sizeof block);
  if (call1("seed_entropy", 48) != 0) board_fault("seed_entropy refused");
  return boots;
}

/* One wake from boot to prepare_sleep's 0. `n` numbers the wakes of this power-on. */
static void one_wake(uint32_t boots, uint32_t n, uint64_t app_awake_ms) {
  region_read(io());
  int64_t state = call2("boot", now_ms(), REGION_BYTES);
  if (state < 0) board_fault(state == -1 ? "boot: no valid credentials on flash" : "boot failed");
  say("boot %lu boots=%lu", state, boots);
  drain();

  const char *event = arg("event");
  if (event) {
    size_t name_len = strlen(event);
    const char *data_hex = arg("data");
    uint8_t data[48];
    int data_len = data_hex ? hex_decode(data_hex, data, sizeof data) : 0;
    if (data_len < 0 || name_len > 15) board_fault("bad event=NAME (1..15) or data=HEX (0..43 bytes)");
    /* Retained sleep runs every wake in one image: the reading names its wake. */
    if (!data_hex && slots_in_ram) data_len = snprintf((char *)data, sizeof data, "wake %lu", (unsigned long)n);
    uint8_t *b = io();
    memcpy(b, event, name_len);
    memcpy(b + name_len, data, (size_t)data_len);
    int64_t seq = call3("publish", now_ms(), name_len, (uint64_t)data_len);
    /* -3: the outbox is full (6 unconfirmed events); the device sleeps and tries again next wake. */
    if (seq < 0) say("publish-refused %lu %lu", (unsigned long)-seq, 0);
    else say("published %lu %lu", (unsigned long)seq, 0);
    drain();
  }

  uint64_t awake_until = now_ms() + app_awake_ms;
  for (;;) {
    uint64_t t = now_ms();
    if (t >= awake_until) {
      int64_t w = call1("prepare_sleep", t);
      drain();
      if (w <= 0) break;
      awake_until = t + (uint64_t)w;
      continue;
    }
    int64_t next = call0("next_timeout");
    if (next >= 0 && t >= (uint64_t)next) {
      call1("handle_timeout", t);
      drain();
      continue;
    }
    uint64_t deadline = awake_until;
    if (next >= 0 && (uint64_t)next < deadline) deadline = (uint64_t)next;
    int len = slip_receive(frame, sizeof frame, deadline - rtc_base_ms);
    if (len > 0) {
      memcpy(io(), frame, (size_t)len);
      call2("handle_datagram", now_ms(), (uint64_t)len);
      drain();
    }
  }
  say("sleep session=%lu heap=%lu", call0("session_state"), board_heap_high_water());
  say("ram stack=%lu static=%lu", board_stack_high_water(), board_static_ram());
}

static int wake(void) {
  const char *path = arg("flash");
  const char *rtc = arg("rtc");
  if (!path || !rtc) board_fault("mode=wake needs flash=PATH rtc=MS");
  rtc_base_ms = strtoull(rtc, NULL, 10);
  const char *awake = arg("awake");
  uint64_t app_awake_ms = awake ? strtoull(awake, NULL, 10) : 3000;
  /* sleep=reset (default): one wake, then exit (deep sleep: the next wake is a new power-on).
     sleep=retained wakes=N every=MS: N wakes in this power-on, System ON idle between them. */
  const char *sleep_mode = arg("sleep");
  slots_in_ram = sleep_mode && strcmp(sleep_mode, "retained") == 0;
  if (sleep_mode && !slots_in_ram && strcmp(sleep_mode, "reset") != 0) board_fault("sleep=reset or sleep=retained");
  const char *wakes_arg = arg("wakes"), *every_arg = arg("every");
  uint32_t wakes = slots_in_ram && wakes_arg ? (uint32_t)strtoul(wakes_arg, NULL, 10) : 1;
  uint64_t every_ms = every_arg ? strtoull(every_arg, NULL, 10) : 0;
  if (board_flash_open(path, FLASH_BYTES) != 0) board_fault("cannot open the flash file");

  uint32_t boots = power_on();
  for (uint32_t n = 1;; n++) {
    uint64_t started = board_uptime_ms();
    one_wake(boots, n, app_awake_ms);
    if (n >= wakes) break;
    /* System ON idle: the CPU waits for the timer, RAM and the compiled module kept. The radio is
       off: whatever reaches the UART meanwhile is dropped. The DRBG keeps its state (no reseed). */
    while (board_uptime_ms() < started + every_ms) {
      board_idle();
      while (board_uart_read() >= 0) {
      }
    }
  }
  return 0;
}

/* ---- mode=cmd ----------------------------------------------------------------------------- */
static void put_u32(uint8_t *p, uint32_t v) { memcpy(p, &v, 4); }
static void put_u64(uint8_t *p, uint64_t v) { memcpy(p, &v, 8); }
static uint32_t get_u32(const uint8_t *p) { uint32_t v; memcpy(&v, p, 4); return v; }

static void reply_call(const uint8_t *cmd, int len) {
  /* 'c' name_len name argc value64*: i32 arguments in the low half (engine_*.c knows the types) */
  uint8_t out[1 + 1 + 1 + 8 + 8 + 120];
  char name[40];
  uint64_t args[6];
  int ok = len >= 3 && cmd[1] < sizeof name && 2 + cmd[1] + 1 <= len;
  int argc = 0;
  if (ok) {
    memcpy(name, cmd + 2, cmd[1]);
    name[cmd[1]] = 0;
    argc = cmd[2 + cmd[1]];
    ok = argc <= 6 && 3 + cmd[1] + argc * 8 == len;
  }
  if (!ok) board_fault("malformed call command");
  for (int i = 0; i < argc; i++) memcpy(&args[i], cmd + 3 + cmd[1] + 8 * i, 8);
  uint64_t r = 0;
  int has = 0;
  uint64_t t0 = board_virtual_ns();
  const char *trap = fw_call(name, argc, args, &r, &has);
  uint64_t ns = board_virtual_ns() - t0;
  out[0] = 'r';
  out[1] = trap ? 1 : 0;
  out[2] = (uint8_t)has;
  put_u64(out + 3, r);
  put_u64(out + 11, ns);
  size_t n = 19;
  if (trap) {
    size_t m = strlen(trap);
    if (m > 120) m = 120;
    memcpy(out + n, trap, m);
    n += m;
  }
  slip_send(out, n);
}

static int command_loop(void) {
  uint32_t mem_size;
  for (;;) {
    int len = slip_receive(frame, sizeof frame, UINT64_MAX);
    uint8_t *mem = fw_memory(&mem_size);
    switch (frame[0]) {
      case 'c':
        reply_call(frame, len);
        break;
      case 'w': { /* ptr u32, bytes */
        uint32_t ptr = get_u32(frame + 1), n = (uint32_t)len - 5;
        if (len < 5 || ptr > mem_size || n > mem_size - ptr) board_fault("write outside linear memory");
        memcpy(mem + ptr, frame + 5, n);
        slip_send((const uint8_t *)"k", 1);
        break;
      }
      case 'm': { /* ptr u32, len u32 */
        uint32_t ptr = get_u32(frame + 1), n = get_u32(frame + 5);
        if (len != 9 || ptr > mem_size || n > mem_size - ptr) board_fault("read outside linear memory");
        slip_send2((const uint8_t *)"d", 1, mem + ptr, n);
        break;
      }
      case 'e': { /* export names, one per frame, then an empty 'n' */
        for (int i = 0;; i++) {
          const char *name = fw_export_name(i);
          slip_send2((const uint8_t *)"n", 1, (const uint8_t *)(name ? name : ""), name ? strlen(name) : 0);
          if (!name) break;
        }
        break;
      }
      case 's': { /* RAM and time figures */
        uint8_t out[1 + 8 + 7 * 4];
        out[0] = 'S';
        put_u64(out + 1, load_ns);
        put_u32(out + 9, board_heap_high_water());
        put_u32(out + 13, board_heap_in_use());
        put_u32(out + 17, board_stack_high_water());
        put_u32(out + 21, board_static_ram());
        put_u32(out + 25, mem_size);
        put_u32(out + 29, load_heap_bytes);
        put_u32(out + 33, fw_value_stack_high_water());
        slip_send(out, sizeof out);
        break;
      }
      case 'q':
        return 0;
      default:
        board_fault("unknown command");
    }
  }
}

int main(void) {
  board_init();
  const char *mode = arg("mode");
  if (mode && strcmp(mode, "wake") == 0) return wake();
  if (mode && strcmp(mode, "cmd") == 0) {
    uint64_t t0 = board_virtual_ns();
    const char *why = fw_load();
    load_ns = board_virtual_ns() - t0;
    load_heap_bytes = board_heap_in_use();
    /* Ready frame: engine name, or the load error. */
    uint8_t head[2] = { 'R', why ? 1 : 0 };
    const char *text = why ? why : fw_engine_name;
    slip_send2(head, 2, (const uint8_t *)text, strlen(text));
    return why ? 1 : command_loop();
  }
  board_fault("command line needs mode=wake or mode=cmd");
}
