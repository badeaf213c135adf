#!/usr/bin/env node
// Builds the wasm3 engine's Node addon (host/engines/wasm3/native, Rust + napi-rs) with plain
// `cargo build --release` and copies it to build/wasm3.node. Needs cargo and, for wasm3x's
// bindgen step, libclang (Debian: libclang-dev). Without cargo: a one-line notice and exit 0,
// except under CI=true, where the addon is required and this fails.
import { spawnSync } from 'node:child_process';
import { copyFileSync, mkdirSync, existsSync } from 'node:fs';
import { dirname, join, resolve } from 'node:path';
import { fileURLToPath } from 'node:url';

const root = resolve(dirname(fileURLToPath(import.meta.url)), '..');
const crate = join(root, 'host/engines/wasm3/native');
const out = join(root, 'build/wasm3.node');
const ciValue = (process.env.CI ?? '').trim().toLowerCase();
const ci = ciValue !== '' && ciValue !== 'false' && ciValue !== '0'; // as test/host/engines.ts inCi()

const probe = spawnSync('cargo', ['--version'], { stdio: 'ignore' });
if (probe.error || probe.status !== 0) {
  console.log(`build-wasm3: cargo not found, skipping the wasm3 addon${ci ? ' (required under CI)' : ''}`);
  process.exit(ci ? 1 : 0);
}

const started = Date.now();
const build = spawnSync('cargo', ['build', '--release', '--locked'], { cwd: crate, stdio: 'inherit' });
if (build.error || build.status !== 0) {
  console.error(`build-wasm3: cargo build failed (${build.error?.message ?? `exit ${build.status}`}); ` +
    "wasm3x's bindgen step needs libclang (Debian: apt-get install -y libclang-dev)");
  process.exit(1);
}

const targetDir = process.env.CARGO_TARGET_DIR ? resolve(crate, process.env.CARGO_TARGET_DIR) : join(crate, 'target');
const libName = { linux: 'libsleepy_wasm3.so', darwin: 'libsleepy_wasm3.dylib', win32: 'sleepy_wasm3.dll' }[process.platform]
  ?? 'libsleepy_wasm3.so';
const artifact = join(targetDir, 'release', libName);
if (!existsSync(artifact)) {
  console.error(`build-wasm3: cargo succeeded but ${artifact} is missing`);
  process.exit(1);
}
mkdirSync(dirname(out), { recursive: true });
copyFileSync(artifact, out);
console.log(`build-wasm3: ${out} (${((Date.now() - started) / 1000).toFixed(1)} s)`);
