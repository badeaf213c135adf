// Property test: random and mutated datagrams (mutations of real records captured from a
// handshake) fed to the firmware client in every handshake state and after it. The module never
// traps, never releases data that did not authenticate, and counts every datagram it drops.
import { describe, it } from 'node:test';
import assert from 'node:assert/strict';
import crypto from 'node:crypto';
import fc from 'fast-check';
import { readFirmware } from '../../host/firmware.ts';
import { DROP_COUNTERS, FirmwareClient, type Counters, type StateName } from '../../host/session-abi.ts';
import type { Engine } from '../../host/engines/engine.ts';
import { ENGINES, skipOrFail } from './engines.ts';
import { TestPeer } from './dtls-peer.ts';

const RUNS_PER_STATE = Number(process.env.FUZZ_RUNS ?? 10_000);
const PSK = crypto.randomBytes(16);
const CID = crypto.randomBytes(6);
const OWN_CID = crypto.randomBytes(4); // records to the device carry it (RFC 9146)

/** A scripted handshake whose datagrams are replayed to reach each state quickly. */
interface Script {
  hvr: Buffer;
  flight4: Buffer;
  finished: Buffer;
  appRecords: Buffer[];
  appPlaintexts: Set<string>;
  entropy: Buffer;
}

async function recordScript(engine: Engine): Promise<Script> {
  const entropy = crypto.randomBytes(32);
  const c = new FirmwareClient(await engine.load(readFirmware()));
  c.provision(Buffer.from('fuzz-device'), PSK);
  c.setConnectionId(OWN_CID);
  c.seed(entropy);
  const peer = new TestPeer({ psk: PSK, helloVerify: true, cid: CID, identityHint: 'hint' });
  c.connect(0);
  const replies: Buffer[] = [];
  for (let round = 0; round < 5; round++) {
    for (const d of c.drainTransmit()) for (const r of peer.handle(d)) {
      replies.push(r);
      c.handleDatagram(0, r);
    }
  }
  assert.equal(c.state, 'connected');
  const appPlaintexts = new Set<string>();
  const appRecords = [0, 1, 2, 3].map((i) => {
    const text = `genuine ${i} ` + 'x'.repeat(i * 40);
    appPlaintexts.add(text);
    return peer.seal(23, Buffer.from(text));
  });
  appRecords.push(peer.seal(21, Buffer.from([1, 0]))); // a warning alert under the key
  c.m.dispose();
  return { hvr: replies[0], flight4: replies[1], finished: replies[2], appRecords, appPlaintexts, entropy };
}

const STATES: { name: StateName; feed: (s: Script) => Buffer[] }[] = [
  { name: 'wait-server-hello', feed: () => [] },
  { name: 'wait-server-hello-done', feed: (s) => [s.hvr, firstRecord(s.flight4)] },
  { name: 'wait-server-finished', feed: (s) => [s.hvr, s.flight4] },
  { name: 'connected', feed: (s) => [s.hvr, s.flight4, s.finished] },
];

function firstRecord(d: Buffer): Buffer {
  return d.subarray(0, 13 + d.readUInt16BE(11));
}

async function clientIn(engine: Engine, s: Script, state: (typeof STATES)[number]): Promise<FirmwareClient> {
  const c = new FirmwareClient(await engine.load(readFirmware()));
  c.provision(Buffer.from('fuzz-device'), PSK);
  c.setConnectionId(OWN_CID);
  c.seed(s.entropy); // same entropy → same ClientHello → the recorded server flights fit
  c.connect(0);
  for (const d of state.feed(s)) {
    c.drainTransmit();
    c.handleDatagram(0, d);
  }
  c.drainTransmit();
  assert.equal(c.state, state.name);
  return c;
}

/** Mutations that reach the bug classes other stacks shipped (see docs/anchors). */
function mutationArb(corpus: Buffer[]): fc.Arbitrary<Buffer> {
  const pick = fc.nat({ max: corpus.length - 1 }).map((i) => corpus[i]);
  const rand = fc.uint8Array({ minLength: 0, maxLength: 200 }).map((b) => Buffer.from(b));
  return fc.oneof(
    rand,
    // truncation at any point
    fc.tuple(pick, fc.nat()).map(([d, n]) => d.subarray(0, n % (d.length + 1))),
    // record length field larger than the datagram holds
    fc.tuple(pick, fc.integer({ min: 1, max: 0xffff })).map(([d, extra]) => {
      const m = Buffer.from(d);
      if (m.length >= 13) m.writeUInt16BE(Math.min(0xffff, m.readUInt16BE(11) + extra), 11);
      return m;
    }),
    // wrong or huge epoch
    fc.tuple(pick, fc.integer({ min: 0, max: 0xffff })).map(([d, e]) => {
      const m = Buffer.from(d);
      if (m.length >= 13) m.writeUInt16BE(e, 3);
      return m;
    }),
    // huge sequence number
    fc.tuple(pick, fc.bigInt({ min: 0n, max: 0xffffffffffffn })).map(([d, q]) => {
      const m = Buffer.from(d);
      if (m.length >= 13) m.writeUIntBE(Number(q), 5, 6);
      return m;
    }),
    // any handshake length field made odd / too large: message length, fragment fields, inner lists
    fc.tuple(pick, fc.nat(), fc.integer({ min: 0, max: 0xffffff })).map(([d, at, v]) => {
      const m = Buffer.from(d);
      if (m.length > 16) {
        const i = 13 + (at % (m.length - 16));
        m.writeUIntBE(v & 0xffffff, i, 3);
      }
      return m;
    }),
    // oversized cookie: HelloVerifyRequest claiming up to 255 cookie bytes
    fc.tuple(fc.integer({ min: 0, max: 255 }), fc.nat({ max: 300 })).map(([claimed, present]) => {
      const body = Buffer.concat([Buffer.from([0xfe, 0xff, claimed]), crypto.randomBytes(present)]);
      const hs = Buffer.alloc(12);
      hs[0] = 3;
      hs.writeUIntBE(body.length, 1, 3);
      hs.writeUIntBE(body.length, 9, 3);
      const h = Buffer.from([22, 0xfe, 0xff, 0, 0, 0, 0, 0, 0, 0, 9, 0, 0]);
      h.writeUInt16BE(hs.length + body.length, 11);
      return Buffer.concat([h, hs, body]);
    }),
    // bit flips
    fc.tuple(pick, fc.array(fc.nat(), { minLength: 1, maxLength: 4 })).map(([d, bits]) => {
      const m = Buffer.from(d);
      for (const b of bits) if (m.length) m[(b >> 3) % m.length] ^= 1 << (b & 7);
      return m;
    }),
    // replayed genuine datagrams, and two glued together
    pick,
    fc.tuple(pick, pick).map(([a, b]) => Buffer.concat([a, b])),
  );
}

function sum(k: Counters, names: readonly string[]): number {
  return names.reduce((n, name) => n + (k as Record<string, number>)[name], 0);
}

for (const engineCase of ENGINES) {
  describe(`DTLS client fuzz on ${engineCase.name}`, () => {
    for (const state of STATES) {
      it(`${RUNS_PER_STATE} hostile datagrams in state ${state.name}`, async (t) => {
        const engine = engineCase.create();
        if ('skip' in engine) return skipOrFail(t, engine.skip);
        const script = await recordScript(engine);
        const corpus = [script.hvr, script.flight4, script.finished, ...script.appRecords];
        let c = await clientIn(engine, script, state);
        let delivered = 0;
        let recreated = 0;
        let fed = 0;
        await fc.assert(
          fc.asyncProperty(mutationArb(corpus), async (d) => {
            if (c.state !== state.name) {
              // a datagram legitimately moved the state (e.g. a genuine flight replayed): start over
              c.m.dispose();
              c = await clientIn(engine, script, state);
              recreated++;
            }
            const before = c.counters();
            c.handleDatagram(1, d); // a trap throws here and fails the property
            fed++;
            const after = c.counters();
            const handled = after.rxRecordsOk - before.rxRecordsOk + after.peerRetransmissions - before.peerRetransmissions;
            const dropped = sum(after, DROP_COUNTERS) - sum(before, DROP_COUNTERS);
            assert.ok(handled + dropped >= 1, `datagram neither handled nor counted as dropped: ${d.toString('hex')}`);
            for (let data = c.recv(); data; data = c.recv()) {
              assert.ok(after.handshakesCompleted > 0, 'application data released before the handshake finished');
              assert.ok(script.appPlaintexts.has(Buffer.from(data).toString()), 'released data that is not a genuine record');
              delivered++;
            }
            c.drainTransmit();
          }),
          { numRuns: RUNS_PER_STATE, seed: 2019_05_02 },
        );
        assert.equal(fed, RUNS_PER_STATE);
        // Each genuine record can be delivered at most once per client instance.
        assert.ok(delivered <= script.appPlaintexts.size * (recreated + 1), `delivered ${delivered} (replays accepted?)`);
        c.m.dispose();
      });
    }
  });
}
