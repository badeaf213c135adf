// `mcu --flash FILE` takes the same exclusive lock as `device --flash FILE` (issue 17: two hosts on
// one flash file resume one session and reuse nonces; docs/persistence.md). The lock is taken
// before QEMU or a socket starts, so this needs neither.
import { describe, it } from 'node:test';
import assert from 'node:assert/strict';
import { spawn } from 'node:child_process';
import { mkdtempSync, readFileSync, readdirSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { runMcu } from '../../host/mcu/bridge.ts';
import { lockFile } from '../../host/board/file-lock.ts';
import { mcuUnavailable } from '../../host/mcu/qemu.ts';
import { skipOrFail } from './engines.ts';
import { fileURLToPath } from 'node:url';

const BIN = fileURLToPath(new URL('../../bin/sleepy-session.mjs', import.meta.url));

describe('mcu --flash FILE: one process per flash file', () => {
  it('refuses a flash file another process holds, naming the file and the holder', async () => {
    const path = join(mkdtempSync(join(tmpdir(), 'mcu-lock-')), 'dev.flash');
    writeFileSync(path, Buffer.alloc(7)); // the size check would refuse it too: the lock must come first
    const held = lockFile(path);
    try {
      await assert.rejects(runMcu({
        cloud: { host: '127.0.0.1', port: 9 }, id: 'd', credentials: { suite: 'psk', identity: 'd', psk: Buffer.alloc(16) }, profile: 'default', wakes: 1,
        wakeEveryMs: 1000, appAwakeMs: 100, flashPath: path, build: 'wasm2c', publish: false, log: () => {},
      }), new RegExp(`--flash ${path.replace(/[.*+?^${}()|[\]\\]/g, '\\$&')}: is in use by process ${process.pid}`));
    } finally {
      held.release();
    }
  });
});

/** Pids of the running processes whose parent is `ppid` and whose command is `comm`. */
function childrenOf(ppid: number, comm: string): number[] {
  const out: number[] = [];
  for (const name of readdirSync('/proc')) {
    if (!/^\d+$/.test(name)) continue;
    try {
      const stat = readFileSync(`/proc/${name}/stat`, 'utf8');
      const fields = stat.slice(stat.lastIndexOf(')') + 2).split(' ');
      if (Number(fields[1]) === ppid && stat.includes(`(${comm})`) && fields[0] !== 'Z') out.push(Number(name));
    } catch { /* it ended meanwhile */ }
  }
  return out;
}

/** The process runs (exists and is no zombie). */
const alive = (pid: number): boolean => {
  try {
    const stat = readFileSync(`/proc/${pid}/stat`, 'utf8');
    return !stat.slice(stat.lastIndexOf(')') + 2).startsWith('Z');
  } catch {
    return false;
  }
};

describe('mcu: a host killed with SIGKILL leaves no QEMU writing its flash file', () => {
  it('the image dies with its host (the next host takes the dead holder\'s lock over: a surviving QEMU would write beside it)', async (t) => {
    const why = mcuUnavailable('wasm3');
    if (why) return skipOrFail(t, why);
    if (process.platform !== 'linux') return t.skip('parent-death signals are Linux only');
    const dir = mkdtempSync(join(tmpdir(), 'mcu-kill-'));
    // No cloud answers on port 9: the image stays up for its whole --awake time.
    const host = spawn(process.execPath, [BIN, 'mcu', '--cloud', '127.0.0.1:9', '--id', 'k', '--psk', '00'.repeat(16), '--wakes', '1',
      '--awake', '300s', '--flash', join(dir, 'dev.flash')], { stdio: 'ignore' });
    let qemu: number[] = [];
    try {
      for (let i = 0; i < 600 && qemu.length === 0; i++) {
        await new Promise((r) => setTimeout(r, 100));
        qemu = childrenOf(host.pid!, 'qemu-system-arm');
      }
      assert.equal(qemu.length, 1, 'the host started its QEMU');
      host.kill('SIGKILL');
      let left = true;
      for (let i = 0; i < 300 && left; i++) {
        await new Promise((r) => setTimeout(r, 100));
        left = alive(qemu[0]);
      }
      assert.equal(left, false, `QEMU ${qemu[0]} still runs 30 s after its host was killed`);
    } finally {
      host.kill('SIGKILL');
      for (const pid of qemu) if (alive(pid)) process.kill(pid, 'SIGKILL'); // a failed run leaves no image behind
      rmSync(dir, { recursive: true, force: true });
    }
  });
});
