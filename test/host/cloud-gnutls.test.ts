// Interop with a peer nobody here wrote, on the suite of issue 19: GnuTLS's gnutls-cli (DTLS 1.2,
// TLS_ECDHE_ECDSA_WITH_AES_128_CCM_8, P-256, RFC 7250 raw public keys on both sides, EMS) against
// the cloud as a user runs it (`sleepy-session cloud --key … --keylog …`). The handshake completes,
// CoAP inside application data gets its answers, the cloud's key log line is the one GnuTLS writes
// itself, and tshark (Wireshark's dissectors) reads the captured handshake message by message and,
// given the cloud's key log — only then — decrypts the Finished messages and the CoAP records.
// A client whose raw key is not registered is refused.
import { describe, it, before, after } from 'node:test';
import assert from 'node:assert/strict';
import { spawnSync } from 'node:child_process';
import { mkdtempSync, readFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { spkiOfPoint } from '../../host/cloud/p256.ts';
import { writePcap } from '../../host/sim/pcap.ts';
import type { CapturedDatagram } from '../../host/sim/fleet/outcome.ts';
import { eventMessage } from './fixtures/cloud-client.ts';
import { Proc, metric, scrape, startCloudProcess, toolMissing, until, writeDevicesFile, type CloudProc } from './fixtures/cloud-tools.ts';
import { udpRelay } from './fixtures/udp-relay.ts';
import { skipOrFail } from './engines.ts';
import { GNUTLS_PRIORITY, gnutlsAvailable, p256KeyPair, type P256KeyPair } from './gnutls.ts';

const missing = gnutlsAvailable('gnutls-cli');
const tsharkMissing = toolMissing('tshark', ['--version']);
/** Where the pcap puts the cloud: the CoAP-over-DTLS port, so tshark needs no hint for the application data. */
const CLOUD_IN_PCAP = '127.0.0.1:5684';
const DEVICE_IN_PCAP = '127.0.0.2:40000';

function gnutlsCli(port: number, client: P256KeyPair, keyLogFile: string): Proc {
  return Proc.spawn('gnutls-cli', ['-u', '-p', String(port), '127.0.0.1', `--rawpkkeyfile=${client.keyFile}`, `--rawpkfile=${client.pubFile}`, '--priority', GNUTLS_PRIORITY, '--no-ca-verification'], {
    ...process.env,
    SSLKEYLOGFILE: keyLogFile,
  });
}

function contains(hay: Buffer, needle: Buffer): boolean {
  return hay.indexOf(needle) >= 0;
}

/** tshark's fields per frame (-E occurrence=a: every occurrence, ';'-joined). */
function tsharkFields(pcap: string, fields: string[], ...opts: string[]): string[][] {
  const r = spawnSync('tshark', ['-n', '-r', pcap, ...opts, '-T', 'fields', '-E', 'separator=\t', '-E', 'occurrence=a', '-E', 'aggregator=;', ...fields.flatMap((f) => ['-e', f])], { encoding: 'utf8' });
  assert.equal(r.status, 0, `tshark: ${r.stderr}`);
  return r.stdout.split('\n').filter((l) => l !== '').map((l) => l.split('\t'));
}

describe('cloud with gnutls-cli as the device: ECDHE-ECDSA, raw public keys, CCM-8', () => {
  let dir = '';
  let server: P256KeyPair;
  let device: P256KeyPair;
  let stranger: P256KeyPair;
  let cloud: CloudProc;
  let cloudKeyLog = '';

  before(async () => {
    if (missing) return;
    dir = mkdtempSync(join(tmpdir(), 'sleepy-gnutls-'));
    server = p256KeyPair('cloud');
    device = p256KeyPair('device');
    stranger = p256KeyPair('stranger');
    cloudKeyLog = join(dir, 'cloud.keylog');
    // The device by its PEM public key, as `openssl ec -pubout` writes it (the hex point is the other form).
    const devices = writeDevicesFile({ devices: [{ id: 'gnutls-dev', publicKey: readFileSync(device.pubFile, 'utf8') }, { id: 'psk-dev', psk: '00112233445566778899aabbccddeeff' }] });
    cloud = await startCloudProcess(['--devices', devices, '--key', server.keyFile, '--keylog', cloudKeyLog, '--port', '0', '--metrics-port', '0']);
  });
  after(() => cloud?.proc.kill());

  it('handshake, CoAP ping and event; key log equal to GnuTLS\'s; tshark dissects, and decrypts only with the key log', async (t) => {
    if (missing) return skipOrFail(t, missing);
    const relay = await udpRelay(cloud.port);
    const gnutlsKeyLog = join(dir, 'gnutls.keylog');
    const p = gnutlsCli(relay.port, device, gnutlsKeyLog);
    try {
      // Input only after the handshake: what is piped earlier may be sent (or lost) before it ends.
      await p.wait((x) => /Handshake was completed/.test(x.out.toString('latin1') + x.err), 15_000, 'gnutls-cli to complete the handshake');
      const said = p.out.toString('latin1') + p.err;
      assert.match(said, /Description: \(DTLS1\.2-Raw Public Key\)-\(ECDHE-SECP256R1\)-\(ECDSA-SHA256\)-\(AES-128-CCM-8\)/);
      assert.match(said, /Options: extended master secret/);
      p.child.stdin!.write(Buffer.from([0x40, 0x00, 0x12, 0x34])); // CoAP ping → empty ACK, same MID
      await p.wait((x) => contains(x.out, Buffer.from([0x60, 0x00, 0x12, 0x34])), 5000, 'the ACK of the ping');
      p.child.stdin!.write(eventMessage('temp', 9, Buffer.from('21.5'), 0x2222)); // → 2.04 Changed, token 01 02
      await p.wait((x) => contains(x.out, Buffer.from([0x62, 0x44, 0x22, 0x22, 0x01, 0x02])), 5000, 'the 2.04 answer');
      p.child.stdin!.end(); // EOF: close_notify
      await p.exited;
    } finally {
      p.kill();
      relay.close();
    }
    const m = await scrape(cloud.metricsPort);
    assert.equal(metric(m, 'sleepy_cloud_handshakes_total{result="completed"}'), 1);
    assert.equal(metric(m, 'sleepy_cloud_events_total{result="accepted"}'), 1);
    assert.equal(metric(m, 'sleepy_cloud_internal_errors_total'), 0);

    // Both ends wrote the same NSS key log line (client random, master secret): derived alike.
    const ours = readFileSync(cloudKeyLog, 'utf8').trim().split('\n');
    const theirs = readFileSync(gnutlsKeyLog, 'utf8').trim().split('\n').filter((l) => l.startsWith('CLIENT_RANDOM'));
    assert.equal(ours.length, 1);
    assert.match(ours[0], /^CLIENT_RANDOM [0-9a-f]{64} [0-9a-f]{96}$/);
    assert.deepEqual(theirs, ours);

    // The cloud's Certificate carries the public key of --key (what a device pins).
    const printed = spawnSync(process.execPath, ['bin/sleepy-session.mjs', 'cloud', '--key', server.keyFile, '--print-public-key'], { encoding: 'utf8' });
    assert.equal(printed.stdout.trim(), server.publicKey.toString('hex'));
    const down = relay.capture.filter((c) => c.dir === 'down');
    assert.ok(down.some((c) => contains(c.data, spkiOfPoint(server.publicKey))), 'the SPKI of --key in the server flight');

    if (tsharkMissing) return skipOrFail(t, tsharkMissing);
    const pcap = join(dir, 'gnutls.pcap');
    const captured: CapturedDatagram[] = relay.capture.map((c) => ({
      atMs: c.atMs,
      src: c.dir === 'up' ? DEVICE_IN_PCAP : CLOUD_IN_PCAP,
      dst: c.dir === 'up' ? CLOUD_IN_PCAP : DEVICE_IN_PCAP,
      data: c.data,
    }));
    writePcap(pcap, new Map([['default', captured]]));
    const FIELDS = ['dtls.handshake.type', 'dtls.handshake.ciphersuite', 'coap.type', 'coap.mid', '_ws.malformed', '_ws.expert.severity'];
    const plain = tsharkFields(pcap, FIELDS);
    const decrypted = tsharkFields(pcap, FIELDS, '-o', `tls.keylog_file:${cloudKeyLog}`);
    // Every handshake message where DTLS 1.2 puts it: ClientHello, HelloVerifyRequest, ClientHello
    // with the cookie, our flight in one datagram, the client's flight, our Finished.
    const types = (rows: string[][]) => rows.map((r) => r[0]).filter((x) => x !== '');
    assert.deepEqual(types(plain), ['1', '3', '1', '2;11;12;13;14', '11;16;15']);
    assert.deepEqual(types(decrypted), ['1', '3', '1', '2;11;12;13;14', '11;16;15;20', '20']);
    assert.ok(plain[3][1].split(';').includes('0xc0ae'), `the ServerHello chose TLS_ECDHE_ECDSA_WITH_AES_128_CCM_8: ${plain[3][1]}`);
    for (const rows of [plain, decrypted]) {
      assert.deepEqual(rows.filter((r) => r[4] !== '' || r[5].split(';').some((s) => Number(s) >= 6291456)), [], 'nothing malformed, no expert warning');
    }
    // CoAP is visible only with the key log: CON 0x1234 and its ACK, the event (CON) and its ACK.
    assert.deepEqual(plain.filter((r) => r[2] !== ''), []);
    assert.deepEqual(decrypted.filter((r) => r[2] !== '').map((r) => [r[2], r[3]]), [['0', '4660'], ['2', '4660'], ['0', '8738'], ['2', '8738']]);
  });

  it('a raw public key that is not registered gets a handshake_failure alert, and no session', async (t) => {
    if (missing) return skipOrFail(t, missing);
    const before = await scrape(cloud.metricsPort);
    const p = gnutlsCli(cloud.port, stranger, join(dir, 'stranger.keylog'));
    try {
      await p.exited;
    } finally {
      p.kill();
    }
    assert.match(p.out.toString('latin1') + p.err, /Received alert \[40\]: Handshake failed/);
    await until(async () => metric(await scrape(cloud.metricsPort), 'sleepy_cloud_handshake_failures_total{reason="unknown_public_key"}') === 1, 5000, 'the failure counted');
    const after = await scrape(cloud.metricsPort);
    const completed = 'sleepy_cloud_handshakes_total{result="completed"}';
    assert.equal(metric(after, completed), metric(before, completed));
    assert.equal(metric(after, 'sleepy_cloud_internal_errors_total'), 0);
  });
});
