/** CoAP message codec (RFC 7252 §3), the subset the cloud speaks inside DTLS application data. */

export const COAP_CON = 0;
export const COAP_NON = 1;
export const COAP_ACK = 2;
export const COAP_RST = 3;

export const CODE_EMPTY = 0x00;
export const CODE_POST = 0x02;
export const CODE_CHANGED = 0x44; // 2.04
export const CODE_BAD_REQUEST = 0x80; // 4.00
export const CODE_BAD_OPTION = 0x82; // 4.02
export const CODE_NOT_FOUND = 0x84; // 4.04
export const CODE_METHOD_NOT_ALLOWED = 0x85; // 4.05
export const CODE_CONFLICT = 0x89; // 4.09

export const OPT_URI_PATH = 11;
/** Event-Incarnation (elective, experimental range): the 4-byte identity of a device's event stream. */
export const OPT_EVENT_INCARNATION = 65000;

export interface CoapOption {
  number: number;
  value: Buffer;
}

export interface CoapMessage {
  type: number;
  code: number;
  mid: number;
  token: Buffer;
  options: CoapOption[];
  payload: Buffer;
}

/** Parses a CoAP message; returns a reason string when it is not one (RFC 7252 §3 format errors). */
export function parseCoap(buf: Buffer): CoapMessage | string {
  if (buf.length < 4) return 'short';
  const b0 = buf[0];
  if (b0 >> 6 !== 1) return 'bad_version';
  const type = (b0 >> 4) & 3;
  const tkl = b0 & 0x0f;
  if (tkl > 8) return 'bad_token_length';
  const code = buf[1];
  const mid = buf.readUInt16BE(2);
  if (buf.length < 4 + tkl) return 'short_token';
  const token = buf.subarray(4, 4 + tkl);
  if (code === CODE_EMPTY && (tkl !== 0 || buf.length !== 4)) return 'bad_empty';
  const options: CoapOption[] = [];
  let off = 4 + tkl;
  let number = 0;
  let payload: Buffer = Buffer.alloc(0);
  while (off < buf.length) {
    const byte = buf[off++];
    if (byte === 0xff) {
      if (off === buf.length) return 'empty_payload_after_marker';
      payload = buf.subarray(off);
      break;
    }
    let delta = byte >> 4;
    let len = byte & 0x0f;
    if (delta === 15 || len === 15) return 'bad_option';
    const ext = (v: number): number => {
      if (v === 13) {
        if (off + 1 > buf.length) return -1;
        return buf[off++] + 13;
      }
      if (v === 14) {
        if (off + 2 > buf.length) return -1;
        const x = buf.readUInt16BE(off) + 269;
        off += 2;
        return x;
      }
      return v;
    };
    delta = ext(delta);
    if (delta < 0) return 'bad_option';
    len = ext(len);
    if (len < 0 || off + len > buf.length) return 'bad_option';
    number += delta;
    options.push({ number, value: buf.subarray(off, off + len) });
    off += len;
  }
  return { type, code, mid, token, options, payload };
}

function optionNibble(v: number): [number, Buffer] {
  if (v < 13) return [v, Buffer.alloc(0)];
  if (v < 269) return [13, Buffer.from([v - 13])];
  const b = Buffer.alloc(2);
  b.writeUInt16BE(v - 269);
  return [14, b];
}

export function encodeCoap(m: { type: number; code: number; mid: number; token?: Buffer; options?: CoapOption[]; payload?: Buffer }): Buffer {
  const token = m.token ?? Buffer.alloc(0);
  const parts: Buffer[] = [Buffer.from([0x40 | (m.type << 4) | token.length, m.code, m.mid >> 8, m.mid & 0xff]), token];
  let prev = 0;
  const opts = [...(m.options ?? [])].sort((a, b) => a.number - b.number);
  for (const o of opts) {
    const [dn, dx] = optionNibble(o.number - prev);
    const [ln, lx] = optionNibble(o.value.length);
    parts.push(Buffer.from([(dn << 4) | ln]), dx, lx, o.value);
    prev = o.number;
  }
  if (m.payload && m.payload.length > 0) parts.push(Buffer.from([0xff]), m.payload);
  return Buffer.concat(parts);
}

export function uriPath(m: CoapMessage): string[] {
  return m.options.filter((o) => o.number === OPT_URI_PATH).map((o) => o.value.toString('utf8'));
}

export function pathOptions(path: string[]): CoapOption[] {
  return path.map((p) => ({ number: OPT_URI_PATH, value: Buffer.from(p, 'utf8') }));
}
