/**
 * Seeded hostile datagrams for conformance scenarios: garbage and mutations of genuine server
 * datagrams, of the kinds that broke other DTLS stacks (truncation, lengths beyond the datagram,
 * wrong versions and epochs, flipped bits, replays). Fewer and more structured than
 * dtls-fuzz.test.ts: here the point is that every engine reacts identically.
 */
import type { SeededRandom } from './random.ts';

export type HostileOp =
  | 'empty' | 'garbage' | 'truncated-record' | 'length-beyond-datagram' | 'bad-version' | 'wrong-epoch'
  | 'oversized-cookie' | 'bit-flips' | 'replay' | 'glued' | 'sequence-rewritten' | 'plaintext-alert';

/**
 * Mutations that no state of the handshake may accept, so a handshake can continue after them:
 * each breaks the record header or leaves only part of the first record, so the record layer
 * drops it before looking at its sequence number.
 */
export const HANDSHAKE_SAFE_OPS: readonly HostileOp[] = [
  'empty', 'garbage', 'truncated-record', 'length-beyond-datagram', 'bad-version', 'wrong-epoch',
];

/**
 * For an established connection whose corpus holds only records already delivered: on top of the
 * safe ones, mutations that only authentication and the replay window stop, and plaintext
 * handshake and alert records, which epoch 0 no longer accepts.
 */
export const CONNECTED_OPS: readonly HostileOp[] = [
  ...HANDSHAKE_SAFE_OPS, 'oversized-cookie', 'bit-flips', 'replay', 'glued', 'sequence-rewritten', 'plaintext-alert',
];

/** Content types a record header may carry (alert, handshake, CCS, application data, tls12_cid). */
const VALID_TYPES = new Set([20, 21, 22, 23, 25]);

/**
 * One hostile datagram. `cidLength` is the length of the connection ID that records of type 25
 * (tls12_cid) to the device carry, so header mutations find every record.
 */
export function hostileDatagram(rng: SeededRandom, corpus: readonly Uint8Array[], ops: readonly HostileOp[], cidLength = 0): { op: HostileOp; bytes: Buffer } {
  const op = rng.pick(ops);
  const genuine = (): Buffer => Buffer.from(rng.pick(corpus));
  const offsets = (d: Buffer) => recordOffsets(d, cidLength);
  const firstRecordLength = (d: Buffer): number => {
    const [first] = recordEnds(d, cidLength);
    return first === undefined ? d.length : Math.min(d.length, first);
  };
  let bytes: Buffer;
  switch (op) {
    case 'empty':
      bytes = Buffer.alloc(0);
      break;
    case 'garbage': {
      bytes = rng.bytes(rng.range(1, 200));
      if (VALID_TYPES.has(bytes[0])) bytes[0] = rng.pick([0, 1, 19, 24, 26, 99, 255]);
      break;
    }
    case 'truncated-record': {
      const d = genuine();
      bytes = d.subarray(0, rng.range(1, Math.max(1, firstRecordLength(d) - 1)));
      break;
    }
    case 'length-beyond-datagram': {
      bytes = genuine();
      const lengthAt = 11 + (bytes[0] === 25 ? cidLength : 0);
      const claimed = Math.min(0xffff, bytes.length - lengthAt - 2 + rng.range(1, 600));
      bytes.writeUInt16BE(claimed, lengthAt);
      break;
    }
    case 'bad-version': {
      bytes = genuine();
      const version = rng.pick([0x0303, 0x0301, 0xfefe, 0xfefc, 0x0000, 0xffff]);
      for (const at of offsets(bytes)) bytes.writeUInt16BE(version, at + 1);
      break;
    }
    case 'wrong-epoch': {
      bytes = genuine();
      const epoch = rng.range(2, 0xffff);
      for (const at of offsets(bytes)) bytes.writeUInt16BE(epoch, at + 3);
      break;
    }
    case 'oversized-cookie': {
      // A HelloVerifyRequest whose cookie length claims more bytes than the message holds.
      const claimed = rng.range(1, 255);
      const body = Buffer.concat([Buffer.from([0xfe, 0xff, claimed]), rng.bytes(rng.range(0, claimed - 1))]);
      const hs = Buffer.alloc(12);
      hs[0] = 3;
      hs.writeUIntBE(body.length, 1, 3);
      hs.writeUIntBE(body.length, 9, 3);
      const h = Buffer.from([22, 0xfe, 0xff, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0]);
      h.writeUIntBE(rng.range(0, 1000), 5, 6);
      h.writeUInt16BE(hs.length + body.length, 11);
      bytes = Buffer.concat([h, hs, body]);
      break;
    }
    case 'bit-flips': {
      bytes = genuine();
      for (let i = rng.range(1, 4); i > 0; i--) bytes[rng.int(bytes.length)] ^= 1 << rng.int(8);
      break;
    }
    case 'replay':
      bytes = genuine();
      break;
    case 'glued':
      bytes = Buffer.concat([genuine(), genuine()]);
      break;
    case 'sequence-rewritten':
      bytes = genuine();
      rng.bytes(6).copy(bytes, 5);
      break;
    case 'plaintext-alert':
      // An unauthenticated fatal alert in epoch 0.
      bytes = Buffer.from([21, 0xfe, 0xfd, 0, 0, 0, 0, 0, 0, 0, rng.int(256), 0, 2, 2, rng.pick([10, 20, 40, 47, 51, 80])]);
      break;
  }
  return { op, bytes };
}

/**
 * Where each record of a datagram starts. Header mutations apply to every record: records left
 * intact behind a broken first one would be genuine records out of order.
 */
function recordOffsets(d: Buffer, cidLength: number): number[] {
  const ends = recordEnds(d, cidLength);
  return [0, ...ends.slice(0, -1)];
}

/** Where each record of a datagram ends (type-25 records carry `cidLength` CID bytes). */
function recordEnds(d: Buffer, cidLength: number): number[] {
  const out: number[] = [];
  for (let at = 0; ; ) {
    const lengthAt = at + 11 + (d[at] === 25 ? cidLength : 0);
    if (lengthAt + 2 > d.length) return out;
    at = lengthAt + 2 + d.readUInt16BE(lengthAt);
    out.push(at);
  }
}
