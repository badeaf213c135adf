// The firmware's ECDHE-ECDSA client against the scripted peer (in process, V8): what a server or a
// man in the middle can get wrong in the ServerKeyExchange is refused, and the handshake leaves no
// ephemeral private key behind in the module's memory.
import { describe, it } from 'node:test';
import assert from 'node:assert/strict';
import crypto from 'node:crypto';
import { V8Engine } from '../../host/engines/v8.ts';
import { loadFirmware } from '../../host/firmware.ts';
import { FirmwareClient } from '../../host/session-abi.ts';
import { TestPeer, pump, type PeerOptions } from './dtls-peer.ts';
import { p256PrivateFrom, p256Public } from './p256-ref.ts';

/** Each epoch-0 record of a datagram as a datagram of its own. */
function eachRecord(d: Uint8Array): Uint8Array[] {
  const out: Uint8Array[] = [];
  for (let at = 0; at + 13 <= d.length; at += 13 + ((d[at + 11] << 8) | d[at + 12])) out.push(d.subarray(at, at + 13 + ((d[at + 11] << 8) | d[at + 12])));
  return out;
}

async function handshake(misbehave?: NonNullable<PeerOptions['ecdhe']>['misbehave'], recordPerDatagram = false) {
  const c = new FirmwareClient(await loadFirmware(new V8Engine()));
  const serverPrivateKey = p256PrivateFrom(crypto.randomBytes(32));
  c.provisionEcdhe(p256Public(serverPrivateKey), p256PrivateFrom(crypto.randomBytes(32)));
  c.seed(crypto.randomBytes(48));
  const sent: Uint8Array[] = [];
  const peer = new TestPeer({ psk: Buffer.alloc(16), helloVerify: true, ecdhe: { serverPrivateKey, misbehave } });
  c.connect(0);
  pump({
    drainTransmit: () => { const d = c.drainTransmit(); sent.push(...d); return d; },
    handleDatagram: (n, d) => { for (const r of recordPerDatagram ? eachRecord(d) : [d]) c.handleDatagram(n, r); },
  }, peer);
  return { c, peer, sent };
}

describe('ECDHE-ECDSA client: the server Certificate and ServerKeyExchange', () => {
  for (const [misbehave, what] of [
    ['bad-signature', 'a ServerKeyExchange signature that does not verify'],
    ['non-minimal-der', 'a valid ServerKeyExchange signature in non-minimal DER (a BER integer)'],
    ['point-off-curve', 'a ServerKeyExchange (signed) whose ephemeral point is off the curve'],
    ['other-certificate', 'a Certificate with a key other than the pinned one (the ServerKeyExchange signed by the pinned key)'],
  ] as const) {
    it(`${what}: the handshake fails with server-key-rejected, nothing of the client's flight is sent`, async () => {
      const { c, sent } = await handshake(misbehave);
      assert.equal(c.state, 'failed');
      assert.equal(c.lastError, 'server-key-rejected');
      assert.equal(c.counters().handshakesFailed, 1);
      // Only ClientHellos went out: no Certificate (11), ClientKeyExchange (16) or CertificateVerify (15).
      for (const d of sent) assert.ok(d[0] === 22 && d[13] === 1, 'only ClientHellos were sent');
    });

    it(`${what}, each record in a datagram of its own: the datagram with the refused message counts accepted, not dropped without a drop* reason`, async () => {
      // Found by the fuzz harness's outcome invariant (fuzz/regressions/datagram/ecdhe-*-dropped-without-reason).
      const { c } = await handshake(misbehave, true);
      assert.equal(c.lastError, 'server-key-rejected');
      const k = c.counters();
      const reasons = Object.entries(k).filter(([name]) => name.startsWith('drop')).reduce((sum, [, v]) => sum + v, 0);
      assert.equal(k.datagramsAccepted + k.datagramsRetransmitted + k.datagramsDropped, k.rxDatagrams);
      assert.ok(k.datagramsDropped <= reasons, `${k.datagramsDropped} datagrams dropped with ${reasons} drop* reasons counted`);
    });
  }

  it('a well-behaved peer completes, and no ephemeral private key is left anywhere in the module memory', async () => {
    const { c, peer, sent } = await handshake();
    assert.equal(c.state, 'connected', c.lastError);
    assert.ok(peer.clientKeyVerified, 'CertificateVerify verified with node:crypto');
    // The client's ephemeral public key, from its ClientKeyExchange on the wire.
    const flight = Buffer.from(sent.find((d) => d[0] === 22 && d[13] === 11)!);
    const cke = flight.indexOf(Buffer.from([16, 0, 0, 66]));
    const ephemeralPublic = flight.subarray(cke + 13, cke + 13 + 65);
    assert.equal(ephemeralPublic[0], 4);
    // Every 32-byte window of linear memory taken as a private key: none gives that public key.
    const mem = Buffer.from(c.m.readMemory(0, 65536));
    const ecdh = crypto.createECDH('prime256v1');
    for (let at = 0; at + 32 <= mem.length; at++) {
      const w = mem.subarray(at, at + 32);
      if (w[0] === 0 && w[31] === 0 && w.every((b) => b === 0)) continue;
      try {
        ecdh.setPrivateKey(w);
      } catch {
        continue; // zero or ≥ n: not a key
      }
      assert.ok(!ecdh.getPublicKey().equals(ephemeralPublic), `the ephemeral private key is still in memory at ${at}`);
    }
  });
});

describe('ECDHE-ECDSA credentials: a refused call leaves no key in io', () => {
  it('provision_device_ecdhe with a bad profile, provision_ecdhe after boot, provision with bad lengths: io is wiped', async () => {
    const fw = new FirmwareClient(await loadFirmware(new V8Engine()));
    const io = () => Buffer.from(fw.m.readMemory(fw.io, fw.ioCapacity));
    const serverKey = p256Public(p256PrivateFrom(crypto.randomBytes(32)));
    const privateKey = p256PrivateFrom(crypto.randomBytes(32));
    fw.m.writeMemory(fw.io, Buffer.concat([Buffer.from('dev-1'), serverKey, privateKey]));
    assert.equal(Number(fw.m.call('provision_device_ecdhe', 7, 5, 1)), -2, 'profile 7 is refused');
    assert.ok(!io().includes(privateKey), 'the injected private key stays in io after the refusal');
    fw.m.writeMemory(fw.io, Buffer.concat([Buffer.from('psk-id'), privateKey]));
    assert.equal(Number(fw.m.call('provision', 6, 4096)), -2, 'a PSK length past io is refused');
    assert.ok(!io().includes(privateKey), 'the PSK stays in io after the refusal');
    // Booted: the credentials block owns the keys; a raw provision_ecdhe is refused (-6).
    fw.seed(crypto.randomBytes(48));
    fw.provisionDeviceEcdhe('default', 'dev-1', serverKey, privateKey);
    const region = new Uint8Array(1280).fill(0xff);
    for (let w = fw.pollStore(); w; w = fw.pollStore()) region.set(w.bytes, w.offset);
    fw.boot(0, region);
    fw.m.writeMemory(fw.io, Buffer.concat([serverKey, privateKey]));
    assert.equal(Number(fw.m.call('provision_ecdhe')), -6);
    assert.ok(!io().includes(privateKey), 'the private key stays in io after the refusal');
  });
});
