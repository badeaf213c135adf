/**
 * `--pcap FILE`: the fleet replay's captured datagrams as a classic libpcap file that Wireshark
 * and tshark open (docs/pcap.md). The simulation carries bare UDP payloads, so each datagram gets
 * an IPv4 and a UDP header (both checksummed) and is written with LINKTYPE_RAW (an IPv4 packet, no
 * link layer).
 *
 * The three profiles are three runs of the same fleet, so a device has the same address in each.
 * To keep one device under one profile a conversation of its own, the device's address
 * 10.x.y.z becomes 10.(4x + k + 1).y.z for profile k in PROFILES order (legacy 0, fixed 1,
 * default 2): for the first 65,536 devices legacy is 10.1.y.z, fixed 10.2.y.z, default 10.3.y.z.
 * Other addresses (the cloud's) are kept.
 */
import { writeFileSync } from 'node:fs';
import { PROFILES, type Profile } from '../session-abi.ts';
import type { CapturedDatagram } from './fleet/outcome.ts';
import { EPOCH_UNIX_MS } from './fleet/spec.ts';

/** LINKTYPE_RAW: each packet starts with its IPv4 (or IPv6) header. */
export const LINKTYPE_RAW = 101;
export const PCAP_MAGIC_MICROSECONDS = 0xa1b2c3d4;
const FILE_HEADER_BYTES = 24;
const RECORD_HEADER_BYTES = 16;
const IPV4_HEADER_BYTES = 20;
const UDP_HEADER_BYTES = 8;
const IP_PROTOCOL_UDP = 17;
const TTL = 64;
/** Largest UDP payload an IPv4 packet carries (total length is 16 bits). */
export const MAX_UDP_PAYLOAD_BYTES = 0xffff - IPV4_HEADER_BYTES - UDP_HEADER_BYTES;
const SNAPLEN = 0xffff;

interface Endpoint {
  ip: [number, number, number, number];
  port: number;
}

function parseEndpoint(s: string): Endpoint {
  const m = /^(\d{1,3})\.(\d{1,3})\.(\d{1,3})\.(\d{1,3}):(\d{1,5})$/.exec(s);
  const octets = m ? [m[1], m[2], m[3], m[4]].map(Number) : [];
  const port = m ? Number(m[5]) : -1;
  if (!m || octets.some((o) => o > 255) || port > 0xffff) throw new RangeError(`pcap: address "${s}" is not "a.b.c.d:port" (IPv4, port 0..65535)`);
  return { ip: octets as Endpoint['ip'], port };
}

/** Devices 10.0.0.0 … 10.63.255.255 fit the per-profile addresses: a bound for `--pcap-devices`. */
export const MAX_PCAP_DEVICES = 64 << 16;

/** The address of `endpoint` in the pcap for a datagram of `profile` (see the file comment). */
export function pcapEndpoint(endpoint: string, profile: Profile): Endpoint {
  const e = parseEndpoint(endpoint);
  if (e.ip[0] !== 10) return e;
  const k = PROFILES.indexOf(profile);
  const second = 4 * e.ip[1] + k + 1;
  if (second > 255) throw new RangeError(`pcap: device address ${endpoint} is beyond 10.63.255.255: only the first ${MAX_PCAP_DEVICES.toLocaleString('en-US')} devices can be written apart per profile`);
  return { ip: [10, second, e.ip[2], e.ip[3]], port: e.port };
}

/** RFC 1071 ones'-complement sum of 16-bit big-endian words, folded (not yet complemented). */
function onesComplementSum(bytes: Uint8Array, initial = 0): number {
  let sum = initial;
  for (let i = 0; i + 1 < bytes.length; i += 2) sum += (bytes[i] << 8) | bytes[i + 1];
  if (bytes.length % 2 === 1) sum += bytes[bytes.length - 1] << 8;
  while (sum > 0xffff) sum = (sum & 0xffff) + (sum >>> 16);
  return sum;
}

/** The Internet checksum (RFC 1071) of `bytes` with `initial` already summed in. */
export function internetChecksum(bytes: Uint8Array, initial = 0): number {
  return ~onesComplementSum(bytes, initial) & 0xffff;
}

/** One IPv4 + UDP packet carrying `payload`. `id` is the IPv4 identification field. */
export function ipv4UdpPacket(src: Endpoint, dst: Endpoint, payload: Uint8Array, id: number): Uint8Array {
  if (payload.length > MAX_UDP_PAYLOAD_BYTES) throw new RangeError(`pcap: a ${payload.length}-byte datagram does not fit an IPv4 packet (at most ${MAX_UDP_PAYLOAD_BYTES} bytes)`);
  const udpLength = UDP_HEADER_BYTES + payload.length;
  const packet = new Uint8Array(IPV4_HEADER_BYTES + udpLength);
  const v = new DataView(packet.buffer);
  v.setUint8(0, 0x45); // version 4, header 5 words
  v.setUint16(2, packet.length);
  v.setUint16(4, id & 0xffff);
  v.setUint16(6, 0x4000); // don't fragment
  v.setUint8(8, TTL);
  v.setUint8(9, IP_PROTOCOL_UDP);
  packet.set(src.ip, 12);
  packet.set(dst.ip, 16);
  v.setUint16(10, internetChecksum(packet.subarray(0, IPV4_HEADER_BYTES)));
  const udp = packet.subarray(IPV4_HEADER_BYTES);
  v.setUint16(IPV4_HEADER_BYTES, src.port);
  v.setUint16(IPV4_HEADER_BYTES + 2, dst.port);
  v.setUint16(IPV4_HEADER_BYTES + 4, udpLength);
  udp.set(payload, UDP_HEADER_BYTES);
  // Pseudo-header: source, destination, zero + protocol, UDP length.
  const pseudo = onesComplementSum(packet.subarray(12, 20)) + IP_PROTOCOL_UDP + udpLength;
  const sum = internetChecksum(udp, pseudo);
  // 0 means "no checksum" in UDP over IPv4; a computed 0 is sent as its other form, 0xffff.
  v.setUint16(IPV4_HEADER_BYTES + 6, sum === 0 ? 0xffff : sum);
  return packet;
}

export interface PcapPacket {
  profile: Profile;
  datagram: CapturedDatagram;
}

/** The datagrams of every profile merged in time order (ties: PROFILES order, then capture order). */
export function mergeCaptures(captures: Map<Profile, CapturedDatagram[]>): PcapPacket[] {
  const all: PcapPacket[] = [];
  for (const profile of PROFILES) for (const datagram of captures.get(profile) ?? []) all.push({ profile, datagram });
  // Array.prototype.sort is stable, so equal times keep the order above.
  return all.sort((a, b) => a.datagram.atMs - b.datagram.atMs);
}

/** The whole pcap file for `captures`. */
export function pcapBytes(captures: Map<Profile, CapturedDatagram[]>): Uint8Array {
  const packets = mergeCaptures(captures).map(({ profile, datagram }, i) => ({
    atUnixUs: Math.round((EPOCH_UNIX_MS + datagram.atMs) * 1000),
    bytes: ipv4UdpPacket(pcapEndpoint(datagram.src, profile), pcapEndpoint(datagram.dst, profile), datagram.data, i),
  }));
  const total = FILE_HEADER_BYTES + packets.reduce((n, p) => n + RECORD_HEADER_BYTES + p.bytes.length, 0);
  const out = new Uint8Array(total);
  const v = new DataView(out.buffer);
  // Written big-endian: readers detect the byte order from the magic.
  v.setUint32(0, PCAP_MAGIC_MICROSECONDS);
  v.setUint16(4, 2); // version 2.4
  v.setUint16(6, 4);
  v.setInt32(8, 0); // timestamps are UTC
  v.setUint32(12, 0); // sigfigs
  v.setUint32(16, SNAPLEN);
  v.setUint32(20, LINKTYPE_RAW);
  let at = FILE_HEADER_BYTES;
  for (const p of packets) {
    v.setUint32(at, Math.floor(p.atUnixUs / 1e6));
    v.setUint32(at + 4, p.atUnixUs % 1e6);
    v.setUint32(at + 8, p.bytes.length); // captured
    v.setUint32(at + 12, p.bytes.length); // on the wire
    out.set(p.bytes, at + RECORD_HEADER_BYTES);
    at += RECORD_HEADER_BYTES + p.bytes.length;
  }
  return out;
}

/** Writes `captures` to `path` as a pcap file; returns what was written. */
export function writePcap(path: string, captures: Map<Profile, CapturedDatagram[]>): { packets: number; bytes: number } {
  const bytes = pcapBytes(captures);
  try {
    writeFileSync(path, bytes);
  } catch (err) {
    const e = err as NodeJS.ErrnoException;
    throw new Error(`--pcap: cannot write ${path} (${e.code ?? e.message})`);
  }
  let packets = 0;
  for (const c of captures.values()) packets += c.length;
  return { packets, bytes: bytes.length };
}
