/*
 * Target `boot`: the persisted 1,280-byte region as boot reads it after a wake.
 * Input: flags u8, then the region (bytes missing at the end are taken from the region the
 * captured conversation left, so short inputs stay close to a real record).
 *   flags bit 0: keep the CRCs as given. Otherwise the harness recomputes the credentials CRC, the
 *                slots' copy of it (unless bit 1) and each slot's CRC, so the fuzzer explores what
 *                lies behind a valid CRC — where a length is trusted; and a slot whose magic says
 *                "SLP" of any layout version gets the current version's magic.
 *   flags bits 2-3: what follows boot: a publish, the timer, prepare_sleep (all of them for 3).
 *   flags bit 4: boot without seeding the entropy first (boot must refuse: -5).
 * Invariants: no trap; boot accepts credentials only with every length within its field, resumes
 * a slot only with every length within its field; every slot it writes back has lengths within
 * their fields; nothing above the static buffers is written; no secret on the wire; the heap
 * pointer never moves.
 */
#include "common.h"

FUZZ_INIT((void)0)

/* Lengths of a slot within their fields, or a description of the first that is not. */
static const char *slot_lengths_bad(const uint8_t *s, char *why, size_t n) {
  if (s[96] > 32) return snprintf(why, n, "peer CID length %u > 32", s[96]), why;
  if (s[148] > 6) return snprintf(why, n, "outbox count %u > 6", s[148]), why;
  for (int i = 0; i < s[148]; i++) {
    const uint8_t *e = s + 149 + 64 * i;
    if (e[4] < 1 || e[4] > 15) return snprintf(why, n, "outbox entry %d name length %u not 1..15", i, e[4]), why;
    if (e[20] > 43) return snprintf(why, n, "outbox entry %d data length %u > 43", i, e[20]), why;
  }
  return NULL;
}

static const char *creds_lengths_bad(const uint8_t *c, char *why, size_t n) {
  if (c[4] > 2) return snprintf(why, n, "profile %u > 2", c[4]), why;
  if (c[5] < 1 || c[5] > 48) return snprintf(why, n, "device id length %u not 1..48", c[5]), why;
  if (c[6] < 1 || c[6] > 64) return snprintf(why, n, "identity length %u not 1..64", c[6]), why;
  if (c[7] < 1 || c[7] > 64) return snprintf(why, n, "PSK length %u not 1..64", c[7]), why;
  return NULL;
}

static void fix_crcs(uint8_t *region, int keepSlotCredsCrc) {
  uint32_t cc = crc32_ieee(region, 184);
  memcpy(region + 184, &cc, 4);
  for (int s = 0; s < 2; s++) {
    uint8_t *slot = region + SLOT_A_AT + s * SLOT_BYTES;
    /* Any "SLP" layout version becomes the current one: kept inputs stay meaningful across bumps. */
    uint32_t magic;
    memcpy(&magic, slot, 4);
    if ((magic & 0xffffff) == 0x504c53u) memcpy(slot, &g_slot_magic, 4);
    if (!keepSlotCredsCrc) memcpy(slot + 8, &cc, 4);
    uint32_t c = crc32_ieee(slot, 540);
    memcpy(slot + 540, &c, 4);
  }
}

/* Every slot image the firmware writes must be one it would accept back. */
static void check_written_slots(const uint8_t *before) {
  for (int s = 0; s < 2; s++) {
    const uint8_t *slot = g_flash + SLOT_A_AT + s * SLOT_BYTES;
    if (!memcmp(slot, before + SLOT_A_AT + s * SLOT_BYTES, SLOT_BYTES) || !slot_valid(slot)) continue;
    char why[128];
    if (slot_lengths_bad(slot, why, sizeof why)) fail("boot: firmware wrote slot %c with %s", 'A' + s, why);
  }
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size) {
  BEGIN_INPUT(data, size);
  restore(7); /* 'confirmed': its flash is the template for the bytes the input leaves out */
  uint8_t region[REGION_BYTES];
  memcpy(region, g_flash, REGION_BYTES);
  size_t n = size - 1 < REGION_BYTES ? size - 1 : REGION_BYTES;
  memcpy(region, data + 1, n);
  uint8_t flags = data[0];
  if (!(flags & 1)) fix_crcs(region, flags & 2);
  /* Power-on: a fresh instance, seeded as the captured wake was (flag bit 4: not seeded). */
  restore(0);
  if (flags & 16) do_reset();
  memcpy(g_flash, region, REGION_BYTES);
  set_input_region(region);
  int32_t rc = do_boot(g_now);
  char why[128];
  if (rc < -1 && !(rc == -5 && (flags & 16))) fail("boot returned %d", rc);
  if (rc > SS_NO_SESSION) fail("boot returned %d", rc);
  if ((flags & 16) && rc != -5 && rc != -1) fail("boot without entropy returned %d, not -5 (not seeded) or -1", rc);
  int credsOk = *(const uint32_t *)region == 0x31445243u && crc32_ieee(region, 184) == *(const uint32_t *)(region + 184);
  if (rc >= 0 && credsOk && creds_lengths_bad(region, why, sizeof why)) fail("boot trusted a persisted credentials %s", why);
  int resumed = 0;
  for (int i = 0; i < g_nevents; i++) resumed |= g_events[i].type == EV_RESUMED;
  if (resumed) {
    /* The only slot a correct boot may resume: the newest valid one (an older slot is never a
     * fallback for a refused newer one, or an old reservation would be reused). */
    const uint8_t *slot = newest_slot(region);
    if (slot && slot_lengths_bad(slot, why, sizeof why))
      fail("boot resumed a session while its newest slot %c has %s", slot == region + SLOT_A_AT ? 'A' : 'B', why);
  }
  uint8_t before[REGION_BYTES];
  memcpy(before, region, REGION_BYTES);
  check_written_slots(before);
  if (rc >= 0) {
    int what = (flags >> 2) & 3;
    if (what == 0 || what == 3) {
      static const uint8_t name[] = "b", one[] = {7};
      do_publish(g_now, name, 1, one, 1);
    }
    if (what == 1 || what == 3) {
      int64_t t = next_timeout();
      if (t >= 0) do_timeout(t > g_now ? t : g_now);
    }
    if (what == 2 || what == 3) do_prepare_sleep(g_now + 1);
    check_written_slots(before);
  }
  check_heap();
  trace_checkpoint();
  return 0;
}
