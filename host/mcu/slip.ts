/** SLIP framing (RFC 1055), the host's side of the MCU's UART. */
const END = 0xc0;
const ESC = 0xdb;
const ESC_END = 0xdc;
const ESC_ESC = 0xdd;

export function slipEncode(frame: Uint8Array): Buffer {
  const out: number[] = [END];
  for (const b of frame) {
    if (b === END) out.push(ESC, ESC_END);
    else if (b === ESC) out.push(ESC, ESC_ESC);
    else out.push(b);
  }
  out.push(END);
  return Buffer.from(out);
}

/** Incremental decoder: feed bytes as they arrive, get whole frames (empty frames are skipped). */
export class SlipDecoder {
  private buf: number[] = [];
  private escaped = false;

  push(chunk: Uint8Array): Buffer[] {
    const frames: Buffer[] = [];
    for (const b of chunk) {
      if (b === END) {
        if (this.buf.length > 0) frames.push(Buffer.from(this.buf));
        this.buf = [];
        this.escaped = false;
      } else if (this.escaped) {
        this.buf.push(b === ESC_END ? END : b === ESC_ESC ? ESC : b);
        this.escaped = false;
      } else if (b === ESC) {
        this.escaped = true;
      } else {
        this.buf.push(b);
      }
    }
    return frames;
  }
}
