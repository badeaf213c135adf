/**
 * One way to load and run build/session.wasm. Every runtime we support (V8 now; wasm3 and
 * wasm2c-native later) implements this, so tests and the simulator are engine-neutral.
 *
 * Values crossing the boundary are wasm numbers: i32 and f64 as `number`, i64 as `bigint`.
 */
export type WasmValue = number | bigint;

export interface ModuleInstance {
  /** Call an export by name. A trap inside the module throws a `WasmTrapError`. */
  call(name: string, ...args: WasmValue[]): WasmValue;
  /** Names of the exported functions. */
  exportNames(): string[];
  /** A view of the whole linear memory. Re-read after every call: it may be a copy. */
  memory(): Uint8Array;
  /** Copy bytes into linear memory at `ptr`. */
  writeMemory(ptr: number, bytes: Uint8Array): void;
  /** Copy `length` bytes out of linear memory. */
  readMemory(ptr: number, length: number): Uint8Array;
  /** Release native resources (no-op on V8). */
  dispose(): void;
  /**
   * Present when loaded with `{ resettable: true }` by an engine that can do it (V8): returns the
   * instance to its state right after `_start` — every byte of linear memory and every global —
   * as a cheaper equivalent of loading a new one (docs/abi.md, "Reset"). Throws if the memory grew.
   */
  reset?(): void;
  /** With `reset`: the state it restores — a copy of linear memory and every mutable global (tests compare them). */
  state?(): { memory: Uint8Array; globals: WasmValue[] };
}

export interface LoadOptions {
  /** Ask for `reset()` (engines that cannot provide it ignore this: check `instance.reset`). */
  resettable?: boolean;
}

export interface Engine {
  readonly name: string;
  /** Instantiate the module and run its start function (`_start`) if exported. */
  load(wasm: Uint8Array, options?: LoadOptions): Promise<ModuleInstance>;
}

/** A trap inside the module: the firmware's abort message if it gave one, else the engine's. */
export class WasmTrapError extends Error {
  constructor(
    message: string,
    readonly engine: string,
    readonly abort?: { message: string; file: string; line: number; column: number },
  ) {
    super(message);
    this.name = 'WasmTrapError';
  }
}

/** Decode an AssemblyScript static string (UTF-16LE, byte length stored 4 bytes before it). */
export function readAsString(mem: Uint8Array, ptr: number): string {
  if (ptr === 0 || ptr < 4 || ptr > mem.length) return '';
  const view = new DataView(mem.buffer, mem.byteOffset, mem.byteLength);
  const byteLength = view.getUint32(ptr - 4, true);
  if (ptr + byteLength > mem.length) return '';
  let s = '';
  for (let i = 0; i < byteLength; i += 2) s += String.fromCharCode(view.getUint16(ptr + i, true));
  return s;
}

/** "abort: <message> at <file>:<line>:<column>", leaving out a position the firmware did not give. */
export function describeAbort(a: NonNullable<WasmTrapError['abort']>): string {
  const at = a.file ? ` at ${a.file}:${a.line}:${a.column}` : '';
  return `abort: ${a.message}${at}`;
}
