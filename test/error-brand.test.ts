/**
 * isScHsmError and `instanceof ScHsmError` across copies of the package: the ESM build and the
 * CommonJS build loaded into one process each have their own ScHsmError class; the brand
 * (Symbol.for('sc-hsm-ts.ScHsmError')) makes each recognise the other's errors (issue #11).
 */
import { execFileSync } from 'node:child_process';
import { existsSync } from 'node:fs';
import { join } from 'node:path';
import { describe, expect, it } from 'vitest';
import { isScHsmError, ScHsmError } from '../src/errors.js';
import { KeyReplaceError } from '../src/sc-hsm/wrap.js';

const root = join(import.meta.dirname, '..');
const built = existsSync(join(root, 'dist/index.js')) && existsSync(join(root, 'dist/index.cjs'));

describe('ScHsmError brand', () => {
  it('an error made by another copy of the class is recognised', () => {
    // a stand-in for the other build: a class of its own that carries the same registered brand
    class Other extends Error {
      code = 'WRONG_PIN';
    }
    Object.defineProperty(Other.prototype, Symbol.for('sc-hsm-ts.ScHsmError'), { value: true });
    const e = new Other('x');
    expect(isScHsmError(e)).toBe(true);
    expect(isScHsmError(e, 'WRONG_PIN')).toBe(true);
    expect(isScHsmError(e, 'NO_CARD')).toBe(false);
    expect(e instanceof ScHsmError).toBe(true);
  });

  it('plain errors and non-objects are not ScHsmErrors', () => {
    expect(isScHsmError(new Error('x'))).toBe(false);
    expect(isScHsmError(null)).toBe(false);
    expect(isScHsmError('WRONG_PIN')).toBe(false);
    expect(new Error('x') instanceof ScHsmError).toBe(false);
    expect({} instanceof ScHsmError).toBe(false);
  });

  it('a subclass keeps the ordinary instanceof', () => {
    const plain = new ScHsmError('KEY_LOST', 'x');
    expect(plain instanceof ScHsmError).toBe(true);
    expect(plain instanceof KeyReplaceError).toBe(false);
    const sub = new KeyReplaceError('KEY_LOST', 'x', { now: 'unknown' });
    expect(sub instanceof KeyReplaceError).toBe(true);
    expect(sub instanceof ScHsmError).toBe(true);
    expect(isScHsmError(sub, 'KEY_LOST')).toBe(true);
  });

  // CI builds before it tests (scripts/ci.sh); a developer without dist/ runs `npm run build` first
  it.skipIf(!built && !process.env.CI)('the ESM build and the CommonJS build recognise each other', () => {
    const script = `
      import { createRequire } from 'node:module';
      const esm = await import(${JSON.stringify(join(root, 'dist/index.js'))});
      const cjs = createRequire(import.meta.url)(${JSON.stringify(join(root, 'dist/index.cjs'))});
      const fromEsm = new esm.ScHsmError('WRONG_PIN', 'from esm');
      const fromCjs = new cjs.ScHsmError('NO_CARD', 'from cjs');
      console.log(JSON.stringify({
        distinct: esm.ScHsmError !== cjs.ScHsmError,
        cjsSeesEsm: cjs.isScHsmError(fromEsm, 'WRONG_PIN'),
        esmSeesCjs: esm.isScHsmError(fromCjs, 'NO_CARD'),
        instanceofCjs: fromEsm instanceof cjs.ScHsmError,
        instanceofEsm: fromCjs instanceof esm.ScHsmError,
        plain: cjs.isScHsmError(new Error('x')) || new Error('x') instanceof esm.ScHsmError,
      }));
    `;
    const out = execFileSync(process.execPath, ['--input-type=module', '-e', script], { encoding: 'utf8' });
    expect(JSON.parse(out)).toEqual({
      distinct: true,
      cjsSeesEsm: true,
      esmSeesCjs: true,
      instanceofCjs: true,
      instanceofEsm: true,
      plain: false,
    });
  });
});
