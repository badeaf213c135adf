/**
 * The load process of the cloud benchmark (forked by bench/cloud.ts): handshakes as fast as it
 * can from several sockets, then keeps a window of CoAP pings in flight over the sessions it made
 * and counts the ACKs. Talks to the parent over IPC so the parent can sample counters and CPU at
 * the phase boundaries.
 */
import dgram from 'node:dgram';
import { once } from 'node:events';
import { TestDtlsClient } from '../test/host/fixtures/cloud-client.ts';

export interface LoadConfig {
  port: number;
  devices: { identity: string; psk: string; handle: string }[];
  handshakeSockets: number;
  handshakeMs: number;
  recordMs: number;
  warmupMs: number;
  window: number;
}

export type LoadMessage =
  | { phase: 'handshakes-start' }
  | { phase: 'handshakes-end'; handshakes: number; stalls: number }
  | { phase: 'records-start' }
  | { phase: 'records-end'; answered: number; sent: number }
  | { phase: 'error'; message: string };

const send = (m: LoadMessage) => process.send!(m);
const sleep = (ms: number) => new Promise((r) => setTimeout(r, ms));

async function socket(): Promise<dgram.Socket> {
  const s = dgram.createSocket({ type: 'udp4', recvBufferSize: 4 << 20, sendBufferSize: 4 << 20 });
  s.bind(0, '127.0.0.1');
  await once(s, 'listening');
  return s;
}

async function run(cfg: LoadConfig): Promise<void> {
  // Phase 1: handshakes. Each socket runs one handshake after another (pending handshakes are
  // keyed by address on the server, so concurrency needs distinct sockets).
  const sockets = await Promise.all(Array.from({ length: cfg.handshakeSockets }, () => socket()));
  const sessions: TestDtlsClient[] = [];
  let counting = false;
  let handshakes = 0;
  let stalls = 0;
  let running = true;
  const loops = sockets.map(async (s, i) => {
    let k = i;
    while (running) {
      const d = cfg.devices[k++ % cfg.devices.length];
      const c = new TestDtlsClient({ identity: d.identity, psk: Buffer.from(d.psk, 'hex'), offerCid: Buffer.from(d.handle, 'hex') });
      const done = new Promise<boolean>((resolve) => {
        const timer = setTimeout(() => resolve(false), 1000);
        const onMsg = (msg: Buffer) => {
          const r = c.receive(msg);
          for (const x of r.send) s.send(x, cfg.port, '127.0.0.1');
          if (c.state === 'connected') {
            clearTimeout(timer);
            resolve(true);
          }
        };
        s.removeAllListeners('message');
        s.on('message', onMsg);
      });
      s.send(c.start(), cfg.port, '127.0.0.1');
      if (await done) {
        if (counting) handshakes++;
        sessions[i] = c;
      } else stalls++;
    }
  });
  await sleep(200);
  send({ phase: 'handshakes-start' });
  counting = true;
  await sleep(cfg.handshakeMs);
  counting = false;
  send({ phase: 'handshakes-end', handshakes, stalls });
  running = false;
  await Promise.all(loops);
  for (const s of sockets) s.close();

  // Phase 2: records. Pre-seal enough pings (round-robin over the sessions, in sequence order per
  // session) so that sealing does not compete with sending; then keep `window` in flight.
  const live = sessions.filter((c) => c && c.state === 'connected');
  const budget = 40_000 * Math.ceil((cfg.recordMs + cfg.warmupMs) / 1000);
  const records: Buffer[] = new Array(budget);
  for (let i = 0; i < budget; i++) records[i] = live[i % live.length].ping();
  const s = await socket();
  let next = 0;
  let outstanding = 0;
  let answered = 0;
  let lastAnswer = Date.now();
  const fill = () => {
    while (outstanding < cfg.window && next < budget) {
      s.send(records[next++], cfg.port, '127.0.0.1');
      outstanding++;
    }
  };
  s.on('message', () => {
    answered++;
    outstanding--;
    lastAnswer = Date.now();
    fill();
  });
  const watchdog = setInterval(() => {
    if (Date.now() - lastAnswer > 50) {
      outstanding = 0; // lost datagrams: refill the window
      fill();
    }
  }, 20);
  fill();
  await sleep(cfg.warmupMs);
  const a0 = answered;
  send({ phase: 'records-start' });
  await sleep(cfg.recordMs);
  send({ phase: 'records-end', answered: answered - a0, sent: next });
  clearInterval(watchdog);
  s.close();
}

process.once('message', (cfg: LoadConfig) => {
  run(cfg).then(
    () => process.disconnect(),
    (e: Error) => {
      send({ phase: 'error', message: e.stack ?? e.message });
      process.disconnect();
    },
  );
});
