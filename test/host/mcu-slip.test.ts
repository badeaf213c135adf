// SLIP framing (RFC 1055) on the host side of the MCU's UART: every frame survives encoding and
// decoding whatever its bytes (END/ESC included) and however the stream is cut into chunks.
import { describe, it } from 'node:test';
import assert from 'node:assert/strict';
import fc from 'fast-check';
import { SlipDecoder, slipEncode } from '../../host/mcu/slip.ts';

describe('SLIP', () => {
  it('escapes END and ESC', () => {
    assert.deepEqual(slipEncode(Uint8Array.from([1, 0xc0, 0xdb, 2])), Buffer.from([0xc0, 1, 0xdb, 0xdc, 0xdb, 0xdd, 2, 0xc0]));
  });

  it('round-trips any frames through any chunking', () => {
    const frame = fc.uint8Array({ minLength: 1, maxLength: 64 }).map((b) => (b.length % 3 === 0 ? Uint8Array.from([...b, 0xc0, 0xdb]) : b));
    fc.assert(fc.property(fc.array(frame, { minLength: 1, maxLength: 8 }), fc.array(fc.integer({ min: 1, max: 50 }), { minLength: 1 }), (frames, cuts) => {
      const stream = Buffer.concat(frames.map((f) => slipEncode(f)));
      const d = new SlipDecoder();
      const out: Buffer[] = [];
      for (let off = 0, i = 0; off < stream.length; off += cuts[i++ % cuts.length]) out.push(...d.push(stream.subarray(off, off + cuts[i % cuts.length])));
      assert.deepEqual(out.map((b) => [...b]), frames.map((f) => [...f]));
    }));
  });
});
