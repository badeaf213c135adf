// Hostile input: 100,000 random and mutated datagrams (bit flips, truncations, extensions, header
// field rewrites, spliced records, lying length fields, replays) sent over loopback UDP at the
// running cloud from eight sockets, paced so the kernel drops none. The cloud never crashes,
// keeps no state for clients whose cookie did not verify, keeps every table bounded and the heap
// flat, counts every datagram as accepted or dropped (each drop with a reason), and still serves
// its real device afterwards.
import { describe, it } from 'node:test';
import assert from 'node:assert/strict';
import dgram from 'node:dgram';
import { once } from 'node:events';
import v8 from 'node:v8';
import { runInNewContext } from 'node:vm';
import { DeviceRegistry, deviceHandle } from '../../host/cloud/devices.ts';
import { MemoryStore } from '../../host/cloud/store.ts';
import { startCloud } from '../../host/cloud/server.ts';
import { TestDtlsClient, UdpCloudClient } from './fixtures/cloud-client.ts';
import { prng, until } from './fixtures/cloud-tools.ts';

const TOTAL = 100_000;
/** Datagrams in flight at most: 128 fit in the default 208 KiB socket buffer, so the kernel drops none. */
const BATCH = 128;
const SOCKETS = 8;
const PSK = Buffer.from('a1a2a3a4a5a6a7a8a9aaabacadaeafb0', 'hex');

v8.setFlagsFromString('--expose-gc');
const gc = runInNewContext('gc') as () => void;

function mutator(seed: number, samples: Buffer[]) {
  const r = prng(seed);
  const int = (n: number) => Math.floor(r() * n);
  const bytes = (n: number) => Buffer.from(Array.from({ length: n }, () => int(256)));
  const pick = () => Buffer.from(samples[int(samples.length)]);
  const ops: (() => Buffer)[] = [
    () => bytes(int(r() < 0.7 ? 64 : 1500)), // pure noise
    () => bytes(int(2)), // empty and 1-byte "keepalives"
    () => {
      const d = pick();
      for (let i = 0, n = 1 + int(8); i < n && d.length; i++) d[int(d.length)] ^= 1 << int(8);
      return d;
    },
    () => {
      const d = pick();
      if (d.length) d[int(d.length)] = int(256);
      return d;
    },
    () => pick().subarray(0, int(60)), // truncated
    () => Buffer.concat([pick(), bytes(1 + int(40))]), // trailing junk
    () => Buffer.concat([pick(), pick()]), // two records in one datagram
    () => {
      // header rewrites: type, version, epoch, sequence, length field, CID bytes
      const d = pick();
      if (d.length < 13) return d;
      const f = int(6);
      if (f === 0) d[0] = [20, 21, 22, 23, 24, 25, 26, int(256)][int(8)];
      if (f === 1) d.writeUInt16BE([0xfefd, 0xfeff, 0x0303, int(65536)][int(4)], 1);
      if (f === 2) d.writeUInt16BE([0, 1, 2, 0xffff, int(65536)][int(5)], 3);
      if (f === 3) d.writeUIntBE([0, 2 ** 48 - 1, int(2 ** 32)][int(3)], 5, 6);
      if (f === 4) d.writeUInt16BE([0, 15, 16, d.length - 13 + 1, 0xffff, int(65536)][int(6)], d[0] === 25 && d.length >= 21 ? 19 : 11);
      if (f === 5 && d.length > 13) d.fill(int(256), 11, Math.min(19, d.length));
      return d;
    },
    () => {
      // handshake body rewrites: message length, fragment offset/length, vector lengths in the hello
      const d = pick();
      if (d.length < 30 || d[0] !== 22) return d;
      const at = 13 + [1, 6, 9, 12 + 34, 12 + 35, 12 + 36 + int(20)][int(6)];
      if (at < d.length) d[at] = [0, 1, 0xff, int(256)][int(4)];
      return d;
    },
    () => pick(), // exact replay
  ];
  return () => ops[int(ops.length)]();
}

describe('cloud under hostile input', () => {
  it(`${TOTAL.toLocaleString('en-US')} random and mutated datagrams: no crash, bounded memory, every drop counted`, async () => {
    const store = new MemoryStore();
    const cloud = await startCloud({
      port: 0,
      devices: new DeviceRegistry([{ id: 'victim', identity: 'victim-id', psk: PSK }]),
      store,
      heal: 'reset-token,malformed',
    });
    const legit = await UdpCloudClient.open(cloud.port, { identity: 'victim-id', psk: PSK, offerCid: deviceHandle('victim') });
    const legitPlain = await UdpCloudClient.open(cloud.port, { identity: 'victim-id', psk: PSK });
    const sockets: dgram.Socket[] = [];
    try {
      await legit.connect();
      await legitPlain.connect();
      await legit.ping();
      await legit.request((mid) => legit.client.event('t', 1, Buffer.from('x'), { mid }));
      await legitPlain.ping();
      // Samples: everything the real clients sent, valid records never sent, fresh ClientHellos.
      const samples = [...legit.sent, ...legitPlain.sent];
      for (let i = 0; i < 20; i++) samples.push(legit.client.ping(), legitPlain.client.ping(), legit.client.event('t', 100 + i, Buffer.from('y')));
      for (let i = 0; i < 10; i++) samples.push(new TestDtlsClient({ identity: 'victim-id', psk: PSK, offerCid: deviceHandle('victim') }).start());
      const sessionsBefore = store.sessionCount;

      for (let i = 0; i < SOCKETS; i++) {
        const s = dgram.createSocket('udp4');
        s.on('message', () => {}); // answers (HelloVerifyRequests, heals, ACKs) are read and ignored
        s.bind(0, '127.0.0.1');
        await once(s, 'listening');
        sockets.push(s);
      }
      gc();
      const heapBefore = process.memoryUsage().heapUsed;
      const next = mutator(20190502, samples);
      const base = cloud.counters()['datagrams_in'];
      const started = Date.now();
      for (let sent = 0; sent < TOTAL; ) {
        const n = Math.min(BATCH, TOTAL - sent);
        for (let i = 0; i < n; i++) sockets[(sent + i) % SOCKETS].send(next(), cloud.port, '127.0.0.1');
        sent += n;
        await until(() => cloud.counters()['datagrams_in'] - base >= sent && cloud.inflight() === 0, 10_000, `the cloud to take datagram ${sent}`, 1);
      }
      const seconds = (Date.now() - started) / 1000;
      gc();
      const heapGrowthMb = (process.memoryUsage().heapUsed - heapBefore) / 2 ** 20;

      const c = cloud.counters();
      const sum = (prefix: string) => Object.entries(c).filter(([k]) => k.startsWith(prefix)).reduce((s, [, v]) => s + v, 0);
      const hostileIn = c['datagrams_in'] - base;
      assert.equal(hostileIn, TOTAL, 'every datagram reached the cloud and was counted');
      assert.equal(c['datagrams_accepted'] + c['datagrams_dropped'], c['datagrams_in'], 'each datagram is accepted or dropped');
      assert.ok(sum('drops|') >= c['datagrams_dropped'], 'each dropped datagram has at least one counted reason');
      assert.equal(c['internal_errors'] ?? 0, 0, 'no exception escaped the parsers');
      assert.equal(c['drops|overload'] ?? 0, 0);
      const tables = cloud.core.tableSizes();
      assert.equal(tables.pending, 0, 'no per-client state before a cookie verifies');
      assert.ok(tables.resetLimiter <= SOCKETS && tables.malformedLimiter <= SOCKETS, JSON.stringify(tables));
      assert.equal(store.sessionCount, sessionsBefore, 'no session can be created without the PSK');
      assert.ok(heapGrowthMb < 40, `heap grew ${heapGrowthMb.toFixed(1)} MB`);
      const reasons = Object.entries(c)
        .filter(([k]) => k.startsWith('drops|'))
        .sort((x, y) => y[1] - x[1])
        .map(([k, v]) => `${k.slice(6)}=${v}`);
      console.log(`# hostile: ${TOTAL} datagrams in ${seconds.toFixed(1)} s; accepted ${c['datagrams_accepted']}, dropped ${c['datagrams_dropped']}; heap +${heapGrowthMb.toFixed(1)} MB; drops: ${reasons.join(' ')}`);
      // The real device is still served.
      await legit.ping();
      await legitPlain.ping();
    } finally {
      for (const s of sockets) s.close();
      legit.close();
      legitPlain.close();
      await cloud.close();
    }
  });
});
