/*
 * Target `datagram`: the packet handler from every state of a real conversation.
 * Input: byte 0 picks the starting snapshot (MARK_NAMES; 0x00-0xBF the PSK conversation's,
 * 0xC0-0xFF the ECDHE one's: pick_mark); then ops until the input ends:
 *   0 DATAGRAM   len u16 (passed to handle_datagram as is, even above the io capacity), bytes
 *   1 WAIT       dt u16 (ms ×16); handle_timeout when the module's timer is due
 *   2 TIMER      jump to next_timeout() and handle_timeout
 *   3 REPLAY     i u8: a datagram the cloud sent in the captured conversation, verbatim
 *   4 SEALED     type u8 (0-127: application data, alert, handshake, CCS by the low 2 bits; else
 *                itself), len u16 (mod 1800), bytes (zeros where the input ends): one record sealed
 *                with the session's server key, sequence numbers from just above the window
 *   5 SEALED+    as 4, followed in the same datagram by raw bytes: len u8, bytes
 *   6 PUBLISH    an event (name "f", 1 byte of data)
 * Op bytes 0xF7 and 0xF8 (taken before the mod 7):
 *   0xF7 CUT      i u8, k u8: cloud datagram i (as 3) with its last k % 32 + 1 bytes cut off: the
 *                last record's length then says more than the datagram holds (a record-length
 *                check off by a few bytes reads past the datagram; the 2019 truncated record)
 *   0xF8 CUT-SEALED  k u8, then as 4: the sealed record with its last k % 32 + 1 bytes cut off
 *   0xF9 PROFILE  p u8: the session on flash re-provisioned as profile p % 3 (0 legacy, 1 fixed,
 *                2 default; CRCs fixed), with bit 7 also the truncated-record hint marked acted on
 *                just now (its window closed), then a wake (fresh RAM, seed, boot): the same
 *                session under the legacy and fixed profiles' rules (the first 0xF9 of an input only)
 *   0xFB HVR      seq u8, n u8, cookie: a HelloVerifyRequest (epoch 0, a fresh record sequence
 *                number) answering ClientHello message_seq `seq` with an n % 33-byte cookie — the
 *                cookie rounds and their limit (a replayed one answers an older ClientHello)
 *   0xFA RESET    n u8: a record of ours (the sealed records' header, n % 64 bytes of content) whose
 *                last 16 bytes are the session's reset token from flash (a stateless reset: it
 *                does not authenticate; the fuzzer cannot guess the token)
 * While flash holds no session, SEALED records use the captured session's keys: from the
 * wait-finished snapshot those are the handshake's own keys (a sealed Finished is checked).
 * Invariants (besides no trap and no secret on the wire): every datagram is counted in
 * rxDatagrams exactly once and by at least one and at most one-per-record outcome counter; a
 * confirmed session is never discarded for anything an unauthenticated record can cause; once
 * booted, the session consumes every received record (nothing stays in the DTLS receive queue);
 * the heap pointer never moves; the ECDHE handshake oracle (common.h, hs_*): a ClientKeyExchange
 * goes out only after a fed Certificate with the pinned key and a fed ServerKeyExchange that
 * OpenSSL verifies with it.
 */
#include "common.h"
#include "seal.h"

static uint64_t g_seal_seq;

FUZZ_INIT(seal_init(); g_hs_oracle = 1)

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size) {
  BEGIN_INPUT(data, size);
  reader_t r = {data, size, 0};
  int mark = pick_mark(rd_u8(&r));
  restore(mark);
  /* The session of the conversation the snapshot belongs to (PSK or ECDHE). */
  g_seal_fallback = newest_slot(g_snaps[g_conv ? MARK_ECDHE_CONNECTED : MARK_CONFIRMED].flash);
  /* Just above the highest sequence number the session received (the replay window's edge). */
  const uint8_t *slot = newest_slot(g_flash);
  g_seal_seq = slot ? (uint64_t)rd64(slot + 68) + 1 : 1;
  static uint8_t buf[4096], rec[4096];
  int reprofiled = 0;
  for (int ops = 0; more(&r) && ops < 64; ops++) {
    const uint8_t *p;
    uint8_t op = rd_u8(&r);
    if (op == 0xf7) {
      int i = rd_u8(&r) % g_ncloud;
      uint32_t cut = rd_u8(&r) % 32 + 1, n = g_cloud_len[i] > cut ? g_cloud_len[i] - cut : 0;
      datagram_checked(g_cloud[i], n, n);
      continue;
    }
    if (op == 0xfb) {
      uint8_t mseq = rd_u8(&r);
      uint32_t n = rd_u8(&r) % 33, got = take(&r, n, &p);
      uint8_t *h = rec;
      uint32_t body = 3 + n, hs = 12 + body;
      static uint16_t rseq;
      rseq++;
      const uint8_t hdr[13] = {22, 0xfe, 0xff, 0, 0, 0, 0, 0, 1, (uint8_t)(rseq >> 8), (uint8_t)rseq, (uint8_t)(hs >> 8), (uint8_t)hs};
      memcpy(h, hdr, 13);
      const uint8_t msg[12] = {3, 0, 0, (uint8_t)body, 0, mseq, 0, 0, 0, 0, 0, (uint8_t)body};
      memcpy(h + 13, msg, 12);
      h[25] = 0xfe, h[26] = 0xff, h[27] = (uint8_t)n;
      memset(h + 28, 0, n);
      memcpy(h + 28, p, got);
      datagram_checked(rec, 13 + hs, 13 + hs);
      continue;
    }
    if (op == 0xfa) {
      const uint8_t *slot = newest_slot(g_flash);
      memset(buf, 0x52, 64);
      uint32_t len = seal_record(rec, 23, g_seal_seq++, buf, rd_u8(&r) % 64);
      if (len == 0 || !slot || !(slot[12] & 4)) continue;
      memcpy(rec + len - 16, slot + 132, 16);
      datagram_checked(rec, len, len);
      continue;
    }
    if (op == 0xf9) {
      uint8_t p = rd_u8(&r);
      if (!reprofiled) reprofile_and_wake(p % 3, p & 0x80); /* once per input: a wake costs a millisecond */
      reprofiled = 1;
      continue;
    }
    if (op == 0xf8) {
      uint32_t cut = rd_u8(&r) % 32 + 1;
      uint8_t t = rd_u8(&r), type = t < 128 ? (uint8_t[]){23, 21, 22, 20}[t & 3] : t;
      uint32_t n = rd_u16(&r) % 1800, got = take(&r, n, &p);
      memcpy(buf, p, got);
      memset(buf + got, 0, n - got);
      uint32_t len = seal_record(rec, type, g_seal_seq++, buf, n);
      if (len > cut) datagram_checked(rec, len - cut, len - cut);
      continue;
    }
    switch (op % 7) {
      case 0: {
        uint16_t len = rd_u16(&r);
        uint32_t have = take(&r, len, &p);
        datagram_checked(p, have, len);
        break;
      }
      case 1: {
        g_now += (int64_t)rd_u16(&r) * 16;
        int64_t t = next_timeout();
        if (t >= 0 && g_now >= t) do_timeout(g_now);
        break;
      }
      case 2: {
        int64_t t = next_timeout();
        if (t >= 0) {
          if (t > g_now) g_now = t;
          do_timeout(g_now);
        }
        break;
      }
      case 3: {
        int i = rd_u8(&r) % g_ncloud;
        datagram_checked(g_cloud[i], g_cloud_len[i], g_cloud_len[i]);
        break;
      }
      case 4:
      case 5: {
        int extra = op % 7 == 5;
        /* Mostly the content types the firmware handles, so the fuzzer does not guess them. */
        uint8_t t = rd_u8(&r), type = t < 128 ? (uint8_t[]){23, 21, 22, 20}[t & 3] : t;
        /* Bytes the input does not hold are zeros: a short input can still make a long record. */
        uint32_t n = rd_u16(&r) % 1800, got = take(&r, n, &p);
        memcpy(buf, p, got);
        memset(buf + got, 0, n - got);
        uint32_t len = seal_record(rec, type, g_seal_seq++, buf, n);
        if (len == 0) break;
        if (extra) {
          uint32_t m = take(&r, rd_u8(&r), &p);
          memcpy(rec + len, p, m);
          len += m;
        }
        datagram_checked(rec, len, len);
        break;
      }
      case 6: {
        static const uint8_t name[] = "f", one[] = {1};
        do_publish(g_now, name, 1, one, 1);
        break;
      }
    }
  }
  check_heap();
  trace_checkpoint();
  return 0;
}
