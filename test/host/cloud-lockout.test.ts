// Issue 18, "handshake lockout from many addresses": a client with 1 s of one-way delay
// handshakes while 40 addresses fill the half-open table as fast as they can. Sans-IO, virtual
// time. The tables are scaled down 10× (1,000 half-open entries, 100 per prefix) and the fill to
// 2,000 half-open handshakes per second, so the fill during the slow client's 2 s between its
// cookie ClientHello reaching the cloud and its ClientKeyExchange reaching it (4,000) is four times
// the table — as 10,000/s is against the default 10,000. Before the fix the table's oldest entry went
// first, and it was always the slow client's.
import { describe, it } from 'node:test';
import assert from 'node:assert/strict';
import { prefixOf } from '../../host/cloud/core-handshake.ts';
import { TestDtlsClient, type ClientEvent } from './fixtures/cloud-client.ts';
import { dev1, kinds, makeCore } from './fixtures/cloud-harness.ts';

const ONE_WAY_MS = 1000;
const FILL_PER_MS = 2;

interface Flight {
  at: number;
  up: boolean;
  data: Buffer;
}

/** Runs the fill from `attackers` (a fresh port for every half-open handshake) and the slow client at `slowFrom`. */
async function slowClientDuringFill(attackers: string[], slowFrom: string): Promise<{ events: ClientEvent[]; stats: Map<string, number>; pending: number }> {
  const core = makeCore({ config: { maxPendingHandshakes: 1000, maxPendingPerAddress: 100 } });
  const client = new TestDtlsClient(dev1());
  const events: ClientEvent[] = [];
  let queue: Flight[] = [{ at: ONE_WAY_MS, up: true, data: client.start() }];
  let port = 1;
  const end = 6 * ONE_WAY_MS;
  for (let now = 0; now <= end && !events.some((e) => e.kind === 'connected'); now++) {
    for (let i = 0; i < FILL_PER_MS; i++) {
      const ip = attackers[port % attackers.length];
      const from = ip.includes(':') ? `[${ip}]:${port}` : `${ip}:${port}`;
      port++;
      const c = new TestDtlsClient(dev1());
      const hvr = await core.handleDatagram(c.start(), from, now);
      await core.handleDatagram(c.receive(hvr.transmits[0].data).send[0], from, now); // then silence
    }
    const due = queue.filter((f) => f.at <= now);
    queue = queue.filter((f) => f.at > now);
    for (const f of due) {
      if (f.up) {
        const out = await core.handleDatagram(f.data, slowFrom, now);
        for (const t of out.transmits) if (t.to === slowFrom) queue.push({ at: now + ONE_WAY_MS, up: false, data: t.data });
      } else {
        const r = client.receive(f.data);
        events.push(...r.events);
        for (const d of r.send) queue.push({ at: now + ONE_WAY_MS, up: true, data: d });
      }
    }
    if (now % 100 === 0) {
      const out = await core.handleTimeout(now);
      for (const t of out.transmits) if (t.to === slowFrom) queue.push({ at: now + ONE_WAY_MS, up: false, data: t.data });
    }
  }
  return { events, stats: core.stats.values, pending: core.tableSizes().pending };
}

describe('no lockout by a many-address half-open fill', () => {
  it('prefixes: IPv4 /24, IPv6 /64 (any spelling), IPv4-mapped IPv6 as IPv4', () => {
    assert.equal(prefixOf('10.1.2.3'), prefixOf('10.1.2.200'));
    assert.notEqual(prefixOf('10.1.2.3'), prefixOf('10.1.3.3'));
    assert.equal(prefixOf('[2001:db8:0:1::1]'), prefixOf('[2001:db8:0:1:ffff:ffff:ffff:ffff]'));
    assert.equal(prefixOf('[2001:db8::1]'), prefixOf('[2001:0db8:0000:0000:1:2:3:4]'));
    assert.notEqual(prefixOf('[2001:db8:0:1::1]'), prefixOf('[2001:db8:0:2::1]'));
    assert.equal(prefixOf('[::ffff:10.1.2.3]'), prefixOf('10.1.2.99'));
  });

  it('40 IPv4 addresses in 40 different /24s fill at 2,000/s: a client with 1 s one-way delay completes', async () => {
    const attackers = Array.from({ length: 40 }, (_, i) => `10.${i}.0.1`);
    const r = await slowClientDuringFill(attackers, '192.0.2.7:5684');
    assert.deepEqual(kinds(r.events).filter((k) => k === 'connected'), ['connected'], kinds(r.events).join(','));
    assert.ok((r.stats.get('handshakes|evicted') ?? 0) > 3000, 'the fill pushed out its own entries');
    assert.ok(r.pending <= 1000, 'r.pending <= 1000');
  });

  it('40 IPv6 addresses of one /64 fill at 2,000/s: they share one quota, and a slow IPv6 client completes', async () => {
    const attackers = Array.from({ length: 40 }, (_, i) => `2001:db8:0:7::${(i + 1).toString(16)}`);
    const r = await slowClientDuringFill(attackers, '[2001:db8:0:8::1]:5684');
    assert.deepEqual(kinds(r.events).filter((k) => k === 'connected'), ['connected'], kinds(r.events).join(','));
    assert.ok(r.pending <= 100 + 1, `the /64 holds one quota (${r.pending} half-open)`);
  });
});
