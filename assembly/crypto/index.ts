export * from './aes';
export * from './ccm';
export * from './ct';
export * from './sha256';
export * from './hmac';
export * from './prf';
export * from './drbg';
// P-256 (p256.ts, p256-field.ts) is imported from its own files, not re-exported here: AssemblyScript
// keeps a file's static data (memory.data) in the module once the file is reachable, so exporting
// it from this index would put its constants and scratch (≈ 2 KiB of RAM) into build/session.wasm
// before the handshake uses it. The test build imports it directly (assembly/diagnostics.ts).
