/*
 * Shared harness for the native fuzz targets: build/session.wasm translated by wasm2c, one
 * instance for the whole run, a snapshot of memory + globals restored before each input (a fresh
 * instance per input would exhaust address space), the host contract (drain poll_store before
 * transmitting) and the invariants every target checks. A failed invariant prints one line
 * starting "INVARIANT:" and aborts, which libFuzzer reports as a crash and saves.
 *
 * With FUZZ_TRACE=FILE every ABI call, its io input and its outputs are written to FILE; the
 * differential test replays that log on V8 and wasm3 and compares every byte.
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "session.h"
#include "wasm-rt-impl.h"
#include "transcripts.h" /* generated: lifecycle_ops[], ecdhe_ops[], fuzz_psk[], fuzz_device_key[], fuzz_server_point[] */

#define REGION_BYTES 1280
#define SLOT_A_AT 192
#define SLOT_BYTES 544
#define MEM_BYTES 65536
/* Snapshots: 0-7 along the PSK conversation, 8-15 along the ECDHE-ECDSA one (fuzz/ops.ts). */
#define NPSK_MARKS 8
#define NMARKS 16
#define MAX_COUNTERS 64
/* Counter indexes (docs/abi.md). */
enum { C_RX_DATAGRAMS = 0, C_RX_RECORDS_OK = 1, C_DROP_FIRST = 2, C_DROP_LAST = 13, C_PEER_RETRANSMISSIONS = 20,
       C_DROP_UNKNOWN_CID = 26, C_DROP_DATAGRAM_TOO_LONG = 40, C_DROP_RX_TOO_LARGE = 41, C_DATAGRAMS_ACCEPTED = 45,
       C_DATAGRAMS_RETRANSMITTED = 46, C_DATAGRAMS_DROPPED = 47 };
enum { SS_OFF, SS_HANDSHAKING, SS_RESUMED, SS_CONFIRMED, SS_NO_SESSION };
enum { EV_RESUMED = 1, EV_HANDSHAKE_STARTED, EV_CONNECTED, EV_CONFIRMED, EV_EVENT_ACKED, EV_SESSION_DISCARDED,
       EV_HANDSHAKE_FAILED, EV_EVENT_DROPPED, EV_HINT_IGNORED };
enum { OP_RESET = 1, OP_PROVISION_DEVICE, OP_SEED, OP_BOOT, OP_DATAGRAM, OP_TIMEOUT, OP_PUBLISH, OP_PREPARE_SLEEP, OP_MARK, OP_PROVISION_DEVICE_ECDHE };
static const char *MARK_NAMES[NMARKS] = {"idle", "client-hello", "hello-verify", "wait-server-hello-done",
                                         "wait-finished", "connected", "resumed", "confirmed",
                                         "ecdhe-client-hello", "ecdhe-hello-verify", "ecdhe-server-hello",
                                         "ecdhe-certificate", "ecdhe-server-key-exchange", "ecdhe-certificate-request",
                                         "ecdhe-wait-finished", "ecdhe-connected"};
enum { MARK_CONFIRMED = 7, MARK_ECDHE_CONNECTED = 15 };

/* The snapshot an input's first byte picks: 0x00-0xBF the PSK ones (byte % 8, as before the ECDHE
 * conversation existed, so older inputs keep their meaning), 0xC0-0xFF the ECDHE ones. */
static int pick_mark(uint8_t b) { return b >= 0xc0 ? NPSK_MARKS + (b & 7) : b % NPSK_MARKS; }
/* The conversation a snapshot belongs to: 0 PSK (lifecycle_ops), 1 ECDHE (ecdhe_ops). */
static int conv_of(int mark) { return mark >= NPSK_MARKS; }

struct Z_env_instance_t {
  char abort_message[256];
};

typedef struct {
  Z_session_instance_t inst;
  uint8_t mem[MEM_BYTES];
  uint8_t flash[REGION_BYTES];
  int64_t now;
  int valid;
} snapshot_t;

static Z_session_instance_t g_inst;
static struct Z_env_instance_t g_env;
static uint8_t *g_mem;
static uint32_t g_heap;
static uint8_t g_flash[REGION_BYTES];
static int64_t g_now;
static FILE *g_trace;
static snapshot_t g_fresh, g_snaps[NMARKS];

/* What the last drain saw. */
#define MAX_EVENTS 64
static struct { uint8_t type; uint32_t a; } g_events[MAX_EVENTS];
static int g_nevents;
static void (*g_on_transmit)(const uint8_t *d, uint32_t n);

/* Datagrams the cloud sent in the captured conversation (inputs may replay them). */
#define MAX_CLOUD 32
static const uint8_t *g_cloud_sets[2][MAX_CLOUD];
static uint32_t g_cloud_len_sets[2][MAX_CLOUD];
static int g_ncloud_sets[2];
/* Those of the conversation the current input starts from (restore). */
static const uint8_t **g_cloud = g_cloud_sets[0];
static uint32_t *g_cloud_len = g_cloud_len_sets[0];
static int g_ncloud;
static int g_conv; /* the conversation being replayed at start-up, then the current input's */

/* FUZZ_SUPPRESS="text1|text2": a failed invariant whose message contains one of them abandons
 * the input instead of crashing (to keep fuzzing past a known defect until its fix is merged). */
static jmp_buf g_input_jmp;
static int g_in_input;

__attribute__((noreturn, format(printf, 1, 2))) static void fail(const char *fmt, ...) {
  char msg[512];
  va_list ap;
  va_start(ap, fmt);
  vsnprintf(msg, sizeof msg, fmt, ap);
  va_end(ap);
  const char *sup = getenv("FUZZ_SUPPRESS");
  if (sup && *sup && g_in_input) {
    char list[512];
    snprintf(list, sizeof list, "%s", sup);
    for (char *save = NULL, *t = strtok_r(list, "|", &save); t; t = strtok_r(NULL, "|", &save))
      if (*t && strstr(msg, t)) longjmp(g_input_jmp, 1);
  }
  fprintf(stderr, "INVARIANT: %s\n", msg);
  if (g_trace) fflush(g_trace);
  abort();
}

/* The module's one import: remember the abort message; the module traps right after. */
void Z_envZ_trap(struct Z_env_instance_t *env, u32 msg, u32 file, u32 line, u32 col) {
  size_t o = 0;
  for (int which = 0; which < 2; which++) {
    u32 p = which ? file : msg;
    if (p < 4 || p >= MEM_BYTES) continue;
    u32 n;
    memcpy(&n, g_mem + p - 4, 4);
    for (u32 i = 0; i < n && p + i < MEM_BYTES && o + 2 < sizeof env->abort_message; i += 2) env->abort_message[o++] = (char)g_mem[p + i];
    if (o + 2 < sizeof env->abort_message) env->abort_message[o++] = which ? ':' : ' ';
  }
  env->abort_message[o] = 0;
  snprintf(env->abort_message + o, sizeof env->abort_message - o, "%u:%u", line, col);
}

static const char *trap_name(wasm_rt_trap_t t) {
  switch (t) {
    case WASM_RT_TRAP_OOB: return "out-of-bounds memory access";
    case WASM_RT_TRAP_INT_OVERFLOW: return "integer overflow";
    case WASM_RT_TRAP_DIV_BY_ZERO: return "division by zero";
    case WASM_RT_TRAP_UNREACHABLE: return "unreachable (firmware abort)";
    case WASM_RT_TRAP_EXHAUSTION: return "call stack exhausted";
    default: return "trap";
  }
}

/* The firmware functions executing when the last trap happened, innermost first (the translation
 * records each function's name at entry: fuzz/wasm2c-patch.mjs). */
const char *fuzz_fn_stack[256];
static char g_trap_where[256];

static const char *fn_name(const char *f) {
  if (!f) return "?";
  if (!strncmp(f, "w2c_", 4)) f += 4;
  if (!strncmp(f, "assembly_", 9)) f += 9;
  return f;
}

/* The call chain, innermost first: "parseRecord < handleDatagram < handle_datagram". */
static void fn_chain(char *out, size_t cap) {
  size_t o = 0;
  out[0] = 0;
  for (uint32_t d = wasm_rt_call_stack_depth, k = 0; d >= 1 && k < 8 && o + 4 < cap; d--, k++)
    o += (size_t)snprintf(out + o, cap - o, "%s%s", k ? " < " : "", fn_name(fuzz_fn_stack[d & 255]));
}

void fuzz_on_trap(void) { fn_chain(g_trap_where, sizeof g_trap_where); }

/* Every entry point sets the landing place for traps; a trap is always a crash. */
#define CATCH_TRAPS()                                                                                  \
  do {                                                                                                 \
    wasm_rt_trap_t code_ = wasm_rt_impl_try();                                                         \
    if (code_ != WASM_RT_TRAP_NONE)                                                                    \
      fail("trap in %s: %s %s (in %s)", g_call, trap_name(code_), g_env.abort_message, g_trap_where);   \
  } while (0)

/* ---- over-read detection (fuzz/harness/hooks.h) ------------------------------------------------
 * Before each export call the bytes of the I/O buffer past the input the call was given (its
 * declared lengths) are poisoned; the firmware's stores unpoison, a load of a poisoned byte fails.
 * So a read past the datagram (or any input) inside wasm memory, which no sanitizer sees, is a
 * crash even when the byte read changes nothing visible. */
uint64_t fuzz_shadow_lo, fuzz_shadow_hi;
static uint8_t g_poison[MEM_BYTES];
static uint32_t g_io_in; /* declared input length of the next export call */
static uint32_t g_io, g_iocap;
static const char *g_call = "(none)";

void fuzz_shadow_load(uint64_t a, uint64_t n) {
  for (uint64_t i = a; i < a + n && i < MEM_BYTES; i++)
    if (g_poison[i]) {
      char where[256];
      fn_chain(where, sizeof where);
      fuzz_shadow_hi = 0;
      fail("over-read: %s read io+%u (%llu bytes at io+%u), past the %u bytes of input it was given (in %s)", g_call,
           (unsigned)(i - g_io), (unsigned long long)n, (unsigned)(a - g_io), g_io_in, where);
    }
}

/* Bytes of io that hold what poll_store handed out and nothing stored there since: the credentials
 * block carries the device's private key to flash by design, so it may sit there until overwritten
 * (check_io_private looks only for copies made by anything else). */
static uint8_t g_from_store[MEM_BYTES];

void fuzz_shadow_store(uint64_t a, uint64_t n) {
  for (uint64_t i = a; i < a + n && i < MEM_BYTES; i++) g_poison[i] = 0, g_from_store[i] = 0;
}

static void shadow_arm(void) {
  if (g_iocap == 0) return;
  uint32_t in = g_io_in < g_iocap ? g_io_in : g_iocap;
  memset(g_poison + g_io, 0, in);
  memset(g_poison + g_io + in, 1, g_iocap - in);
  fuzz_shadow_lo = g_io;
  fuzz_shadow_hi = g_io + g_iocap;
}

static void shadow_disarm(void) {
  fuzz_shadow_hi = 0;
  g_io_in = 0;
}

/* Start of every input: traps land here, suppressed invariants abandon the input here. */
#define BEGIN_INPUT(data, size)             \
  do {                                      \
    if ((size) == 0) return 0;              \
    g_input = (data), g_input_n = (size);   \
    g_in_input = 0;                         \
    if (g_trace) fputs("I\n", g_trace);     \
    if (setjmp(g_input_jmp)) {              \
      wasm_rt_call_stack_depth = 0;         \
      shadow_disarm();                      \
      return 0;                             \
    }                                       \
    CATCH_TRAPS();                          \
    g_in_input = 1;                         \
  } while (0)

/* ---- trace ---------------------------------------------------------------------------------- */

static void trace_hex(char tag, const uint8_t *p, uint32_t n) {
  if (!g_trace) return;
  fputc(tag, g_trace);
  fputc(' ', g_trace);
  for (uint32_t i = 0; i < n; i++) fprintf(g_trace, "%02x", p[i]);
  fputc('\n', g_trace);
}

static void trace_call(const char *name, int nargs, const int64_t *args, int64_t ret) {
  if (!g_trace) return;
  fprintf(g_trace, "C %s", name);
  for (int i = 0; i < nargs; i++) fprintf(g_trace, " %lld", (long long)args[i]);
  fprintf(g_trace, " = %lld\n", (long long)ret);
}

static uint64_t mem_hash(void) {
  uint64_t h = 0xcbf29ce484222325ull;
  for (uint32_t i = 0; i < MEM_BYTES; i++) h = (h ^ g_mem[i]) * 0x100000001b3ull;
  return h;
}

static void trace_checkpoint(void) {
  if (g_trace) fprintf(g_trace, "M %016llx\n", (unsigned long long)mem_hash());
}

/* ---- calls ---------------------------------------------------------------------------------- */

/* Every export call: the over-read shadow armed for exactly the input written for it (io_put). */
#define CALL0(name)                                                   \
  ({                                                                  \
    g_call = #name;                                                   \
    shadow_arm();                                                     \
    __typeof__(Z_sessionZ_##name(&g_inst)) r_ = Z_sessionZ_##name(&g_inst); \
    shadow_disarm();                                                  \
    r_;                                                               \
  })
#define CALLN(name, ...)                                              \
  ({                                                                  \
    g_call = #name;                                                   \
    shadow_arm();                                                     \
    __typeof__(Z_sessionZ_##name(&g_inst, __VA_ARGS__)) r_ = Z_sessionZ_##name(&g_inst, __VA_ARGS__); \
    shadow_disarm();                                                  \
    r_;                                                               \
  })
#define TRACED(ret, name, nargs, ...)                               \
  do {                                                              \
    int64_t a_[] = {__VA_ARGS__};                                   \
    trace_call(name, nargs, a_, (int64_t)(ret));                    \
  } while (0)

static void io_put(uint32_t at, const uint8_t *p, uint32_t n) {
  if (at + n > g_iocap) n = at < g_iocap ? g_iocap - at : 0;
  memcpy(g_mem + g_io + at, p, n);
  memset(g_from_store + g_io + at, 0, n);
  if (at + n > g_io_in) g_io_in = at + n;
  if (g_trace) {
    fprintf(g_trace, "W %u ", at);
    for (uint32_t i = 0; i < n; i++) fprintf(g_trace, "%02x", p[i]);
    fputc('\n', g_trace);
  }
}

static uint32_t read_counters(uint32_t *out) {
  uint32_t n = (uint32_t)CALL0(counters_read);
  trace_call("counters_read", 0, NULL, n);
  if (n > MAX_COUNTERS || n * 4 > g_iocap) fail("counters_read returned %u", n);
  memcpy(out, g_mem + g_io, n * 4);
  trace_hex('O', g_mem + g_io, n * 4);
  for (uint32_t i = n; i < MAX_COUNTERS; i++) out[i] = 0;
  return n;
}

static int32_t session_state(void) {
  int32_t s = (int32_t)CALL0(session_state);
  trace_call("session_state", 0, NULL, s);
  return s;
}

static int64_t next_timeout(void) {
  int64_t t = (int64_t)CALL0(next_timeout);
  trace_call("next_timeout", 0, NULL, t);
  return t;
}

static uint32_t heap_offset(void) {
  uint32_t h = CALL0(heap_offset);
  trace_call("heap_offset", 0, NULL, h);
  return h;
}

/* ---- keys and secrets ----------------------------------------------------------------------- */

static uint32_t crc32_ieee(const uint8_t *p, size_t n) {
  uint32_t c = 0xffffffffu;
  for (size_t i = 0; i < n; i++) {
    c ^= p[i];
    for (int k = 0; k < 8; k++) c = (c >> 1) ^ (0xedb88320u & (0u - (c & 1)));
  }
  return ~c;
}

/* The slot magic ("SLP1", "SLP2", …) is taken from the first slot with a valid CRC the firmware
 * writes in the captured conversation, so a layout version bump needs no harness change. */
static uint32_t g_slot_magic;

static int slot_valid(const uint8_t *s) {
  uint32_t magic, crc;
  memcpy(&magic, s, 4);
  memcpy(&crc, s + 540, 4);
  if (crc != crc32_ieee(s, 540) || (magic & 0xffffff) != 0x504c53u /* "SLP" */) return 0;
  if (!g_slot_magic) g_slot_magic = magic;
  return magic == g_slot_magic;
}

/* The valid slot with the newest generation (wrap-around compare), or NULL. */
static const uint8_t *newest_slot(const uint8_t *flash) {
  const uint8_t *a = flash + SLOT_A_AT, *b = flash + SLOT_A_AT + SLOT_BYTES;
  int va = slot_valid(a), vb = slot_valid(b);
  if (!va) return vb ? b : NULL;
  if (!vb) return a;
  uint32_t ga, gb;
  memcpy(&ga, a + 4, 4);
  memcpy(&gb, b + 4, 4);
  return (int32_t)(gb - ga) > 0 ? b : a;
}

/* Secrets nothing transmitted may contain: the PSK and every write key seen on flash this run. */
#define MAX_KEYS 64
static uint8_t g_keys[MAX_KEYS][16];
static int g_nkeys, g_nkeys_base;

/* Where a target takes the persisted region from its input (boot): secrets the input also holds
 * outside their own fields are the input's data, not something the firmware leaked. */
static uint8_t g_input_plain[REGION_BYTES];
static int g_have_input_region;

static void set_input_region(const uint8_t *region) {
  memcpy(g_input_plain, region, REGION_BYTES);
  memset(g_input_plain + 120, 0, 64); /* the credentials' PSK field */
  for (int s = 0; s < 2; s++) memset(g_input_plain + SLOT_A_AT + s * SLOT_BYTES + 20, 0, 40); /* keys and IVs */
  g_have_input_region = 1;
}

/* The fuzz input itself (BEGIN_INPUT): a secret it carries is the input's, echoing it is no leak
 * (a forged cookie holding the key is rightly echoed in the next ClientHello). */
static const uint8_t *g_input;
static size_t g_input_n;

/* Whether `hay` holds `s` — without memmem or memcmp, and without coverage instrumentation:
 * libFuzzer intercepts those and its comparison tracing would hand it the secret to put into an
 * input (it did: a "leak" of a key it had learnt from the harness's own memmem). A rolling hash
 * over the windows, confirmed byte by byte. */
__attribute__((no_sanitize("coverage"))) static int holds(const uint8_t *hay, size_t n, const uint8_t *s, size_t k) {
  if (k == 0 || n < k) return 0;
  const uint64_t B = 0x100000001b3ull;
  uint64_t want = 0, h = 0, top = 1;
  for (size_t i = 0; i < k; i++) {
    want = want * B + s[i];
    h = h * B + hay[i];
    if (i) top *= B;
  }
  for (size_t i = 0;; i++) {
    if (h == want) {
      size_t j = 0;
      while (j < k && hay[i + j] == s[j]) j++;
      if (j == k) return 1;
    }
    if (i + k >= n) return 0;
    h = (h - hay[i] * top) * B + hay[i + k];
  }
}

static int input_holds(const uint8_t *secret, size_t n) {
  return (g_have_input_region && holds(g_input_plain, REGION_BYTES, secret, n)) || holds(g_input, g_input_n, secret, n);
}

static int is_zero(const uint8_t *p, size_t n) {
  for (size_t i = 0; i < n; i++) if (p[i]) return 0;
  return 1;
}

static void learn_keys(const uint8_t *flash) {
  for (int s = 0; s < 2; s++) {
    const uint8_t *slot = flash + SLOT_A_AT + s * SLOT_BYTES;
    if (!slot_valid(slot)) continue;
    for (int k = 0; k < 2; k++) {
      const uint8_t *key = slot + 20 + 16 * k;
      if (is_zero(key, 16) || input_holds(key, 16)) continue;
      int known = 0;
      for (int i = 0; i < g_nkeys && !known; i++) known = memcmp(g_keys[i], key, 16) == 0;
      if (!known && g_nkeys < MAX_KEYS) memcpy(g_keys[g_nkeys++], key, 16);
    }
  }
}

/* ECDHE private keys the device held this run: the captured device's (injected) and every one a
 * credentials block on flash held (magic "CRK1", key at 120; generated ones too). */
#define MAX_PRIVS 32
static uint8_t g_privs[MAX_PRIVS][32];
static int g_nprivs, g_nprivs_base;

static void learn_private_key(const uint8_t *flash) {
  if (memcmp(flash, "CRK1", 4)) return;
  const uint8_t *key = flash + 120;
  if (is_zero(key, 32) || input_holds(key, 32)) return;
  for (int i = 0; i < g_nprivs; i++)
    if (!memcmp(g_privs[i], key, 32)) return;
  if (g_nprivs < MAX_PRIVS) memcpy(g_privs[g_nprivs++], key, 32);
}

/* The I/O buffer after an export returned: no device private key (device_public_key gives the
 * public half; provision_ecdhe and provision_device_ecdhe wipe what they were given), except where
 * the credentials block poll_store handed out still lies untouched. No memcmp: see holds(). */
__attribute__((no_sanitize("coverage"))) static void check_io_private(void) {
  for (int i = 0; i < g_nprivs; i++) {
    if (!holds(g_mem + g_io, g_iocap, g_privs[i], 32) || input_holds(g_privs[i], 32)) continue;
    for (uint32_t at = g_io; at + 32 <= g_io + g_iocap; at++) {
      uint32_t j = 0, stored = 1;
      while (j < 32 && g_mem[at + j] == g_privs[i][j]) stored &= g_from_store[at + j], j++;
      if (j == 32 && !stored) fail("the I/O buffer holds the device's ECDHE private key (key #%d) at io+%u after %s", i, at - g_io, g_call);
    }
  }
}

static void check_no_secrets(const uint8_t *d, uint32_t n, const char *where) {
  if (holds(d, n, fuzz_psk, sizeof fuzz_psk) && !input_holds(fuzz_psk, sizeof fuzz_psk)) fail("%s contains the PSK", where);
  for (int i = 0; i < g_nprivs; i++)
    if (holds(d, n, g_privs[i], 32) && !input_holds(g_privs[i], 32)) fail("%s contains the device's ECDHE private key (key #%d)", where, i);
  for (int i = 0; i < g_nkeys; i++)
    if (holds(d, n, g_keys[i], 16) && !input_holds(g_keys[i], 16)) fail("%s contains a write key (key #%d)", where, i);
}

/* After a session-discarded event: no write key the firmware ever persisted may stay anywhere in
 * linear memory (RAM, the slot images, the I/O buffer) or on flash, unless a valid slot holding a
 * session (flag 1) still has it (a newer session's) or the input carries it. */
__attribute__((no_sanitize("coverage"))) static void check_keys_gone(uint32_t reason) {
  for (int i = 0; i < g_nkeys; i++) {
    const uint8_t *k = g_keys[i];
    int live = 0;
    for (int sl = 0; sl < 2 && !live; sl++) {
      const uint8_t *slot = g_flash + SLOT_A_AT + sl * SLOT_BYTES;
      live = slot_valid(slot) && (slot[12] & 1) && (holds(slot + 20, 16, k, 16) || holds(slot + 36, 16, k, 16));
    }
    if (live || input_holds(k, 16)) continue;
    if (holds(g_flash, REGION_BYTES, k, 16)) fail("session discarded (reason %u) but write key #%d is still on flash", reason, i);
    if (!holds(g_mem, MEM_BYTES, k, 16)) continue;
    uint32_t at = 0;
    while (!holds(g_mem + at, 16, k, 16)) at++;
    fail("session discarded (reason %u) but write key #%d is still in linear memory at %u (io %u..%u)", reason, i, at, g_io, g_io + g_iocap);
  }
}

#include "p256.h"

/* ---- the ECDHE handshake oracle ------------------------------------------------------------------
 * What the device was fed and sent in the ECDHE conversation: every epoch-0 handshake message in a
 * datagram the firmware was given (reassembled per message_seq from what io held for the call, a
 * superset of what it may have accepted) and the random of every ClientHello it sent. When the
 * device sends a ClientKeyExchange it has accepted the server's Certificate and ServerKeyExchange,
 * so (hs_oracle): some Certificate fed to it is the pinned key's raw public key (exactly the
 * SubjectPublicKeyInfo it must compare), and some ServerKeyExchange fed to it carries a valid
 * point and an ECDSA-SHA256 signature by the pinned key (OpenSSL) over a ClientHello random it
 * sent ‖ a ServerHello random it was fed ‖ the params. The fuzzer cannot forge that signature, so
 * a firmware that skipped or botched a check fails here even when the handshake then fails for
 * another reason. Sound: when fragments of one message_seq disagree (or do not fit the log), the
 * log cannot say which one the firmware kept, and the check is skipped for the input. Weak: "some"
 * — a valid pair fed earlier (the captured one) also satisfies it. */
#define HS_SEQS 16
#define HS_MAX 1024
#define HS_RANDOMS 8
typedef struct {
  struct {
    uint8_t type, used, complete;
    uint32_t len;
    uint8_t body[HS_MAX], have[HS_MAX];
  } srv[HS_SEQS];
  uint8_t randoms[HS_RANDOMS][32];
  int nrandoms;
  int unsure; /* a conflict or something the log does not keep: the oracle is skipped */
} hslog_t;
static hslog_t g_hs, g_hs_snaps[NMARKS];
static int g_hs_oracle; /* set by targets that check it (datagram) */
static uint32_t g_hs_checked, g_hs_skipped;

static void hs_fragment(const uint8_t *m, uint32_t fragLen) {
  uint32_t len = (uint32_t)m[1] << 16 | m[2] << 8 | m[3], seq = (uint32_t)m[4] << 8 | m[5];
  uint32_t off = (uint32_t)m[6] << 16 | m[7] << 8 | m[8];
  if (off + fragLen > len) return; /* past its message: the firmware must drop it (else a trap or an over-read shows) */
  if (seq >= HS_SEQS || len > HS_MAX) { g_hs.unsure = 1; return; } /* one the firmware may take, the log does not keep */
  typeof(g_hs.srv[0]) *e = &g_hs.srv[seq];
  if (!e->used) e->used = 1, e->type = m[0], e->len = len, memset(e->have, 0, len);
  else if (e->type != m[0] || e->len != len) { g_hs.unsure = 1; return; }
  for (uint32_t i = 0; i < fragLen; i++) {
    if (e->have[off + i] && e->body[off + i] != m[12 + i]) g_hs.unsure = 1;
    e->body[off + i] = m[12 + i], e->have[off + i] = 1;
  }
  uint32_t i = 0;
  while (i < len && e->have[i]) i++;
  e->complete = i == len;
}

/* Calls `each(message header, fragment length)` for every epoch-0 handshake fragment of a
 * datagram; 0 when a record it cannot parse (a CID record) hides what follows. */
static int hs_walk(const uint8_t *d, uint32_t n, void (*each)(const uint8_t *, uint32_t)) {
  for (uint32_t at = 0; at + 13 <= n;) {
    if (d[at] == 25) return at + 13 >= n; /* tls12_cid: its header length is the CID's; only epoch > 0 */
    uint32_t rlen = (uint32_t)d[at + 11] << 8 | d[at + 12];
    if (at + 13 + rlen > n) return 1;
    if (d[at] == 22 && d[at + 3] == 0 && d[at + 4] == 0)
      for (uint32_t o = at + 13; o + 12 <= at + 13 + rlen;) {
        uint32_t fl = (uint32_t)d[o + 9] << 16 | d[o + 10] << 8 | d[o + 11];
        if (o + 12 + fl > at + 13 + rlen) break;
        each(d + o, fl);
        o += 12 + fl;
      }
    at += 13 + rlen;
  }
  return 1;
}

static void hs_fed(const uint8_t *d, uint32_t n) {
  if (g_conv == 1 && !hs_walk(d, n, hs_fragment)) g_hs.unsure = 1;
}

static int hs_sent_cke;
static void hs_client_message(const uint8_t *m, uint32_t fragLen) {
  uint32_t len = (uint32_t)m[1] << 16 | m[2] << 8 | m[3];
  if (m[0] == 1 && fragLen == len && len >= 34 && m[6] == 0 && m[7] == 0 && m[8] == 0) {
    for (int i = 0; i < g_hs.nrandoms; i++)
      if (!memcmp(g_hs.randoms[i], m + 14, 32)) return;
    if (g_hs.nrandoms < HS_RANDOMS) memcpy(g_hs.randoms[g_hs.nrandoms++], m + 14, 32);
    else g_hs.unsure = 1;
  }
  if (m[0] == 16) hs_sent_cke = 1;
}

static int hs_pinned_certificate(void) {
  for (int s = 0; s < HS_SEQS; s++) {
    const typeof(g_hs.srv[0]) *e = &g_hs.srv[s];
    if (!e->used || !e->complete || e->type != 11 || e->len != 3 + sizeof P256_SPKI_PREFIX + 65) continue;
    if (e->body[0] == 0 && e->body[1] == 0 && e->body[2] == sizeof P256_SPKI_PREFIX + 65 &&
        !memcmp(e->body + 3, P256_SPKI_PREFIX, sizeof P256_SPKI_PREFIX) &&
        !memcmp(e->body + 3 + sizeof P256_SPKI_PREFIX, fuzz_server_point, 65))
      return 1;
  }
  return 0;
}

static int hs_signed_key_exchange(void) {
  uint8_t signed_params[64 + 69];
  for (int s = 0; s < HS_SEQS; s++) {
    const typeof(g_hs.srv[0]) *k = &g_hs.srv[s];
    if (!k->used || !k->complete || k->type != 12 || k->len < 73) continue;
    const uint8_t *b = k->body;
    uint32_t der = (uint32_t)b[71] << 8 | b[72];
    if (b[0] != 3 || b[1] != 0 || b[2] != 23 || b[3] != 65 || b[69] != 4 || b[70] != 3 || 73 + der != k->len) continue;
    if (!p256_valid_point(b + 4)) continue;
    memcpy(signed_params + 64, b, 69);
    for (int h = 0; h < HS_SEQS; h++) {
      const typeof(g_hs.srv[0]) *sh = &g_hs.srv[h];
      if (!sh->used || !sh->complete || sh->type != 2 || sh->len < 34) continue;
      memcpy(signed_params + 32, sh->body + 2, 32);
      for (int c = 0; c < g_hs.nrandoms; c++) {
        memcpy(signed_params, g_hs.randoms[c], 32);
        if (p256_verify(fuzz_server_point, signed_params, sizeof signed_params, b + 73, der)) return 1;
      }
    }
  }
  return 0;
}

static void hs_sent(const uint8_t *d, uint32_t n) {
  if (g_conv != 1) return;
  hs_sent_cke = 0;
  hs_walk(d, n, hs_client_message);
  if (!hs_sent_cke || !g_hs_oracle) return;
  if (g_hs.unsure) { g_hs_skipped++; return; }
  g_hs_checked++;
  if (!hs_pinned_certificate())
    fail("ECDHE: the device sent a ClientKeyExchange, but no Certificate it was fed carries the pinned server key");
  if (!hs_signed_key_exchange())
    fail("ECDHE: the device sent a ClientKeyExchange, but no ServerKeyExchange it was fed has a valid point signed by the pinned key over its randoms");
}

/* ---- host contract -------------------------------------------------------------------------- */

/* Power-cut injection: with g_cut >= 0 the next persistent write stops after g_cut bytes and
 * nothing after it happens (g_power_lost is set; the caller wakes the device again). */
static int g_cut = -1, g_power_lost;
/* A host that polls lazily: with g_hold_tx, datagrams and events stay in the firmware's queues;
 * with g_hold_all, persistent writes too (the contract only orders writes before datagrams). */
static int g_hold_tx, g_hold_all;

/* Persistent writes first, then events, then datagrams (docs/abi.md, "Host contract"). */
static void drain(void) {
  g_nevents = 0;
  if (g_power_lost) return;
  check_io_private();
  for (; !g_hold_all;) {
    uint32_t n = CALL0(poll_store);
    trace_call("poll_store", 0, NULL, n);
    if (n == 0) break;
    if (n < 4 || n > g_iocap) fail("poll_store returned %u", n);
    memset(g_from_store + g_io, 1, n);
    trace_hex('O', g_mem + g_io, n);
    uint32_t off;
    memcpy(&off, g_mem + g_io, 4);
    if ((uint64_t)off + (n - 4) > REGION_BYTES) fail("store write outside the persisted region: %u+%u", off, n - 4);
    if (g_cut >= 0) {
      memcpy(g_flash + off, g_mem + g_io + 4, (uint32_t)g_cut < n - 4 ? (uint32_t)g_cut : n - 4);
      g_cut = -1;
      g_power_lost = 1;
      return;
    }
    memcpy(g_flash + off, g_mem + g_io + 4, n - 4);
  }
  learn_keys(g_flash);
  uint32_t discarded = 0;
  for (; !g_hold_tx && !g_hold_all;) {
    uint32_t n = CALL0(poll_event);
    trace_call("poll_event", 0, NULL, n);
    if (n == 0) break;
    if (n != 12) fail("poll_event returned %u", n);
    trace_hex('O', g_mem + g_io, n);
    if (g_nevents < MAX_EVENTS) {
      g_events[g_nevents].type = g_mem[g_io];
      memcpy(&g_events[g_nevents].a, g_mem + g_io + 4, 4);
      g_nevents++;
    }
    if (g_mem[g_io] == EV_SESSION_DISCARDED) memcpy(&discarded, g_mem + g_io + 4, 4), discarded |= 0x80000000u;
  }
  if (discarded) check_keys_gone(discarded & 0x7fffffffu);
  for (; !g_hold_tx && !g_hold_all;) {
    uint32_t n = CALL0(poll_transmit);
    trace_call("poll_transmit", 0, NULL, n);
    if (n == 0) break;
    if (n > g_iocap) fail("poll_transmit returned %u (> io capacity %u)", n, g_iocap);
    trace_hex('O', g_mem + g_io, n);
    check_no_secrets(g_mem + g_io, n, "a transmitted datagram");
    hs_sent(g_mem + g_io, n);
    if (g_on_transmit) g_on_transmit(g_mem + g_io, n);
  }
}

/* ---- ops (the transcript encoding of fuzz/ops.ts) ------------------------------------------- */

static void snapshot_save(snapshot_t *s) {
  s->inst = g_inst;
  memcpy(s->mem, g_mem, MEM_BYTES);
  memcpy(s->flash, g_flash, REGION_BYTES);
  s->now = g_now;
  s->valid = 1;
}

static void do_reset(void) {
  g_inst = g_fresh.inst;
  memcpy(g_mem, g_fresh.mem, MEM_BYTES);
  if (g_trace) fprintf(g_trace, "R\n");
}

static uint32_t do_datagram(int64_t now, uint32_t len, const uint8_t *bytes, uint32_t have) {
  g_now = now;
  io_put(0, bytes, have < g_iocap ? have : g_iocap);
  /* The datagram is `len` bytes (bytes the input does not hold are what io held before); a length
   * above the buffer must not be read at all. */
  g_io_in = len <= g_iocap ? len : 0;
  if (len <= g_iocap) hs_fed(g_mem + g_io, len); /* what the firmware reads, bytes the input left out included */
  uint32_t r = CALLN(handle_datagram, now, len);
  TRACED(r, "handle_datagram", 2, now, len);
  drain();
  return r;
}

static uint32_t do_timeout(int64_t now) {
  g_now = now;
  uint32_t r = CALLN(handle_timeout, now);
  TRACED(r, "handle_timeout", 1, now);
  drain();
  return r;
}

/* Whether flash holds a session record the firmware itself wrote (not an input's region) for the
 * credentials on flash, and both slots are sealed: boot must then restore it, or retire it by a
 * policy. (With one slot torn, a firmware may refuse the survivor: it may be older than what went
 * on the wire — docs/persistence.md on main.) */
static int own_session_on_flash(void) {
  if (g_have_input_region || g_hold_all || g_hold_tx) return 0;
  if (!slot_valid(g_flash + SLOT_A_AT) || !slot_valid(g_flash + SLOT_A_AT + SLOT_BYTES)) return 0;
  const uint8_t *s = newest_slot(g_flash);
  uint32_t cc = crc32_ieee(g_flash, 184), sc, stored;
  if (!s || !(s[12] & 1)) return 0;
  memcpy(&sc, s + 8, 4);
  memcpy(&stored, g_flash + 184, 4);
  return sc == cc && stored == cc;
}

static int32_t do_boot(int64_t now) {
  g_now = now;
  int own = own_session_on_flash();
  io_put(0, g_flash, REGION_BYTES);
  int32_t r = (int32_t)CALLN(boot, now, REGION_BYTES);
  TRACED(r, "boot", 2, now, REGION_BYTES);
  drain();
  if (own && r >= 0 && !g_power_lost && r != 2 /* resumed: docs/abi.md session states */) {
    uint32_t why = 0;
    for (int i = 0; i < g_nevents; i++)
      if (g_events[i].type == EV_SESSION_DISCARDED) why = g_events[i].a;
    /* Policies that retire a record at restore: max-age, unconfirmed restores, record limit,
     * failed-authentication limit. */
    if (why < 1 || why > 4)
      fail("boot did not restore the session record the firmware wrote itself (boot returned %d, discard reason %u)", r, why);
  }
  return r;
}

/* The outbox count the persisted record says, or -1 when flash may lag RAM (writes held, power
 * lost) or holds no record. */
static int persisted_outbox(void) {
  if (g_hold_all || g_power_lost) return -1;
  const uint8_t *s = newest_slot(g_flash);
  return s && s[148] <= 6 ? s[148] : -1;
}

static int32_t session_state(void);

/* Invariant: a well-formed publish in a booted session succeeds while the outbox has room (6
 * entries) and is refused with -3 only when it is full. */
static int64_t do_publish(int64_t now, const uint8_t *name, uint32_t nameLen, const uint8_t *data, uint32_t dataLen) {
  g_now = now;
  int queued = persisted_outbox();
  int32_t st = session_state();
  io_put(0, name, nameLen);
  io_put(nameLen, data, dataLen);
  int64_t r = (int64_t)CALLN(publish, now, nameLen, dataLen);
  TRACED(r, "publish", 3, now, nameLen, dataLen);
  if (st != SS_OFF && queued >= 0 && nameLen >= 1 && nameLen <= 15 && dataLen <= 43) {
    if (queued < 6 && r < 0) fail("publish refused (%lld) with %d of 6 outbox entries in use", (long long)r, queued);
    if (queued == 6 && r != -3) fail("publish into a full outbox (6 entries) returned %lld, not -3", (long long)r);
  }
  drain();
  return r;
}

static int64_t do_prepare_sleep(int64_t now) {
  g_now = now;
  int64_t r = (int64_t)CALLN(prepare_sleep, now);
  TRACED(r, "prepare_sleep", 1, now);
  drain();
  return r;
}

static int32_t do_seed(const uint8_t *e, uint32_t n) {
  io_put(0, e, n);
  int32_t r = (int32_t)CALLN(seed_entropy, n);
  TRACED(r, "seed_entropy", 1, n);
  drain();
  return r;
}

static int64_t rd64(const uint8_t *p) {
  int64_t v;
  memcpy(&v, p, 8);
  return v;
}

/* Runs one transcript op at *pos; saves a snapshot at MARK when `save` is set. */
static void run_transcript_op(const uint8_t *ops, size_t len, size_t *pos, int save) {
  size_t p = *pos;
  uint8_t op = ops[p++];
  switch (op) {
    case OP_RESET: do_reset(); break;
    case OP_PROVISION_DEVICE: {
      uint8_t profile = ops[p], idl = ops[p + 1], il = ops[p + 2], pl = ops[p + 3];
      p += 4;
      io_put(0, ops + p, idl + il + pl);
      int32_t r = (int32_t)CALLN(provision_device, profile, idl, il, pl);
      TRACED(r, "provision_device", 4, profile, idl, il, pl);
      if (r != 0) fail("transcript: provision_device returned %d", r);
      p += idl + il + pl;
      drain();
      break;
    }
    case OP_PROVISION_DEVICE_ECDHE: {
      uint8_t profile = ops[p], idl = ops[p + 1], inject = ops[p + 2];
      uint32_t n = idl + 65 + (inject ? 32 : 0);
      p += 3;
      io_put(0, ops + p, n);
      int32_t r = (int32_t)CALLN(provision_device_ecdhe, profile, idl, inject);
      TRACED(r, "provision_device_ecdhe", 3, profile, idl, inject);
      if (r != 0) fail("transcript: provision_device_ecdhe returned %d", r);
      p += n;
      drain();
      break;
    }
    case OP_SEED: do_seed(ops + p + 1, ops[p]); p += 1 + ops[p]; break;
    case OP_BOOT: do_boot(rd64(ops + p)); p += 8; break;
    case OP_DATAGRAM: {
      uint16_t n = (uint16_t)(ops[p + 8] | ops[p + 9] << 8);
      if (save && g_ncloud_sets[g_conv] < MAX_CLOUD) {
        g_cloud_sets[g_conv][g_ncloud_sets[g_conv]] = ops + p + 10;
        g_cloud_len_sets[g_conv][g_ncloud_sets[g_conv]++] = n;
      }
      do_datagram(rd64(ops + p), n, ops + p + 10, n);
      p += 10 + n;
      break;
    }
    case OP_TIMEOUT: do_timeout(rd64(ops + p)); p += 8; break;
    case OP_PUBLISH: {
      uint8_t nl = ops[p + 8], dl = ops[p + 9];
      do_publish(rd64(ops + p), ops + p + 10, nl, ops + p + 10 + nl, dl);
      p += 10 + nl + dl;
      break;
    }
    case OP_PREPARE_SLEEP: do_prepare_sleep(rd64(ops + p)); p += 8; break;
    case OP_MARK:
      if (save && ops[p] < NMARKS) snapshot_save(&g_snaps[ops[p]]), g_hs_snaps[ops[p]] = g_hs;
      p += 1;
      break;
    default: fail("transcript: unknown op %u at %zu", op, p - 1);
  }
  if (p > len) fail("transcript: op at %zu runs past the end", *pos);
  *pos = p;
}

/* A conversation from power-on (erased flash, time 0, a fresh instance, no handshake state): its
 * transcript, *len bytes. */
static const uint8_t *conversation_begin(size_t *len) {
  memset(g_flash, 0xff, REGION_BYTES);
  g_now = 0;
  do_reset();
  memset(&g_hs, 0, sizeof g_hs);
  *len = g_conv ? ecdhe_ops_len : lifecycle_ops_len;
  return g_conv ? ecdhe_ops : lifecycle_ops;
}

/* Restores the state saved at `mark`. Traced runs replay the transcript instead of copying
 * memory, so the log holds every call from a fresh instance and other engines can follow it. */
static void restore(int mark) {
  g_nevents = 0;
  g_have_input_region = 0;
  g_cut = -1;
  g_power_lost = 0;
  g_hold_tx = g_hold_all = 0;
  g_nkeys = g_nkeys_base;
  g_nprivs = g_nprivs_base;
  memset(g_from_store, 0, sizeof g_from_store);
  g_conv = conv_of(mark);
  g_cloud = g_cloud_sets[g_conv];
  g_cloud_len = g_cloud_len_sets[g_conv];
  g_ncloud = g_ncloud_sets[g_conv];
  if (g_conv) g_hs = g_hs_snaps[mark];
  if (!g_trace) {
    const snapshot_t *s = &g_snaps[mark];
    g_inst = s->inst;
    memcpy(g_mem, s->mem, MEM_BYTES);
    memcpy(g_flash, s->flash, REGION_BYTES);
    g_now = s->now;
    return;
  }
  size_t len;
  const uint8_t *ops = conversation_begin(&len);
  for (size_t pos = 0; pos < len;) {
    if (ops[pos] == OP_MARK && ops[pos + 1] == mark) break;
    run_transcript_op(ops, len, &pos, 0);
  }
}

/* One instance, the fresh snapshot, then the transcript replayed once to take every snapshot. */
static void harness_init(void) {
  const char *trace = getenv("FUZZ_TRACE");
  if (trace && *trace) {
    g_trace = fopen(trace, "w");
    if (!g_trace) {
      fprintf(stderr, "FUZZ_TRACE=%s: cannot open for writing\n", trace);
      exit(2);
    }
    setvbuf(g_trace, NULL, _IOFBF, 1 << 20);
  }
  wasm_rt_init();
  Z_session_init_module();
  Z_session_instantiate(&g_inst, &g_env);
  wasm_rt_memory_t *m = Z_sessionZ_memory(&g_inst);
  if (m->size != MEM_BYTES) fail("memory is %llu bytes, expected one 64 KiB page", (unsigned long long)m->size);
  g_mem = m->data;
  CATCH_TRAPS();
  g_call = "_start";
  Z_sessionZ__start(&g_inst);
  g_io = CALL0(io_ptr);
  g_iocap = CALL0(io_capacity);
  g_heap = CALL0(heap_offset);
  if (g_io + g_iocap > MEM_BYTES) fail("io buffer %u+%u outside memory", g_io, g_iocap);
  memset(g_flash, 0xff, REGION_BYTES);
  snapshot_save(&g_fresh);
  FILE *saved = g_trace;
  g_trace = NULL; /* the set-up run is not part of any input's log */
  memcpy(g_privs[g_nprivs++], fuzz_device_key, 32);
  for (g_conv = 0; g_conv < 2; g_conv++) {
    size_t len;
    const uint8_t *ops = conversation_begin(&len);
    for (size_t pos = 0; pos < len;) run_transcript_op(ops, len, &pos, 1);
  }
  g_conv = 0;
  g_cloud = g_cloud_sets[0], g_cloud_len = g_cloud_len_sets[0], g_ncloud = g_ncloud_sets[0];
  g_trace = saved;
  for (int i = 0; i < NMARKS; i++)
    if (!g_snaps[i].valid) fail("transcript has no snapshot '%s' (regenerate: npm run fuzz:build)", MARK_NAMES[i]);
  g_nkeys_base = g_nkeys;
  g_nprivs_base = g_nprivs;
}

/* RAM lost (power cut, deep sleep, a re-profiled board): fresh state, seeded, booted from flash. */
static uint32_t g_wakes;
static int32_t wake(void) {
  do_reset();
  uint8_t entropy[48];
  for (int i = 0; i < 48; i++) entropy[i] = (uint8_t)(i * 31 + g_wakes * 7);
  g_wakes++;
  do_seed(entropy, sizeof entropy);
  return do_boot(g_now);
}

/* The credentials on flash switched to `profile` (0 legacy, 1 fixed, 2 default), the slots' copy
 * of the credentials CRC and their own CRCs fixed: the same session, restored under another
 * profile's rules (the captured conversation is the default profile's). Then a wake. */
static void reprofile_and_wake(uint8_t profile, int hint_acted_now) {
  if (g_hold_all || g_power_lost) return;
  g_flash[4] = profile;
  uint32_t cc = crc32_ieee(g_flash, 184);
  memcpy(g_flash + 184, &cc, 4);
  /* Optionally the truncated-record hint acted on "just now" (RTC seconds + 1, docs/abi.md): the
   * hint window is closed after the wake. */
  uint32_t acted = (uint32_t)(g_now / 1000) + 1;
  for (int sl = 0; sl < 2; sl++) {
    uint8_t *slot = g_flash + SLOT_A_AT + sl * SLOT_BYTES;
    if (!slot_valid(slot)) continue;
    memcpy(slot + 8, &cc, 4);
    if (hint_acted_now) memcpy(slot + 88, &acted, 4);
    uint32_t c = crc32_ieee(slot, 540);
    memcpy(slot + 540, &c, 4);
  }
  wake();
}

/* ---- the per-datagram invariants (every target that feeds datagrams) ------------------------ */

/* Per-record outcomes: accepted, a server retransmission, or a drop* reason. */
static uint32_t outcomes(const uint32_t *c, uint32_t n) {
  uint32_t s = c[C_RX_RECORDS_OK] + c[C_PEER_RETRANSMISSIONS] + c[C_DROP_UNKNOWN_CID];
  for (int i = C_DROP_FIRST; i <= C_DROP_LAST; i++) s += c[i];
  if (n > C_DROP_RX_TOO_LARGE) s += c[C_DROP_DATAGRAM_TOO_LONG] + c[C_DROP_RX_TOO_LARGE];
  return s;
}

/* Reasons a session may end for, triggered by records that did not authenticate. */
static int reason_allowed_unauthenticated(uint32_t reason) {
  /* The legacy and fixed profiles (credentials byte 4 on flash: 0, 1) treat a truncated record as
   * fatal whatever the session's state, as Device OS did (docs/abi.md, profiles). */
  int device_os = g_flash[4] <= 1;
  return reason == 4 /* failed-auth-limit: the policy itself */ || reason == 7 /* reset token, verified */ ||
         (reason == 8 && device_os);
}
/* Reasons that need an authenticated record. */
static int reason_needs_auth(uint32_t reason) {
  return reason == 3 /* record-limit */ || reason == 5 /* coap-rst */ || reason == 10 /* peer-closed */;
}

static void datagram_checked(const uint8_t *bytes, uint32_t have, uint32_t len) {
  uint32_t before[MAX_COUNTERS], after[MAX_COUNTERS];
  uint32_t nc = read_counters(before);
  int32_t ss = session_state();
  do_datagram(g_now, len, bytes, have);
  read_counters(after);
  int32_t ss2 = session_state();
  if (after[C_RX_DATAGRAMS] != before[C_RX_DATAGRAMS] + 1)
    fail("datagram of %u bytes counted %d times in rxDatagrams", len, (int)(after[C_RX_DATAGRAMS] - before[C_RX_DATAGRAMS]));
  uint32_t d = outcomes(after, nc) - outcomes(before, nc);
  if (nc > C_DATAGRAMS_DROPPED) {
    /* Firmware with per-datagram outcome counters: exactly one of them, and a reason for a drop. */
    uint32_t acc = after[C_DATAGRAMS_ACCEPTED] - before[C_DATAGRAMS_ACCEPTED];
    uint32_t ret = after[C_DATAGRAMS_RETRANSMITTED] - before[C_DATAGRAMS_RETRANSMITTED];
    uint32_t drop = after[C_DATAGRAMS_DROPPED] - before[C_DATAGRAMS_DROPPED];
    if (acc + ret + drop != 1)
      fail("datagram of %u bytes counted %u times (accepted %u, retransmitted %u, dropped %u): expected exactly once", len, acc + ret + drop, acc, ret, drop);
    if (acc && after[C_RX_RECORDS_OK] == before[C_RX_RECORDS_OK]) fail("datagram counted accepted without an accepted record");
    uint32_t reasons = d - (after[C_RX_RECORDS_OK] - before[C_RX_RECORDS_OK]) - (after[C_PEER_RETRANSMISSIONS] - before[C_PEER_RETRANSMISSIONS]);
    if (drop && reasons == 0) fail("datagram of %u bytes counted dropped with no drop* reason", len);
  } else {
    /* Older firmware: counted once per record and per handshake message (each at least 12 bytes)
     * plus a short tail, never more often than that. */
    uint32_t maxUnits = len / 12 + 1;
    if (d == 0) fail("datagram of %u bytes counted by no outcome counter (rxRecordsOk, peerRetransmissions, drop*)", len);
    if (d > maxUnits) fail("datagram of %u bytes (at most %u records and handshake messages) counted %u times", len, maxUnits, d);
  }
  int authenticated = after[C_RX_RECORDS_OK] > before[C_RX_RECORDS_OK];
  /* Any record that authenticates confirms a resumed session (docs/abi.md): from that record on,
   * the session counts as confirmed, also for what follows it in the same datagram. */
  int confirmed = ss == SS_CONFIRMED || (ss == SS_RESUMED && authenticated);
  for (int i = 0; i < g_nevents; i++) {
    if (g_events[i].type == EV_CONFIRMED) confirmed = 1;
    if (g_events[i].type != EV_SESSION_DISCARDED || !confirmed) continue;
    uint32_t r = g_events[i].a;
    if (reason_allowed_unauthenticated(r)) continue;
    if (reason_needs_auth(r) && authenticated) continue;
    fail("confirmed session discarded (reason %u) by a record that did not authenticate (session state %d -> %d)", r, ss, ss2);
  }
  if (ss2 != SS_OFF) {
    int32_t n = (int32_t)CALL0(recv);
    trace_call("recv", 0, NULL, n);
    if (n >= 0) fail("an authenticated record of %d bytes stayed in the receive queue after the session handled the datagram", n);
  }
  if (ss == SS_CONFIRMED && ss2 != SS_CONFIRMED) {
    int discarded = 0;
    for (int i = 0; i < g_nevents; i++) discarded |= g_events[i].type == EV_SESSION_DISCARDED;
    if (!discarded) fail("confirmed session left state confirmed (-> %d) without a session-discarded event", ss2);
  }
}

/* The libFuzzer entry every target shares: the snapshots, and the sealer when a target uses it. */
#define FUZZ_INIT(extra)                                   \
  int LLVMFuzzerInitialize(int *argc, char ***argv) {      \
    (void)argc, (void)argv;                                \
    harness_init();                                        \
    extra;                                                 \
    return 0;                                              \
  }

/* Checked after every input. */
static void check_heap(void) {
  uint32_t h = heap_offset();
  if (h != g_heap) fail("heap_offset moved from %u to %u", g_heap, h);
  /* Above the heap pointer lies no static buffer: a write there went past every buffer. */
  if (memcmp(g_mem + g_heap, g_fresh.mem + g_heap, MEM_BYTES - g_heap))
    for (uint32_t i = g_heap; i < MEM_BYTES; i++)
      if (g_mem[i] != g_fresh.mem[i]) fail("memory at %u (above every static buffer, heap_offset %u) was written", i, g_heap);
}

/* A small reader over the fuzz input. */
typedef struct {
  const uint8_t *p;
  size_t n, at;
} reader_t;

static int more(const reader_t *r) { return r->at < r->n; }
static uint8_t rd_u8(reader_t *r) { return r->at < r->n ? r->p[r->at++] : 0; }
static uint16_t rd_u16(reader_t *r) { uint16_t lo = rd_u8(r); return (uint16_t)(lo | (rd_u8(r) << 8)); }
static uint32_t take(reader_t *r, uint32_t want, const uint8_t **out) {
  size_t left = r->n - r->at;
  uint32_t n = want < left ? want : (uint32_t)left;
  *out = r->p + r->at;
  r->at += n;
  return n;
}
