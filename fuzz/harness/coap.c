/*
 * Target `coap`: the firmware's CoAP codec and exchange logic, reached as the cloud reaches it:
 * each message is sealed as an application-data record with the session's server key, so every
 * input authenticates and goes past the record layer.
 * Input: flags u8 (bit 0: start resumed instead of confirmed; bit 1: publish first so an
 * exchange is outstanding; bit 2: run the timer after every message), then messages: len u8,
 * bytes. Invariants: the common per-datagram ones (counting, no confirmed session lost to an
 * unauthenticated record, receive queue drained, no secret on the wire, heap and memory); and
 * every CoAP ACK the device sends while handling a message (opened with the session's client
 * key) answers it: the message was a CON, the ACK carries its message ID and echoes its token,
 * its code is a response (2.xx, 4.xx, 5.xx) — 2.04 for the canonical POST /rt with a 16-byte
 * token, 4.04 for a bare request with no option and no payload.
 */
#include "common.h"
#include "seal.h"

FUZZ_INIT(seal_init())

/* The message being handled (what an ACK must answer), and the session keys it was sealed under. */
static struct {
  int active, con;
  uint16_t mid;
  uint8_t tkl, token[8], expect; /* expect: the exact code, 0 when only the class is checked */
} g_req;
static uint8_t g_req_slot[SLOT_BYTES];

static void note_request(const uint8_t *m, uint32_t n) {
  memset(&g_req, 0, sizeof g_req);
  const uint8_t *slot = newest_slot(g_flash);
  if (!slot) return;
  memcpy(g_req_slot, slot, SLOT_BYTES);
  g_req.active = 1;
  uint8_t tkl = n >= 4 ? m[0] & 15 : 0;
  if (n < 4 || m[0] >> 6 != 1 || tkl > 8 || n < 4u + tkl) return; /* not CoAP: nothing to answer */
  g_req.con = (m[0] >> 4 & 3) == 0;
  g_req.mid = (uint16_t)(m[2] << 8 | m[3]);
  g_req.tkl = tkl;
  memcpy(g_req.token, m + 4, tkl);
  const uint8_t *rest = m + 4 + tkl;
  uint32_t left = n - 4 - tkl;
  static const uint8_t rt[] = {0xb2, 'r', 't', 0xff};
  if (m[1] == 0x02 && left == 4 + 16 && !memcmp(rest, rt, 4)) g_req.expect = 0x44;
  else if (left == 0) g_req.expect = 0x84;
}

/* Every datagram the device sends while a message is handled: its ACKs must answer that message. */
static void on_transmit(const uint8_t *d, uint32_t n) {
  if (!g_req.active) return;
  for (uint32_t at = 0; at + 13 <= n;) {
    uint32_t cidLen = d[at] == 25 ? g_req_slot[96] : 0;
    if (cidLen > 32 || at + 13 + cidLen > n) return;
    uint32_t len = 13 + cidLen + ((uint32_t)d[at + 11 + cidLen] << 8 | d[at + 12 + cidLen]);
    if (at + len > n) return;
    uint8_t pt[2048], type;
    int m = open_record(g_req_slot, d + at, len, pt, &type);
    at += len;
    if (m < 4 || type != 23 || (pt[0] >> 4 & 3) != 2 /* ACK */) continue;
    uint16_t mid = (uint16_t)(pt[2] << 8 | pt[3]);
    uint8_t tkl = pt[0] & 15, code = pt[1];
    if (!g_req.con) fail("the device sent an ACK (message ID %u) for a message that was no CON request", mid);
    if (mid != g_req.mid) fail("ACK with message ID %u for a CON request with message ID %u", mid, g_req.mid);
    if (tkl != g_req.tkl || (uint32_t)m < 4u + tkl || memcmp(pt + 4, g_req.token, tkl))
      fail("ACK for message ID %u does not echo the request's %u-byte token", mid, g_req.tkl);
    if (code >> 5 != 2 && code >> 5 != 4 && code >> 5 != 5) fail("ACK for message ID %u has code %u.%02u, not a response", mid, code >> 5, code & 31);
    if (g_req.expect && code != g_req.expect)
      fail("ACK for message ID %u has code %u.%02u, expected %u.%02u", mid, code >> 5, code & 31, g_req.expect >> 5, g_req.expect & 31);
  }
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
    uint32_t n = take(&r, rd_u8(&r), &p);
    memcpy(buf, p, n);
    uint32_t len = seal_record(rec, 23, seq++, buf, n);
    if (len == 0) break; /* the session is gone (a heal): nothing more to seal with */
    g_now += 10;
    note_request(buf, n);
    g_on_transmit = on_transmit;
    datagram_checked(rec, len, len);
    g_on_transmit = NULL;
    g_req.active = 0;
    if (flags & 4) {
      int64_t t = next_timeout();
      if (t >= 0) do_timeout(t > g_now ? t : g_now);
    }
  }
  check_heap();
  trace_checkpoint();
  return 0;
}
