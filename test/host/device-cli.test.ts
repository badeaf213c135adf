// `sleepy-session device` as a user runs it (the real process): bad --flash files are refused before
// anything starts; the clock keeps running across restarts; a reading that finds the firmware's
// outbox full waits on the host and is published once the outbox drains.
import { describe, it } from 'node:test';
import assert from 'node:assert/strict';
import crypto from 'node:crypto';
import dgram from 'node:dgram';
import { once } from 'node:events';
import fs from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { DeviceRegistry } from '../../host/cloud/devices.ts';
import { startCloud } from '../../host/cloud/server.ts';
import { Proc, startCloudProcess, until, webhookServer } from './fixtures/cloud-tools.ts';
import { udpRelay } from './fixtures/udp-relay.ts';
import { SLOT, SLOT_AT, SLOT_BYTES, SLOT_MAGIC, newestSlot, resealSlot } from './fixtures/persisted.ts';
import { FlashFile } from '../../host/board/flash-file.ts';
import { Device } from '../../host/device.ts';
import { runDevice } from '../../host/device-cli.ts';
import { V8Engine } from '../../host/engines/v8.ts';

const BIN = fileURLToPath(new URL('../../bin/sleepy-session.mjs', import.meta.url));
const PSK = 'a1'.repeat(16);
const tmp = () => fs.mkdtempSync(join(tmpdir(), 'sleepy-device-'));

function device(cloudPort: number, flash: string, ...extra: string[]): Proc {
  return Proc.spawn(process.execPath, [BIN, 'device', '--cloud', `127.0.0.1:${cloudPort}`, '--id', 'cli-dev', '--psk', PSK,
    '--wake-every', '10s', '--publish-every-wake', '--flash', flash, ...extra]);
}

/** Virtual seconds of every log stamp ("   12.3s cli-dev ..."). */
const stamps = (out: string) => [...out.matchAll(/^ *(\d+\.\d)s /gm)].map((m) => Number(m[1]));

describe('device --flash: bad files are refused before anything starts', () => {
  const cases: [string, (dir: string) => string, RegExp][] = [
    ['a short file', (d) => (fs.writeFileSync(join(d, 'f.bin'), Buffer.alloc(512, 0xff)), join(d, 'f.bin')), /--flash .*f\.bin: is 512 bytes; a flash image is exactly 1280 bytes/],
    ['an empty file (what a kill inside writeFileSync left)', (d) => (fs.writeFileSync(join(d, 'f.bin'), ''), join(d, 'f.bin')), /--flash .*: is 0 bytes/],
    ['a directory', (d) => d, /--flash .*: is a directory, not a file/],
    ['a path in a missing folder', (d) => join(d, 'missing', 'f.bin'), /--flash .*: its folder .*missing does not exist/],
    ['1280 random bytes', (d) => (fs.writeFileSync(join(d, 'f.bin'), crypto.randomBytes(1280)), join(d, 'f.bin')),
      /--flash .*: holds the credentials of another device .* or damaged ones/],
  ];
  for (const [what, make, message] of cases) {
    it(`${what}: one line naming the flag and the problem, exit 2, no datagram, the file untouched`, async () => {
      const cloud = dgram.createSocket('udp4');
      let received = 0;
      cloud.on('message', () => received++);
      cloud.bind(0, '127.0.0.1');
      await once(cloud, 'listening');
      const path = make(tmp());
      const before = fs.existsSync(path) && fs.statSync(path).isFile() ? fs.readFileSync(path) : null;
      const d = device(cloud.address().port, path, '--wakes', '1');
      const code = await d.exited;
      await new Promise((r) => setTimeout(r, 50));
      cloud.close();
      assert.equal(code, 2, d.err);
      const lines = d.err.trim().split('\n');
      assert.equal(lines.length, 1, `one line, got: ${d.err}`);
      assert.match(lines[0], /^sleepy-session: device: /);
      assert.match(lines[0], message);
      assert.equal(received, 0, 'nothing was sent');
      if (before) assert.deepEqual(fs.readFileSync(path), before, 'the file is left as it was');
    });
  }

  it('a file provisioned with another PSK is refused, and one with the same flags is used', async () => {
    const cloud = dgram.createSocket('udp4');
    cloud.bind(0, '127.0.0.1');
    await once(cloud, 'listening');
    const path = join(tmp(), 'f.bin');
    // A first run against a silent cloud provisions the file; its wake then fails quietly.
    const first = device(cloud.address().port, path, '--wakes', '1', '--speed', '1000');
    assert.equal(await first.exited, 0, first.err);
    assert.match(first.out.toString(), /provisioned into/);
    const other = Proc.spawn(process.execPath, [BIN, 'device', '--cloud', `127.0.0.1:${cloud.address().port}`, '--id', 'cli-dev', '--psk', 'b2'.repeat(16), '--wakes', '1', '--flash', path]);
    assert.equal(await other.exited, 2);
    assert.match(other.err, /--flash .*holds the credentials of another device/);
    const again = device(cloud.address().port, path, '--wakes', '1', '--speed', '1000');
    assert.equal(await again.exited, 0, again.err);
    assert.doesNotMatch(again.out.toString(), /provisioned into/);
    cloud.close();
  });
});

describe('device --flash: any 1280 bytes behind genuine credentials', () => {
  it('CRC-valid session slots with random fields and lengths: the host runs its wake and stops cleanly, no PSK on the wire', { timeout: 120_000 }, async () => {
    const psk = Buffer.from(PSK, 'hex');
    const opts = { id: 'cli-dev', credentials: { suite: 'psk' as const, identity: 'cli-dev', psk }, profile: 'default' as const, engine: new V8Engine() };
    const creds = (await new Device({ ...opts, send: () => {} }).provisioningWrites()).find((w) => w.offset === 0)!;
    const silent = dgram.createSocket('udp4');
    const sent: Buffer[] = [];
    silent.on('message', (m) => sent.push(m));
    silent.bind(0, '127.0.0.1');
    await once(silent, 'listening');
    let counter = 0; // seeded: a failing sample reproduces
    const random = (n: number) => Buffer.concat(Array.from({ length: Math.ceil(n / 64) },
      () => crypto.createHash('sha512').update(`any-1280/${counter++}`).digest())).subarray(0, n);
    try {
      for (let sample = 0; sample < 25; sample++) {
        const image = new Uint8Array(1280).fill(0xff);
        image.set(creds.bytes, 0);
        for (const at of SLOT_AT) {
          if (sample % 4 === 3 && at === SLOT_AT[1]) continue; // sometimes one slot erased
          const slot = Buffer.from(image.buffer, at, SLOT_BYTES);
          random(SLOT_BYTES).copy(slot);
          slot.writeUInt32LE(SLOT_MAGIC, 0);
          slot.set(creds.bytes.subarray(184, 188), SLOT.credsCrc); // belongs to these credentials
          slot[SLOT.flags] = sample % 2 === 0 ? 0x0f : random(1)[0];
          resealSlot(image, at);
        }
        const path = join(tmp(), 'f.bin');
        fs.writeFileSync(path, image);
        const flash = FlashFile.open(path, 1280, 0xff);
        const log: string[] = [];
        await runDevice({
          ...opts, cloud: { host: '127.0.0.1', port: silent.address().port }, wakeEveryMs: 1000, publishEveryWake: true,
          speed: 1000, wakes: 1, appAwakeMs: 3000, flash, log: (l) => log.push(l),
        }).catch((e: Error) => assert.fail(`sample ${sample}: the host stopped with ${e.message}\n${log.join('\n')}`));
        assert.ok(log.some((l) => / wake 1: /.test(l)), `sample ${sample}: no wake\n${log.join('\n')}`);
      }
      await new Promise((r) => setTimeout(r, 50));
      assert.ok(sent.length > 0, 'the device sent something');
      for (const d of sent) assert.equal(d.indexOf(psk), -1, 'the PSK in a datagram');
    } finally {
      silent.close();
    }
  });
});

describe('device --flash across restarts', () => {
  it('the clock keeps running: a restart continues after the last stamp and the stored session is not from the future', async () => {
    const cloud = await startCloud({ port: 0, devices: new DeviceRegistry([{ id: 'cli-dev', identity: 'cli-dev', psk: Buffer.from(PSK, 'hex') }]) });
    try {
      const path = join(tmp(), 'f.bin');
      const first = device(cloud.port, path, '--wakes', '2', '--speed', '20');
      assert.equal(await first.exited, 0, first.err);
      const session = newestSlot(fs.readFileSync(path));
      assert.ok(session?.hasSession, `the first run made a session: ${first.out}`);
      const second = device(cloud.port, path, '--wakes', '1', '--speed', '20');
      assert.equal(await second.exited, 0, second.err);
      const a = stamps(first.out.toString()), b = stamps(second.out.toString());
      assert.ok(b[0] >= a[a.length - 1], `the second run starts at ${b[0]} s, before the first run's last stamp ${a[a.length - 1]} s`);
      assert.match(second.out.toString(), /resumed the stored session/);
      const host = JSON.parse(fs.readFileSync(`${path}.host`, 'utf8'));
      assert.ok(BigInt(host.clock.virtualMs) >= session!.created, 'the session was created before the device clock now');
    } finally {
      await cloud.close();
    }
  });

  it('a reading that finds the outbox full waits on the host and is delivered once the outbox drains', { timeout: 120_000 }, async () => {
    const hook = await webhookServer();
    const cloud = await startCloud({ port: 0, devices: new DeviceRegistry([{ id: 'cli-dev', identity: 'cli-dev', psk: Buffer.from(PSK, 'hex') }]), webhook: { url: hook.url, baseDelayMs: 10 } });
    let d: Proc | undefined;
    // The uplink is dead for the first 8 wakes: 6 readings fill the outbox, 2 more must wait.
    const wakesSeen = () => (d?.out.toString().match(/ wake \d+:/g) ?? []).length;
    const net = await udpRelay(cloud.port, { dropUplink: () => wakesSeen() < 9 });
    try {
      const path = join(tmp(), 'f.bin');
      d = device(net.port, path, '--wakes', '14', '--speed', '50');
      assert.equal(await d.exited, 0, d.err);
      const out = d.out.toString();
      const expected = Array.from({ length: 14 }, (_, i) => `wake ${i + 1}`);
      const delivered = () => new Set(hook.accepted().map((r) => Buffer.from(r.body.data as string, 'base64').toString()));
      await until(() => expected.every((e) => delivered().has(e)), 10_000, 'every reading at the webhook').catch(() => {});
      assert.deepEqual(expected.filter((e) => !delivered().has(e)), [], `readings never delivered; device log:\n${out}`);
      assert.match(out, /outbox full: \d+ reading\(s\) wait on the host/, 'the outbox did fill: the test exercised the host queue');
    } finally {
      net.close();
      await cloud.close();
      await hook.close();
    }
  });
});

describe('device with ECDHE-ECDSA (--server-key) against a cloud --key process', () => {
  const cloudKey = (dir: string) => {
    const path = join(dir, 'cloud.key');
    fs.writeFileSync(path, crypto.generateKeyPairSync('ec', { namedCurve: 'P-256' }).privateKey.export({ type: 'pkcs8', format: 'pem' }));
    return path;
  };
  const run = (...args: string[]) => Proc.spawn(process.execPath, [BIN, ...args]);
  const entryOf = (text: string) => /\{"id":"[^"]+","publicKey":"04[0-9a-f]{128}"\}/.exec(text)?.[0];

  it('provision, print the public key, register it, run: the wakes complete and the events reach the webhook; a restart keeps the key', { timeout: 120_000 }, async () => {
    const dir = tmp();
    const key = cloudKey(dir);
    const printed = run('cloud', '--key', key, '--print-public-key');
    assert.equal(await printed.exited, 0, printed.err);
    const pubFile = join(dir, 'cloud.pub');
    fs.writeFileSync(pubFile, printed.out);
    const flash = join(dir, 'dev.flash');
    // The factory step: the device generates its key pair and prints the devices-file entry.
    const provisioned = run('device', '--flash', flash, '--id', 'ecdhe-dev', '--server-key', pubFile, '--print-public-key');
    assert.equal(await provisioned.exited, 0, provisioned.err);
    assert.match(provisioned.err, /^device: provisioned .*dev\.flash \(profile default\): the device generated its key pair/);
    const entry = provisioned.out.toString().trim();
    assert.equal(entryOf(entry), entry, `one devices-file entry on stdout: ${entry}`);
    assert.equal(JSON.parse(entry).id, 'ecdhe-dev');
    const again = run('device', '--flash', flash, '--print-public-key');
    assert.equal(await again.exited, 0, again.err);
    assert.equal(again.out.toString().trim(), entry, 'printed again from the file: the same key');
    // A provisioned file is only read: the key prints while a device process holds the file's lock.
    const held = FlashFile.open(flash, 1280, 0xff);
    try {
      const whileHeld = run('device', '--flash', flash, '--print-public-key');
      assert.equal(await whileHeld.exited, 0, whileHeld.err);
      assert.equal(whileHeld.out.toString().trim(), entry);
    } finally {
      held.close();
    }

    const devices = join(dir, 'devices.json');
    fs.writeFileSync(devices, JSON.stringify({ devices: [JSON.parse(entry)] }));
    const hook = await webhookServer();
    const cloud = await startCloudProcess(['--devices', devices, '--key', key, '--port', '0', '--metrics-port', '0', '--webhook', hook.url]);
    const delivered = () => new Set(hook.accepted().map((r) => `${r.body.device} ${Buffer.from(r.body.data as string, 'base64')}`));
    const device = (wakes: number) => run('device', '--cloud', `127.0.0.1:${cloud.port}`, '--id', 'ecdhe-dev', '--server-key', printed.out.toString().trim(),
      // At --speed 10 the 3 s retransmission timer is 300 wall ms: a loaded machine can still cost a wake its
      // handshake (README), so the verdicts are on delivery, which the next wake completes.
      '--flash', flash, '--wakes', String(wakes), '--wake-every', '10s', '--speed', '10', '--publish-every-wake');
    try {
      const first = device(2);
      assert.equal(await first.exited, 0, first.err);
      const out = first.out.toString();
      assert.equal(entryOf(out), entry, `the device names its registered key at start:\n${out}`);
      assert.match(out, / connected\n/);
      assert.match(out, /event #1 acknowledged/);
      await until(() => delivered().has('ecdhe-dev wake 2'), 20_000, 'the events at the webhook').catch(() => {});
      assert.deepEqual(['wake 1', 'wake 2'].filter((w) => !delivered().has(`ecdhe-dev ${w}`)), [], `events never delivered; device log:\n${out}`);

      const second = device(1);
      assert.equal(await second.exited, 0, second.err);
      const out2 = second.out.toString();
      assert.equal(entryOf(out2), entry, 'the restart runs under the same key pair');
      assert.doesNotMatch(out2, /provisioned/);
      assert.match(out2, /resumed the stored session/);
      await until(() => delivered().has('ecdhe-dev wake 3'), 20_000, 'the event of the restart at the webhook').catch(() => {});
      assert.ok(delivered().has('ecdhe-dev wake 3'), `the restart's event was not delivered; device log:\n${out2}`);
      const pemBody = fs.readFileSync(key, 'utf8').split('\n').filter((l) => l && !l.startsWith('-----')).join('');
      for (const text of [out, out2, first.err, second.err, provisioned.err]) assert.ok(!text.includes(pemBody.slice(40, 80)), 'no private key in the output');
    } finally {
      cloud.proc.kill();
      await cloud.proc.exited;
      await hook.close();
    }
  });

  it('without --flash every run is a new device with a new key pair, printed at start', async () => {
    const dir = tmp();
    const printed = run('cloud', '--key', cloudKey(dir), '--print-public-key');
    assert.equal(await printed.exited, 0, printed.err);
    const silent = dgram.createSocket('udp4');
    silent.bind(0, '127.0.0.1');
    await once(silent, 'listening');
    try {
      const entries: string[] = [];
      for (let i = 0; i < 2; i++) {
        const d = run('device', '--cloud', `127.0.0.1:${silent.address().port}`, '--id', 'ram-dev', '--server-key', printed.out.toString().trim(), '--wakes', '1', '--speed', '1000');
        assert.equal(await d.exited, 0, d.err);
        assert.match(d.out.toString(), /provisioned in RAM \(no --flash: a new key pair at every run\); register its public key with the cloud/);
        entries.push(entryOf(d.out.toString())!);
      }
      assert.ok(entries[0] && entries[1] && entries[0] !== entries[1], `two runs, two keys: ${entries.join(' ')}`);
    } finally {
      silent.close();
    }
  });

  it('a flash provisioned with other credentials, and bad key files, are refused naming the flag', async () => {
    const dir = tmp();
    const key = cloudKey(dir);
    const printed = run('cloud', '--key', key, '--print-public-key');
    assert.equal(await printed.exited, 0, printed.err);
    const pub = printed.out.toString().trim();
    const otherPub = crypto.generateKeyPairSync('ec', { namedCurve: 'P-256' }).publicKey;
    const otherPem = join(dir, 'other.pub');
    fs.writeFileSync(otherPem, otherPub.export({ type: 'spki', format: 'pem' }));
    const flash = join(dir, 'dev.flash');
    const p = run('device', '--flash', flash, '--id', 'ecdhe-dev', '--server-key', pub, '--print-public-key');
    assert.equal(await p.exited, 0, p.err);
    const pskFlash = join(dir, 'psk.flash');
    const silent = dgram.createSocket('udp4');
    silent.bind(0, '127.0.0.1');
    await once(silent, 'listening');
    const cloudFlag = ['--cloud', `127.0.0.1:${silent.address().port}`];
    try {
      const provisionPsk = run('device', ...cloudFlag, '--id', 'psk-dev', '--psk', PSK, '--flash', pskFlash, '--wakes', '1', '--speed', '1000');
      assert.equal(await provisionPsk.exited, 0, provisionPsk.err);
      const before = fs.readFileSync(flash);
      const cases: [string[], RegExp][] = [
        [['--id', 'ecdhe-dev', '--server-key', otherPem, '--flash', flash], /--flash \S+dev\.flash: holds the credentials of another device \(--id, --server-key and --profile must be the ones it was provisioned with\)/],
        [['--id', 'other-dev', '--server-key', pub, '--flash', flash], /holds the credentials of another device/],
        [['--id', 'ecdhe-dev', '--server-key', pub, '--profile', 'fixed', '--flash', flash], /holds the credentials of another device/],
        [['--id', 'ecdhe-dev', '--psk', PSK, '--flash', flash], /--flash \S+dev\.flash: holds ECDHE-ECDSA credentials \(provisioned with --server-key\); run it with those, or name another file/],
        [['--id', 'psk-dev', '--server-key', pub, '--flash', pskFlash], /--flash \S+psk\.flash: holds PSK credentials \(provisioned with --psk\)/],
        [['--id', 'ecdhe-dev', '--server-key', key], /--server-key \S+cloud\.key: is a private key; a device pins the cloud's public key only/],
        [['--id', 'ecdhe-dev', '--server-key', join(dir, 'missing.pub')], /--server-key \S+missing\.pub: cannot read the file \(ENOENT\); expected 130 hex digits/],
        [['--id', 'ecdhe-dev', '--server-key', flash], /--server-key \S+dev\.flash: the file holds neither 130 hex digits nor a PEM public key/],
      ];
      for (const [args, message] of cases) {
        const d = run('device', ...cloudFlag, ...args, '--wakes', '1');
        assert.equal(await d.exited, 2, `${args.join(' ')}: ${d.err}`);
        assert.equal(d.err.trim().split('\n').length, 1, `one line: ${d.err}`);
        assert.match(d.err, /^sleepy-session: device: /);
        assert.match(d.err, message);
      }
      const printPsk = run('device', '--flash', pskFlash, '--print-public-key');
      assert.equal(await printPsk.exited, 2);
      assert.match(printPsk.err, /holds PSK credentials \(provisioned with --psk\): a PSK device has no public key/);
      const printOther = run('device', '--flash', flash, '--id', 'ecdhe-dev', '--server-key', otherPem, '--print-public-key');
      assert.equal(await printOther.exited, 2);
      assert.match(printOther.err, /holds the credentials of another device/);
      assert.deepEqual(fs.readFileSync(flash), before, 'the refused runs left the file as it was');
      assert.ok(!fs.readFileSync(key, 'utf8').split('\n').slice(1, 3).some((l) => l.length > 8 && (p.err + p.out).includes(l)), 'the cloud key is never quoted');
    } finally {
      silent.close();
    }
  });
});
