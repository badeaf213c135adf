// Every single fault, enumerated (issue 17): a scripted multi-wake scenario — handshake, events,
// resumed wakes, the cloud's session cache wiped and healed — is run once per fault with exactly
// one fault injected:
//   - a power cut inside every persistent write the scenario makes, at several byte offsets
//     (nothing of the block, the magic only, into the keys, the reservation, the outbox, all but the
//     CRC, all but the last byte);
//   - one bit flipped at every byte of both slots (and of the credentials) at every sleep, with no
//     CRC recomputed (bit rot);
// and then the invariants below are checked (docs/persistence.md says why each must hold):
//   - no (key, nonce) twice on the wire (every record the device sent, opened with every key it had);
//   - no event number claimed by the cloud reused with other content (the cloud delivers one
//     content per (device, incarnation, seq), and each equals what was published under it);
//   - no destroyed key in RAM or persistent memory; every event the device saw ACKed was delivered;
//   - the device recovers: two clean wakes after the scenario end confirmed with an empty outbox.
// Image rollback (an older valid image written back) is a different class: no firmware can tell it
// from the real thing without a monotonic counter, so nonces are reused; what must hold then is
// checked in its own test below. The number of faults injected is printed.
import { describe, it } from 'node:test';
import assert from 'node:assert/strict';
import { CREDS_BYTES, OUTBOX_ENTRY, SLOT, SLOT_AT, SLOT_BYTES, newestSlot } from './fixtures/persisted.ts';
import { CUT_OFFSETS, type Fault, type Outcome, recovered, runScenario } from './fixtures/fault-scenario.ts';

/** One byte in each field of a slot (the bit flipped varies with the write). */
const ROT_FIELDS = [0, SLOT.generation, SLOT.flags, SLOT.nextMid, SLOT.nextEventSeq, SLOT.keys + 3, SLOT.writeReserved,
  SLOT.readMax, SLOT.incarnation, SLOT.failedAuth, SLOT.peerCid, SLOT.outboxCount, SLOT.outbox + 25, SLOT.crc + 2];

describe('issue 17: every single fault, enumerated', () => {
  it('power cuts at every write and bit flips at every byte of the persisted region after every wake: zero violations', async () => {
    const clean = await runScenario({ kind: 'none' });
    assert.deepEqual(clean.violations, [], 'the scenario without a fault');
    assert.deepEqual(recovered(clean), []);
    assert.ok(clean.h.ackedEvents.length >= 5, 'the scenario publishes and delivers events');
    const faults: Fault[] = [];
    for (let k = 0; k < clean.writes; k++) {
      for (const off of CUT_OFFSETS) faults.push({ kind: 'cut', writeIndex: k, afterBytes: off });
    }
    // Power lost after the call that made each write (not a fault: batteries get pulled), then one
    // bit rots in a field of either slot: the newest slot may hold a reservation the older does not.
    for (let k = clean.provisionWrites; k < clean.writes; k++) {
      for (const at of SLOT_AT) {
        for (const field of ROT_FIELDS) faults.push({ kind: 'loss-flip', writeIndex: k, byte: at + field, bit: k % 8 });
      }
    }
    const wakes = clean.images.length;
    for (let w = 0; w < wakes - 2; w++) {
      for (let byte = 0; byte < CREDS_BYTES + 2 * SLOT_BYTES; byte++) faults.push({ kind: 'flip', afterWake: w, byte, bit: byte % 8 });
    }
    const failures: string[] = [];
    const counts = { cut: 0, flip: 0, 'loss-flip': 0 };
    for (const f of faults) {
      const o = await runScenario(f);
      counts[f.kind as keyof typeof counts]++;
      // A fault in the factory step or in the credentials leaves the device unprovisioned (by design:
      // it then sends nothing); every other one must heal by itself.
      const unprovisioned = (f.kind === 'flip' && f.byte < CREDS_BYTES) || (f.kind === 'cut' && f.writeIndex < clean.provisionWrites);
      const v = [...o.violations, ...(unprovisioned ? [] : recovered(o))];
      if (v.length) failures.push(`${JSON.stringify(f)}: ${v[0]}`);
      if (failures.length >= 5) break;
    }
    console.log(`# fault enumeration: ${counts.cut} power cuts (${clean.writes} writes × ${CUT_OFFSETS.length} offsets), `
      + `${counts.flip} bit flips (${wakes - 2} sleeps × ${CREDS_BYTES + 2 * SLOT_BYTES} bytes), `
      + `${counts['loss-flip']} power losses after a write's call with a bit flipped (${clean.writes - clean.provisionWrites} writes × 2 slots × ${ROT_FIELDS.length} fields), ${failures.length} violations`);
    assert.deepEqual(failures, []);
  });
});

describe('issue 17: image rollback (an older valid image written back), every older image at every sleep', () => {
  it('the cloud never delivers two contents for one event number, no reading is lost, and the device heals', async () => {
    const clean = await runScenario({ kind: 'none' });
    const faults: Fault[] = [];
    for (let j = 1; j < clean.images.length - 2; j++) {
      for (let i = 0; i < j; i++) faults.push({ kind: 'rollback', afterWake: j, image: clean.images[i] });
    }
    const failures: string[] = [];
    let reusedNonces = 0;
    for (const f of faults) {
      const o = await runScenario(f);
      // Nonce reuse is the expected exposure of a rollback (docs/persistence.md): counted, not failed.
      const v = o.violations.filter((x) => !/nonce reused|destroyed session's key|sent with two contents|never delivered/.test(x));
      if (o.violations.some((x) => /nonce reused/.test(x))) reusedNonces++;
      v.push(...recovered(o), ...lostReadings(o));
      if (v.length) failures.push(`rollback to image ${clean.images.indexOf((f as { image: Uint8Array }).image)} after wake ${(f as { afterWake: number }).afterWake}: ${v[0]}`);
    }
    console.log(`# rollback enumeration: ${faults.length} rollbacks, ${reusedNonces} with a (key, nonce) reused on the wire (the exposure), ${failures.length} violations`);
    assert.deepEqual(failures, []);
  });
});

/** Every reading published reached the cloud, or is still queued in the device's outbox. */
function lostReadings(o: Outcome): string[] {
  const delivered = new Set(o.h.cloudEvents.filter((e) => e.kind === 'event').map((e) => (e as { data: Buffer }).data.toString()));
  const slot = newestSlot(o.h.memory.bytes);
  const queued = new Set<string>();
  for (let i = 0; slot && i < slot.outbox; i++) {
    const e = slot.at + SLOT.outbox + i * OUTBOX_ENTRY.bytes;
    const len = o.h.memory.bytes[e + OUTBOX_ENTRY.dataLen];
    queued.add(Buffer.from(o.h.memory.bytes.subarray(e + OUTBOX_ENTRY.data, e + OUTBOX_ENTRY.data + len)).toString());
  }
  const published = new Set([...o.h.published.values()].map((hex) => Buffer.from(hex, 'hex').toString()));
  return [...published].filter((d) => !delivered.has(d) && !queued.has(d)).map((d) => `reading ${d} neither delivered nor queued`);
}
