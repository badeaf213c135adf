// Entry of build/session-test.wasm: the production ABI plus the test-only exports (crypto
// primitives, trap diagnostics). `npm run build` builds both; only build/session.wasm ships.
export * from './index';
export * from './diagnostics';
