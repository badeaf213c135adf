// Just enough of the wasm binary format for the MCU build: the export signatures (for the wasm2c
// dispatch table) and a memory section rewritten to the custom-page-sizes form.
const VALTYPES = { 0x7f: 'i32', 0x7e: 'i64', 0x7d: 'f32', 0x7c: 'f64' };

function reader(bytes, pos = 0) {
  return {
    get pos() { return pos; },
    u8: () => bytes[pos++],
    leb() {
      let result = 0, shift = 0, b;
      do { b = bytes[pos++]; result += (b & 0x7f) * 2 ** shift; shift += 7; } while (b & 0x80);
      return result;
    },
    name() { const n = this.leb(); const s = Buffer.from(bytes.subarray(pos, pos + n)).toString('utf8'); pos += n; return s; },
    skip(n) { pos += n; },
  };
}

function leb(n) {
  const out = [];
  do { let b = n & 0x7f; n = Math.floor(n / 128); if (n) b |= 0x80; out.push(b); } while (n);
  return out;
}

function sections(bytes) {
  const r = reader(bytes, 8);
  const list = [];
  while (r.pos < bytes.length) {
    const start = r.pos;
    const id = r.u8();
    const size = r.leb();
    list.push({ id, start, payload: r.pos, end: r.pos + size });
    r.skip(size);
  }
  return list;
}

/** Function exports with their parameter and result types. */
export function wasmExports(bytes) {
  const secs = sections(bytes);
  const at = (id) => secs.find((s) => s.id === id);
  const types = [];
  const funcTypes = [];
  if (at(1)) {
    const r = reader(bytes, at(1).payload);
    for (let n = r.leb(); n > 0; n--) {
      r.u8();
      const params = Array.from({ length: r.leb() }, () => VALTYPES[r.u8()]);
      const results = Array.from({ length: r.leb() }, () => VALTYPES[r.u8()]);
      types.push({ params, results });
    }
  }
  if (at(2)) {
    const r = reader(bytes, at(2).payload);
    for (let n = r.leb(); n > 0; n--) {
      r.name(); r.name();
      const kind = r.u8();
      if (kind === 0) funcTypes.push(r.leb());
      else if (kind === 1) { r.u8(); if (r.u8() & 1) r.leb(); r.leb(); }
      else if (kind === 2) { if (r.u8() & 1) r.leb(); r.leb(); }
      else { r.u8(); r.u8(); }
    }
  }
  if (at(3)) {
    const r = reader(bytes, at(3).payload);
    for (let n = r.leb(); n > 0; n--) funcTypes.push(r.leb());
  }
  const out = [];
  if (at(7)) {
    const r = reader(bytes, at(7).payload);
    for (let n = r.leb(); n > 0; n--) {
      const name = r.name();
      const kind = r.u8();
      const index = r.leb();
      if (kind === 0) out.push({ name, ...types[funcTypes[index]] });
    }
  }
  return out;
}

/** The module with its one memory declared as `bytes` 1-byte pages, initial = maximum. */
export function patchMemoryPageSize(bytes, memoryBytes) {
  const mem = sections(bytes).find((s) => s.id === 5);
  if (!mem) throw new Error('module has no memory section');
  const r = reader(bytes, mem.payload);
  if (r.leb() !== 1) throw new Error('expected exactly one memory');
  const payload = [1, 0x09, ...leb(memoryBytes), ...leb(memoryBytes), 0];
  return Buffer.concat([bytes.subarray(0, mem.start), Buffer.from([5, ...leb(payload.length), ...payload]), bytes.subarray(mem.end)]);
}

/** The highest address an active data segment writes (i32.const offsets only). */
export function dataEnd(bytes) {
  const sec = sections(bytes).find((s) => s.id === 11);
  if (!sec) return 0;
  const r = reader(bytes, sec.payload);
  let end = 0;
  for (let n = r.leb(); n > 0; n--) {
    const flags = r.leb();
    if (flags === 1) { r.skip(r.leb()); continue; }
    if (flags === 2) r.leb();
    if (r.u8() !== 0x41) throw new Error('data segment offset is not an i32.const');
    const offset = r.leb(); // small positive offsets: unsigned LEB reads them the same
    if (r.u8() !== 0x0b) throw new Error('data segment offset expression too long');
    const size = r.leb();
    r.skip(size);
    end = Math.max(end, offset + size);
  }
  return end;
}
