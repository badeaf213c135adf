// Bytes and datagrams on the wire for one full DTLS 1.2 handshake, PSK and ECDHE-ECDSA with raw
// public keys (DTLS bytes only: no UDP/IP headers), against the in-process test peer and, when
// available, against openssl s_server (PSK) and gnutls-serv (ECDHE).
import crypto from 'node:crypto';
import { spawnSync } from 'node:child_process';
import { V8Engine } from '../host/engines/v8.ts';
import { loadFirmware } from '../host/firmware.ts';
import { FirmwareClient } from '../host/session-abi.ts';
import { UdpDriver } from '../host/udp-driver.ts';
import { TestPeer, type PeerOptions } from '../test/host/dtls-peer.ts';
import { startSServer } from '../test/host/openssl.ts';
import { gnutlsAvailable, p256KeyPair, startGnutlsServ } from '../test/host/gnutls.ts';
import { p256PrivateFrom, p256Public } from '../test/host/p256-ref.ts';
import { table } from './lib.ts';

interface Wire {
  up: number[];
  down: number[];
}

async function viaPeer(opts: Partial<PeerOptions>): Promise<Wire> {
  const psk = crypto.randomBytes(16);
  const c = new FirmwareClient(await loadFirmware(new V8Engine()));
  c.provision(Buffer.from('device-0001'), psk);
  c.seed(crypto.randomBytes(32));
  if (opts.ecdhe) c.provisionEcdhe(p256Public(opts.ecdhe.serverPrivateKey), p256PrivateFrom(crypto.randomBytes(32)));
  const peer = new TestPeer({ psk, ...opts });
  const wire: Wire = { up: [], down: [] };
  c.connect(0);
  for (let round = 0; round < 5 && c.state !== 'connected'; round++) {
    for (const d of c.drainTransmit()) {
      wire.up.push(d.length);
      for (const r of peer.handle(d)) {
        wire.down.push(r.length);
        c.handleDatagram(0, r);
      }
    }
  }
  if (c.state !== 'connected') throw new Error(`bench handshake ended in ${c.state}`);
  return wire;
}

async function viaOpenssl(): Promise<Wire | string> {
  if (spawnSync('openssl', ['version']).status !== 0) return 'openssl not installed';
  const psk = crypto.randomBytes(16);
  const server = await startSServer({ pskHex: psk.toString('hex'), identity: 'device-0001' });
  const c = new FirmwareClient(await loadFirmware(new V8Engine()));
  c.provision(Buffer.from('device-0001'), psk);
  c.seed(crypto.randomBytes(32));
  c.config('handshakeInitialTimeoutMs', 1000);
  const driver = new UdpDriver(c, { host: '127.0.0.1', port: server.port });
  await driver.open();
  try {
    const state = await driver.handshake();
    if (state !== 'connected') return `handshake ${state}`;
    const k = c.counters();
    if (k.flightRetransmissions > 0) return 'a flight was retransmitted (s_server slow to start); rerun';
    return { up: driver.sentDatagrams.map((d) => d.length), down: driver.receivedDatagrams.map((d) => d.length) };
  } finally {
    driver.close();
    server.stop();
  }
}

async function viaGnutls(): Promise<Wire | string> {
  const missing = gnutlsAvailable('gnutls-serv');
  if (missing) return missing;
  const serverKey = p256KeyPair('server'), deviceKey = p256KeyPair('device');
  const server = await startGnutlsServ(serverKey);
  const c = new FirmwareClient(await loadFirmware(new V8Engine()));
  c.provisionEcdhe(serverKey.publicKey, deviceKey.privateKey);
  c.seed(crypto.randomBytes(32));
  c.config('handshakeInitialTimeoutMs', 2000);
  const driver = new UdpDriver(c, { host: '127.0.0.1', port: server.port });
  await driver.open();
  try {
    const state = await driver.handshake();
    if (state !== 'connected') return `handshake ${state}`;
    if (c.counters().flightRetransmissions > 0) return 'a flight was retransmitted (gnutls-serv slow to start); rerun';
    return { up: driver.sentDatagrams.map((d) => d.length), down: driver.receivedDatagrams.map((d) => d.length) };
  } finally {
    driver.close();
    server.stop();
  }
}

export async function benchHandshakeWire(): Promise<{ text: string; rows: (string | number)[][] }> {
  const cases: [string, Wire | string][] = [
    ['test peer: cookie, EMS, CID 8 B', await viaPeer({ helloVerify: true, cid: crypto.randomBytes(8) })],
    ['test peer: no cookie, EMS, no CID', await viaPeer({ helloVerify: false })],
    ['openssl s_server (cookie, EMS)', await viaOpenssl()],
    ['ECDHE-ECDSA, test peer: cookie, EMS, CID 8 B, device key asked', await viaPeer({ helloVerify: true, cid: crypto.randomBytes(8), ecdhe: { serverPrivateKey: p256PrivateFrom(crypto.randomBytes(32)) } })],
    ['ECDHE-ECDSA, gnutls-serv -r (cookie, EMS, no CID)', await viaGnutls()],
  ];
  const rows = cases.map(([name, w]) => {
    if (typeof w === 'string') return [name, '-', '-', '-', '-', `skipped: ${w}`];
    const up = w.up.reduce((a, b) => a + b, 0), down = w.down.reduce((a, b) => a + b, 0);
    return [name, `${w.up.length} / ${up}`, `${w.down.length} / ${down}`, w.up.length + w.down.length, up + down, ''];
  });
  const text = table(['full handshake', 'device→cloud dgrams / bytes', 'cloud→device dgrams / bytes', 'datagrams', 'bytes', 'note'], rows);
  return { text, rows };
}
