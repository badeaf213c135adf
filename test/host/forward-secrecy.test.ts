// Forward secrecy, shown rather than asserted: a session of the firmware with the cloud is recorded
// on the wire; its keys expire and are destroyed; then an attacker gets the device's flash after
// its next sleep (which holds the device's private key), and the cloud's private key. Nothing of
// it opens the recorded session, while the session's own key log line does. With the PSK suite
// the same haul does open it: the master secret is a function of the PSK and the two randoms.
import { describe, it } from 'node:test';
import assert from 'node:assert/strict';
import crypto from 'node:crypto';
import { AbiHarness } from './fixtures/abi-harness.ts';
import { CRED } from './fixtures/persisted.ts';
import { contains, keyBlock, openRecord, parseDatagram, prf, pskPremaster, type ParsedRecord } from './dtls-ref.ts';
import type { Suite } from '../../host/session-abi.ts';

const DAY_MS = 24 * 3600_000;
const SECRET = Buffer.from('reading 7: nobody may see it later');

interface Recording {
  up: Buffer[];
  down: Buffer[];
  keyLog: string[];
}

/** Handshake messages (epoch-0 records, whole messages) of the datagrams, in order. */
function handshakeMessages(datagrams: Buffer[]): Buffer[] {
  const out: Buffer[] = [];
  for (const d of datagrams) {
    for (let at = 0; at + 13 <= d.length;) {
      const len = d.readUInt16BE(at + 11);
      if (d[at] === 22 && d.readUInt16BE(at + 3) === 0) {
        const body = d.subarray(at + 13, at + 13 + len);
        for (let m = 0; m + 12 <= body.length;) {
          const n = body.readUIntBE(m + 9, 3);
          out.push(Buffer.from(body.subarray(m, m + 12 + n)));
          m += 12 + n;
        }
      }
      if (d[at] === 25) break; // a CID record: the rest is protected
      at += 13 + len;
    }
  }
  return out;
}

/**
 * What anyone learns from the recording of the first handshake: both randoms, the session hash
 * (transcript through ClientKeyExchange), both ephemeral points; and the device's protected
 * records (epoch 1, with the cloud's CID).
 */
function dissect(rec: Recording) {
  const up = handshakeMessages(rec.up), down = handshakeMessages(rec.down);
  const helloWithCookie = up.filter((m) => m[0] === 1).at(-1)!;
  const serverFlight = down.filter((m) => [2, 11, 12, 13, 14].includes(m[0]));
  const clientFlight = up.filter((m) => [11, 16].includes(m[0]));
  const transcript = Buffer.concat([helloWithCookie, ...serverFlight, ...clientFlight]);
  const ske = serverFlight.find((m) => m[0] === 12);
  const cke = clientFlight.find((m) => m[0] === 16)!;
  const records: ParsedRecord[] = rec.up.flatMap((d) => (d[0] === 25 ? withSomeCidLength(d) : []));
  return {
    clientRandom: helloWithCookie.subarray(12 + 2, 12 + 34),
    serverRandom: serverFlight[0].subarray(12 + 2, 12 + 34),
    sessionHash: crypto.createHash('sha256').update(transcript).digest(),
    serverEphemeral: ske?.subarray(12 + 4, 12 + 4 + 65),
    clientEphemeral: cke.subarray(12 + 1, 12 + 1 + cke[12]),
    records,
  };
}

/** The datagram's records under the one CID length whose record lengths end exactly at the datagram's end. */
function withSomeCidLength(d: Buffer): ParsedRecord[] {
  for (let cl = 0; cl <= 32; cl++) {
    try {
      return parseDatagram(d, cl);
    } catch {
      // not this length
    }
  }
  return [];
}

/** A recorded session, then expiry, destruction, a new session and a sleep: the haul. */
async function recordAndExpire(suite: Suite) {
  const keyLog: string[] = [];
  const h = new AbiHarness({ seed: `forward-secrecy-${suite}`, profile: 'default', suite, keyLog: (l) => keyLog.push(l) });
  await h.provision();
  await h.wakeAndConfirm();
  const seq = await h.publish('t', SECRET);
  assert.equal(typeof seq, 'number');
  await h.converse();
  assert.ok(h.ackedEvents.length >= 1, 'the reading was ACKed');
  assert.ok(h.cloudEvents.some((e) => e.kind === 'event' && e.data.equals(SECRET)), 'the cloud got the reading');
  await h.sleep();
  const recording: Recording = { up: [...h.uplink], down: [...h.deliveredDownlink].map((d) => Buffer.from(d)), keyLog: [...keyLog] };
  // Past the maximum session age (3 days, default profile): the first session's keys are destroyed
  // at this wake, before anything else, and a second session takes over; then the device sleeps.
  h.nowMs += 3 * DAY_MS + 3600_000;
  await h.wakeAndConfirm();
  assert.ok(h.deviceEvents.some((e) => e.type === 'session-discarded' && e.reason === 'max-age'), 'the first session expired');
  await h.publish('t', Buffer.from('reading 8'));
  await h.converse();
  await h.sleep();
  h.check();
  return { h, recording, flash: Buffer.from(h.memory.snapshot()) };
}

describe('forward secrecy (ECDHE-ECDSA), on a recording of the firmware and the cloud', () => {
  it('the flash after sleep, the device private key and the cloud private key do not open an expired session; its key log does', async () => {
    const { h, recording, flash } = await recordAndExpire('ecdhe');
    // The attacker's haul: the flash (which holds the device's private key) and the cloud's key.
    const deviceKey = flash.subarray(CRED.psk, CRED.psk + 32);
    assert.ok(deviceKey.equals(h.devicePrivateKey), 'the device private key is read out of the flash');
    const cloudKey = Buffer.from(crypto.createPrivateKey(h.serverKey.toPem()).export({ format: 'jwk' }).d!, 'base64url');
    const s = dissect(recording);
    assert.ok(s.serverEphemeral && s.records.length > 0, 'the recording holds the key exchange and protected records');
    const opens = (master: Buffer): Buffer | null => {
      const k = keyBlock(master, s.clientRandom, s.serverRandom);
      for (const r of s.records) {
        const o = openRecord(r, k.clientKey, k.clientIv);
        if (o && o.content.includes(SECRET)) return o.content;
      }
      return null;
    };

    // Control: the session's own master secret (the cloud's key log line) opens the reading.
    const [, logRandom, logMaster] = recording.keyLog[0].split(' ');
    assert.equal(logRandom, s.clientRandom.toString('hex'));
    const master = Buffer.from(logMaster, 'hex');
    assert.ok(opens(master), 'the key log decrypts the recording');

    // The attack: every Diffie-Hellman the long-term keys allow with the points on the wire, and the
    // keys themselves, each taken as the premaster; none opens the recording.
    const dh = (scalar: Buffer, point: Buffer): Buffer => {
      const e = crypto.createECDH('prime256v1');
      e.setPrivateKey(scalar);
      return e.computeSecret(point);
    };
    const candidates = [
      dh(cloudKey, s.clientEphemeral), dh(deviceKey, s.serverEphemeral!), dh(deviceKey, h.serverKey.publicPoint), cloudKey, deviceKey,
    ];
    for (const premaster of candidates) assert.equal(opens(prf(premaster, 'extended master secret', s.sessionHash, 48)), null);
    // Nor does anything in the flash: the session's keys and its master secret are nowhere in it
    // (the slots now hold the second session), and the second session's keys do not open the first.
    const k = keyBlock(master, s.clientRandom, s.serverRandom);
    for (const secret of [master, k.clientKey, k.serverKey]) assert.ok(!contains(flash, secret), 'a key of the expired session is still in flash');
    const now = h.sessionKeys();
    assert.ok(!s.records.some((r) => openRecord(r, now.clientKey, now.clientIv)), 'the current session keys open the old session');
    assert.ok(!recording.up.some((d) => contains(d, SECRET)), 'the reading never travels in clear');
  });

  it('with the PSK suite the same haul does open it: why the default is ECDHE', async () => {
    const { h, recording, flash } = await recordAndExpire('psk');
    const psk = flash.subarray(CRED.psk, CRED.psk + 16);
    assert.ok(psk.equals(h.psk), 'the PSK is read out of the flash');
    const s = dissect(recording);
    const k = keyBlock(prf(pskPremaster(psk), 'extended master secret', s.sessionHash, 48), s.clientRandom, s.serverRandom);
    assert.ok(s.records.some((r) => openRecord(r, k.clientKey, k.clientIv)?.content.includes(SECRET)), 'the PSK and the recording give the reading');
  });
});
