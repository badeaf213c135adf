// The pcap writer (`--pcap`): file and packet headers, checksums (checked by summing, and
// against a published example), the per-profile device addresses and the time-order merge.
import { describe, it } from 'node:test';
import assert from 'node:assert/strict';
import { mkdtempSync, readFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import type { Profile } from '../../host/session-abi.ts';
import type { CapturedDatagram } from '../../host/sim/fleet/outcome.ts';
import { EPOCH_UNIX_MS } from '../../host/sim/fleet/spec.ts';
import { ipv4UdpPacket, LINKTYPE_RAW, MAX_PCAP_DEVICES, MAX_UDP_PAYLOAD_BYTES, pcapBytes, pcapEndpoint, writePcap } from '../../host/sim/pcap.ts';
import { readIpv4Udp, readPcap, sum16 } from './pcap-parse.ts';

const CLOUD = '192.0.2.1:5684';
const dg = (atMs: number, src: string, dst: string, ...data: number[]): CapturedDatagram => ({ atMs, src, dst, data: Uint8Array.from(data) });

describe('pcap writer', () => {
  it('IPv4 header: the checksum of the published example (RFC 1071 arithmetic, header c0a8…b861)', () => {
    // en.wikipedia.org/wiki/Internet_checksum: 4500 0073 0000 4000 4011 b861 c0a8 0001 c0a8 00c7.
    const p = ipv4UdpPacket(pcapEndpoint('192.168.0.1:1000', 'legacy'), pcapEndpoint('192.168.0.199:2000', 'legacy'), new Uint8Array(0x73 - 28), 0);
    assert.equal(Buffer.from(p.subarray(0, 20)).toString('hex'), '450000730000400040' + '11b861c0a80001c0a800c7');
  });

  it('IPv4 and UDP checksums verify by summing; a UDP checksum that computes to 0 is sent as 0xffff', () => {
    const src = pcapEndpoint('10.0.1.2:5683', 'default');
    const dst = pcapEndpoint(CLOUD, 'default');
    for (const len of [0, 1, 2, 29, 101, 1400]) {
      const payload = Uint8Array.from({ length: len }, (_, i) => (i * 37 + len) & 255);
      const u = readIpv4Udp(ipv4UdpPacket(src, dst, payload, len));
      assert.ok(u.ipChecksumOk && u.udpChecksumOk, `checksums of a ${len}-byte datagram`);
      assert.deepEqual([u.ipTotalLength, u.udpLength, u.protocol, u.ttl], [28 + len, 8 + len, 17, 64]);
      assert.deepEqual([u.src, u.srcPort, u.dst, u.dstPort], ['10.3.1.2', 5683, '192.0.2.1', 5684]);
      assert.deepEqual(u.payload, payload);
    }
    // A payload word equal to the checksum of the empty-word packet makes the sum 0xffff.
    const c = readIpv4Udp(ipv4UdpPacket(src, dst, Uint8Array.of(0, 0), 1)).udpChecksum;
    const zero = readIpv4Udp(ipv4UdpPacket(src, dst, Uint8Array.of(c >> 8, c & 255), 1));
    assert.equal(zero.udpChecksum, 0xffff);
    assert.ok(zero.udpChecksumOk, 'zero.udpChecksumOk');
    // The reader's check is not vacuous: one flipped bit fails it.
    const bad = ipv4UdpPacket(src, dst, Uint8Array.of(1, 2, 3), 7);
    bad[bad.length - 1] ^= 1;
    assert.equal(readIpv4Udp(bad).udpChecksumOk, false);
    bad[15] ^= 1;
    assert.equal(readIpv4Udp(bad).ipChecksumOk, false);
    assert.equal(sum16(Uint8Array.of(0xff, 0xff, 0xff, 0xff)), 0xffff);
  });

  it('devices are 10.(4x+k+1).y.z under profile k (legacy 0, fixed 1, default 2); the cloud keeps its address', () => {
    const ip = (a: string, p: Profile) => pcapEndpoint(a, p).ip.join('.');
    assert.deepEqual((['legacy', 'fixed', 'default'] as const).map((p) => ip('10.0.0.7:5683', p)), ['10.1.0.7', '10.2.0.7', '10.3.0.7']);
    assert.equal(ip('10.1.2.3:5683', 'default'), '10.7.2.3');
    assert.equal(ip('10.63.255.255:5683', 'default'), '10.255.255.255');
    assert.equal(ip(CLOUD, 'fixed'), '192.0.2.1');
    assert.equal(pcapEndpoint('10.0.0.7:5683', 'fixed').port, 5683);
    assert.equal(MAX_PCAP_DEVICES, 4_194_304);
    assert.throws(() => pcapEndpoint('10.64.0.0:5683', 'legacy'), /10\.64\.0\.0:5683 is beyond 10\.63\.255\.255/);
    for (const bad of ['10.0.0.1', '10.0.0.256:1', '10.0.0.1:70000', 'host:1']) assert.throws(() => pcapEndpoint(bad, 'legacy'), /is not "a\.b\.c\.d:port"/);
    assert.throws(() => ipv4UdpPacket(pcapEndpoint(CLOUD, 'legacy'), pcapEndpoint(CLOUD, 'legacy'), new Uint8Array(MAX_UDP_PAYLOAD_BYTES + 1), 0), /does not fit an IPv4 packet/);
  });

  it('file: libpcap 2.4, microseconds, LINKTYPE_RAW; packets of all profiles in time order with Unix timestamps', () => {
    const captures = new Map<Profile, CapturedDatagram[]>([
      ['legacy', [dg(1000, '10.0.0.1:5683', CLOUD, 1), dg(3000.5, CLOUD, '10.0.0.1:5683', 2)]],
      ['default', [dg(1000, '10.0.0.1:5683', CLOUD, 3), dg(2000, CLOUD, '10.0.0.1:5683', 4, 4)]],
      ['fixed', [dg(500, '10.0.0.2:5683', CLOUD, 5)]],
    ]);
    const f = readPcap(pcapBytes(captures));
    assert.deepEqual([f.magic, f.versionMajor, f.versionMinor, f.snaplen, f.linktype], [0xa1b2c3d4, 2, 4, 65535, LINKTYPE_RAW]);
    assert.equal(LINKTYPE_RAW, 101);
    const rows = f.packets.map((p) => {
      const u = readIpv4Udp(p.bytes);
      assert.equal(p.capturedLength, p.originalLength);
      assert.deepEqual([u.ipId, u.ipFlags], [p.frame - 1, 0x4000], 'identification = frame − 1, DF');
      return [p.atUnixUs - EPOCH_UNIX_MS * 1000, u.src, u.dst, [...u.payload].join()];
    });
    // Equal times: PROFILES order (legacy before default), whatever the map's order.
    assert.deepEqual(rows, [
      [500_000, '10.2.0.2', '192.0.2.1', '5'],
      [1_000_000, '10.1.0.1', '192.0.2.1', '1'],
      [1_000_000, '10.3.0.1', '192.0.2.1', '3'],
      [2_000_000, '192.0.2.1', '10.3.0.1', '4,4'],
      [3_000_500, '192.0.2.1', '10.1.0.1', '2'],
    ]);
    // Virtual 1 s is 2019-05-02 00:00:01 PDT, 07:00:01 UTC.
    assert.equal(new Date(f.packets[1].atUnixUs / 1000).toISOString(), '2019-05-02T07:00:01.000Z');
  });

  it('writePcap writes the bytes and says how many packets and bytes', () => {
    const captures = new Map<Profile, CapturedDatagram[]>([['legacy', [dg(0, '10.0.0.1:5683', CLOUD, 9, 9, 9)]], ['fixed', []]]);
    const path = join(mkdtempSync(join(tmpdir(), 'sleepy-pcap-')), 'x.pcap');
    const r = writePcap(path, captures);
    const file = readFileSync(path);
    assert.deepEqual(r, { packets: 1, bytes: file.length });
    assert.equal(file.length, 24 + 16 + 20 + 8 + 3);
    assert.deepEqual(new Uint8Array(file), pcapBytes(captures));
    assert.throws(() => writePcap(join(path, 'no-such-dir', 'y.pcap'), captures), /^Error: --pcap: cannot write .*y\.pcap \(ENOTDIR\)$/);
  });
});
