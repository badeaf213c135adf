// Record protection speed: the module (as the device runs it) against node:crypto (as a server
// runs it: one createCipheriv/createDecipheriv per record, which includes the key schedule).
import crypto from 'node:crypto';
import type { Engine } from '../host/engines/engine.ts';
import { TEST_WASM, readFirmware } from '../host/firmware.ts';
import { ModuleCrypto } from '../host/crypto-abi.ts';
import { compare, fmt, table } from './lib.ts';

const TAG = 8;

export async function benchCrypto(engine: Engine): Promise<{ text: string; rows: (string | number)[][] }> {
  const mc = new ModuleCrypto(await engine.load(readFirmware(TEST_WASM)));
  const key = crypto.randomBytes(16), nonce = crypto.randomBytes(12), aad = crypto.randomBytes(13);
  mc.setKey(key);
  const rows: (string | number)[][] = [];
  for (const size of [64, 800]) {
    const pt = crypto.randomBytes(size);
    const c = crypto.createCipheriv('aes-128-ccm', key, nonce, { authTagLength: TAG });
    c.setAAD(aad, { plaintextLength: size });
    const sealed = Buffer.concat([c.update(pt), c.final(), c.getAuthTag()]);
    const r = compare({
      moduleSeal: () => mc.ccmSeal(nonce, aad, pt),
      nodeSeal: () => {
        const e = crypto.createCipheriv('aes-128-ccm', key, nonce, { authTagLength: TAG });
        e.setAAD(aad, { plaintextLength: size });
        e.update(pt); e.final(); e.getAuthTag();
      },
      moduleOpen: () => mc.ccmOpen(nonce, aad, sealed),
      nodeOpen: () => {
        const d = crypto.createDecipheriv('aes-128-ccm', key, nonce, { authTagLength: TAG });
        d.setAuthTag(sealed.subarray(size));
        d.setAAD(aad, { plaintextLength: size });
        d.update(sealed.subarray(0, size)); d.final();
      },
    });
    rows.push([`seal ${size} B`, fmt(r.moduleSeal), fmt(r.nodeSeal), (r.moduleSeal / r.nodeSeal).toFixed(2)]);
    rows.push([`open ${size} B`, fmt(r.moduleOpen), fmt(r.nodeOpen), (r.moduleOpen / r.nodeOpen).toFixed(2)]);
  }
  // Raw AES: 1,000 blocks per call inside the module vs node's ECB over 16,000 bytes.
  const block = crypto.randomBytes(16000);
  const r = compare({
    moduleAes: () => mc.m.call('crypto_aes_encrypt_blocks', 1000),
    nodeAes: () => {
      const e = crypto.createCipheriv('aes-128-ecb', key, null);
      e.setAutoPadding(false);
      e.update(block);
    },
  }, 5, 200);
  const moduleMBs = (r.moduleAes * 16000) / 1e6, nodeMBs = (r.nodeAes * 16000) / 1e6;
  rows.push(['AES-128 blocks, MB/s', fmt(moduleMBs), fmt(nodeMBs), (moduleMBs / nodeMBs).toFixed(3)]);
  mc.m.dispose();
  const text = table([`AES-128-CCM-8 (${engine.name}), records/s`, 'module', 'node:crypto', 'module/node'], rows);
  return { text, rows };
}
