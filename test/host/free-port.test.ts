/**
 * Ports for child servers come from below the kernel's ephemeral range: a port from "bind 0, close"
 * can be handed to the next socket bound to port 0 before the child binds it (a CI live replay died
 * of EADDRINUSE that way).
 */
import assert from 'node:assert/strict';
import dgram from 'node:dgram';
import net from 'node:net';
import { describe, it } from 'node:test';
import { FREE_PORT_MIN, ephemeralPortRange, freeTcpPort, freeUdpPort } from '../../host/free-port.ts';

describe('free ports for child servers', () => {
  it('UDP and TCP ports are below the ephemeral range and can be bound', async () => {
    const [low] = ephemeralPortRange();
    for (let i = 0; i < 20; i++) {
      const udp = await freeUdpPort();
      assert.ok(udp >= FREE_PORT_MIN && udp < low, `UDP port ${udp} in ${FREE_PORT_MIN}..${low - 1}`);
      const s = dgram.createSocket('udp4');
      await new Promise<void>((resolve, reject) => {
        s.once('error', reject);
        s.bind(udp, '127.0.0.1', resolve);
      });
      await new Promise<void>((r) => s.close(() => r()));

      const tcp = await freeTcpPort();
      assert.ok(tcp >= FREE_PORT_MIN && tcp < low, `TCP port ${tcp} in ${FREE_PORT_MIN}..${low - 1}`);
      const server = net.createServer();
      await new Promise<void>((resolve, reject) => {
        server.once('error', reject);
        server.listen(tcp, '127.0.0.1', resolve);
      });
      await new Promise((r) => server.close(r));
    }
  });

  it('a port picked is never the one the next port-0 sockets get', async () => {
    const udp = await freeUdpPort();
    const sockets: dgram.Socket[] = [];
    try {
      for (let i = 0; i < 500; i++) {
        const s = dgram.createSocket('udp4');
        sockets.push(s);
        await new Promise<void>((r) => s.bind(0, '127.0.0.1', r));
        assert.notEqual(s.address().port, udp, `socket ${i} got the picked port ${udp}`);
      }
    } finally {
      await Promise.all(sockets.map((s) => new Promise<void>((r) => s.close(() => r()))));
    }
  });
});
