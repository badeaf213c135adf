import { createHash } from 'node:crypto';
import { exportMutableGlobals, GLOBAL_EXPORT_PREFIX } from './global-exports.ts';
import { type Engine, type LoadOptions, type ModuleInstance, type WasmValue, WasmTrapError, describeAbort, readAsString } from './engine.ts';

/** V8 (Node's own WebAssembly API; the module's exports are plain numbers, so no loader glue). */
export class V8Engine implements Engine {
  readonly name = 'v8';
  /** Compiled once per firmware image (by content: a caller may patch its bytes): a fleet instantiates it at every wake. */
  static readonly #compiled = new Map<string, WebAssembly.Module>();

  async load(wasm: Uint8Array, options: LoadOptions = {}): Promise<ModuleInstance> {
    let lastAbort: WasmTrapError['abort'];
    let memory: WebAssembly.Memory | undefined;
    // The module's one import (docs/abi.md); not one of the loader's own env helpers.
    const imports: Record<string, Record<string, unknown>> = {
      env: {
        trap: (messagePtr: number, filePtr: number, line: number, column: number) => {
          const mem = memory ? new Uint8Array(memory.buffer) : new Uint8Array(0);
          lastAbort = { message: readAsString(mem, messagePtr), file: readAsString(mem, filePtr), line, column };
        },
      },
    };
    const resettable = options.resettable === true;
    const digest = `${createHash('sha256').update(wasm).digest('hex')}${resettable ? '/resettable' : ''}`;
    let compiled = V8Engine.#compiled.get(digest);
    if (!compiled) {
      // Resettable: the same module with its mutable globals exported, so reset() can restore them.
      const bytes = resettable ? exportMutableGlobals(wasm).wasm : wasm;
      compiled = await WebAssembly.compile(bytes as Uint8Array<ArrayBuffer>);
      if (V8Engine.#compiled.size >= 8) V8Engine.#compiled.clear();
      V8Engine.#compiled.set(digest, compiled);
    }
    // Synchronous instantiation of the compiled module: a fleet does this at every wake.
    const exports = new WebAssembly.Instance(compiled, imports as WebAssembly.Imports).exports;
    memory = exports.memory as WebAssembly.Memory;
    const fns = exports as unknown as Record<string, (...a: WasmValue[]) => WasmValue>;
    const names = Object.keys(exports).filter((k) => typeof (exports as Record<string, unknown>)[k] === 'function');
    const globals = resettable
      ? Object.keys(exports).filter((k) => k.startsWith(GLOBAL_EXPORT_PREFIX)).map((k) => exports[k] as WebAssembly.Global)
      : [];

    const call = (name: string, ...args: WasmValue[]): WasmValue => {
      const fn = fns[name];
      if (typeof fn !== 'function') throw new Error(`v8: module has no export named '${name}'`);
      lastAbort = undefined;
      try {
        return fn(...args);
      } catch (e) {
        if (e instanceof WebAssembly.RuntimeError) {
          const a = lastAbort;
          const why = a ? describeAbort(a) : e.message;
          throw new WasmTrapError(`v8: trap in ${name}: ${why}`, 'v8', a);
        }
        throw e;
      }
    };
    const instance: ModuleInstance = {
      call,
      exportNames: () => names.slice(),
      memory: () => new Uint8Array(memory!.buffer),
      writeMemory: (ptr, bytes) => {
        checkRange(memory!.buffer.byteLength, ptr, bytes.length);
        new Uint8Array(memory!.buffer).set(bytes, ptr);
      },
      readMemory: (ptr, length) => {
        checkRange(memory!.buffer.byteLength, ptr, length);
        // Not a view of an empty ArrayBuffer for length 0: its null data pointer makes
        // node:crypto's update() see "no input" (see host/engines/wasm3/index.ts).
        return length > 0 ? new Uint8Array(memory!.buffer.slice(ptr, ptr + length)) : new Uint8Array(0);
      },
      dispose: () => {},
    };
    if (names.includes('_start')) call('_start');
    if (resettable) {
      // The state right after _start, restored by reset(): every byte of memory, every mutable global.
      const memoryAtStart = new Uint8Array(memory.buffer.slice(0));
      const globalsAtStart = globals.map((g) => g.value as WasmValue);
      instance.reset = () => {
        const now = new Uint8Array(memory!.buffer);
        if (now.length !== memoryAtStart.length) {
          throw new Error(`v8: reset: linear memory grew from ${memoryAtStart.length} to ${now.length} bytes; load a new instance`);
        }
        now.set(memoryAtStart);
        for (let i = 0; i < globals.length; i++) globals[i].value = globalsAtStart[i];
        lastAbort = undefined;
      };
      instance.state = () => ({ memory: new Uint8Array(memory!.buffer.slice(0)), globals: globals.map((g) => g.value as WasmValue) });
    }
    return instance;
  }
}

function checkRange(size: number, ptr: number, length: number): void {
  if (!Number.isInteger(ptr) || !Number.isInteger(length) || ptr < 0 || length < 0 || ptr + length > size) {
    throw new RangeError(`memory access ${ptr}+${length} outside linear memory of ${size} bytes`);
  }
}
