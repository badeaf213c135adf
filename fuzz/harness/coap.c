/*
 * Target `coap`: the firmware's CoAP codec and exchange logic, reached as the cloud reaches it:
 * each message is sealed as an application-data record with the session's server key, so every
 * input authenticates and goes past the record layer.
 * Input: flags u8 (bit 0: start resumed instead of confirmed; bit 1: publish first so an
 * exchange is outstanding; bit 2: run the timer after every message), then messages: len u8,
 * bytes; a message of length byte 0xFF is instead the cloud's stateless reset, CON POST /rt
 * carrying the reset token the session holds (its true value, from the persisted record: the
 * fuzzer cannot guess 16 bytes). Invariants: the common per-datagram ones (counting, no confirmed session lost to an
 * unauthenticated record, receive queue drained, no secret on the wire, heap and memory).
 */
#include "common.h"
#include "seal.h"

FUZZ_INIT(seal_init())

/* CON POST /rt (Uri-Path "rt"), token 1 byte, payload the session's reset token (or zeros when it
 * holds none). Returns the message's length. */
static uint32_t reset_request(uint8_t *m, uint16_t mid) {
  const uint8_t *slot = newest_slot(g_flash);
  static const uint8_t zero[16];
  const uint8_t *token = slot && (slot[12] & 4) ? slot + 132 : zero;
  uint32_t n = 0;
  m[n++] = 0x41; /* version 1, CON, token length 1 */
  m[n++] = 0x02; /* POST */
  m[n++] = (uint8_t)(mid >> 8);
  m[n++] = (uint8_t)mid;
  m[n++] = 0x5a;
  m[n++] = 0xb2; /* option 11 (Uri-Path), length 2 */
  m[n++] = 'r';
  m[n++] = 't';
  m[n++] = 0xff;
  memcpy(m + n, token, 16);
  return n + 16;
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size) {
  BEGIN_INPUT(data, size);
  reader_t r = {data, size, 0};
  uint8_t flags = rd_u8(&r);
  restore(flags & 1 ? 6 : 7);
  if (flags & 2) {
    static const uint8_t name[] = "c", one[] = {3};
    do_publish(g_now, name, 1, one, 1);
  }
  static uint8_t buf[512], rec[1024];
  uint64_t seq = 0x20000;
  for (int ops = 0; more(&r) && ops < 32; ops++) {
    const uint8_t *p;
    uint8_t want = rd_u8(&r);
    uint32_t n = take(&r, want, &p);
    memcpy(buf, p, n);
    if (want == 0xff) n = reset_request(buf, (uint16_t)(0x5000 + ops));
    uint32_t len = seal_record(rec, 23, seq++, buf, n);
    if (len == 0) break; /* the session is gone (a heal): nothing more to seal with */
    g_now += 10;
    datagram_checked(rec, len, len);
    if (flags & 4) {
      int64_t t = next_timeout();
      if (t >= 0) do_timeout(t > g_now ? t : g_now);
    }
  }
  check_heap();
  trace_checkpoint();
  return 0;
}
