// The session in retained RAM (issue 20): on a board whose persisted slots live in retained or
// battery-backed RAM (STM32F4 BKPSRAM, nRF52840 RAM kept in System ON idle) and whose credentials
// sit in flash, written once at provisioning (host/board/board.ts CREDENTIALS_BYTES):
//   - a wake writes no flash: every persisted write after provisioning lands in the slots;
//   - a power loss that erases the retained RAM — after any write of the scripted multi-wake
//     scenario of fault-enumeration.test.ts, the RAM powering up as zeros or as noise — loses the
//     session and its keys together: the next boot starts a handshake, no (key, nonce) is ever sent
//     twice, no event number is delivered with two contents, every ACKed event was delivered, and
//     the device is confirmed again by the end.
// Events still unconfirmed in the lost outbox are lost with it: the medium's price (docs/engines.md).
import { describe, it } from 'node:test';
import assert from 'node:assert/strict';
import { writesFlash } from '../../host/board/board.ts';
import { type Fault, recovered, runScenario } from './fixtures/fault-scenario.ts';

describe('the session in retained RAM, credentials in flash', () => {
  it('no flash write after provisioning; a retained-RAM loss after any write heals by a handshake with zero violations', async (t) => {
    const clean = await runScenario({ kind: 'none' }, 'retained-ram');
    assert.deepEqual(clean.violations, []);
    const log = clean.h.memory.log;
    assert.ok(log.slice(0, clean.provisionWrites).some(writesFlash), 'provisioning writes the credentials to flash');
    const perWake = log.slice(clean.provisionWrites);
    assert.ok(perWake.length >= 10, `${perWake.length} writes after provisioning`);
    assert.deepEqual(perWake.filter(writesFlash).map((w) => w.offset), [], 'no write after provisioning reaches flash');

    const faults: Fault[] = [];
    for (let k = clean.provisionWrites; k < clean.writes; k++) {
      for (const fill of ['zeros', 'noise'] as const) faults.push({ kind: 'ram-loss', writeIndex: k, fill });
    }
    const failures: string[] = [];
    let handshakesAfterLoss = 0;
    for (const f of faults) {
      const o = await runScenario(f, 'retained-ram');
      const what = `RAM lost (${f.kind === 'ram-loss' ? f.fill : ''}) after write ${f.kind === 'ram-loss' ? f.writeIndex : ''}`;
      for (const v of [...o.violations, ...recovered(o)]) failures.push(`${what}: ${v}`);
      if (o.bootAfterLoss === undefined) failures.push(`${what}: the power never came back in the scenario`);
      else if (o.bootAfterLoss !== 'handshaking') failures.push(`${what}: the first boot after the loss returned ${o.bootAfterLoss}, not a handshake`);
      else handshakesAfterLoss++;
    }
    t.diagnostic(`${faults.length} retained-RAM losses after ${perWake.length} per-wake writes, each followed by a handshake`);
    assert.deepEqual(failures, [], `${faults.length} retained-RAM losses`);
    assert.equal(handshakesAfterLoss, faults.length);
  });
});
