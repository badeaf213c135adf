/**
 * The `sleepy-session` command. Subcommands grow with the product; each validates its flags and
 * names the offending flag and the allowed values on error.
 */
import { mkdirSync, writeFileSync } from 'node:fs';
import crypto from 'node:crypto';
import { V8Engine } from './engines/v8.ts';
import type { Engine } from './engines/engine.ts';
import { readFirmware, RELEASE_WASM } from './firmware.ts';
import { ModuleCrypto } from './crypto-abi.ts';

export class UsageError extends Error {}

const USAGE = `usage: sleepy-session <command> [flags]

commands:
  start                      the main job (today: firmware self-check on every engine; the
                             incident replay arrives with the session lifecycle)
      --report FILE          where to write the JSON report (default reports/start.json)
  help                       this text`;

export interface Flags {
  [name: string]: string;
}

/** Parses `--name value` / `--name=value` pairs against the allowed flag names of a command. */
export function parseFlags(args: string[], allowed: string[], command: string): Flags {
  const flags: Flags = {};
  for (let i = 0; i < args.length; i++) {
    const arg = args[i];
    if (!arg.startsWith('--')) throw new UsageError(`${command}: unexpected argument '${arg}'; flags are: ${allowed.map((a) => '--' + a).join(', ')}`);
    let [name, value] = arg.slice(2).split(/=(.*)/s, 2);
    if (!allowed.includes(name)) {
      throw new UsageError(`${command}: unknown flag --${name}; allowed: ${allowed.map((a) => '--' + a).join(', ') || '(none)'}`);
    }
    if (value === undefined) {
      value = args[++i];
      if (value === undefined || value.startsWith('--')) throw new UsageError(`${command}: flag --${name} needs a value`);
    }
    flags[name] = value;
  }
  return flags;
}

interface CheckResult {
  engine: string;
  ok: boolean;
  detail: string;
}

/** Seals and opens random records in the module and compares with node:crypto. */
async function selfCheck(engine: Engine): Promise<CheckResult> {
  const mc = new ModuleCrypto(await engine.load(readFirmware()));
  const before = mc.m.call('heap_offset');
  let records = 0;
  for (let i = 0; i < 200; i++) {
    const key = crypto.randomBytes(16), nonce = crypto.randomBytes(12), aad = crypto.randomBytes(13);
    const pt = crypto.randomFillSync(Buffer.alloc(i * 4)); // randomBytes(0) trips node's CCM (tag not set)
    mc.setKey(key);
    const c = crypto.createCipheriv('aes-128-ccm', key, nonce, { authTagLength: 8 });
    c.setAAD(aad, { plaintextLength: pt.length });
    const expected = Buffer.concat([c.update(pt), c.final(), c.getAuthTag()]);
    const sealed = mc.ccmSeal(nonce, aad, pt);
    if (!(sealed instanceof Uint8Array) || !expected.equals(sealed)) {
      return { engine: engine.name, ok: false, detail: `record ${i} (${pt.length} B) differs from node:crypto` };
    }
    records++;
  }
  const after = mc.m.call('heap_offset');
  mc.m.dispose();
  if (before !== after) return { engine: engine.name, ok: false, detail: `heap moved ${before} → ${after}` };
  return { engine: engine.name, ok: true, detail: `${records} AES-128-CCM-8 records identical to node:crypto, heap pointer unchanged` };
}

async function start(args: string[]): Promise<number> {
  const flags = parseFlags(args, ['report'], 'start');
  const reportPath = flags.report ?? 'reports/start.json';
  const bytes = readFirmware();
  console.log(`firmware: ${RELEASE_WASM} (${bytes.length} bytes)`);
  const results = [await selfCheck(new V8Engine())];
  for (const r of results) console.log(`  ${r.ok ? 'ok  ' : 'FAIL'} ${r.engine.padEnd(6)} ${r.detail}`);
  const dir = reportPath.includes('/') ? reportPath.slice(0, reportPath.lastIndexOf('/')) : '.';
  mkdirSync(dir, { recursive: true });
  writeFileSync(reportPath, JSON.stringify({ firmwareBytes: bytes.length, results }, null, 2));
  console.log(`report: ${reportPath}`);
  return results.every((r) => r.ok) ? 0 : 1;
}

export async function main(argv: string[]): Promise<number> {
  const [command, ...rest] = argv;
  try {
    switch (command) {
      case 'start':
        return await start(rest);
      case undefined:
      case 'help':
      case '--help':
      case '-h':
        console.log(USAGE);
        return command === undefined ? 2 : 0;
      default:
        throw new UsageError(`unknown command '${command}'; allowed: start, help`);
    }
  } catch (e) {
    if (e instanceof UsageError) {
      console.error(`sleepy-session: ${e.message}`);
      return 2;
    }
    throw e;
  }
}
