/**
 * Writes the seed inputs of every native target into fuzz/corpus/TARGET/ from the captured
 * conversation with the cloud (fuzz/capture.ts): each real cloud datagram from each starting
 * state, the real persisted region, real CoAP exchanges. Formats: the comment at the top of
 * each fuzz/harness/TARGET.c. Run after a firmware change; then `npm run fuzz -- TARGET` grows
 * and `node fuzz/run.mjs minimize TARGET` shrinks the corpus.
 */
import { mkdirSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { COAP_ACK, COAP_CON, COAP_RST, CODE_CHANGED, CODE_EMPTY, CODE_POST, encodeCoap, pathOptions } from '../host/cloud/coap.ts';
import { readFirmware } from '../host/firmware.ts';
import { captureEcdhe, captureLifecycle } from './capture.ts';
import { eventMessage } from '../test/host/fixtures/cloud-client.ts';
import { ECDHE_MARKS, MARKS } from './ops.ts';

const u16 = (n: number) => Buffer.from([n & 0xff, n >> 8]);

export async function writeSeeds(dir: string, wasm = readFirmware()): Promise<number> {
  const life = await captureLifecycle(wasm);
  const ecdhe = await captureEcdhe(wasm);
  const files: [string, string, Buffer][] = [];
  const add = (target: string, name: string, data: Buffer) => files.push([target, name, data]);

  // The ECDHE snapshots are picked by first bytes 0xC0-0xC7 (common.h, pick_mark); from them, the
  // datagrams the device was given in that conversation (the server flight one message each).
  const startsOf = [
    ...MARKS.map((mark, m) => ({ mark, m, cloud: life.cloudToDevice, what: 'cloud' })),
    ...ECDHE_MARKS.map((mark, i) => ({ mark, m: 0xc0 + i, cloud: ecdhe.fed, what: 'fed' })),
  ];
  startsOf.forEach(({ mark, m, cloud, what }) => {
    add('datagram', `${mark}-timer`, Buffer.from([m, 2, 2]));
    add('datagram', `${mark}-publish`, Buffer.from([m, 6, 2]));
    cloud.forEach((d, i) => {
      add('datagram', `${mark}-${what}${i}`, Buffer.concat([Buffer.from([m, 0]), u16(d.length), d]));
      add('abi', `${mark}-${what}${i}`, Buffer.concat([Buffer.from([m, 6]), u16(d.length), d, Buffer.from([9])]));
    });
    add('abi', `${mark}-sleep-wake-publish`, Buffer.from([m, 5, 11, 3, 4, 2, ...Buffer.from('evt1ab'), 9, 8, 0x10, 0]));
    add('abi', `${mark}-cut-publish`, Buffer.from([m, 10, 7, 3, 2, 1, 0x61, 0x62, 0x63, 11, 3, 2, 1, 0x61, 0x62, 0x63]));
    const sends = ['a', 'b', 'c', 'd', 'e'].map((c) => Buffer.concat([Buffer.from([4, 5, 0]), Buffer.from(c.repeat(5))]));
    const pubs = [1, 2, 3, 4, 5, 6, 7].map((i) => Buffer.from([3, 1, 1, 0x60 + i, i]));
    add('abi', `${mark}-all-held-publishes`, Buffer.concat([Buffer.from([m, 0xee]), ...pubs, Buffer.from([9, 9, 0xee])]));
    add('abi', `${mark}-held-sends`, Buffer.concat([Buffer.from([m, 0xef]), ...sends, Buffer.from([0xef])]));
    add('abi', `${mark}-connect-send-close`, Buffer.from([m, 1, 9, 4, 3, 0, 0x61, 0x62, 0x63, 2]));
    // Every other export (abi.c, op bytes 0xF0-0xF6).
    const cfg = (k: number, v: number) => [0xf0, k, v & 0xff, (v >> 8) & 0xff, (v >> 16) & 0xff, (v >> 24) & 0xff, 0];
    add('abi', `${mark}-config-every-key`, Buffer.from([m, ...Array.from({ length: 18 }, (_, k) => cfg(k, k === 2 ? 1 : 100)).flat(), 0xf4, 9]));
    add('abi', `${mark}-provision-cid-connect`, Buffer.from([m, 0xf1, 5, 4, ...Buffer.from('identkey!'), 0xf2, 4, 1, 2, 3, 4, 1, 9, 0xf4]));
    for (let p = 0; p < 4; p++) add('abi', `${mark}-provision-device-profile${p}-boot`, Buffer.from([m, 0xf3, p, 0, 7, 0, 9, 0xf4]));
    for (let p = 0; p < 3; p++) add('abi', `${mark}-reprofile${p}-publish-sleep`, Buffer.from([m, 0xf5, p, 3, 1, 1, 0x61, 0x62, 5, 11, 7, 1, 0xf4]));
    // Cut datagrams, sealed ones, the session under the legacy and fixed profiles (datagram.c).
    const sealed = (t: number, body: Buffer) => [4, t, body.length & 0xff, body.length >> 8, ...body];
    add('datagram', `${mark}-cut-sealed`, Buffer.from([m, 0xf8, 0, 0, 24, 0, ...Buffer.alloc(24, 0x41)]));
    for (let p = 0; p < 2; p++) {
      add('datagram', `${mark}-profile${p}-cut-sealed`, Buffer.from([m, 0xf9, p, 0xf8, 0, 0, 24, 0, ...Buffer.alloc(24, 0x41), 2]));
      add('datagram', `${mark}-profile${p}-sealed-alert-timer`, Buffer.from([m, 0xf9, p, ...sealed(1, Buffer.from([2, 40])), 6, 2, 2]));
    }
  });
  // From wait-finished: the server's ChangeCipherSpec (plain, epoch 0), then its Finished (message
  // sequence 3) sealed under the handshake's own keys with wrong verify_data, or the wrong length.
  const ccs = Buffer.from([20, 0xfe, 0xfd, 0, 0, 0, 0, 0, 0, 0, 0x20, 0, 1, 1]);
  for (const [name, n] of [['bad-verify-data', 12], ['short', 8]] as const) {
    const fin = Buffer.concat([Buffer.from([20, 0, 0, n, 0, 3, 0, 0, 0, 0, 0, n]), Buffer.alloc(n, 0x33)]);
    add('datagram', `wait-finished-finished-${name}`, Buffer.concat([Buffer.from([MARKS.indexOf('wait-finished'), 0]), u16(ccs.length), ccs,
      Buffer.from([4, 2]), u16(fin.length), fin]));
  }
  // The stateless reset: a record of ours ending in the session's reset token, from each state.
  startsOf.forEach(({ mark, m }) => add('datagram', `${mark}-reset-token`, Buffer.from([m, 0xfa, 8, 2])));
  ecdheSeeds(ecdhe.fed, add);
  // Cookie rounds up to the limit (datagram.c 0xFB: HelloVerifyRequests answering ClientHello
  // message_seq 0, 1, 2, …), and the hint window closed on a wake (0xF9 0x80: default profile, bit 7) before a cut record.
  const hvr = (seq: number) => [0xfb, seq, 4, 0xc0, 0x0c, 0x1e, seq];
  add('datagram', 'client-hello-cookie-rounds', Buffer.from([MARKS.indexOf('client-hello'), ...[0, 1, 2, 3, 4, 5].flatMap(hvr)]));
  add('datagram', 'confirmed-hint-window-closed-cut-sealed', Buffer.from([MARKS.indexOf('confirmed'), 0xf9, 0x80, 0xf8, 0, 0, 24, 0, ...Buffer.alloc(24, 0x41)]));
  // The HelloVerifyRequest again and again (the round limit).
  add('datagram', 'client-hello-hvr-rounds', Buffer.from([MARKS.indexOf('client-hello'), ...Array(12).fill([3, 0]).flat()]));

  // The persisted region as the conversation left it: flags 0 (CRCs fixed up), each follow-up.
  for (let what = 0; what < 4; what++) add('boot', `captured-then-${what}`, Buffer.concat([Buffer.from([what << 2]), life.flash]));
  add('boot', 'captured-crc-as-is', Buffer.concat([Buffer.from([1]), life.flash]));
  add('boot', 'captured-unseeded', Buffer.concat([Buffer.from([16]), life.flash]));

  // CoAP from the cloud: acknowledgements of the device's next message ID, resets, requests.
  const slot = newestSlot(life.flash);
  const mid = slot ? slot.readUInt16LE(14) : 0;
  const msgs: [string, Buffer][] = [
    ['ack-empty', encodeCoap({ type: COAP_ACK, code: CODE_EMPTY, mid })],
    ['ack-changed', encodeCoap({ type: COAP_ACK, code: CODE_CHANGED, mid, token: Buffer.from([1, 2, 3, 4]) })],
    ['rst', encodeCoap({ type: COAP_RST, code: CODE_EMPTY, mid })],
    ['con-ping', encodeCoap({ type: COAP_CON, code: CODE_EMPTY, mid: 0x1234 })],
    ['con-post-rt', encodeCoap({ type: COAP_CON, code: CODE_POST, mid: 0x2345, token: Buffer.from([9]), options: pathOptions(['rt']), payload: Buffer.alloc(16, 7) })],
    ['con-post-e', encodeCoap({ type: COAP_CON, code: CODE_POST, mid: 0x3456, options: pathOptions(['e', 'x']), payload: Buffer.from('data') })],
  ];
  for (const [name, m] of msgs) {
    for (const flags of [0, 2, 1 | 2 | 4]) add('coap', `${name}-f${flags}`, Buffer.concat([Buffer.from([flags, m.length]), m]));
  }
  // The cloud (Jazzer.js, fuzz/cloud/target.ts): what the firmware sent it, its ClientHello with
  // a cookie, CoAP events over an established session, and the timer.
  life.deviceToCloud.forEach((d, i) => add('cloud', `firmware${i}`, Buffer.concat([Buffer.from([0, i % 4]), u16(d.length), d])));
  const ch = life.deviceToCloud[0];
  add('cloud', 'firmware-hello-with-cookie', Buffer.concat([Buffer.from([1]), u16(ch.length), ch, Buffer.from([3, 10, 0])]));
  const event = eventMessage('temp', 7, Buffer.from('21.5'), 0x4242);
  add('cloud', 'session-event', Buffer.concat([Buffer.from([2]), u16(event.length), event, Buffer.from([3, 50, 0])]));
  // Structure-aware handshakes (target.ts op 0xF5): the device's options, no CID, no extended
  // master secret, other suites, a fragmented ClientHello, a byte altered in the second flight.
  add('cloud', 'client-handshake', Buffer.from([0xf5, 0, 4, 1, 2, 3, 4, 5]));
  add('cloud', 'client-no-cid', Buffer.from([0xf5, 0, 0, 5]));
  add('cloud', 'client-no-ems', Buffer.from([0xf5, 2, 4, 1, 2, 3, 4, 5]));
  for (let s = 1; s < 6; s++) add('cloud', `client-suites${s}`, Buffer.from([0xf5, s << 2, 0, 3]));
  add('cloud', 'client-fragmented-hello', Buffer.from([0xf5, 32, 4, 1, 2, 3, 4, 2, 5]));
  add('cloud', 'client-other-identity', Buffer.from([0xf5, 1, 4, ...Buffer.from('id-2'), 0, 5]));
  add('cloud', 'client-altered-flight', Buffer.from([0xf5, 0, 4, 1, 2, 3, 4, 5, 0, 0, 0, 0, 0, 0, 30, 0, 0x40]));
  const ping = encodeCoap({ type: COAP_CON, code: CODE_EMPTY, mid: 0x1111 });
  add('cloud', 'session-ping-twice', Buffer.concat([Buffer.from([2]), u16(ping.length), ping, Buffer.from([2]), u16(ping.length), ping]));
  for (const [target, name, data] of files) {
    mkdirSync(join(dir, target), { recursive: true });
    writeFileSync(join(dir, target, `seed-${name}`), data);
  }
  return files.length;
}

/**
 * The ECDHE handshake (datagram.c, abi.c): from each snapshot of the server flight, the rest of the
 * flight and the Finished (the handshake completes: the device's ephemeral key and the cloud's
 * signatures are the captured ones), and that rest with one message spoilt — another key in the
 * Certificate, a signature or point of the ServerKeyExchange altered, another curve, a
 * CertificateRequest without ECDSA, the Certificate in two fragments. abi: the ECDHE exports
 * (0xF7 provision_ecdhe, 0xF8 provision_device_ecdhe, 0xF9 device_public_key, 0xF6 edge 5).
 */
function ecdheSeeds(fed: Buffer[], add: (target: string, name: string, data: Buffer) => void): void {
  const start = (mark: (typeof ECDHE_MARKS)[number]) => 0xc0 + ECDHE_MARKS.indexOf(mark);
  const op0 = (d: Buffer) => Buffer.concat([Buffer.from([0]), u16(d.length), d]);
  // fed: 0 HelloVerifyRequest, 1 ServerHello, 2 Certificate, 3 ServerKeyExchange,
  // 4 CertificateRequest, 5 ServerHelloDone, 6 ChangeCipherSpec + Finished, then the session's.
  const flightMarks = ['ecdhe-hello-verify', 'ecdhe-server-hello', 'ecdhe-certificate', 'ecdhe-server-key-exchange', 'ecdhe-certificate-request'] as const;
  flightMarks.forEach((mark, k) => {
    add('datagram', `${mark}-rest-of-flight`, Buffer.concat([Buffer.from([start(mark)]), ...fed.slice(k + 1, 7).map(op0), Buffer.from([2])]));
  });
  const spoilt = (i: number, at: number, xor: number) => {
    const d = Buffer.from(fed[i]);
    d[at < 0 ? d.length + at : at] ^= xor;
    return d;
  };
  const rest = (from: number, d: Buffer) => Buffer.concat([op0(d), ...fed.slice(from + 1, 7).map(op0), Buffer.from([2])]);
  add('datagram', 'ecdhe-server-hello-certificate-other-key', Buffer.concat([Buffer.from([start('ecdhe-server-hello')]), rest(2, spoilt(2, -1, 1))]));
  add('datagram', 'ecdhe-server-hello-certificate-other-prefix', Buffer.concat([Buffer.from([start('ecdhe-server-hello')]), rest(2, spoilt(2, 13 + 12 + 3 + 5, 1))]));
  add('datagram', 'ecdhe-certificate-ske-bad-signature', Buffer.concat([Buffer.from([start('ecdhe-certificate')]), rest(3, spoilt(3, -2, 1))]));
  add('datagram', 'ecdhe-certificate-ske-bad-point', Buffer.concat([Buffer.from([start('ecdhe-certificate')]), rest(3, spoilt(3, 13 + 12 + 4 + 20, 1))]));
  add('datagram', 'ecdhe-certificate-ske-other-curve', Buffer.concat([Buffer.from([start('ecdhe-certificate')]), rest(3, spoilt(3, 13 + 12 + 2, 0x0f))]));
  add('datagram', 'ecdhe-certificate-ske-signed-randoms-swapped', Buffer.concat([Buffer.from([start('ecdhe-certificate')]), rest(3, spoilt(3, 13 + 12 + 69, 1))]));
  add('datagram', 'ecdhe-server-key-exchange-cr-no-ecdsa', Buffer.concat([Buffer.from([start('ecdhe-server-key-exchange')]), rest(4, spoilt(4, 13 + 12 + 1, 0x7f))]));
  // The Certificate in two fragments (record sequence numbers kept; the second one above the first).
  const cert = fed[2], body = cert.subarray(25), half = body.length >> 1;
  const frag = (off: number, part: Buffer, seqBump: number) => {
    const h = Buffer.from(cert.subarray(0, 25));
    h[10] += seqBump;
    h.writeUInt16BE(12 + part.length, 11);
    h.writeUIntBE(off, 19, 3);
    h.writeUIntBE(part.length, 22, 3);
    return Buffer.concat([h, part]);
  };
  add('datagram', 'ecdhe-server-hello-certificate-fragmented', Buffer.concat([Buffer.from([start('ecdhe-server-hello')]),
    op0(frag(0, body.subarray(0, half), 0)), op0(frag(half, body.subarray(half), 1)), ...fed.slice(3, 7).map(op0), Buffer.from([2])]));
  // abi: provision_ecdhe from the PSK idle state (not booted), then connect and a wake.
  for (const [ps, ks] of [[0, 0], [1, 0], [2, 0], [3, 0], [0, 1], [0, 2], [0, 3], [0, 4]]) {
    add('abi', `idle-provision-ecdhe-${ps}-${ks}`, Buffer.from([0, 0xf7, ps, ks, 0xf9, 1, 9, 0xf4]));
  }
  // provision_device_ecdhe: generated and injected keys, each profile and an invalid one, id
  // lengths at both ends, then device_public_key and a boot from what flash holds.
  for (const m of [0, start('ecdhe-client-hello'), start('ecdhe-connected')]) {
    for (const [profile, inject, idLen, ks] of [[2, 0, 11, 0], [2, 1, 11, 0], [0, 1, 11, 3], [1, 1, 48, 0], [3, 1, 11, 0], [2, 2, 11, 0], [2, 1, 0, 0], [2, 1, 49, 0], [2, 1, 11, 2]]) {
      add('abi', `${m}-provision-device-ecdhe-${profile}-${inject}-${idLen}-${ks}`, Buffer.from([m, 0xf8, profile, inject, idLen, 0, ks, 0xf9, 11, 0xf9]));
    }
    add('abi', `${m}-public-key-held-generate`, Buffer.from([m, 0xee, 0xf8, 2, 0, 11, 0, 0, 0xf9, 0xee, 0xf9, 11, 0xf9]));
    // 0xF6 edge 5: provision_device_ecdhe with idLen and injectKey from the edge table (0, 1, 48, 49, -1).
    for (const [a, b] of [[8, 1], [9, 0], [20, 1], [0, 20], [16, 1], [1, 2]]) add('abi', `${m}-edge-provision-device-ecdhe-${a}-${b}`, Buffer.from([m, 0xf6, 5, a, b, 0xf9]));
  }
}

function newestSlot(flash: Uint8Array): Buffer | null {
  const b = Buffer.from(flash);
  const slots = [192, 736].map((at) => b.subarray(at, at + 544)).filter((s) => (s.readUInt32LE(0) & 0xffffff) === 0x504c53) // "SLP" + layout version;
  if (slots.length === 0) return null;
  return slots.reduce((a, s) => ((s.readUInt32LE(4) - a.readUInt32LE(4)) | 0) > 0 ? s : a);
}

if (import.meta.url === `file://${process.argv[1]}`) {
  const dir = process.argv[2] ?? 'fuzz/corpus';
  console.log(`seeds: ${await writeSeeds(dir)} files in ${dir}`);
}
