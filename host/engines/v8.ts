import loader from '@assemblyscript/loader';
import { type Engine, type ModuleInstance, type WasmValue, WasmTrapError, describeAbort, readAsString } from './engine.ts';

/** V8 (Node's own WebAssembly), through @assemblyscript/loader. */
export class V8Engine implements Engine {
  readonly name = 'v8';

  async load(wasm: Uint8Array): Promise<ModuleInstance> {
    let lastAbort: WasmTrapError['abort'];
    let memory: WebAssembly.Memory | undefined;
    const imports = {
      env: {
        trap: (messagePtr: number, filePtr: number, line: number, column: number) => {
          const mem = memory ? new Uint8Array(memory.buffer) : new Uint8Array(0);
          lastAbort = { message: readAsString(mem, messagePtr), file: readAsString(mem, filePtr), line, column };
        },
      },
    };
    const { exports } = await loader.instantiate(wasm, imports);
    memory = exports.memory as WebAssembly.Memory;
    const fns = exports as unknown as Record<string, (...a: WasmValue[]) => WasmValue>;
    const names = Object.keys(exports).filter((k) => typeof (exports as Record<string, unknown>)[k] === 'function');

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
        return new Uint8Array(memory!.buffer.slice(ptr, ptr + length));
      },
      dispose: () => {},
    };
    if (names.includes('_start')) call('_start');
    return instance;
  }
}

function checkRange(size: number, ptr: number, length: number): void {
  if (!Number.isInteger(ptr) || !Number.isInteger(length) || ptr < 0 || length < 0 || ptr + length > size) {
    throw new RangeError(`memory access ${ptr}+${length} outside linear memory of ${size} bytes`);
  }
}
