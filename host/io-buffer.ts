import type { ModuleInstance } from './engines/engine.ts';

/** The module's shared I/O buffer (docs/abi.md): every argument and result crosses it. */
export class IoBuffer {
  readonly io: number;
  readonly ioCapacity: number;

  constructor(readonly m: ModuleInstance) {
    this.io = Number(m.call('io_ptr'));
    this.ioCapacity = Number(m.call('io_capacity'));
  }

  /** Writes the parts back to back from the start of the buffer; returns the bytes written. */
  protected put(...parts: Uint8Array[]): number {
    let off = this.io;
    for (const p of parts) {
      this.m.writeMemory(off, p);
      off += p.length;
    }
    return off - this.io;
  }
}
