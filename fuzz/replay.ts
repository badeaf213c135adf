/**
 * Replays a native harness trace (FUZZ_TRACE, fuzz/harness/common.h) on another engine and
 * reports the first difference: every call's return value, every output the harness read from
 * the I/O buffer, and a hash of the whole linear memory at the end of each input.
 *
 * Lines: "I" (an input starts), "R" (fresh module state), "W at hex" (bytes into io at offset),
 * "C name args… = ret", "O hex" (the io bytes the harness read after the call), "M fnv64".
 */
import type { Engine, ModuleInstance, WasmValue } from '../host/engines/engine.ts';

/** Parameters that are i64 (`now`, config values); every other parameter is i32. */
const I64_PARAMS: Record<string, number[]> = {
  handle_datagram: [0], handle_timeout: [0], boot: [0], publish: [0], prepare_sleep: [0], connect: [0], close: [0],
  config_set: [1],
};
const I64_RESULTS = new Set(['next_timeout', 'publish', 'prepare_sleep']);

export interface ReplayResult {
  inputs: number;
  calls: number;
  /** The first difference, or null when every byte matched. */
  mismatch: string | null;
}

function fnv64(mem: Uint8Array): string {
  let h = 0xcbf29ce484222325n;
  const p = 0x100000001b3n, mask = (1n << 64n) - 1n;
  for (let i = 0; i < mem.length; i++) h = ((h ^ BigInt(mem[i])) * p) & mask;
  return h.toString(16).padStart(16, '0');
}

function asSigned(v: WasmValue, i64: boolean): bigint {
  const b = BigInt(v);
  return i64 ? BigInt.asIntN(64, b) : BigInt.asIntN(32, b);
}

export async function replayTrace(trace: string, engine: Engine, wasm: Uint8Array): Promise<ReplayResult> {
  let m: ModuleInstance | null = null;
  let io = 0;
  let inputs = 0, calls = 0, lineNo = 0;
  let last = '';
  const fresh = async (): Promise<void> => {
    m?.dispose();
    m = await engine.load(wasm);
    io = Number(m.call('io_ptr'));
  };
  try {
    for (const line of trace.split('\n')) {
      lineNo++;
      if (!line) continue;
      const tag = line[0];
      const rest = line.slice(2);
      if (tag === 'I') inputs++;
      else if (tag === 'R') await fresh();
      else if (tag === 'W') {
        const [at, hex = ''] = rest.split(' ');
        m!.writeMemory(io + Number(at), Buffer.from(hex, 'hex'));
      } else if (tag === 'C') {
        const [call, want] = rest.split(' = ');
        const [name, ...argv] = call.split(' ');
        const i64 = I64_PARAMS[name] ?? [];
        const args = argv.map((a, i) => (i64.includes(i) ? BigInt(a) : Number(a)));
        const got = asSigned(m!.call(name, ...args), I64_RESULTS.has(name));
        calls++;
        last = line;
        if (got !== BigInt(want)) return { inputs, calls, mismatch: `line ${lineNo}: ${call} returned ${got} on ${engine.name}, ${want} natively` };
      } else if (tag === 'O') {
        const want = Buffer.from(rest, 'hex');
        const got = Buffer.from(m!.readMemory(io, want.length));
        if (!got.equals(want)) return { inputs, calls, mismatch: `line ${lineNo}: output of '${last}' differs on ${engine.name} (${got.toString('hex').slice(0, 80)}… vs ${rest.slice(0, 80)}…)` };
      } else if (tag === 'M') {
        const got = fnv64(m!.memory());
        if (got !== rest) return { inputs, calls, mismatch: `line ${lineNo}: memory hash ${got} on ${engine.name}, ${rest} natively (input ${inputs})` };
      } else return { inputs, calls, mismatch: `line ${lineNo}: unknown trace line '${line.slice(0, 40)}'` };
    }
  } finally {
    (m as ModuleInstance | null)?.dispose();
  }
  return { inputs, calls, mismatch: null };
}
