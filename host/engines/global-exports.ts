/**
 * A host-side transform of a wasm binary that exports every mutable global it defines, so a host can
 * save and restore an instance's whole state (linear memory + globals) without the firmware's help.
 * The firmware source and its ABI are unchanged: the module's code, data and other exports are the
 * same bytes; only entries are appended to the export section (named GLOBAL_EXPORT_PREFIX + index).
 *
 * Why: a fleet worker runs millions of wakes, and instantiating the module was ~30 % of a wake's
 * time; restoring a 64 KiB snapshot is far cheaper (V8Engine's `reset`, docs/abi.md "Reset").
 */

/** Exported names of the added globals: `__host_global_<index>`. */
export const GLOBAL_EXPORT_PREFIX = '__host_global_';

const WASM_HEADER_BYTES = 8;
const SECTION_IMPORT = 2;
const SECTION_GLOBAL = 6;
const SECTION_EXPORT = 7;
const EXTERNAL_GLOBAL = 3;

interface Section {
  id: number;
  /** Where the section's id byte is. */
  at: number;
  /** Start of the section's contents (after id and size). */
  start: number;
  end: number;
}

function readU32(b: Uint8Array, at: number): { value: number; next: number } {
  let value = 0;
  let shift = 0;
  for (let i = at; ; i++) {
    if (i >= b.length) throw new RangeError('wasm: LEB128 runs past the end of the module');
    const byte = b[i];
    value += (byte & 0x7f) * 2 ** shift;
    shift += 7;
    if ((byte & 0x80) === 0) return { value, next: i + 1 };
    if (shift > 35) throw new RangeError('wasm: LEB128 longer than 5 bytes');
  }
}

function u32(n: number): number[] {
  const out: number[] = [];
  do {
    let byte = n & 0x7f;
    n = Math.floor(n / 128);
    if (n > 0) byte |= 0x80;
    out.push(byte);
  } while (n > 0);
  return out;
}

function sections(b: Uint8Array): Section[] {
  if (b.length < WASM_HEADER_BYTES || b[0] !== 0x00 || b[1] !== 0x61 || b[2] !== 0x73 || b[3] !== 0x6d) {
    throw new RangeError('wasm: not a WebAssembly binary (no \\0asm header)');
  }
  const out: Section[] = [];
  let at = WASM_HEADER_BYTES;
  while (at < b.length) {
    const id = b[at];
    const size = readU32(b, at + 1);
    out.push({ id, at, start: size.next, end: size.next + size.value });
    at = size.next + size.value;
  }
  if (at !== b.length) throw new RangeError('wasm: a section runs past the end of the module');
  return out;
}

/** Skips an init expression (constant instructions up to `end`, 0x0b). */
function skipInitExpr(b: Uint8Array, at: number): number {
  for (;;) {
    const op = b[at++];
    if (op === 0x0b) return at;
    if (op === 0x41 || op === 0x42 || op === 0x23 || op === 0xd2) {
      // i32.const / i64.const (signed LEB), global.get / ref.func (index)
      while (b[at++] & 0x80);
    } else if (op === 0x43) at += 4;
    else if (op === 0x44) at += 8;
    else if (op === 0xd0) at += 1; // ref.null t
    else throw new RangeError(`wasm: unsupported opcode 0x${op.toString(16)} in a global's initializer`);
  }
}

function importedGlobals(b: Uint8Array, s: Section | undefined): number {
  if (!s) return 0;
  let { value: count, next: at } = readU32(b, s.start);
  let globals = 0;
  for (; count > 0; count--) {
    for (let k = 0; k < 2; k++) {
      const len = readU32(b, at);
      at = len.next + len.value;
    }
    const kind = b[at++];
    if (kind === 0) at = readU32(b, at).next; // function: type index
    else if (kind === 1) {
      at++; // table: reftype, then limits
      const flags = b[at++];
      at = readU32(b, at).next;
      if (flags & 1) at = readU32(b, at).next;
    } else if (kind === 2) {
      const flags = b[at++];
      at = readU32(b, at).next;
      if (flags & 1) at = readU32(b, at).next;
    } else if (kind === 3) {
      at += 2; // valtype, mutability
      globals++;
    } else throw new RangeError(`wasm: unknown import kind ${kind}`);
  }
  return globals;
}

/**
 * Returns the module with an export for every mutable global it defines, and those globals'
 * indices. Throws when the module has no export section (the firmware always has one).
 */
export function exportMutableGlobals(wasm: Uint8Array): { wasm: Uint8Array; globals: number[] } {
  const all = sections(wasm);
  const imported = importedGlobals(wasm, all.find((s) => s.id === SECTION_IMPORT));
  const globals: number[] = [];
  const gs = all.find((s) => s.id === SECTION_GLOBAL);
  if (gs) {
    let { value: count, next: at } = readU32(wasm, gs.start);
    for (let i = 0; i < count; i++) {
      const mutable = wasm[at + 1] === 1;
      at = skipInitExpr(wasm, at + 2);
      if (mutable) globals.push(imported + i);
    }
  }
  const ex = all.find((s) => s.id === SECTION_EXPORT);
  if (!ex) throw new RangeError('wasm: the module has no export section');
  const { value: count, next: entriesAt } = readU32(wasm, ex.start);
  const added: number[] = [];
  for (const g of globals) {
    const name = new TextEncoder().encode(`${GLOBAL_EXPORT_PREFIX}${g}`);
    added.push(...u32(name.length), ...name, EXTERNAL_GLOBAL, ...u32(g));
  }
  const body = [...u32(count + globals.length), ...wasm.subarray(entriesAt, ex.end), ...added];
  const sectionStart = ex.at;
  const out = new Uint8Array(sectionStart + 1 + u32(body.length).length + body.length + (wasm.length - ex.end));
  let o = 0;
  out.set(wasm.subarray(0, sectionStart), o);
  o += sectionStart;
  out[o++] = SECTION_EXPORT;
  out.set(u32(body.length), o);
  o += u32(body.length).length;
  out.set(body, o);
  o += body.length;
  out.set(wasm.subarray(ex.end), o);
  return { wasm: out, globals };
}
