/**
 * The load process of the cloud benchmark (forked by bench/cloud.ts). One phase per process:
 *  - handshakes: `sockets` sockets each run one full handshake after another, spread over the
 *    front ends, for `durationMs`;
 *  - records: handshakes one session per device, then keeps `window` CoAP pings in flight over
 *    those sessions, sealed on the fly, each sent to the next front end in turn (the session
 *    follows its CID through the shared store), for `durationMs`;
 *  - events: one session and one socket per device, each device publishing events one after
 *    another (a CON POST /e/…, the next once the 2.04 came; the same message again after 1 s
 *    without one), for `durationMs`; reports when each event was ACKed (wall clock, ms), so the
 *    parent, which runs the webhook receiver, can measure ACK → webhook.
 * The parent counts completed operations on the cloud side (its metrics), not here.
 */
import crypto from 'node:crypto';
import dgram from 'node:dgram';
import { once } from 'node:events';
import { TestDtlsClient } from '../test/host/fixtures/cloud-client.ts';
import { wallMs } from './lib.ts';

export interface LoadConfig {
  mode: 'handshakes' | 'records' | 'events';
  ports: number[];
  devices: { id: string; identity: string; psk: string; handle: string }[];
  sockets: number;
  durationMs: number;
  window: number;
}

export type LoadMessage = { phase: 'running' } | { phase: 'done'; stalls: number; acks?: [string, number][] } | { phase: 'error'; message: string };

const send = (m: LoadMessage) => process.send!(m);
/** The last message, then the channel closed once it is written (a large message could be cut off otherwise). */
const sendLast = (m: LoadMessage) => process.send!(m, undefined, {}, () => process.disconnect());
const sleep = (ms: number) => new Promise((r) => setTimeout(r, ms));

async function socket(): Promise<dgram.Socket> {
  const s = dgram.createSocket({ type: 'udp4', recvBufferSize: 4 << 20, sendBufferSize: 4 << 20 });
  s.bind(0, '127.0.0.1');
  await once(s, 'listening');
  return s;
}

/** One handshake on `s` against `port`; the client when it completed within 2 s, else null. */
function handshake(s: dgram.Socket, port: number, d: LoadConfig['devices'][number]): Promise<TestDtlsClient | null> {
  const c = new TestDtlsClient({ identity: d.identity, psk: Buffer.from(d.psk, 'hex'), offerCid: Buffer.from(d.handle, 'hex') });
  const done = new Promise<TestDtlsClient | null>((resolve) => {
    const timer = setTimeout(() => resolve(null), 2000);
    s.removeAllListeners('message');
    s.on('message', (msg: Buffer) => {
      const r = c.receive(msg);
      for (const x of r.send) s.send(x, port, '127.0.0.1');
      if (c.state === 'connected') {
        clearTimeout(timer);
        resolve(c);
      }
    });
  });
  s.send(c.start(), port, '127.0.0.1');
  return done;
}

async function handshakes(cfg: LoadConfig): Promise<number> {
  const sockets = await Promise.all(Array.from({ length: cfg.sockets }, () => socket()));
  let running = true;
  let stalls = 0;
  const loops = sockets.map(async (s, i) => {
    let k = i;
    while (running) {
      const port = cfg.ports[k % cfg.ports.length];
      if (!(await handshake(s, port, cfg.devices[k++ % cfg.devices.length]))) stalls++;
    }
  });
  send({ phase: 'running' });
  await sleep(cfg.durationMs);
  running = false;
  await Promise.all(loops);
  for (const s of sockets) s.close();
  return stalls;
}

async function records(cfg: LoadConfig): Promise<number> {
  const hs = await socket();
  const sessions: TestDtlsClient[] = [];
  for (const d of cfg.devices) {
    const c = await handshake(hs, cfg.ports[0], d);
    if (c) sessions.push(c);
  }
  hs.close();
  if (sessions.length === 0) throw new Error('no session could be established');
  const s = await socket();
  let outstanding = 0;
  let turn = 0;
  let lastAnswer = Date.now();
  let stalls = 0;
  const fill = () => {
    while (outstanding < cfg.window) {
      const c = sessions[turn % sessions.length];
      s.send(c.ping(), cfg.ports[turn++ % cfg.ports.length], '127.0.0.1');
      outstanding++;
    }
  };
  s.on('message', () => {
    outstanding--;
    lastAnswer = Date.now();
    fill();
  });
  const watchdog = setInterval(() => {
    if (Date.now() - lastAnswer > 50) {
      stalls++;
      outstanding = 0; // lost datagrams: refill the window
      fill();
    }
  }, 20);
  fill();
  send({ phase: 'running' });
  await sleep(cfg.durationMs);
  clearInterval(watchdog);
  s.close();
  return stalls;
}


async function events(cfg: LoadConfig): Promise<{ stalls: number; acks: [string, number][] }> {
  const devices = cfg.devices.slice(0, cfg.sockets);
  const sessions: { c: TestDtlsClient; s: dgram.Socket; d: LoadConfig['devices'][number] }[] = [];
  for (const d of devices) {
    const s = await socket();
    const c = await handshake(s, cfg.ports[0], d);
    if (c) sessions.push({ c, s, d });
    else s.close();
  }
  if (sessions.length === 0) throw new Error('no session could be established');
  const acks: [string, number][] = [];
  let stalls = 0;
  let running = true;
  const loops = sessions.map(async ({ c, s, d }) => {
    const incarnation = crypto.randomBytes(4);
    let waiting: { mid: number; done: () => void } | null = null;
    s.removeAllListeners('message');
    s.on('message', (msg: Buffer) => {
      const r = c.receive(msg);
      for (const x of r.send) s.send(x, cfg.ports[0], '127.0.0.1');
      for (const e of r.events) {
        if (e.kind !== 'coap' || !waiting) continue;
        const m = e.message;
        if (((m[0] >> 4) & 3) === 2 && m[1] === 0x44 && m.readUInt16BE(2) === waiting.mid) waiting.done();
      }
    });
    for (let seq = 0; running; seq++) {
      const mid = c.nextMid();
      for (;;) {
        const acked = await new Promise<boolean>((resolve) => {
          const timer = setTimeout(() => resolve(false), 1000);
          waiting = { mid, done: () => (clearTimeout(timer), resolve(true)) };
          // A retransmission is the same CoAP message (same MID) in a new record.
          s.send(c.event('t', seq, Buffer.from(`v${seq}`), { mid, incarnation }), cfg.ports[0], '127.0.0.1');
        });
        waiting = null;
        if (acked) break;
        stalls++;
      }
      acks.push([`${d.id}:${incarnation.toString('hex')}:${seq}`, wallMs()]);
    }
  });
  send({ phase: 'running' });
  await sleep(cfg.durationMs);
  running = false;
  await Promise.all(loops);
  for (const { s } of sessions) s.close();
  return { stalls, acks };
}

process.once('message', (cfg: LoadConfig) => {
  (cfg.mode === 'events' ? events(cfg) : (cfg.mode === 'handshakes' ? handshakes(cfg) : records(cfg)).then((stalls) => ({ stalls, acks: undefined }))).then(
    ({ stalls, acks }) => {
      sendLast({ phase: 'done', stalls, ...(acks ? { acks } : {}) });
    },
    (e: Error) => {
      sendLast({ phase: 'error', message: e.stack ?? e.message });
    },
  );
});
