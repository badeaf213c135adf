// `--pcap`: a small fleet's traffic under all three profiles, written as a pcap and read back by
// tshark (Wireshark's dissectors). Every packet must be UDP carrying DTLS, every record dissected
// the way an independent reader (pcap-parse.ts) splits it, checksums good, and nothing malformed
// except the 2019 heal datagrams, which are malformed on purpose (length field 64, 16 bytes).
import { before, describe, it } from 'node:test';
import assert from 'node:assert/strict';
import { spawnSync } from 'node:child_process';
import { mkdtempSync, readFileSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { runFleet } from '../../host/sim/fleet/run.ts';
import { DEFAULT_FLEET, DEVICE_PORT, EPOCH_UNIX_MS } from '../../host/sim/fleet/spec.ts';
import { writePcap } from '../../host/sim/pcap.ts';
import { skipOrFail } from './engines.ts';
import { DtlsConversations, readIpv4Udp, readPcap, type DtlsRecordView, type UdpView } from './pcap-parse.ts';

const CLOUD_IP = '192.0.2.1';
const TSHARK_CHECKSUMS = ['-o', 'ip.check_checksum:TRUE', '-o', 'udp.check_checksum:TRUE'];
const EXPERT_WARNING = 6291456; // PI_WARN; PI_ERROR is 8388608
const PROFILE_OF_NET: Record<number, string> = { 1: 'legacy', 2: 'fixed', 3: 'default' };
const TLS12_CID = 25;
/** docs/pcap.md: the default profile's reset-token heals (random 48-bit sequence numbers). */
const RESET_TOKEN_FILTER = 'ip.dst == 10.3.0.0/16 && dtls.record.special_type == 25 && dtls.record.sequence_number >= 4294967296';

function tsharkMissing(): string | null {
  const r = spawnSync('tshark', ['--version'], { encoding: 'utf8' });
  return r.error || r.status !== 0 ? 'tshark not installed (Debian package tshark)' : null;
}

function tshark(file: string, ...args: string[]): string[] {
  const r = spawnSync('tshark', ['-n', '-r', file, ...TSHARK_CHECKSUMS, ...args], { encoding: 'utf8', maxBuffer: 256 << 20 });
  assert.equal(r.status, 0, `tshark ${args.join(' ')}: ${r.stderr}`);
  return r.stdout.split('\n').filter((l) => l !== '');
}

const FIELDS = [
  'frame.number', 'frame.protocols', 'ip.checksum.status', 'udp.checksum.status', 'dtls.record.length',
  'dtls.record.content_type', 'dtls.record.special_type', 'dtls.record.connection_id', '_ws.malformed', '_ws.expert.severity',
] as const;
type Row = Record<(typeof FIELDS)[number], string[]>;

function tsharkRows(file: string): Row[] {
  return tshark(file, '-T', 'fields', '-E', 'separator=\t', '-E', 'occurrence=a', '-E', 'aggregator=;', ...FIELDS.flatMap((f) => ['-e', f])).map((line) => {
    const cells = line.split('\t');
    return Object.fromEntries(FIELDS.map((f, i) => [f, cells[i] ? cells[i].split(';') : []])) as Row;
  });
}

interface Packet {
  frame: number;
  atUnixUs: number;
  udp: UdpView;
  profile: string;
  device: string;
  up: boolean;
  records: DtlsRecordView[];
}

describe('fleet pcap read by tshark', () => {
  let missing: string | null = null;
  let file = '';
  let written = { packets: 0, bytes: 0 };
  let captured = 0;
  let packets: Packet[] = [];
  const crashUnixUs = (EPOCH_UNIX_MS + DEFAULT_FLEET.timeline.crashAtMs) * 1000;

  before(async () => {
    missing = tsharkMissing();
    // Four devices, all captured, over the whole replay: handshakes from provisioning on, resumed
    // CID records, the default profile's reset tokens and the legacy profile's 2019 heal (May 7–8).
    // Pinned (not the defaults, which may be retuned): these devices meet every case above.
    const { captures } = await runFleet({ ...DEFAULT_FLEET, devices: 4, workers: 2, seed: 'may-2019', sleepyShare: 0.4, days: 14 }, { captureBelow: 4 });
    captured = [...captures.values()].reduce((n, c) => n + c.length, 0);
    file = join(mkdtempSync(join(tmpdir(), 'sleepy-fleet-pcap-')), 'fleet.pcap');
    written = writePcap(file, captures);
    const conversations = new DtlsConversations();
    packets = readPcap(readFileSync(file)).packets.map((p) => {
      const udp = readIpv4Udp(p.bytes);
      const up = udp.dst === CLOUD_IP;
      const device = up ? udp.src : udp.dst;
      const profile = PROFILE_OF_NET[Number(device.split('.')[1]) & 3];
      return { frame: p.frame, atUnixUs: p.atUnixUs, udp, profile, device, up, records: conversations.records(device, up, udp.payload) };
    });
  });

  it('the capture holds what the test is about, under each profile', () => {
    assert.equal(written.packets, captured);
    assert.equal(packets.length, captured);
    for (let i = 1; i < packets.length; i++) assert.ok(packets[i].atUnixUs >= packets[i - 1].atUnixUs, `frame ${packets[i].frame} out of time order`);
    for (const profile of ['legacy', 'fixed', 'default']) {
      const mine = packets.filter((p) => p.profile === profile);
      const devices = new Set(mine.map((p) => p.device));
      assert.equal(devices.size, 4, `${profile}: 4 devices, one conversation each`);
      const hellos = mine.filter((p) => p.up && p.records[0].type === 22 && p.records[0].epoch === 0);
      // At least each device's first handshake: two ClientHellos (the cookie exchange).
      assert.ok(hellos.length >= 8, `${profile}: ClientHellos (${hellos.length})`);
      // A resumed session: the first datagram after a sleep (> 10 min of silence) is a CID record.
      const lastUs = new Map<string, number>();
      const resumed = mine.filter((p) => {
        const silentUs = p.atUnixUs - (lastUs.get(p.device) ?? p.atUnixUs);
        lastUs.set(p.device, p.atUnixUs);
        return p.up && p.records[0].type === TLS12_CID && silentUs > 600e6;
      });
      assert.ok(resumed.length > 0, `${profile}: sessions resumed with CID records`);
      // docs/pcap.md: the cloud's 12-byte CIDs up, the device's 4-byte handle down.
      const cidBytes = (up: boolean) => new Set(mine.filter((p) => p.up === up).flatMap((p) => p.records.filter((r) => r.type === TLS12_CID).map((r) => r.cid!.length / 2)));
      assert.deepEqual([cidBytes(true), cidBytes(false)], [new Set([12]), new Set([4])], `${profile}: CID lengths`);
    }
    assert.ok(malformedHeals().length > 0, 'legacy: the 2019 heal datagram');
    assert.ok(malformedHeals().every((p) => p.profile === 'legacy' && !p.up), "malformedHeals().every((p) => p.profile === 'legacy' && !p.up)");
    const resets = resetTokenHeals();
    const awakeAfterCrash = new Set(packets.filter((p) => p.profile === 'default' && p.up && p.atUnixUs > crashUnixUs).map((p) => p.device));
    assert.deepEqual(new Set(resets.map((p) => p.device)), awakeAfterCrash, 'default: every device that woke after the crash got a reset token');
  });

  /** Datagrams whose record promises more bytes than they hold. */
  const malformedHeals = (): Packet[] => packets.filter((p) => p.records.some((r) => r.truncated));

  /**
   * The default profile's reset-token heal: a single tls12_cid record to the device with a random
   * 48-bit sequence number (the cloud's own records count from 0), answered by a ClientHello.
   */
  function resetTokenHeals(): Packet[] {
    return packets.filter((p, i) => {
      if (p.profile !== 'default' || p.up || p.records.length !== 1 || p.records[0].type !== TLS12_CID) return false;
      const seq = Buffer.from(p.udp.payload.subarray(5, 11)).readUIntBE(0, 6);
      const next = packets.slice(i + 1).find((q) => q.device === p.device);
      return seq >= 2 ** 32 && next !== undefined && next.up && next.records[0].type === 22 && next.records[0].epoch === 0;
    });
  }

  it('tshark: every packet is IPv4/UDP/DTLS with good checksums, every record dissected as the reader splits it', (t) => {
    if (missing) return skipOrFail(t, missing);
    assert.deepEqual(tshark(file, '-Y', 'not dtls'), [], 'packets that are not DTLS');
    const rows = tsharkRows(file);
    assert.equal(rows.length, written.packets, 'tshark counts the packets written');
    for (const [i, row] of rows.entries()) {
      const p = packets[i];
      const at = `frame ${p.frame} (${p.profile} ${p.device}, ${p.up ? 'up' : 'down'})`;
      assert.deepEqual(row['frame.number'], [String(p.frame)]);
      // A raw-public-key Certificate (ECDHE-ECDSA) carries a SubjectPublicKeyInfo, which tshark
      // dissects as X.509 (pkcs-1); nothing else may follow DTLS.
      const carriesCertificate = p.records.some((r) => r.type === 22 && r.epoch === 0 && handshakeTypes(r.fragment).includes(11));
      assert.ok(row['frame.protocols'][0] === 'raw:ip:udp:dtls' || (carriesCertificate && row['frame.protocols'][0] === 'raw:ip:udp:dtls:pkcs-1'), `${at}: ${row['frame.protocols']}`);
      assert.deepEqual([row['ip.checksum.status'], row['udp.checksum.status']], [['1'], ['1']], `${at}: checksums verified good`);
      assert.ok(p.udp.ipChecksumOk && p.udp.udpChecksumOk, `${at}: checksums (reader)`);
      assert.deepEqual(row['dtls.record.length'].map(Number), p.records.map((r) => r.length), `${at}: records and their lengths`);
      assert.deepEqual(row['dtls.record.connection_id'], p.records.filter((r) => r.type === TLS12_CID).map((r) => r.cid), `${at}: connection IDs`);
      assert.deepEqual(row['dtls.record.content_type'].map(Number), p.records.filter((r) => r.type !== TLS12_CID).map((r) => r.type), at);
      assert.equal(row['dtls.record.special_type'].length, p.records.filter((r) => r.type === TLS12_CID).length, at);
    }
    // Malformed or worse, per tshark, is exactly the 2019 heal datagrams.
    const flagged = rows.filter((r) => r['_ws.malformed'].length > 0 || r['_ws.expert.severity'].some((s) => Number(s) >= EXPERT_WARNING));
    assert.deepEqual(flagged.map((r) => Number(r['frame.number'][0])), malformedHeals().map((p) => p.frame));
    for (const p of malformedHeals()) {
      assert.deepEqual(p.records.map((r) => [r.type, r.length, r.fragment.length]), [[23, 64, 16]], `frame ${p.frame}: the 2019 heal`);
      assert.equal(p.udp.payload.length, 29);
    }
  });

  it('tshark: the display filters docs/pcap.md gives find the heals', (t) => {
    if (missing) return skipOrFail(t, missing);
    const frames = (filter: string) => tshark(file, '-Y', filter, '-T', 'fields', '-e', 'frame.number').map(Number);
    assert.deepEqual(frames(RESET_TOKEN_FILTER), resetTokenHeals().map((p) => p.frame));
    assert.deepEqual(frames('_ws.malformed'), malformedHeals().map((p) => p.frame));
    // No "Decode As" and no preference: the cloud's port (5684, CoAP over DTLS) picks the dissector.
    const plain = spawnSync('tshark', ['-n', '-r', file, '-c', '1', '-T', 'fields', '-e', 'frame.protocols', '-e', 'udp.srcport'], { encoding: 'utf8' });
    assert.equal(plain.stdout.trim(), `raw:ip:udp:dtls\t${DEVICE_PORT}`);
  });

  it('tshark: the checks can fail (a flipped bit is a bad checksum; a cut record is malformed)', (t) => {
    if (missing) return skipOrFail(t, missing);
    const bytes = readFileSync(file);
    // Frame 1: the payload's last byte (24-byte file header, 16-byte record header).
    const first = readPcap(bytes).packets[0];
    const broken = Buffer.from(bytes);
    broken[24 + 16 + first.capturedLength - 1] ^= 1;
    const brokenFile = `${file}.broken.pcap`;
    writeFileSync(brokenFile, broken);
    assert.deepEqual(tshark(brokenFile, '-c', '1', '-T', 'fields', '-e', 'udp.checksum.status'), ['0']);
    // The first ClientHello with its record length field one more than the bytes present.
    const lengthAt = 24 + 16 + 28 + 11;
    broken[24 + 16 + first.capturedLength - 1] ^= 1;
    broken.writeUInt16BE(broken.readUInt16BE(lengthAt) + 1, lengthAt);
    writeFileSync(brokenFile, broken);
    assert.deepEqual(tshark(brokenFile, '-c', '1', '-o', 'udp.check_checksum:FALSE', '-T', 'fields', '-e', '_ws.expert.severity'), ['8388608']);
  });
});

/** The handshake message types in a plaintext handshake record's body (whole messages or fragments). */
function handshakeTypes(body: Uint8Array): number[] {
  const out: number[] = [];
  for (let at = 0; at + 12 <= body.length; at += 12 + ((body[at + 9] << 16) | (body[at + 10] << 8) | body[at + 11])) out.push(body[at]);
  return out;
}
