/**
 * The load process of the cloud benchmark (forked by bench/cloud.ts). One phase per process:
 *  - handshakes: `sockets` sockets each run one full handshake after another, spread over the
 *    front ends, for `durationMs`;
 *  - records: handshakes one session per device, then keeps `window` CoAP pings in flight over
 *    those sessions, sealed on the fly, each sent to the next front end in turn (the session
 *    follows its CID through the shared store), for `durationMs`.
 * The parent counts completed operations on the cloud side (its metrics), not here.
 */
import dgram from 'node:dgram';
import { once } from 'node:events';
import { TestDtlsClient } from '../test/host/fixtures/cloud-client.ts';

export interface LoadConfig {
  mode: 'handshakes' | 'records';
  ports: number[];
  devices: { identity: string; psk: string; handle: string }[];
  sockets: number;
  durationMs: number;
  window: number;
}

export type LoadMessage = { phase: 'running' } | { phase: 'done'; stalls: number } | { phase: 'error'; message: string };

const send = (m: LoadMessage) => process.send!(m);
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

process.once('message', (cfg: LoadConfig) => {
  (cfg.mode === 'handshakes' ? handshakes(cfg) : records(cfg)).then(
    (stalls) => {
      send({ phase: 'done', stalls });
      process.disconnect();
    },
    (e: Error) => {
      send({ phase: 'error', message: e.stack ?? e.message });
      process.disconnect();
    },
  );
});
