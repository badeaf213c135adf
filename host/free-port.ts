/**
 * Free loopback ports for servers started as child processes on a port chosen here (redis-server,
 * `sleepy-session cloud` that must keep its port across a restart, openssl/gnutls servers).
 *
 * Why not "bind port 0, read the port, close": that port comes from the kernel's ephemeral range,
 * and between the close and the child's bind any socket bound to port 0 (a device's UDP socket, an
 * outgoing TCP connection) may be handed the same port — a CI run lost a live replay to exactly
 * that (EADDRINUSE). A port below the ephemeral range is never handed out implicitly, so only an
 * explicit bind to the same number could take it.
 */
import dgram from 'node:dgram';
import { readFileSync } from 'node:fs';
import net from 'node:net';

/** Lowest port we pick: clear of the well-known and registered ports most services use. */
export const FREE_PORT_MIN = 10_000;
const ATTEMPTS = 200;

/** The kernel's ephemeral range [low, high] (Linux; the IANA range elsewhere). */
export function ephemeralPortRange(): [number, number] {
  try {
    const [low, high] = readFileSync('/proc/sys/net/ipv4/ip_local_port_range', 'utf8').trim().split(/\s+/).map(Number);
    if (low > 0 && high >= low) return [low, high];
  } catch {
    // not Linux
  }
  return [49_152, 65_535];
}

function udpFree(port: number): Promise<boolean> {
  return new Promise((resolve) => {
    const s = dgram.createSocket('udp4');
    s.once('error', () => resolve(false));
    s.bind(port, '127.0.0.1', () => s.close(() => resolve(true)));
  });
}

/** Whether a TCP listener can bind 127.0.0.1:`port` now. */
export function tcpFree(port: number): Promise<boolean> {
  return new Promise((resolve) => {
    const s = net.createServer();
    s.once('error', () => resolve(false));
    s.listen(port, '127.0.0.1', () => s.close(() => resolve(true)));
  });
}

async function pick(kind: string, free: (port: number) => Promise<boolean>): Promise<number> {
  const [low] = ephemeralPortRange();
  const top = low - 1;
  if (top < FREE_PORT_MIN + 100) throw new Error(`no room below the ephemeral port range (starts at ${low}) to pick a ${kind} port`);
  for (let i = 0; i < ATTEMPTS; i++) {
    const port = FREE_PORT_MIN + Math.floor(Math.random() * (top - FREE_PORT_MIN + 1));
    if (await free(port)) return port;
  }
  throw new Error(`no free ${kind} port on 127.0.0.1 in ${FREE_PORT_MIN}..${top} after ${ATTEMPTS} tries`);
}

/** A TCP port on 127.0.0.1, free now, below the ephemeral range. */
export function freeTcpPort(): Promise<number> {
  return pick('TCP', tcpFree);
}

/** A UDP port on 127.0.0.1, free now, below the ephemeral range. */
export function freeUdpPort(): Promise<number> {
  return pick('UDP', udpFree);
}
