import { existsSync } from 'node:fs';
import { createRequire } from 'node:module';
import { dirname, resolve } from 'node:path';
import { fileURLToPath } from 'node:url';
import { type Engine, type ModuleInstance, type WasmValue, WasmTrapError, describeAbort } from '../engine.ts';

/**
 * wasm3 (the C interpreter) through our own Node addon, build/wasm3.node, built from
 * host/engines/wasm3/native by scripts/build-wasm3.mjs. Same contract as V8Engine.
 */

/** Where scripts/build-wasm3.mjs puts the addon. */
export const WASM3_ADDON_PATH = resolve(dirname(fileURLToPath(import.meta.url)), '../../../build/wasm3.node');

/**
 * wasm3 value stack per instance: the budget an MCU build would give the module. Measured with
 * host/engines/wasm3/stack-probe.ts (every conformance scenario and seed plus the crypto workload,
 * compared with V8 at 8-byte granularity): the crypto exports need 2128 bytes, the PSK handshake
 * 5176 bytes and the ECDHE-ECDSA handshake 5992 bytes (handle_datagram when the server's flight
 * completes: signature check, key pair, ECDH, signature, key schedule). 6.75 KiB leaves ~15%
 * headroom and no more, so the conformance suite catches a firmware change that needs more stack
 * ("[trap] stack overflow" under wasm3): then re-run the probe and raise this together with
 * docs/engines.md.
 */
export const DEFAULT_WASM3_STACK_BYTES = 6912;

/** The smallest stack on which the whole conformance suite passes (stack-probe.ts, 25.4 KB module). */
export const MEASURED_MIN_WASM3_STACK_BYTES = 5992;

export interface Wasm3EngineOptions {
  /** Size of wasm3's value stack per instance, in bytes. Default DEFAULT_WASM3_STACK_BYTES. */
  stackSizeBytes?: number;
  /** Path of the compiled addon. Default WASM3_ADDON_PATH. */
  addonPath?: string;
}

type NativeValue = number | bigint;

interface NativeAbort { message: string; file: string; line: number; column: number }
interface NativeOutcome { values: NativeValue[]; trap?: string | null; abort?: NativeAbort | null }
interface NativeSignature { params: string[]; results: string[] }

interface NativeInstance {
  exportNames(): string[];
  signature(name: string): NativeSignature;
  call(name: string, args: NativeValue[]): NativeOutcome;
  memorySize(): number;
  memory(): Uint8Array;
  readMemory(ptr: number, length: number): Uint8Array;
  writeMemory(ptr: number, bytes: Uint8Array): void;
  dispose(): void;
}

interface Addon {
  NativeInstance: new (wasm: Uint8Array, stackSizeBytes: number) => NativeInstance;
  wasm3Version(): string;
}

const addons = new Map<string, Addon>();

/** Load the addon (cached per path). Throws with a build hint if it is missing. */
export function loadWasm3Addon(path: string = WASM3_ADDON_PATH): Addon {
  let addon = addons.get(path);
  if (!addon) {
    if (!existsSync(path)) {
      throw new Error(`wasm3: addon not found at ${path}; build it with 'node scripts/build-wasm3.mjs' (needs cargo)`);
    }
    addon = createRequire(import.meta.url)(path) as Addon;
    addons.set(path, addon);
  }
  return addon;
}

/** True if the addon has been built. */
export function wasm3Available(path: string = WASM3_ADDON_PATH): boolean {
  return existsSync(path);
}

export class Wasm3Engine implements Engine {
  readonly name = 'wasm3';
  readonly stackSizeBytes: number;
  private readonly addonPath: string;

  constructor(options: Wasm3EngineOptions = {}) {
    const stack = options.stackSizeBytes ?? DEFAULT_WASM3_STACK_BYTES;
    if (!Number.isInteger(stack) || stack < 256 || stack > 0x7fffffff) {
      throw new RangeError(`wasm3: stackSizeBytes must be an integer in [256, 2^31), got ${stack}`);
    }
    this.stackSizeBytes = stack;
    this.addonPath = options.addonPath ?? WASM3_ADDON_PATH;
  }

  /** Version string of the bundled wasm3. */
  version(): string {
    return loadWasm3Addon(this.addonPath).wasm3Version();
  }

  async load(wasm: Uint8Array): Promise<ModuleInstance> {
    const addon = loadWasm3Addon(this.addonPath);
    const native = new addon.NativeInstance(wasm, this.stackSizeBytes);
    const names = native.exportNames();
    const signatures = new Map<string, NativeSignature>();
    let disposed = false;

    const live = (): NativeInstance => {
      if (disposed) throw new Error('wasm3: instance was disposed');
      return native;
    };

    const call = (name: string, ...args: WasmValue[]): WasmValue => {
      const inst = live();
      if (!names.includes(name)) throw new Error(`wasm3: module has no export named '${name}'`);
      let sig = signatures.get(name);
      if (!sig) {
        sig = inst.signature(name);
        signatures.set(name, sig);
      }
      const nativeArgs = sig.params.map((type, i) => coerce(type, args[i], name, i));
      const out = inst.call(name, nativeArgs);
      if (out.trap != null) {
        const a = out.abort ?? undefined;
        const why = a ? `${describeAbort(a)} (${out.trap})` : out.trap;
        throw new WasmTrapError(`wasm3: trap in ${name}: ${why}`, 'wasm3', a);
      }
      const v = out.values;
      // Like JS-API wasm functions: undefined for no result, the value for one, an array for more.
      return (v.length === 0 ? undefined : v.length === 1 ? v[0] : v) as WasmValue;
    };

    const instance: ModuleInstance = {
      call,
      exportNames: () => names.slice(),
      memory: () => live().memory(),
      // Empty arrays never cross into the addon: an empty typed array that went through N-API
      // (either way) ends up backed by an empty ArrayBuffer with a null data pointer, and
      // node:crypto's update() takes that for "no input" (an AES-CCM seal of an empty record then
      // fails with "tag not set"). So the caller's array is left untouched, and reads of 0 bytes
      // return a fresh `new Uint8Array(0)` like V8Engine.
      writeMemory: (ptr, bytes) => {
        const inst = live();
        checkRange(inst.memorySize(), ptr, bytes.length);
        if (bytes.length > 0) inst.writeMemory(ptr, bytes);
      },
      readMemory: (ptr, length) => {
        const inst = live();
        checkRange(inst.memorySize(), ptr, length);
        return length > 0 ? inst.readMemory(ptr, length) : new Uint8Array(0);
      },
      dispose: () => {
        if (!disposed) {
          disposed = true;
          native.dispose();
        }
      },
    };
    if (names.includes('_start')) {
      try {
        call('_start');
      } catch (e) {
        instance.dispose();
        throw e;
      }
    }
    return instance;
  }
}

/** The JS-API's ToWebAssemblyValue, so callers see the same coercions as under V8. */
function coerce(type: string, value: WasmValue | undefined, fn: string, index: number): NativeValue {
  switch (type) {
    case 'i32':
      if (typeof value === 'bigint') throw new TypeError(`wasm3: ${fn} argument ${index}: cannot convert a BigInt to i32`);
      return Number(value) | 0;
    case 'i64':
      if (typeof value === 'number') throw new TypeError(`wasm3: ${fn} argument ${index}: cannot convert ${value} to a BigInt`);
      return BigInt.asIntN(64, BigInt(value as bigint));
    case 'f32':
      if (typeof value === 'bigint') throw new TypeError(`wasm3: ${fn} argument ${index}: cannot convert a BigInt to f32`);
      return Math.fround(Number(value));
    case 'f64':
      if (typeof value === 'bigint') throw new TypeError(`wasm3: ${fn} argument ${index}: cannot convert a BigInt to f64`);
      return Number(value);
    default:
      throw new TypeError(`wasm3: ${fn} argument ${index}: parameter type ${type} is not supported`);
  }
}

function checkRange(size: number, ptr: number, length: number): void {
  if (!Number.isInteger(ptr) || !Number.isInteger(length) || ptr < 0 || length < 0 || ptr + length > size) {
    throw new RangeError(`memory access ${ptr}+${length} outside linear memory of ${size} bytes`);
  }
}
