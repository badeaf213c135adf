// `mcu --flash FILE` takes the same exclusive lock as `device --flash FILE` (issue 17: two hosts on
// one flash file resume one session and reuse nonces; docs/persistence.md). The lock is taken
// before QEMU or a socket starts, so this needs neither.
import { describe, it } from 'node:test';
import assert from 'node:assert/strict';
import { mkdtempSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { runMcu } from '../../host/mcu/bridge.ts';
import { lockFile } from '../../host/board/file-lock.ts';

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
