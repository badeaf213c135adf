// Unit tests of the cloud's pieces: TLS PRF vector, record protection (with and without CID),
// replay window against a model, parsers that must never throw or over-read (ClientHello, CoAP,
// records), CoAP round trips, heal datagram formats, rate limiter bounds, devices file validation
// with redaction, and CLI flag errors.
import { describe, it } from 'node:test';
import assert from 'node:assert/strict';
import { freeUdpPort } from '../../host/free-port.ts';
import crypto from 'node:crypto';
import { inspect } from 'node:util';
import dgram from 'node:dgram';
import http from 'node:http';
import { once } from 'node:events';
import { mkdtempSync, writeFileSync } from 'node:fs';
import type { AddressInfo } from 'node:net';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import fc from 'fast-check';
import { openRecord, prf, sealRecord, trafficKeys } from '../../host/cloud/crypto.ts';
import { parseRecord, SERVER_CID_BYTES } from '../../host/cloud/wire.ts';
import { EMPTY_WINDOW, windowAccept } from '../../host/cloud/store.ts';
import { parseClientHello, parseHandshakeFragments } from '../../host/cloud/handshake.ts';
import { encodeCoap, parseCoap } from '../../host/cloud/coap.ts';
import { type DedupeTable, planCoap } from '../../host/cloud/core-coap.ts';
import { BoundedMap } from '../../host/cloud/bounded.ts';
import { HealRateLimiter, MALFORMED_LENGTH_FIELD, malformedDatagram, resetDatagram } from '../../host/cloud/heal.ts';
import { DevicesError, Secret, parseDevicesJson } from '../../host/cloud/devices.ts';
import { cloudOptionsFromArgs, runCloudCommand } from '../../host/cloud/cli.ts';
import { UsageError } from '../../host/cli-flags.ts';
import { parseHeal } from '../../host/cloud/server.ts';

describe('cloud crypto', () => {
  it('PRF matches the IETF TLS 1.2 P_SHA256 test vector', () => {
    const out = prf(Buffer.from('9bbe436ba940f017b17652849a71db35', 'hex'), 'test label', Buffer.from('a0ba9f936cda311827a6f796ffd5198c', 'hex'), 100);
    assert.equal(
      out.toString('hex'),
      'e3f229ba727be17b8d122620557cd453c2aab21d07c3d495329b52d4e61edb5a6b301791e90d35c9c9a46b4e14baf9af0fa022f7077def17abfd3797c0564bab4fbc91666e9def9b97fce34f796789baa48082d122ee42c5a72e5a5110fff70187347b66',
    );
  });

  it('records round-trip with and without a CID; any flipped bit is rejected', () => {
    fc.assert(
      fc.property(
        fc.uint8Array({ minLength: 40, maxLength: 40 }),
        fc.uint8Array({ maxLength: 200 }),
        fc.option(fc.uint8Array({ minLength: SERVER_CID_BYTES, maxLength: SERVER_CID_BYTES })),
        fc.integer({ min: 0, max: 2 ** 48 - 1 }),
        fc.nat(),
        (block, content, cid, seq, flip) => {
          const k = trafficKeys(Buffer.from(block));
          const rec = sealRecord(k.client, 23, 1, seq, Buffer.from(content), cid ? Buffer.from(cid) : null);
          const view = parseRecord(rec, 0);
          assert.ok(typeof view !== 'string', "typeof view !== 'string'");
          assert.equal(view.size, rec.length);
          assert.equal(view.type, cid ? 25 : 23);
          const opened = openRecord(k.client, view);
          assert.ok(opened, 'opened');
          assert.equal(opened.type, 23);
          assert.deepEqual(opened.content, Buffer.from(content));
          const bad = Buffer.from(rec);
          const bit = flip % (bad.length * 8);
          bad[bit >> 3] ^= 1 << (bit & 7);
          const v2 = parseRecord(bad, 0);
          if (typeof v2 !== 'string') assert.equal(openRecord(k.client, v2), null);
        },
      ),
      { numRuns: 300 },
    );
  });
});

describe('replay window', () => {
  it('agrees with a model (a set of seen numbers and the highest) on random sequences', () => {
    fc.assert(
      fc.property(fc.array(fc.integer({ min: 0, max: 300 }), { maxLength: 300 }), (seqs) => {
        let top = -1;
        let win = EMPTY_WINDOW;
        const seen = new Set<number>();
        let max = -1;
        for (const s of seqs) {
          const r = windowAccept(top, win, s);
          const expected = s <= max - 64 ? 'too_old' : seen.has(s) ? 'replay' : 'ok';
          assert.equal(r.status, expected, `seq ${s} (max ${max})`);
          if (r.status === 'ok') {
            seen.add(s);
            max = Math.max(max, s);
          }
          ({ top, win } = r);
          assert.equal(win.length, 64);
        }
      }),
      { numRuns: 300 },
    );
  });
});

describe('parsers never throw or read past their input', () => {
  it('ClientHello, handshake fragments, records and CoAP on random bytes', () => {
    fc.assert(
      fc.property(fc.uint8Array({ maxLength: 400 }), (bytes) => {
        const b = Buffer.from(bytes);
        parseClientHello(b);
        parseHandshakeFragments(b);
        parseRecord(b, 0);
        parseCoap(b);
      }),
      { numRuns: 2000 },
    );
  });

  const hello = (suites: Buffer, cookie: Buffer) =>
    Buffer.concat([Buffer.from([0xfe, 0xfd]), Buffer.alloc(32, 1), Buffer.from([0, cookie.length]), cookie, suites, Buffer.from([1, 0])]);

  it('refuses an odd-length cipher suite list (TinyDTLS CVE-2021-42143) and over-long vectors (mbedTLS CVE-2022-35409)', () => {
    assert.equal(parseClientHello(hello(Buffer.from([0, 3, 0xc0, 0xa8, 0x00]), Buffer.alloc(0))), 'bad_cipher_suites');
    assert.equal(parseClientHello(hello(Buffer.from([0, 0]), Buffer.alloc(0))), 'bad_cipher_suites');
    const lying = hello(Buffer.from([0, 2, 0xc0, 0xa8]), Buffer.alloc(0));
    lying[35] = 200; // cookie length far past the end
    assert.equal(parseClientHello(lying), 'bad_cookie');
    const ok = parseClientHello(hello(Buffer.from([0, 2, 0xc0, 0xa8]), Buffer.alloc(16, 9)));
    assert.ok(typeof ok !== 'string', "typeof ok !== 'string'");
    assert.equal(ok.cookie.length, 16);
    assert.equal(ok.cookieless.length, 2 + 32 + 1 + 4 + 2, 'the whole cookie vector is left out');
  });

  it('a record whose length field exceeds the datagram is refused', () => {
    const r = Buffer.from([23, 0xfe, 0xfd, 0, 1, 0, 0, 0, 0, 0, 9, 0, 40, ...Buffer.alloc(20)]);
    assert.equal(parseRecord(r, 0), 'length_exceeds_datagram');
  });
});

describe('CoAP codec', () => {
  it('round-trips messages with options of every delta/length encoding', () => {
    const opt = fc.record({ number: fc.integer({ min: 0, max: 2000 }), value: fc.uint8Array({ maxLength: 300 }) });
    fc.assert(
      fc.property(
        fc.integer({ min: 0, max: 3 }),
        fc.integer({ min: 1, max: 255 }),
        fc.integer({ min: 0, max: 0xffff }),
        fc.uint8Array({ maxLength: 8 }),
        fc.array(opt, { maxLength: 5 }),
        fc.uint8Array({ maxLength: 50 }),
        (type, code, mid, token, options, payload) => {
          const m = { type, code, mid, token: Buffer.from(token), options: options.map((o) => ({ number: o.number, value: Buffer.from(o.value) })), payload: Buffer.from(payload) };
          const parsed = parseCoap(encodeCoap(m));
          assert.ok(typeof parsed !== 'string', String(parsed));
          assert.equal(parsed.type, type);
          assert.equal(parsed.code, code);
          assert.equal(parsed.mid, mid);
          assert.deepEqual(parsed.token, m.token);
          assert.deepEqual(parsed.payload, m.payload);
          assert.deepEqual(
            parsed.options.map((o) => [o.number, o.value.toString('hex')]),
            [...m.options].sort((a, b) => a.number - b.number).map((o) => [o.number, o.value.toString('hex')]),
          );
        },
      ),
    );
  });

  it('refuses format errors (RFC 7252 §3)', () => {
    assert.equal(parseCoap(Buffer.from([0x80, 0, 0, 0])), 'bad_version');
    assert.equal(parseCoap(Buffer.from([0x49, 0, 0, 0])), 'bad_token_length');
    assert.equal(parseCoap(Buffer.from([0x40, 0x02, 0, 0, 0xff])), 'empty_payload_after_marker');
    assert.equal(parseCoap(Buffer.from([0x41, 0x00, 0, 0, 1])), 'bad_empty');
    assert.equal(parseCoap(Buffer.from([0x40, 0x01, 0, 0, 0xf1, 0])), 'bad_option');
  });
});

describe('heal datagrams and their rate limit', () => {
  const rnd = (n: number) => crypto.randomBytes(n);
  it('the reset datagram is a well-formed record ending in the token and shorter than its trigger', () => {
    const token = crypto.randomBytes(16);
    for (const deviceCid of [Buffer.from([1, 2, 3, 4]), null]) {
      for (let trigger = 20; trigger < 200; trigger++) {
        const d = resetDatagram({ epoch: 1, deviceCid, token, triggerBytes: trigger, random: rnd });
        const min = 13 + (deviceCid ? 4 : 0) + 16;
        if (trigger - 1 < min) {
          assert.equal(d, null);
          continue;
        }
        assert.ok(d, 'd');
        assert.ok(d.length < trigger, 'd.length < trigger');
        assert.deepEqual(d.subarray(d.length - 16), token);
        const view = parseRecord(d, 0, deviceCid ? 4 : 0);
        assert.ok(typeof view !== 'string', String(view));
        assert.equal(view.size, d.length, 'the length field covers exactly the rest');
        assert.equal(view.type, deviceCid ? 25 : 23);
        assert.equal(view.epoch, 1);
      }
    }
  });

  it('the malformed datagram passes the device header checks and is truncated', () => {
    const d = malformedDatagram(3, rnd);
    assert.equal(d[0], 23);
    assert.equal(d.readUInt16BE(1), 0xfefd);
    assert.equal(d.readUInt16BE(3), 3);
    assert.ok(d.readUIntBE(5, 6) >= 2 ** 46, 'd.readUIntBE(5, 6) >= 2 ** 46');
    assert.equal(d.readUInt16BE(11), MALFORMED_LENGTH_FIELD);
    assert.ok(d.length - 13 >= 16 && d.length - 13 < MALFORMED_LENGTH_FIELD, 'd.length - 13 >= 16 && d.length - 13 < MALFORMED_LENGTH_FIELD');
    assert.equal(parseRecord(d, 0), 'length_exceeds_datagram');
  });

  it('rate limiter: one per address per interval, a global cap, and a bounded table', () => {
    const l = new HealRateLimiter(1000, 5, 100);
    assert.equal(l.allow('a', 0), true);
    assert.equal(l.allow('a', 999), false);
    assert.equal(l.allow('a', 1000), true);
    let allowed = 0;
    for (let i = 0; i < 50; i++) if (l.allow(`x${i}`, 1500)) allowed++;
    assert.equal(allowed, 4, 'global cap of 5 per second (one already used in this second)');
    for (let i = 0; i < 10_000; i++) l.allow(`y${i}`, 10_000 + i * 1000);
    assert.ok(l.size <= 100, 'l.size <= 100');
  });
});

describe('devices file', () => {
  const psk = '00112233445566778899aabbccddeeff';
  it('parses the documented format, and keys print as [redacted]', () => {
    const f = parseDevicesJson(JSON.stringify({ cloudSecret: 'ab'.repeat(32), devices: [{ id: 'dev-1', identity: 'id-1', psk }] }));
    const d = f.registry.byIdentity('id-1')!;
    assert.equal(d.id, 'dev-1');
    assert.deepEqual(d.psk!.reveal(), Buffer.from(psk, 'hex'));
    for (const text of [inspect(d, { depth: 5 }), JSON.stringify(d), String(d.psk), inspect(f), JSON.stringify(f.registry)]) {
      assert.ok(!text.includes(psk) && !text.includes('abab'), text);
    }
    assert.ok(f.cloudSecret instanceof Secret, 'f.cloudSecret instanceof Secret');
  });

  it('errors name the entry and field, never the key', () => {
    const bad = (doc: unknown, match: RegExp) => {
      assert.throws(
        () => parseDevicesJson(JSON.stringify(doc), 'f.json'),
        (e: Error) => e instanceof DevicesError && match.test(e.message) && !e.message.includes('0011223344'),
      );
    };
    bad({ devices: [{ id: 'a', psk: 'xyz' }] }, /devices\[0\]\.psk must be a hex string/);
    bad({ devices: [{ id: 'a', psk: '0011223344' }] }, /devices\[0\]\.psk must be 16–64 bytes \(got 5\)/);
    bad({ devices: [{ id: 'has space', psk }] }, /devices\[0\]\.id/);
    bad({ devices: [{ id: 'a', psk }, { id: 'a', identity: 'b', psk }] }, /duplicate device id 'a'/);
    bad({ devices: [{ id: 'a', psk }, { id: 'b', identity: 'a', psk }] }, /duplicate PSK identity 'a'/);
    bad({ nope: 1 }, /expected \{"devices": \[\.\.\.\]\}/);
    bad({ cloudSecret: '00', devices: [] }, /cloudSecret must be 32–64 bytes/);
    assert.throws(() => parseDevicesJson('{', 'f.json'), /f\.json: not valid JSON/);
  });
});

describe('cloud CLI flags', () => {
  const err = (args: string[], match: RegExp) => assert.throws(() => cloudOptionsFromArgs(args), (e: Error) => e instanceof UsageError && match.test(e.message));
  it('name the flag and what is allowed', () => {
    err([], /--devices FILE is required/);
    err(['--devices', 'f', '--store', 'mongo'], /--store must be memory or redis:\/\/HOST:PORT \(got 'mongo'\)/);
    err(['--devices', 'f', '--heal', 'reset-token,bogus'], /--heal: unknown heal feature 'bogus'; allowed: reset-token, malformed/);
    err(['--devices', 'f', '--port', '70000'], /--port must be a port number 0\.\.65535/);
    err(['--devices', 'f', '--metrics-port', 'x'], /--metrics-port must be a port number/);
    err(['--devices', 'f', '--webhook', 'ftp://x'], /--webhook must be an http:\/\/ or https:\/\/ URL/);
    err(['--devices', 'f', '--frobnicate', '1'], /unknown flag --frobnicate; allowed: --devices, --port/);
    err(['--devices'], /flag --devices needs a value/);
    err(['--devices', 'f', '--session-ttl', '0'], /--session-ttl must be a whole number of seconds/);
    err(['--devices', 'f', '--events', 'postgres://x'], /--events must be memory or redis:\/\/HOST:PORT \(got 'postgres:\/\/x'\)/);
    err(['--devices', 'f', '--webhook-max-delay', 'soon'], /--webhook-max-delay must be a duration like 500ms/);
    err(['--devices', 'f', '--port', '1', '--port', '2'], /flag --port given twice/);
    err(['--devices', '--port', '1'], /flag --devices needs a value/);
    err(['--devices', 'f', 'extra'], /unexpected argument 'extra'/);
  });

  it('runCloudCommand exits 2 with a message on stderr for bad flags and for a bad devices file', async () => {
    const lines: string[] = [];
    const orig = console.error;
    console.error = (...a: unknown[]) => lines.push(a.join(' '));
    try {
      assert.equal(await runCloudCommand(['--devices', 'x.json', '--heal', 'everything']), 2);
      assert.equal(await runCloudCommand(['--devices', '/nonexistent/devices.json', '--port', '0']), 2);
    } finally {
      console.error = orig;
    }
    assert.match(lines[0], /^sleepy-session cloud: --heal: unknown heal feature 'everything'; allowed: reset-token, malformed/);
    assert.match(lines[1], /^sleepy-session cloud: --devices \/nonexistent\/devices\.json: no such file$/);
  });

  it('refuses an empty registry, a directory, a busy metrics port — each one line, before serving anything', async () => {
    const lines: string[] = [];
    const orig = console.error;
    const origLog = console.log;
    console.error = (...a: unknown[]) => lines.push(a.join(' '));
    const dir = mkdtempSync(join(tmpdir(), 'cloud-cli-'));
    const empty = join(dir, 'empty.json');
    writeFileSync(empty, JSON.stringify({ devices: [] }));
    const one = join(dir, 'one.json');
    writeFileSync(one, JSON.stringify({ devices: [{ id: 'a', psk: '00'.repeat(16) }] }));
    const busy = http.createServer();
    busy.listen(0, '127.0.0.1');
    await once(busy, 'listening');
    const busyPort = (busy.address() as AddressInfo).port;
    const udpPort = await freeUdpPort();
    try {
      assert.equal(await runCloudCommand(['--devices', empty]), 2);
      assert.equal(await runCloudCommand(['--devices', dir]), 2);
      assert.equal(await runCloudCommand(['--devices', one, '--port', String(udpPort), '--metrics-port', String(busyPort)]), 1);
      const out: string[] = [];
      console.log = (...a: unknown[]) => out.push(a.join(' '));
      assert.equal(await runCloudCommand(['--help']), 0);
      assert.match(out.join('\n'), /^usage: sleepy-session cloud \[flags\]/);
      assert.match(out.join('\n'), /--events SPEC/);
    } finally {
      console.error = orig;
      console.log = origLog;
      busy.close();
    }
    const errors = lines.filter((l) => l.startsWith('sleepy-session'));
    assert.match(errors[0], /--devices .*empty\.json: the registry names no device/);
    assert.match(errors[1], /--devices .*: not a file$/);
    assert.match(errors[2], new RegExp(`^sleepy-session cloud: --metrics-port ${busyPort}: cannot listen on 127\\.0\\.0\\.1:${busyPort} \\(EADDRINUSE\\)$`));
    assert.equal(errors.length, 3, 'one line each');
    // Nothing was left half-started: the UDP port is free again.
    const s = dgram.createSocket('udp4');
    s.bind(udpPort, '127.0.0.1');
    await once(s, 'listening');
    s.close();
  });

  it('accept the documented forms', () => {
    const o = cloudOptionsFromArgs(['--devices=f.json', '--port', '0', '--store', 'redis://127.0.0.1:6379', '--heal', 'reset-token,malformed', '--metrics-port', '9100', '--webhook', 'http://127.0.0.1:8080/hook']);
    assert.equal(o.port, 0);
    assert.equal(o.store, 'redis://127.0.0.1:6379');
    assert.deepEqual(o.heal, { resetToken: true, malformed: true });
    assert.equal(o.metricsPort, 9100);
    assert.deepEqual(parseHeal('none'), { resetToken: false, malformed: false });
    assert.equal(cloudOptionsFromArgs(['--devices', 'f']).port, 5684);
  });
});

describe('CoAP de-duplication (issue 17: rollback)', () => {
  it('answers the same request again from its cache, and reads a reused message ID with other content as a new request', () => {
    const dedupe: DedupeTable = new BoundedMap(16);
    const event = (data: string) => encodeCoap({ type: 0, code: 0x02, mid: 0x1234, token: Buffer.from([1, 2, 3, 4]), options: [{ number: 11, value: Buffer.from('e') }, { number: 11, value: Buffer.from('t') }], payload: Buffer.concat([Buffer.from([0, 0, 0, 1]), Buffer.from(data)]) });
    const first = planCoap(dedupe, 'dev', event('one'), 1_000);
    assert.equal(first.kind, 'event');
    dedupe.set(first.dedupeKey!, { response: first.response!.toString('latin1'), expiresMs: 200_000, request: first.requestDigest! });
    assert.equal(planCoap(dedupe, 'dev', event('one'), 2_000).kind, 'duplicate');
    const other = planCoap(dedupe, 'dev', event('two'), 2_000);
    assert.equal(other.kind, 'event', 'a reused message ID with other content was answered from the cache');
    assert.equal(other.event?.data.toString(), 'two');
  });
});
