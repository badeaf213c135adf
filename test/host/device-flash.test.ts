// Persistent memory in a file (host/board/flash-file.ts) and the host contract over it: every block
// the firmware stores is written in place and fsynced before any datagram is sent; the RTC of the
// `device` command keeps running across restarts (host/board/rtc.ts).
import { describe, it } from 'node:test';
import assert from 'node:assert/strict';
import { spawn, spawnSync } from 'node:child_process';
import fs from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { Proc } from './fixtures/cloud-tools.ts';
import { Board } from '../../host/board/board.ts';
import { FlashFile, FlashFileError, type FlashIo } from '../../host/board/flash-file.ts';
import { ScaledClock } from '../../host/board/rtc.ts';
import { V8Engine } from '../../host/engines/v8.ts';
import { World } from '../../host/sim/world.ts';
import { startWakeCycle } from '../../host/sim/wake-cycle.ts';
import { parseDatagram } from './dtls-ref.ts';
import { SERVER_CID_BYTES } from '../../host/cloud/wire.ts';
import { newestSlot } from './fixtures/persisted.ts';

const tmp = () => fs.mkdtempSync(join(tmpdir(), 'sleepy-flash-'));

describe('FlashFile', () => {
  it('creates an erased image durably, then writes in place: same file, same size', () => {
    const dir = tmp();
    const path = join(dir, 'flash.bin');
    const f = FlashFile.open(path, 1280, 0xff);
    assert.equal(f.created, true);
    assert.ok(f.initial.every((b) => b === 0xff), 'f.initial.every((b) => b === 0xff)');
    assert.deepEqual(fs.readdirSync(dir).sort(), ['flash.bin', 'flash.bin.lock.1'], 'no temporary file left behind (only the lock)');
    const inode = fs.statSync(path).ino;
    f.write(192, new Uint8Array(544).fill(7));
    f.close();
    const bytes = fs.readFileSync(path);
    assert.equal(fs.statSync(path).ino, inode, 'written in place, not replaced');
    assert.equal(bytes.length, 1280);
    assert.ok(bytes.subarray(192, 736).every((b) => b === 7) && bytes.subarray(0, 192).every((b) => b === 0xff) && bytes.subarray(736).every((b) => b === 0xff), 'bytes.subarray(192, 736).every((b) => b === 7) && bytes.subarray(0, 192).every((b) => b === 0xff)...');
    const again = FlashFile.open(path, 1280, 0xff);
    assert.equal(again.created, false);
    assert.deepEqual(Buffer.from(again.initial), bytes);
    again.close();
  });

  it('each write is one pwrite at the block offset followed by an fsync', () => {
    const ops: string[] = [];
    const io: FlashIo = {
      writeSync: (fd, b, off, len, pos) => (ops.push(`pwrite ${pos}+${len}`), fs.writeSync(fd, b, off, len, pos)),
      fsyncSync: (fd) => (ops.push('fsync'), fs.fsyncSync(fd)),
    };
    const f = FlashFile.open(join(tmp(), 'f.bin'), 1280, 0xff, io);
    f.write(736, new Uint8Array(544));
    f.write(0, new Uint8Array(192));
    f.close();
    assert.deepEqual(ops, ['pwrite 736+544', 'fsync', 'pwrite 0+192', 'fsync']);
  });

  for (const [what, setup, message] of [
    ['a short file', (d: string) => (fs.writeFileSync(join(d, 'f'), Buffer.alloc(100)), join(d, 'f')), /is 100 bytes; a flash image is exactly 1280 bytes/],
    ['an empty file', (d: string) => (fs.writeFileSync(join(d, 'f'), ''), join(d, 'f')), /is 0 bytes/],
    ['a directory', (d: string) => d, /is a directory, not a file/],
    ['a missing folder', (d: string) => join(d, 'nope', 'f'), /its folder .*nope does not exist/],
    ['a file as folder', (d: string) => (fs.writeFileSync(join(d, 'plain'), ''), join(d, 'plain', 'f')), /does not exist|is not a folder/],
  ] as [string, (d: string) => string, RegExp][]) {
    it(`refuses ${what} with one clear reason and leaves it as it was`, () => {
      const dir = tmp();
      const path = setup(dir);
      const before = fs.existsSync(path) && fs.statSync(path).isFile() ? fs.readFileSync(path) : null;
      assert.throws(() => FlashFile.open(path, 1280, 0xff), (e: Error) => e instanceof FlashFileError && message.test(e.message) && !e.message.includes('\n'));
      if (before) assert.deepEqual(fs.readFileSync(path), before);
    });
  }
});

const ROOT = fileURLToPath(new URL('../..', import.meta.url));

/** A pid that ran and is gone (reaped). */
function deadPid(): number {
  const r = spawnSync(process.execPath, ['-e', 'process.stdout.write(String(process.pid))']);
  return Number(r.stdout.toString());
}

describe('FlashFile: one process at a time (issue 17, item 2)', () => {
  const open = (path: string) => FlashFile.open(path, 1280, 0xff);

  it('a second open of the same file (by any path to it) is refused, naming the file and the holder, until the first closes', () => {
    const dir = tmp();
    const path = join(dir, 'flash.bin');
    const first = open(path);
    fs.symlinkSync(path, join(dir, 'alias.bin'));
    for (const other of [path, join(dir, '.', 'flash.bin'), join(dir, 'alias.bin')]) {
      assert.throws(() => open(other), (e: FlashFileError) => e instanceof FlashFileError && e.holderPid === process.pid
        && e.message.includes(`process ${process.pid}`) && e.message.includes(join(fs.realpathSync(dir), 'flash.bin.lock.1')) && !e.message.includes('\n'));
    }
    first.close();
    const again = open(path);
    assert.equal(again.created, false);
    again.close();
  });

  it('takes over a lock left by a dead process, and one whose pid now belongs to another process', () => {
    const dir = tmp();
    const path = join(dir, 'flash.bin');
    fs.writeFileSync(`${path}.lock.1`, `${deadPid()} 1\n`);
    const a = open(path);
    assert.deepEqual(fs.readdirSync(dir).filter((f) => f.includes('.lock')), ['flash.bin.lock.2'], 'the stale lock replaced');
    a.close();
    // A live pid (our parent) with another start time: the process that wrote the lock is gone.
    fs.writeFileSync(`${path}.lock.3`, `${process.ppid} 1\n`);
    const b = open(path);
    b.close();
    assert.deepEqual(fs.readdirSync(dir).filter((f) => f.includes('.lock')), ['flash.bin.lock.4']);
    assert.equal(fs.readFileSync(`${path}.lock.4`, 'utf8'), 'free\n', 'released on close');
  });

  it('of processes that open together on a stale lock, exactly one gets the file', async () => {
    const dir = tmp();
    const path = join(dir, 'flash.bin');
    fs.writeFileSync(`${path}.lock.7`, `${deadPid()} 1\n`);
    const at = Date.now() + 4000; // every process has loaded by then, and opens at the same moment
    const script = `import { FlashFile } from './host/board/flash-file.ts';
      while (Date.now() < ${at}) await new Promise((r) => setTimeout(r, 1));
      try { const f = FlashFile.open(${JSON.stringify(path)}, 1280, 0xff); console.log('got'); setTimeout(() => f.close(), 1000); }
      catch (e) { console.log(e.holderPid ? 'refused' : 'error ' + e.message); }`;
    const procs = Array.from({ length: 4 }, () => new Proc(spawn(process.execPath, ['--import', 'tsx', '--input-type=module', '-e', script], { cwd: ROOT })));
    await Promise.all(procs.map((p) => p.exited));
    const outcomes = procs.map((p) => p.out.toString().trim() || p.err.trim()).sort();
    assert.deepEqual(outcomes, ['got', 'refused', 'refused', 'refused']);
  });

  it('sleepy-session device: a second process on the same --flash FILE exits 2 naming the holder; after kill -9 of the holder the file is taken over', { timeout: 60_000 }, async () => {
    const dir = tmp();
    const path = join(dir, 'dev.flash');
    const device = () => Proc.spawn(process.execPath, [join(ROOT, 'bin/sleepy-session.mjs'), 'device', '--cloud', '127.0.0.1:9', '--id', 'lock-dev',
      '--psk', '00112233445566778899aabbccddeeff', '--wake-every', '10s', '--speed', '100', '--flash', path]);
    const first = device();
    try {
      await first.wait((p) => / wake 1: /.test(p.out.toString()), 30_000, 'the first device to wake');
      const second = device();
      const code = await Promise.race([second.exited, new Promise((r) => setTimeout(() => r('still running after 20 s'), 20_000))]);
      second.kill('SIGKILL');
      assert.equal(code, 2, `the second device on the same file: ${code}; ${second.out.toString().slice(0, 300)}${second.err}`);
      const lines = second.err.trim().split('\n');
      assert.equal(lines.length, 1, second.err);
      assert.match(lines[0], new RegExp(`--flash ${path}: is in use by process ${first.child.pid} \\(lock .*dev\\.flash\\.lock\\.1\\)`));
      assert.ok(first.alive, 'the holder goes on');
      first.kill('SIGKILL');
      await first.exited;
      const third = device();
      try {
        await third.wait((p) => / wake \d+: /.test(p.out.toString()), 30_000, 'the restarted device to wake');
      } finally {
        third.kill('SIGKILL');
        await third.exited;
      }
    } finally {
      first.kill('SIGKILL');
      await first.exited;
    }
  });
});

describe('host contract on a file-backed board', () => {
  it('every stored block is written and fsynced before the next datagram, which finds its sequence number reserved in the file', async () => {
    const ops: string[] = [];
    const io: FlashIo = {
      writeSync: (fd, b, off, len, pos) => (ops.push('write'), fs.writeSync(fd, b, off, len, pos)),
      fsyncSync: (fd) => (ops.push('fsync'), fs.fsyncSync(fd)),
    };
    const path = join(tmp(), 'flash.bin');
    const flash = FlashFile.open(path, 1280, 0xff, io);
    const board = new Board('contract');
    board.memory.backing = flash;
    const world = new World({ seed: 'contract' });
    const [device] = await world.addDevices([{ id: 'dev-c', identity: 'dev-c', profile: 'default', engine: new V8Engine(), board }]);
    const send = device.opts.send;
    let reservationChecks = 0;
    (device.opts as { send: typeof send }).send = (d) => {
      ops.push('send');
      // What the file holds as the datagram leaves: the sequence number of each record in it is
      // reserved there (the handshake's own flight, with epoch-0 records, needs no reservation).
      const stored = newestSlot(fs.readFileSync(path));
      // The server CID's length: the session's once it holds one, else the one the cloud issues.
      const records = parseDatagram(d, stored?.hasSession ? stored.peerCid.length : SERVER_CID_BYTES);
      if (!records.some((r) => r.epoch === 0)) {
        for (const r of records) {
          reservationChecks++;
          assert.ok(stored?.hasSession && stored.writeReserved > r.seq, `record seq ${r.seq} sent with ${stored?.writeReserved} reserved in the file`);
        }
      }
      send(d);
    };
    startWakeCycle(world, device, { wakeEveryMs: 60_000, appAwakeMs: 3000, publishEveryWake: true }, 0);
    await world.runUntil(5 * 60_000);
    flash.close();
    assert.ok(reservationChecks >= 5 && ops.filter((o) => o === 'write').length >= 5, ops.join(' '));
    for (let i = 0; i < ops.length; i++) {
      if (ops[i] === 'write') assert.equal(ops[i + 1], 'fsync', `write #${i} not followed by its fsync`);
    }
    assert.deepEqual(fs.readFileSync(path), Buffer.from(board.memory.bytes), 'the file holds exactly what the firmware stored');
    assert.ok(world.deliveredEvents('dev-c').length >= 4, 'the device worked');
  });
});

describe('ScaledClock (the device RTC across restarts)', () => {
  it('starts at the wall clock, runs at its speed, and continues after a restart at another speed', () => {
    let wall = 1_000_000;
    const c1 = new ScaledClock(null, 600, () => wall);
    assert.equal(c1.now(), 1_000_000);
    wall += 10;
    assert.equal(c1.now(), 1_006_000);
    const saved = c1.mark();
    wall += 5; // the process uses 3 s more, then dies; restarted 5 wall ms after the mark
    const c2 = new ScaledClock(saved, 1, () => wall);
    assert.equal(c2.now(), 1_009_000, 'the stopped time counts at the speed of the run that stopped');
    wall += 1000;
    assert.equal(c2.now(), 1_010_000);
  });

  it('never runs backwards when the wall clock steps back', () => {
    let wall = 5000;
    const c = new ScaledClock(null, 10, () => wall);
    wall = 6000;
    const high = c.now();
    wall = 5500;
    assert.equal(c.now(), high);
    const restarted = new ScaledClock(c.mark(), 10, () => 4000);
    assert.equal(restarted.now(), high);
  });
});
