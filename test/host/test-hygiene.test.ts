// Rules for the tests themselves, checked on their source.
//
// Every assert.ok / assert(value) carries a message. Without one, Node 20's assert quotes the
// failing call by re-reading the source file at the stack position; for these TypeScript files run
// through tsx that never returns (seen on hardening.test.ts line 269, 100 % CPU): a failing test hangs its
// file and CI with it instead of failing. npm run test:mutants spent 240 s per mutant on it.
//
// Every planted bug of npm run test:mutants still applies to today's code: a patch that no longer
// matches shows up only at the end of CI, as a mutant that "survived" in 0 s.
import { describe, it } from 'node:test';
import assert from 'node:assert/strict';
import { spawnSync } from 'node:child_process';
import { readFileSync, readdirSync } from 'node:fs';
import { dirname, join } from 'node:path';
import { fileURLToPath } from 'node:url';
import ts from 'typescript';

const here = dirname(fileURLToPath(import.meta.url));

/** `file:line` of every assert(value) / assert.ok(value) call without a message in `text`. */
export function messagelessAsserts(file: string, text: string): string[] {
  const src = ts.createSourceFile(file, text, ts.ScriptTarget.Latest, true);
  const found: string[] = [];
  const visit = (node: ts.Node): void => {
    if (ts.isCallExpression(node) && /^assert(\.ok)?$/.test(node.expression.getText(src)) && node.arguments.length === 1) {
      found.push(`${file}:${src.getLineAndCharacterOfPosition(node.getStart(src)).line + 1}`);
    }
    ts.forEachChild(node, visit);
  };
  visit(src);
  return found;
}

describe('test hygiene', () => {
  it('the check finds a message-less assert.ok and assert(), and passes one with a message', () => {
    const text = "assert.ok(a);\nassert(b);\nassert.ok(c, 'c');\nassert.equal(d, 1);\n";
    assert.deepEqual(messagelessAsserts('x.ts', text), ['x.ts:1', 'x.ts:2']);
  });

  it('every assert.ok / assert(value) in test/host has a message (a failing one without hangs Node 20 under tsx)', () => {
    const files = readdirSync(here, { recursive: true }).map(String).filter((f) => f.endsWith('.ts'));
    assert.ok(files.length > 50, `found only ${files.length} test sources in ${here}`);
    const bad = files.flatMap((f) => messagelessAsserts(join('test/host', f), readFileSync(join(here, f), 'utf8')));
    assert.deepEqual(bad, [], 'give these a message');
  });

  it("every mutant's patch matches today's code exactly once (scripts/mutants.mjs --check)", () => {
    const r = spawnSync(process.execPath, [join(here, '../../scripts/mutants.mjs'), '--check'], { encoding: 'utf8' });
    assert.equal(r.status, 0, `mutants.mjs --check: ${r.stderr || r.stdout}`);
    assert.match(r.stdout, /^\d+ mutants, every patch applies\n$/);
  });
});
