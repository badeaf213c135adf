/**
 * The firmware client with every input and output written to a trace. Scenarios drive it like
 * host/session-abi.ts's FirmwareClient (it offers `drainTransmit` and `handleDatagram`, so
 * `pump` from dtls-peer.ts works with it); after every input call it drains every output channel
 * of the module and records the counters, so two engines' traces can be compared step by step.
 */
import type { ModuleInstance } from '../../../host/engines/engine.ts';
import { COUNTERS, FirmwareClient, type ConfigName, type StateName } from '../../../host/session-abi.ts';
import type { Step, StepKind, TraceRecorder } from './trace.ts';

/** One kind of output the host pulls from the module after every input. */
export interface OutputChannel {
  kind: StepKind;
  /** The export that pulls it. */
  export: string;
  /** Pulls the next output; null when there is none. */
  poll(c: FirmwareClient): { bytes: Uint8Array; fields?: Step['fields'] } | null;
}

/**
 * Every output of the module, in the order the host drains them, recorded as the raw bytes the
 * module put in the I/O buffer (docs/abi.md): what must be identical across engines. A new
 * `poll_*` export needs an entry here; the conformance test fails while one is missing (see
 * `undrainedPollExports`).
 */
export const OUTPUT_CHANNELS: OutputChannel[] = [
  { kind: 'tx', export: 'poll_transmit', poll: pollBytes('poll_transmit') },
  // recv returns -1 for none; 0 is an empty record.
  { kind: 'app-rx', export: 'recv', poll: (c) => wrap(c.recv()) },
  // Persisted writes: offset (u32 LE) || bytes.
  { kind: 'store', export: 'poll_store', poll: pollBytes('poll_store') },
  // Application events: 12 bytes (type, 3 zero bytes, two u32).
  { kind: 'event', export: 'poll_event', poll: pollBytes('poll_event') },
];

/** An export that returns the length of its output in the I/O buffer, 0 when there is none. */
function pollBytes(name: string): OutputChannel['poll'] {
  return (c) => {
    const n = Number(c.m.call(name));
    return n > 0 ? { bytes: c.m.readMemory(c.io, n) } : null;
  };
}

function wrap(bytes: Uint8Array | null): { bytes: Uint8Array } | null {
  return bytes ? { bytes } : null;
}

/** `poll_*` exports of the module that no output channel drains (must be empty). */
export function undrainedPollExports(exportNames: readonly string[]): string[] {
  const drained = new Set(OUTPUT_CHANNELS.map((c) => c.export));
  return exportNames.filter((n) => n.startsWith('poll_') && !drained.has(n));
}

/** A bound on outputs per input, so a module that never stops producing cannot hang a test. */
const MAX_OUTPUTS_PER_CHANNEL = 256;

export class TracedClient {
  readonly c: FirmwareClient;
  /** Datagrams drained from the module and not yet taken by `drainTransmit`. */
  private pendingTx: Uint8Array[] = [];
  /** Application data received, in order. */
  readonly received: Uint8Array[] = [];
  /** Outputs of the other channels (store, event, ...), in order. */
  readonly outputs = new Map<StepKind, Uint8Array[]>();
  private readonly channels: OutputChannel[];
  /** The lifecycle's session state (session_state export), recorded with every call when present. */
  private readonly hasSessionState: boolean;

  constructor(
    readonly m: ModuleInstance,
    readonly trace: TraceRecorder,
  ) {
    this.c = new FirmwareClient(m);
    const names = new Set(m.exportNames());
    this.channels = OUTPUT_CHANNELS.filter((ch) => names.has(ch.export));
    this.hasSessionState = names.has('session_state');
  }

  provision(identity: Uint8Array, psk: Uint8Array): void {
    this.step(`provision(${identity.length} B identity, ${psk.length} B psk)`, () => this.c.provision(identity, psk), identity);
  }

  provisionEcdhe(serverPublicKey: Uint8Array, devicePrivateKey: Uint8Array): void {
    this.step('provision_ecdhe(65 B server key, 32 B private key)', () => this.c.provisionEcdhe(serverPublicKey, devicePrivateKey), serverPublicKey);
  }

  seed(entropy: Uint8Array): void {
    this.step(`seed_entropy(${entropy.length} B)`, () => this.c.seed(entropy), entropy);
  }

  setConnectionId(cid: Uint8Array): void {
    this.step(`set_connection_id(${cid.length} B)`, () => this.c.setConnectionId(cid), cid);
  }

  config(name: ConfigName, value: number | boolean): void {
    this.step(`config_set(${name}, ${Number(value)})`, () => this.c.config(name, value));
  }

  connect(nowMs: number): void {
    this.step(`connect(t=${nowMs})`, () => this.c.connect(nowMs));
  }

  handleDatagram(nowMs: number, datagram: Uint8Array): StateName {
    return this.step(`handle_datagram(t=${nowMs}, ${datagram.length} B)`, () => this.c.handleDatagram(nowMs, datagram), datagram);
  }

  handleTimeout(nowMs: number): StateName {
    return this.step(`handle_timeout(t=${nowMs})`, () => this.c.handleTimeout(nowMs));
  }

  send(data: Uint8Array): number {
    return this.step(`send(${data.length} B)`, () => this.c.send(data), data);
  }

  close(nowMs: number): StateName {
    return this.step(`close(t=${nowMs})`, () => this.c.close(nowMs));
  }

  /** Datagrams the module transmitted since the last call (already recorded as 'tx' steps). */
  drainTransmit(): Uint8Array[] {
    const out = this.pendingTx;
    this.pendingTx = [];
    return out;
  }

  get state(): StateName {
    return this.c.state;
  }

  nextTimeout(): number | null {
    return this.c.nextTimeout();
  }

  /**
   * Runs one input call and records it: its result, the state, timer, error and alert after it,
   * every output it produced (all channels drained), and the counters. Public for inputs this
   * class has no method for yet (the lifecycle's boot, publish, prepare_sleep, ...):
   * `c.step('boot(t=0)', () => c.c.boot(0, region), region)`.
   */
  step<T>(what: string, fn: () => T, bytes?: Uint8Array): T {
    const result = fn();
    this.trace.record('call', what, {
      bytes,
      fields: {
        result: result === undefined ? null : String(result),
        state: this.c.state,
        nextTimeout: this.c.nextTimeout(),
        lastError: this.c.lastError,
        lastAlert: this.c.lastAlert,
        ...(this.hasSessionState ? { sessionState: Number(this.m.call('session_state')) } : {}),
      },
    });
    this.drainOutputs();
    this.recordCounters(`after ${what}`);
    return result;
  }

  /** Every counter the module has, named where host/session-abi.ts knows the name. */
  private recordCounters(what: string): void {
    const n = Number(this.m.call('counters_read'));
    const raw = this.m.readMemory(this.c.io, n * 4);
    const view = new DataView(raw.buffer, raw.byteOffset, raw.byteLength);
    const fields: Record<string, number> = {};
    for (let i = 0; i < n; i++) fields[COUNTERS[i] ?? `counter${i}`] = view.getUint32(i * 4, true);
    this.trace.record('counters', what, { fields });
  }

  private drainOutputs(): void {
    for (const ch of this.channels) {
      for (let i = 0; ; i++) {
        if (i === MAX_OUTPUTS_PER_CHANNEL) throw new Error(`${ch.export} produced more than ${MAX_OUTPUTS_PER_CHANNEL} outputs after one input`);
        const out = ch.poll(this.c);
        if (!out) break;
        this.trace.record(ch.kind, `${ch.kind} #${this.trace.next(ch.kind)}`, out);
        if (ch.kind === 'tx') this.pendingTx.push(out.bytes);
        else if (ch.kind === 'app-rx') this.received.push(out.bytes);
        else this.outputs.set(ch.kind, [...(this.outputs.get(ch.kind) ?? []), out.bytes]);
      }
    }
  }
}

/** Records the whole linear memory, its size and the heap pointer: the module's complete state. */
export function recordMemory(trace: TraceRecorder, m: ModuleInstance, what = 'linear memory at the end'): void {
  const mem = Uint8Array.from(m.memory()); // a copy before the next call: V8's is a live view
  const heapOffset = Number(m.call('heap_offset'));
  trace.record('memory', what, { bytes: mem, fields: { size: mem.length, heapOffset } });
}
