/**
 * A reader for the pcap files host/sim/pcap.ts writes, written apart from the writer so tests can
 * check it: libpcap file and record headers (either byte order), IPv4 and UDP headers with their
 * checksums verified by summing (a correct header sums to 0xffff), and the DTLS records of each
 * datagram with the connection-ID lengths learned from the hellos of each conversation.
 */

export interface PcapFile {
  magic: number;
  littleEndian: boolean;
  versionMajor: number;
  versionMinor: number;
  snaplen: number;
  linktype: number;
  packets: PcapPacketView[];
}

export interface PcapPacketView {
  /** 1-based, as tshark numbers frames. */
  frame: number;
  atUnixUs: number;
  capturedLength: number;
  originalLength: number;
  bytes: Uint8Array;
}

export function readPcap(file: Uint8Array): PcapFile {
  const v = new DataView(file.buffer, file.byteOffset, file.byteLength);
  const be = v.getUint32(0, false);
  const littleEndian = be === 0xd4c3b2a1;
  if (!littleEndian && be !== 0xa1b2c3d4) throw new Error(`not a microsecond pcap file (magic ${be.toString(16)})`);
  const u16 = (at: number): number => v.getUint16(at, littleEndian);
  const u32 = (at: number): number => v.getUint32(at, littleEndian);
  const packets: PcapPacketView[] = [];
  let at = 24;
  while (at < file.length) {
    if (at + 16 > file.length) throw new Error(`truncated record header at byte ${at}`);
    const capturedLength = u32(at + 8);
    if (at + 16 + capturedLength > file.length) throw new Error(`truncated packet at byte ${at}`);
    packets.push({
      frame: packets.length + 1,
      atUnixUs: u32(at) * 1e6 + u32(at + 4),
      capturedLength,
      originalLength: u32(at + 12),
      bytes: file.subarray(at + 16, at + 16 + capturedLength),
    });
    at += 16 + capturedLength;
  }
  return { magic: be, littleEndian, versionMajor: u16(4), versionMinor: u16(6), snaplen: u32(16), linktype: u32(20), packets };
}

/** Ones'-complement sum of big-endian 16-bit words, folded to 16 bits. */
export function sum16(bytes: Uint8Array, initial = 0): number {
  let s = initial;
  for (let i = 0; i < bytes.length; i += 2) s += (bytes[i] << 8) | (i + 1 < bytes.length ? bytes[i + 1] : 0);
  while (s > 0xffff) s = (s & 0xffff) + (s >>> 16);
  return s;
}

export interface UdpView {
  src: string;
  dst: string;
  srcPort: number;
  dstPort: number;
  ipTotalLength: number;
  ipId: number;
  ipFlags: number;
  ttl: number;
  protocol: number;
  ipChecksumOk: boolean;
  udpChecksum: number;
  udpChecksumOk: boolean;
  udpLength: number;
  payload: Uint8Array;
}

export function readIpv4Udp(p: Uint8Array): UdpView {
  if (p[0] !== 0x45) throw new Error(`not an IPv4 header without options (first byte ${p[0]})`);
  const v = new DataView(p.buffer, p.byteOffset, p.byteLength);
  const ipTotalLength = v.getUint16(2);
  const udp = p.subarray(20, ipTotalLength);
  const udpLength = v.getUint16(24);
  const udpChecksum = v.getUint16(26);
  const pseudo = sum16(p.subarray(12, 20)) + p[9] + udp.length;
  return {
    src: p.subarray(12, 16).join('.'),
    dst: p.subarray(16, 20).join('.'),
    srcPort: v.getUint16(20),
    dstPort: v.getUint16(22),
    ipTotalLength,
    ipId: v.getUint16(4),
    ipFlags: v.getUint16(6),
    ttl: p[8],
    protocol: p[9],
    ipChecksumOk: sum16(p.subarray(0, 20)) === 0xffff,
    udpChecksum,
    udpChecksumOk: udpChecksum !== 0 && sum16(udp, pseudo) === 0xffff,
    udpLength,
    payload: udp.subarray(8),
  };
}

export interface DtlsRecordView {
  type: number;
  epoch: number;
  cid: string | null;
  /** The length field, whether or not that many bytes follow. */
  length: number;
  /** The length field promises more bytes than the datagram holds (the 2019 heal). */
  truncated: boolean;
  fragment: Uint8Array;
}

const CONTENT_TLS12_CID = 25;
const CONTENT_HANDSHAKE = 22;
const EXT_CONNECTION_ID = 54;

/**
 * A ClientHello (1) or ServerHello (2) handshake message and the CID length of its connection_id
 * extension (undefined: no extension); undefined for other messages and fragments.
 */
export function helloCid(msg: Uint8Array): { hello: 1 | 2; cidLength: number | undefined } | undefined {
  const type = msg[0];
  if (type !== 1 && type !== 2) return undefined;
  const len = (msg[1] << 16) | (msg[2] << 8) | msg[3];
  const fragOffset = (msg[6] << 16) | (msg[7] << 8) | msg[8];
  const fragLength = (msg[9] << 16) | (msg[10] << 8) | msg[11];
  if (fragOffset !== 0 || fragLength !== len) return undefined;
  const body = msg.subarray(12, 12 + len);
  let at = 2 + 32; // version, random
  at += 1 + body[at]; // session id
  if (type === 1) {
    at += 1 + body[at]; // cookie
    at += 2 + ((body[at] << 8) | body[at + 1]); // cipher suites
    at += 1 + body[at]; // compression methods
  } else {
    at += 2 + 1; // cipher suite, compression method
  }
  if (at >= body.length) return { hello: type as 1 | 2, cidLength: undefined };
  const end = at + 2 + ((body[at] << 8) | body[at + 1]);
  for (at += 2; at + 4 <= end; ) {
    const extType = (body[at] << 8) | body[at + 1];
    const extLen = (body[at + 2] << 8) | body[at + 3];
    if (extType === EXT_CONNECTION_ID) return { hello: type as 1 | 2, cidLength: body[at + 4] };
    at += 4 + extLen;
  }
  return { hello: type as 1 | 2, cidLength: undefined };
}

/**
 * Splits datagrams into DTLS records. A tls12_cid record's CID length is the one the receiver
 * announced in its latest hello: the client's (ClientHello) for records to it, the server's
 * (ServerHello) for records from it, tracked per conversation.
 */
export class DtlsConversations {
  /** conversation key → CID length of records sent by the client / to the client. */
  private readonly cids = new Map<string, { toServer?: number; toClient?: number }>();

  records(client: string, fromClient: boolean, datagram: Uint8Array): DtlsRecordView[] {
    const out: DtlsRecordView[] = [];
    const c = this.cids.get(client) ?? {};
    this.cids.set(client, c);
    let at = 0;
    while (at < datagram.length) {
      if (at + 13 > datagram.length) throw new Error(`${client}: ${datagram.length - at} bytes left, less than a record header`);
      const type = datagram[at];
      const epoch = (datagram[at + 3] << 8) | datagram[at + 4];
      let cid: string | null = null;
      let head = at + 11;
      if (type === CONTENT_TLS12_CID) {
        const cidLength = fromClient ? c.toServer : c.toClient;
        if (cidLength === undefined) throw new Error(`${client}: tls12_cid record before a hello announced the CID length`);
        cid = Buffer.from(datagram.subarray(head, head + cidLength)).toString('hex');
        head += cidLength;
      }
      const length = (datagram[head] << 8) | datagram[head + 1];
      const fragment = datagram.subarray(head + 2, head + 2 + length);
      const truncated = head + 2 + length > datagram.length;
      out.push({ type, epoch, cid, length, truncated, fragment });
      if (type === CONTENT_HANDSHAKE && epoch === 0) {
        const h = helloCid(fragment);
        // ClientHello: the CID the client receives in; ServerHello: the one the server receives in.
        if (h?.hello === 1) {
          c.toClient = h.cidLength;
          c.toServer = undefined; // a new handshake: the server has not answered yet
        }
        if (h?.hello === 2) c.toServer = h.cidLength;
      }
      at = head + 2 + length;
    }
    return out;
  }
}
