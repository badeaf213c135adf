// The firmware DTLS client against an in-process scripted peer: record vectors built with
// node:crypto, replay window edges, epochs, connection IDs, fragments, retransmission.
import { describe, it } from 'node:test';
import assert from 'node:assert/strict';
import crypto from 'node:crypto';
import { readFirmware } from '../../host/firmware.ts';
import { FirmwareClient } from '../../host/session-abi.ts';
import { ENGINES, skipOrFail } from './engines.ts';
import { TestPeer, pump, type PeerOptions } from './dtls-peer.ts';
import { openRecord, parseRecords, sealRecord } from './dtls-ref.ts';

const IDENTITY = Buffer.from('device-0001');

for (const engineCase of ENGINES) {
  describe(`DTLS client on ${engineCase.name}`, () => {
    async function setup(t: { skip(m: string): void }, opts: Partial<PeerOptions> = {}) {
      const engine = engineCase.create();
      if ('skip' in engine) {
        skipOrFail(t, engine.skip);
        return undefined;
      }
      const psk = crypto.randomBytes(16);
      const c = new FirmwareClient(await engine.load(readFirmware()));
      c.provision(IDENTITY, psk);
      c.seed(crypto.randomBytes(32));
      const peer = new TestPeer({ psk, helloVerify: true, ...opts });
      return { c, peer };
    }

    async function connected(t: { skip(m: string): void }, opts: Partial<PeerOptions> = {}) {
      const s = await setup(t, opts);
      if (!s) return undefined;
      s.c.connect(0);
      pump(s.c, s.peer);
      assert.equal(s.c.state, 'connected', `handshake ended in ${s.c.state} (${s.c.lastError})`);
      assert.ok(s.peer.connected, 's.peer.connected');
      return s;
    }

    it('handshakes with cookie, EMS and identity hint; sends the PSK identity', async (t) => {
      const s = await connected(t, { identityHint: 'cloud' });
      if (!s) return;
      assert.equal(s.peer.identity, IDENTITY.toString());
      const k = s.c.counters();
      assert.equal(k.handshakesCompleted, 1);
      assert.equal(k.dropAuthFailed + k.dropMalformedMessage + k.dropUnexpectedMessage, 0);
    });

    it('handshakes without cookie and without EMS', async (t) => {
      const s = await connected(t, { helloVerify: false, ems: false });
      if (s) assert.equal(s.c.counters().handshakesCompleted, 1);
    });

    it('reassembles server handshake messages fragmented into 7-byte pieces', async (t) => {
      const s = await connected(t, { fragmentBytes: 7, identityHint: 'a-longer-identity-hint' });
      if (s) assert.ok(s.c.counters().fragmentsReassembled >= 2, 's.c.counters().fragmentsReassembled >= 2');
    });

    it('application records both ways match node:crypto records exactly', async (t) => {
      const s = await connected(t);
      if (!s) return;
      const { c, peer } = s;
      // client → server: what the firmware sealed opens with node:crypto
      assert.equal(c.send(Buffer.from('ping from device')), 0);
      const [d] = c.drainTransmit();
      const recs = parseRecords(d);
      assert.equal(recs.length, 1);
      assert.equal(recs[0].type, 23);
      assert.equal(recs[0].epoch, 1);
      assert.deepEqual(recs[0].body.subarray(0, 8), Buffer.from([0, 1, 0, 0, 0, 0, 0, 1]), 'explicit nonce = epoch||seq (Finished was seq 0)');
      assert.deepEqual(peer.open(d), [{ type: 23, content: Buffer.from('ping from device') }]);
      // server → client: a record sealed by node:crypto is accepted and delivered
      c.handleDatagram(0, peer.seal(23, Buffer.from('hello device')));
      assert.deepEqual(Buffer.from(c.recv()!), Buffer.from('hello device'));
      // several records in one datagram
      c.handleDatagram(0, Buffer.concat([peer.seal(23, Buffer.from('one')), peer.seal(23, Buffer.from('two'))]));
      assert.deepEqual([c.recv(), c.recv()].map((x) => Buffer.from(x!).toString()), ['one', 'two']);
      assert.equal(c.recv(), null);
    });

    it('connection ID: records carry the server CID, type 25 and the RFC 9146 AAD', async (t) => {
      const cid = crypto.randomBytes(8);
      const s = await connected(t, { cid });
      if (!s) return;
      s.c.send(Buffer.from('with cid'));
      const [d] = s.c.drainTransmit();
      assert.equal(d[0], 25, 'content type tls12_cid');
      assert.deepEqual(Buffer.from(d.subarray(11, 19)), cid);
      assert.deepEqual(s.peer.open(d), [{ type: 23, content: Buffer.from('with cid') }]);
    });

    it('connection ID both ways: records to the device carry its own CID; another CID is dropped', async (t) => {
      const s0 = await setup(t, { cid: crypto.randomBytes(8) });
      if (!s0) return;
      const { c, peer } = s0;
      const own = Buffer.from([0xde, 0xad, 0xbe, 0xef]);
      c.setConnectionId(own);
      c.connect(0);
      pump(c, peer);
      assert.equal(c.state, 'connected', c.lastError);
      assert.deepEqual(peer.clientCid, own);
      const rec = peer.seal(23, Buffer.from('to the device'));
      assert.equal(rec[0], 25);
      assert.deepEqual(rec.subarray(11, 15), own);
      c.handleDatagram(0, rec);
      assert.equal(Buffer.from(c.recv()!).toString(), 'to the device');
      const other = Buffer.from(peer.seal(23, Buffer.from('not mine')));
      other[11] ^= 1; // a different CID of the same length
      c.handleDatagram(0, other);
      assert.equal(c.recv(), null);
      assert.equal(c.counters().dropUnknownCid, 1);
      // a plain record without the CID is still understood (the server may omit it)
      c.handleDatagram(0, sealRecordWithoutCid(peer, 'plain'));
      assert.equal(Buffer.from(c.recv()!).toString(), 'plain');
    });

    it('replay window: duplicates and records 64+ behind are dropped, 63 behind is accepted once', async (t) => {
      const s = await connected(t);
      if (!s) return;
      const { c, peer } = s;
      const rec = (seq: number) => peer.seal(23, Buffer.from(`seq ${seq}`), BigInt(seq));
      const deliver = (seq: number) => {
        const before = c.counters();
        c.handleDatagram(0, rec(seq));
        const after = c.counters();
        const got = c.recv();
        return { accepted: got !== null, replayed: after.dropReplayed - before.dropReplayed };
      };
      // The server Finished used seq 0.
      assert.equal(deliver(100).accepted, true);
      assert.deepEqual(deliver(100), { accepted: false, replayed: 1 }, 'duplicate');
      assert.deepEqual(deliver(36), { accepted: false, replayed: 1 }, '64 behind');
      assert.deepEqual(deliver(35), { accepted: false, replayed: 1 }, '65 behind');
      assert.equal(deliver(37).accepted, true, '63 behind, never seen');
      assert.deepEqual(deliver(37), { accepted: false, replayed: 1 }, '63 behind, seen');
      assert.equal(deliver(99).accepted, true, '1 behind');
      assert.equal(deliver(100 + 1000).accepted, true, 'far ahead');
      assert.deepEqual(deliver(100), { accepted: false, replayed: 1 }, 'now 1000 behind');
      assert.equal(deliver(0xffffffffff).accepted, true, 'huge sequence number');
    });

    it('a forged record does not move the replay window (updated only after authentication)', async (t) => {
      const s = await connected(t);
      if (!s) return;
      const { c, peer } = s;
      const forged = peer.seal(23, Buffer.from('x'), 5000n);
      forged[forged.length - 1] ^= 0xff;
      c.handleDatagram(0, forged);
      assert.equal(c.counters().dropAuthFailed, 1);
      // If the forgery had advanced the window to 5000, seq 10 would now be "too old".
      c.handleDatagram(0, peer.seal(23, Buffer.from('ten'), 10n));
      assert.equal(Buffer.from(c.recv()!).toString(), 'ten');
    });

    it('epochs: records of epoch 0 or 2+ after the handshake are dropped as wrong epoch', async (t) => {
      const s = await connected(t);
      if (!s) return;
      const { c, peer } = s;
      const before = c.counters().dropWrongEpoch;
      c.handleDatagram(0, peer.seal(23, Buffer.from('epoch 2'), 1n, 2));
      c.handleDatagram(0, peer.seal(23, Buffer.from('epoch 65535'), 1n, 65535));
      const plain = Buffer.from([23, 0xfe, 0xfd, 0, 0, 0, 0, 0, 0, 0, 9, 0, 2, 0x41, 0x41]);
      c.handleDatagram(0, plain);
      assert.equal(c.counters().dropWrongEpoch - before, 3);
      assert.equal(c.recv(), null);
      assert.equal(c.state, 'connected');
    });

    it('every invalid record is dropped silently and counted by reason', async (t) => {
      const s = await connected(t);
      if (!s) return;
      const { c, peer } = s;
      const good = peer.seal(23, Buffer.from('good'), 200n);
      const cases: [string, Buffer, string][] = [
        ['short', good.subarray(0, 10), 'dropShort'],
        ['bad content type', Buffer.concat([Buffer.from([99]), good.subarray(1)]), 'dropBadHeader'],
        ['bad version', Buffer.concat([good.subarray(0, 1), Buffer.from([3, 3]), good.subarray(3)]), 'dropBadVersion'],
        ['length beyond datagram', good.subarray(0, good.length - 1), 'dropLengthBeyondDatagram'],
        ['auth failure', Buffer.concat([good.subarray(0, good.length - 1), Buffer.from([good[good.length - 1] ^ 1])]), 'dropAuthFailed'],
        ['protected body shorter than nonce+tag', peer.seal(23, Buffer.alloc(0), 201n).subarray(0, 13 + 15), 'dropLengthBeyondDatagram'],
      ];
      for (const [what, d, counter] of cases) {
        const before = c.counters() as Record<string, number>;
        c.handleDatagram(0, d);
        const after = c.counters() as Record<string, number>;
        assert.equal(after[counter] - before[counter], 1, what);
        assert.equal(c.recv(), null, what);
        assert.equal(c.state, 'connected', what);
        assert.equal(c.drainTransmit().length, 0, `${what}: nothing is sent in answer (no alerts)`);
      }
      c.handleDatagram(0, good);
      assert.equal(Buffer.from(c.recv()!).toString(), 'good', 'the valid record is still accepted');
    });

    it('retransmits its flight on timeout with a doubling, capped timer, then fails with a reason', async (t) => {
      const s = await setup(t);
      if (!s) return;
      const { c } = s;
      c.config('handshakeInitialTimeoutMs', 1000);
      c.config('handshakeMaxTimeoutMs', 3000);
      c.config('handshakeMaxTransmissions', 5);
      c.connect(0);
      const sendTimes: number[] = [];
      let now = 0;
      c.drainTransmit();
      sendTimes.push(now);
      while (c.nextTimeout() !== null) {
        now = c.nextTimeout()!;
        c.handleTimeout(now);
        if (c.drainTransmit().length > 0) sendTimes.push(now);
      }
      assert.deepEqual(sendTimes, [0, 1000, 3000, 6000, 9000]);
      assert.equal(c.state, 'failed');
      assert.equal(c.lastError, 'handshake-timeout');
      assert.equal(c.counters().flightRetransmissions, 4);
    });

    it('answers a retransmitted server flight by resending its own flight at once', async (t) => {
      const s = await setup(t, { helloVerify: false });
      if (!s) return;
      const { c, peer } = s;
      c.connect(0);
      const [hello] = c.drainTransmit();
      const [serverFlight] = peer.handle(hello);
      c.handleDatagram(0, serverFlight);
      const [flight5] = c.drainTransmit(); // lost on the way
      assert.ok(flight5, 'flight5');
      // The server times out and resends ServerHello..ServerHelloDone (same message_seq, new record seq).
      const resent = Buffer.from(serverFlight);
      resent.writeUIntBE(50, 5, 6);
      c.handleDatagram(1000, resent);
      const again = c.drainTransmit();
      assert.equal(again.length, 1, 'flight 5 sent again');
      assert.ok(c.counters().peerRetransmissions >= 1, 'c.counters().peerRetransmissions >= 1');
      // Retransmitted records carry new sequence numbers (the peer's replay window would drop copies).
      const seqs = (d: Uint8Array) => parseRecords(d).map((r) => `${r.epoch}:${r.seq}`);
      assert.equal(seqs(flight5).filter((x) => seqs(again[0]).includes(x)).length, 0);
      for (const reply of peer.handle(again[0])) c.handleDatagram(1020, reply);
      assert.equal(c.state, 'connected');
    });

    it('a forged plaintext record with a huge sequence number cannot block the genuine server flight', async (t) => {
      const s = await setup(t, { helloVerify: false });
      if (!s) return;
      const { c, peer } = s;
      c.connect(0);
      const [hello] = c.drainTransmit();
      // garbage handshake record at sequence 2^48-1, sent before the real answer
      c.handleDatagram(0, Buffer.from([22, 0xfe, 0xfd, 0, 0, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0, 3, 99, 1, 2]));
      for (const reply of peer.handle(hello)) c.handleDatagram(1, reply);
      pump(c, peer, 2);
      assert.equal(c.state, 'connected');
    });

    it('after a second cookie round, a ServerHello answering the older ClientHello is ignored', async (t) => {
      const s = await setup(t, { helloVerify: true });
      if (!s) return;
      const { c, peer } = s;
      c.connect(0);
      const [hello0] = c.drainTransmit();
      const [hvr] = peer.handle(hello0);
      c.handleDatagram(0, hvr);
      const [hello1] = c.drainTransmit(); // with cookie, message_seq 1
      const stale = new TestPeer({ psk: peer.opts.psk, helloVerify: false });
      // A copy of the first HelloVerifyRequest (it answers ClientHello 0) starts no new round...
      c.handleDatagram(1, hvr);
      assert.deepEqual(c.drainTransmit(), []);
      // ...one answering ClientHello 1 (its cookie expired, say) does.
      const hvr1 = Buffer.from(hvr);
      hvr1.writeUInt16BE(1, 13 + 4);
      c.handleDatagram(1, hvr1);
      const [hello2] = c.drainTransmit(); // message_seq 2
      assert.equal(Buffer.from(hello2).readUInt16BE(13 + 4), 2, "ClientHello message_seq");
      // a ServerHello for message_seq 1 arrives first: it must not be taken
      const before = c.counters().dropUnexpectedMessage;
      for (const reply of stale.handle(hello1)) c.handleDatagram(2, reply);
      assert.equal(c.state, 'wait-server-hello');
      assert.ok(c.counters().dropUnexpectedMessage > before, 'c.counters().dropUnexpectedMessage > before');
      for (const reply of peer.handle(hello2)) c.handleDatagram(3, reply);
      pump(c, peer, 4);
      assert.equal(c.state, 'connected', c.lastError);
    });

    it('a wrong server Finished fails the handshake and wipes the keys', async (t) => {
      const s = await setup(t);
      if (!s) return;
      const { c, peer } = s;
      c.connect(0);
      for (let i = 0; i < 3; i++) {
        for (const d of c.drainTransmit()) {
          for (const reply of peer.handle(d)) {
            if (peer.connected) {
              // Keep the record valid but change the verify_data inside the server's Finished.
              const [ccs, finRecord] = parseRecords(reply);
              const fin = openRecord(finRecord, peer.keys!.serverKey, peer.keys!.serverIv)!.content;
              fin.fill(0x55, 12);
              c.handleDatagram(0, Buffer.concat([reply.subarray(0, 13 + ccs.body.length), peer.seal(22, fin, finRecord.seq)]));
            } else c.handleDatagram(0, reply);
          }
        }
      }
      assert.equal(c.state, 'failed');
      assert.equal(c.lastError, 'bad-server-finished');
      const mem = c.m.memory();
      assert.equal(Buffer.from(mem).indexOf(peer.master), -1, 'master secret wiped');
      assert.equal(Buffer.from(mem).indexOf(peer.keys!.clientKey), -1, 'client write key wiped');
      assert.equal(Buffer.from(mem).indexOf(peer.keys!.serverKey), -1, 'server write key wiped');
    });

    it('a fatal alert during the handshake fails it with the alert visible to the caller', async (t) => {
      const s = await setup(t, { helloVerify: false });
      if (!s) return;
      const { c } = s;
      c.connect(0);
      c.drainTransmit();
      c.handleDatagram(0, Buffer.from([21, 0xfe, 0xfd, 0, 0, 0, 0, 0, 0, 0, 1, 0, 2, 2, 40]));
      assert.equal(c.state, 'failed');
      assert.equal(c.lastError, 'alert-received');
      assert.equal(c.lastAlert, 40);
    });

    it('an unauthenticated alert cannot end an established connection; close_notify under the key does', async (t) => {
      const s = await connected(t);
      if (!s) return;
      const { c, peer } = s;
      c.handleDatagram(0, Buffer.from([21, 0xfe, 0xfd, 0, 0, 0, 0, 0, 0, 0, 7, 0, 2, 2, 40]));
      assert.equal(c.state, 'connected');
      c.handleDatagram(0, peer.seal(21, Buffer.from([1, 0])));
      assert.equal(c.state, 'closed');
    });
  });
}

function sealRecordWithoutCid(peer: TestPeer, text: string): Buffer {
  return sealRecord({ type: 23, epoch: 1, seq: peer.sendSeq1++, key: peer.keys!.serverKey, iv: peer.keys!.serverIv }, Buffer.from(text));
}
