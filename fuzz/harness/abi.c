/*
 * Target `abi`: sequences of export calls with arguments, including power cuts in the middle of
 * a persistent write and deep-sleep cycles, from any captured state.
 * Input: byte 0 picks the starting snapshot; then ops (op byte mod 12):
 *   0 boot            1 connect           2 close            3 publish nameLen, dataLen, bytes
 *   4 send len, bytes 5 prepare_sleep     6 datagram len u16, bytes  7 replay cloud datagram i
 *   8 wait dt u16×16, then the timer if due                   9 the timer now (jump to it)
 *  10 arm a power cut after k u8 ×3 bytes of the next persistent write: nothing after that write
 *     happens (no datagram leaves); then wake: fresh RAM, seed, boot from what flash holds
 *  11 deep sleep (RAM lost) and wake
 * Op bytes 0xF0-0xF9 call the other exports: config_set, provision, set_connection_id,
 * provision_device, the queries (recv, state, last_error, last_alert, counters_read), a re-profile
 * of the session on flash (legacy/fixed/default) with a wake, 0xF6: seed_entropy, boot, publish,
 * provision, set_connection_id or provision_device_ecdhe with edge-case lengths (negative, limits,
 * past io); 0xF7 provision_ecdhe (server key sel, device key sel), 0xF8 provision_device_ecdhe
 * (profile, injectKey, id length, server key sel, device key sel), 0xF9 device_public_key.
 * Byte 0: the snapshot (0x00-0xBF the PSK conversation's, 0xC0-0xFF the ECDHE one's: pick_mark).
 * The byte 0xEF instead holds (or releases) the firmware's datagrams and events, 0xEE also its
 * persistent writes: a host that polls lazily (datagrams are still only sent after the writes).
 * Invariants (besides the common ones): no (write key, epoch, sequence number) is ever sent twice,
 * across power cuts and sleeps — the reservation on flash must cover every sequence number used;
 * device_public_key returns 65 or -1, and its point is d·G (OpenSSL) for a private key the device
 * was given or generated this run.
 */
#include "common.h"

/* Where the DTLS layer keeps its client write key (the AES context starts with round key 0). */
static uint32_t g_key_addr;

/* Finds the client write key in RAM: where the 'confirmed' snapshot holds the key the flash slot
 * holds, other than inside the RAM image of the slot itself. */
static void find_key_address(void) {
  const snapshot_t *s = &g_snaps[7];
  const uint8_t *slot = newest_slot(s->flash);
  if (!slot) fail("abi: no session slot in the 'confirmed' snapshot");
  const uint8_t *image = memmem(s->mem, MEM_BYTES, slot, 60);
  uint32_t found = 0, count = 0;
  for (const uint8_t *p = s->mem; (p = memmem(p, s->mem + MEM_BYTES - p, slot + 20, 16)); p++) {
    if (image && p == image + 20) continue;
    if (p >= s->mem + g_io && p < s->mem + g_io + g_iocap) continue;
    found = (uint32_t)(p - s->mem), count++;
  }
  if (count != 1) fail("abi: client write key found %u times in RAM (expected once outside the slot image)", count);
  g_key_addr = found;
}

FUZZ_INIT(find_key_address())

static const char *g_op = "start";
/* Whether connect or close (the raw DTLS exports) ran while a session was booted, this input. */
static int g_raw_in_session;

#define MAX_SENT 4096
static struct { uint8_t key[16]; uint64_t epochSeq; } g_sent[MAX_SENT];
static int g_nsent;

/* Records in a datagram the device sent: epoch-1 records must never repeat (key, sequence). */
static void on_transmit(const uint8_t *d, uint32_t n) {
  for (uint32_t at = 0; at + 13 <= n;) {
    uint8_t type = d[at];
    uint32_t cidLen = 0;
    if (type == 25) {
      const uint8_t *slot = newest_slot(g_flash);
      cidLen = slot ? slot[96] : 0;
      if (cidLen > 32) return;
    }
    if (at + 13 + cidLen > n) return;
    uint64_t epochSeq = 0;
    for (int i = 0; i < 8; i++) epochSeq = epochSeq << 8 | d[at + 3 + i];
    uint32_t len = (uint32_t)d[at + 11 + cidLen] << 8 | d[at + 12 + cidLen];
    if ((epochSeq >> 48) != 0) {
      const uint8_t *key = g_mem + g_key_addr;
      for (int i = 0; i < g_nsent; i++)
        if (g_sent[i].epochSeq == epochSeq && !memcmp(g_sent[i].key, key, 16))
          fail("record sent twice under one key: epoch %u sequence %llu (the second by op %s)%s", (unsigned)(epochSeq >> 48),
               (unsigned long long)(epochSeq & 0xffffffffffffull), g_op,
               g_raw_in_session ? "; connect/close ran in a booted session before" : "");
      if (g_nsent < MAX_SENT) {
        memcpy(g_sent[g_nsent].key, key, 16);
        g_sent[g_nsent++].epochSeq = epochSeq;
      }
    }
    at += 13 + cidLen + len;
  }
}

static const char *OP_NAMES[12] = {"boot", "connect", "close", "publish", "send", "prepare_sleep", "datagram", "replay",
                                   "wait", "timer", "power-cut", "sleep"};

/* ECDHE credentials for 0xF7/0xF8: the pinned server key, one off the curve, one with a compressed
 * point's tag, the point at infinity's encoding, or 65 bytes of the input; the device key injected:
 * the captured one, 0, n (the group order), n − 1 (valid: its public key is −G), all ones, or 32
 * bytes of the input. */
static const uint8_t P256_N[32] = {0xff, 0xff, 0xff, 0xff, 0x00, 0x00, 0x00, 0x00, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff,
                                   0xbc, 0xe6, 0xfa, 0xad, 0xa7, 0x17, 0x9e, 0x84, 0xf3, 0xb9, 0xca, 0xc2, 0xfc, 0x63, 0x25, 0x51};
static void server_point(uint8_t sel, reader_t *r, uint8_t out[65]) {
  const uint8_t *p;
  memcpy(out, fuzz_server_point, 65);
  switch (sel % 5) {
    case 1: out[64] ^= 1; break;
    case 2: out[0] = 2; break;
    case 3: memset(out + 1, 0, 64); break;
    case 4: { uint32_t n = take(r, 65, &p); memset(out, 0, 65), memcpy(out, p, n); break; }
  }
}
static void device_key(uint8_t sel, reader_t *r, uint8_t out[32]) {
  const uint8_t *p;
  switch (sel % 6) {
    case 0: memcpy(out, fuzz_device_key, 32); break;
    case 1: memset(out, 0, 32); break;
    case 2: memcpy(out, P256_N, 32); break;
    case 3: memcpy(out, P256_N, 32), out[31] -= 1; break;
    case 4: memset(out, 0xff, 32); break;
    case 5: { uint32_t n = take(r, 32, &p); memset(out, 0, 32), memcpy(out, p, n); break; }
  }
}

/* A key the harness put into io (not the input's bytes): from now on it must not be in io after a
 * call, nor on the wire (check_io_private, check_no_secrets). */
static void remember_private_key(const uint8_t key[32]) {
  for (int i = 0; i < g_nprivs; i++)
    if (!memcmp(g_privs[i], key, 32)) return;
  if (!is_zero(key, 32) && !input_holds(key, 32) && g_nprivs < MAX_PRIVS) memcpy(g_privs[g_nprivs++], key, 32);
}

/* Keys the firmware was given or made this input (for the device_public_key oracle). */
static uint8_t g_given[MAX_PRIVS][32];
static int g_ngiven;
/* A key pair generated on the device this input: its private key is learnt from flash once the
 * credentials block is written (drain), so the oracle waits for that. */
static int g_generated;
static void given_key(const uint8_t key[32]) {
  if (g_ngiven < MAX_PRIVS) memcpy(g_given[g_ngiven++], key, 32);
}

/* The exports the ops above do not call, each with arguments from the input (op bytes 0xF0-0xF9,
 * taken before the mod 12). Returns 0 when `b` is not one of them. */
static int other_export(uint8_t b, reader_t *r) {
  static uint8_t buf[256];
  const uint8_t *p;
  switch (b) {
    case 0xf0: { /* config_set key, value: the keys of docs/abi.md and a few unknown ones */
      static const uint8_t keys[] = {1, 2, 3, 4, 5, 20, 21, 22, 23, 24, 25, 26, 27, 0, 6, 19, 28, 255};
      uint8_t k = keys[rd_u8(r) % sizeof keys];
      uint32_t lo = rd_u16(r) | (uint32_t)rd_u16(r) << 16;
      int64_t v = rd_u8(r) & 1 ? -(int64_t)lo : (int64_t)lo;
      int32_t rc = (int32_t)CALLN(config_set, k, v);
      TRACED(rc, "config_set", 2, k, v);
      drain();
      return 1;
    }
    case 0xf1: { /* provision identityLen, pskLen, bytes */
      uint32_t il = rd_u8(r) % 131, pl = rd_u8(r) % 67, got = take(r, il + pl, &p);
      memset(buf, 'p', il + pl);
      memcpy(buf, p, got);
      io_put(0, buf, il + pl);
      int32_t rc = (int32_t)CALLN(provision, il, pl);
      TRACED(rc, "provision", 2, il, pl);
      drain();
      return 1;
    }
    case 0xf2: { /* set_connection_id len, bytes */
      uint32_t n = take(r, rd_u8(r) % 35, &p);
      io_put(0, p, n);
      int32_t rc = (int32_t)CALLN(set_connection_id, n);
      TRACED(rc, "set_connection_id", 1, n);
      drain();
      return 1;
    }
    case 0xf3: { /* provision_device profile (3: invalid): the captured device's own credentials */
      uint8_t profile = rd_u8(r) % 4;
      static const char id[] = "fuzz-device", ident[] = "fuzz-identity";
      uint32_t idl = sizeof id - 1, nl = sizeof ident - 1, pl = sizeof fuzz_psk;
      memcpy(buf, id, idl);
      memcpy(buf + idl, ident, nl);
      memcpy(buf + idl + nl, fuzz_psk, pl);
      io_put(0, buf, idl + nl + pl);
      int32_t rc = (int32_t)CALLN(provision_device, profile, idl, nl, pl);
      TRACED(rc, "provision_device", 4, profile, idl, nl, pl);
      drain();
      return 1;
    }
    case 0xf4: { /* the queries: recv, state, last_error, last_alert, counters_read */
      int32_t n = (int32_t)CALL0(recv);
      trace_call("recv", 0, NULL, n);
      if (n > (int32_t)g_iocap) fail("recv returned %d (> io capacity %u)", n, g_iocap);
      if (n > 0) trace_hex('O', g_mem + g_io, (uint32_t)n);
      int32_t st = (int32_t)CALL0(state), le = (int32_t)CALL0(last_error), la = (int32_t)CALL0(last_alert);
      trace_call("state", 0, NULL, st);
      trace_call("last_error", 0, NULL, le);
      trace_call("last_alert", 0, NULL, la);
      if (st < 0 || st > 6) fail("state() returned %d", st);
      uint32_t c[MAX_COUNTERS];
      read_counters(c);
      drain();
      return 1;
    }
    case 0xf5: reprofile_and_wake(rd_u8(r) % 3, 0); return 1;
    case 0xf7: { /* provision_ecdhe: server key sel u8, device key sel u8 (their bytes when from the input) */
      uint8_t ps = rd_u8(r), ks = rd_u8(r);
      server_point(ps, r, buf);
      device_key(ks, r, buf + 65);
      if (ks % 6 != 5) remember_private_key(buf + 65);
      uint8_t key[32];
      memcpy(key, buf + 65, 32);
      io_put(0, buf, 97);
      int32_t rc = (int32_t)CALL0(provision_ecdhe);
      trace_call("provision_ecdhe", 0, NULL, rc);
      if (rc == 0) given_key(key);
      drain();
      return 1;
    }
    case 0xf8: { /* provision_device_ecdhe profile (3: invalid), injectKey (0 generate, 1 inject, 2 invalid),
                  * id length (0-49: both ends), server key sel, device key sel */
      uint8_t profile = rd_u8(r) % 4, inject = rd_u8(r) % 3;
      uint32_t idl = rd_u8(r) % 50;
      uint8_t ps = rd_u8(r), ks = rd_u8(r);
      memset(buf, 'd', idl);
      memcpy(buf, "fuzz-device", idl < 11 ? idl : 11);
      server_point(ps, r, buf + idl);
      device_key(ks, r, buf + idl + 65);
      if (inject == 1 && ks % 6 != 5) remember_private_key(buf + idl + 65);
      uint8_t key[32];
      memcpy(key, buf + idl + 65, 32);
      uint32_t n = idl + 65 + (inject == 1 ? 32 : 0);
      io_put(0, buf, n);
      int32_t rc = (int32_t)CALLN(provision_device_ecdhe, profile, idl, inject);
      TRACED(rc, "provision_device_ecdhe", 3, profile, idl, inject);
      if (rc == 0 && inject == 1) given_key(key);
      if (rc == 0 && inject == 0) g_generated = 1;
      drain();
      return 1;
    }
    case 0xf9: { /* device_public_key: 65 and d·G for a private key the device was given or made, or -1 */
      int32_t rc = (int32_t)CALL0(device_public_key);
      trace_call("device_public_key", 0, NULL, rc);
      if (rc != 65 && rc != -1) fail("device_public_key returned %d (65 or -1)", rc);
      if (rc == 65) {
        trace_hex('O', g_mem + g_io, 65);
        uint8_t want[65];
        int match = 0;
        for (int i = 0; i < g_nprivs + g_ngiven && !match; i++)
          match = p256_public_of(i < g_nprivs ? g_privs[i] : g_given[i - g_nprivs], want) && !memcmp(want, g_mem + g_io, 65);
        if (!match && g_generated != 1)
          fail("device_public_key gave a point that is d·G for no private key the device was given or made (%02x%02x%02x…)",
               g_mem[g_io], g_mem[g_io + 1], g_mem[g_io + 2]);
      }
      drain();
      return 1;
    }
    case 0xf6: { /* an export with length arguments from a table of edges (negative, zero, at and
                  * past each field's limit, past the I/O buffer): every one is checked in 64-bit
                  * arithmetic before anything is read (what io holds is read as it is) */
      static const int32_t edges[] = {0, 1, 15, 16, 31, 32, 43, 44, 48, 49, 64, 65, 128, 129, 1279, 1280, 1281,
                                      2047, 2048, 2049, -1, -2048, INT32_MIN, INT32_MAX};
#define EDGE() edges[rd_u8(r) % (sizeof edges / sizeof edges[0])]
      uint8_t which = rd_u8(r) % 6;
      int32_t a = EDGE(), b = EDGE();
      if (which == 1 && a == 1280) a = 1279; /* boot from what io holds is not a wake from flash */
      int two = which == 2 || which == 3; /* publish and provision take two lengths */
      int64_t sum = which == 5 ? (int64_t)a + 65 + (b == 1 ? 32 : 0) : (int64_t)a + (two ? b : 0);
      g_io_in = a >= 0 && (!two || b >= 0) && sum <= (int64_t)g_iocap ? (uint32_t)sum : 0;
      int64_t rc;
      if (which == 0) {
        rc = (int32_t)CALLN(seed_entropy, a);
        TRACED(rc, "seed_entropy", 1, a);
      } else if (which == 1) {
        rc = (int32_t)CALLN(boot, g_now, a);
        TRACED(rc, "boot", 2, g_now, a);
      } else if (which == 2) {
        rc = (int64_t)CALLN(publish, g_now, a, b);
        TRACED(rc, "publish", 3, g_now, a, b);
      } else if (which == 3) {
        rc = (int32_t)CALLN(provision, a, b);
        TRACED(rc, "provision", 2, a, b);
      } else if (which == 4) {
        rc = (int32_t)CALLN(set_connection_id, a);
        TRACED(rc, "set_connection_id", 1, a);
      } else { /* provision_device_ecdhe profile 2, idLen a, injectKey b (0, 1, or an edge) */
        uint8_t key[32] = {0};
        if (b == 1 && a >= 0 && (int64_t)a + 97 <= (int64_t)g_iocap) memcpy(key, g_mem + g_io + a + 65, 32);
        rc = (int32_t)CALLN(provision_device_ecdhe, 2, a, b);
        TRACED(rc, "provision_device_ecdhe", 3, 2, a, b);
        if (rc == 0 && b == 1) given_key(key);
        if (rc == 0 && b == 0) g_generated = 1;
      }
#undef EDGE
      drain();
      return 1;
    }
  }
  return 0;
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size) {
  BEGIN_INPUT(data, size);
  reader_t r = {data, size, 0};
  restore(pick_mark(rd_u8(&r)));
  g_nsent = 0;
  g_wakes = 0;
  g_raw_in_session = 0;
  g_ngiven = 0;
  g_generated = 0;
  g_on_transmit = on_transmit;
  static uint8_t buf[2048];
  for (int ops = 0; more(&r) && ops < 48; ops++) {
    const uint8_t *p;
    if (g_generated == 1 && !g_hold_all && !g_power_lost && !memcmp(g_flash, "CRK1", 4)) {
      learn_private_key(g_flash); /* the generated key, now on flash: checked in io and on the wire from here */
      given_key(g_flash + 120);
      g_generated = 2;
    }
    uint8_t b = rd_u8(&r);
    if (b == 0xef || b == 0xee) {
      /* Hold/release the firmware's output queues: their queue-full paths need a lazy host. */
      if (b == 0xef) g_hold_tx = !g_hold_tx;
      else g_hold_all = !g_hold_all;
      if (!g_hold_tx && !g_hold_all) drain();
      continue;
    }
    if (other_export(b, &r)) {
      if (g_power_lost) g_power_lost = 0, wake();
      continue;
    }
    uint8_t op = b % 12;
    g_op = OP_NAMES[op];
    switch (op) {
      case 0: do_boot(g_now); break;
      case 1: {
        g_raw_in_session |= session_state() != SS_OFF;
        int32_t rc = (int32_t)CALLN(connect, g_now);
        TRACED(rc, "connect", 1, g_now);
        drain();
        break;
      }
      case 2: {
        g_raw_in_session |= session_state() != SS_OFF;
        int32_t rc = (int32_t)CALLN(close, g_now);
        TRACED(rc, "close", 1, g_now);
        drain();
        break;
      }
      case 3: {
        uint32_t nl = rd_u8(&r) % 17, dl = rd_u8(&r) % 45;
        uint32_t got = take(&r, nl + dl, &p);
        memset(buf, 'x', nl + dl);
        memcpy(buf, p, got);
        do_publish(g_now, buf, nl, buf + nl, dl);
        break;
      }
      case 4: {
        uint32_t n = take(&r, rd_u16(&r) % 900, &p);
        io_put(0, p, n);
        int32_t rc = (int32_t)CALLN(send, n);
        TRACED(rc, "send", 1, n);
        drain();
        break;
      }
      case 5: do_prepare_sleep(g_now); break;
      case 6: {
        uint16_t len = rd_u16(&r) % 2100;
        uint32_t have = take(&r, len, &p);
        do_datagram(g_now, len, p, have);
        break;
      }
      case 7: {
        int i = rd_u8(&r) % g_ncloud;
        do_datagram(g_now, g_cloud_len[i], g_cloud[i], g_cloud_len[i]);
        break;
      }
      case 8: {
        g_now += (int64_t)rd_u16(&r) * 16;
        int64_t t = next_timeout();
        if (t >= 0 && g_now >= t) do_timeout(g_now);
        break;
      }
      case 9: {
        int64_t t = next_timeout();
        if (t >= 0) do_timeout(t > g_now ? t : g_now);
        break;
      }
      case 10: g_cut = rd_u8(&r) * 3; break;
      case 11:
        g_now += 15 * 60000;
        wake();
        break;
    }
    if (g_power_lost) {
      g_power_lost = 0;
      wake();
    }
  }
  g_on_transmit = NULL;
  check_heap();
  trace_checkpoint();
  return 0;
}
