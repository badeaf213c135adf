import type { ModuleInstance, WasmValue } from '../engine.ts';

/**
 * A deterministic run over every crypto export of build/session.wasm with the largest inputs the
 * 2048-byte I/O buffer takes, on both branches where a call graph differs (HMAC keys longer than a
 * block are hashed first). Used to compare engines and to find wasm3's smallest working stack.
 * Returns one line per step: the export, its result and a digest of the I/O buffer afterwards.
 */
export function cryptoWorkload(inst: ModuleInstance): string[] {
  const io = inst.call('io_ptr') as number;
  const cap = inst.call('io_capacity') as number;
  const out: string[] = [];
  let seed = 0x2545f491;
  // Writes the whole buffer (random prefix, zeros after), so stale bytes from earlier calls
  // don't leak into the digests and the result is independent of what ran before.
  const fill = (len: number): void => {
    const b = new Uint8Array(cap);
    for (let i = 0; i < len; i++) {
      seed = (Math.imul(seed, 1103515245) + 12345) >>> 0;
      b[i] = seed >>> 24;
    }
    inst.writeMemory(io, b);
  };
  const step = (name: string, ...args: WasmValue[]): void => {
    const r = inst.call(name, ...args);
    out.push(`${name}(${args.join(',')}) = ${String(r)} io:${fnv(inst.readMemory(io, cap))}`);
  };

  fill(16);
  step('crypto_aes_set_key');
  fill(16);
  step('crypto_aes_encrypt_blocks', 64);
  for (const [nonce, aad, text] of [[13, 0, 0], [12, 13, 1500], [7, 64, cap - 7 - 64 - 16]]) {
    fill(nonce + aad + text);
    const sealed = inst.call('crypto_ccm_seal', nonce, aad, text, 8) as number;
    out.push(`crypto_ccm_seal(${nonce},${aad},${text},8) = ${sealed} io:${fnv(inst.readMemory(io, cap))}`);
    if (sealed >= 0) step('crypto_ccm_open', nonce, aad, sealed, 8);
  }
  for (const len of [0, 55, 64, cap - 32]) {
    fill(len);
    step('crypto_sha256', len);
  }
  for (const [key, len] of [[32, 100], [200, 1500]]) {
    fill(key + len);
    step('crypto_hmac_sha256', key, len);
  }
  fill(48 + 13 + 64);
  step('crypto_tls_prf', 48, 13, 64, 1000);
  fill(32 + 16 + 32);
  step('crypto_drbg_instantiate', 32, 16, 32);
  fill(64);
  step('crypto_drbg_generate', 1024, 64);
  step('heap_offset');
  return out;
}

function fnv(b: Uint8Array): string {
  let h = 0x811c9dc5;
  for (const x of b) h = Math.imul(h ^ x, 0x01000193) >>> 0;
  return h.toString(16).padStart(8, '0');
}
