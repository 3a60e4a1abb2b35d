/**
 * `keygen --algorithms … --use-counter N`, `keygen --derive-from N --tweak HEX`, and what `keys`,
 * `dump` and `wrapped inspect` show of them, on a virtual card through the command (in-process).
 */
import { generateKeyPairSync } from 'node:crypto';
import { readFile, writeFile } from 'node:fs/promises';
import { join } from 'node:path';
import { beforeAll, describe, expect, it } from 'vitest';
import { VirtualSmartCardHsm } from '../src/sim/index.js';
import { cli, copyState, ENV, PIN, tempDir } from './cli-helpers.js';

let dir: string;
let share: string;
/** Initialized with one DKEK share (imported), no keys. */
let base: string;
const TWEAK = '0102030405060708090a0b0c0d0e0f101112131415161718191a1b1c1d1e1f20';

beforeAll(async () => {
  dir = await tempDir();
  share = join(dir, 'share.pbe');
  expect((await cli(['dkek', 'create', share, '--password', 'env:PW'], { env: ENV })).code).toBe(0);
  base = join(dir, 'base.json');
  const init = [
    'init',
    ...['--sim', base, '--so-pin', 'env:SO_PIN', '--pin', 'env:PIN', '--label', 'R'],
    ...['--dkek-shares', '1', '--yes'],
  ];
  expect((await cli(init, { env: ENV })).code).toBe(0);
  expect(
    (await cli(['dkek', 'import', share, '--sim', base, '--password', 'env:PW'], { env: ENV })).code,
  ).toBe(0);
});

async function fresh(name: string): Promise<string> {
  return copyState(base, dir, `${name}.json`);
}

const keygen = (sim: string, ...args: string[]) =>
  cli(['keygen', '--sim', sim, '--pin', PIN, ...args, '--json']);

describe('keygen --algorithms / --use-counter', () => {
  it('generates a restricted key; keys and dump show the list and the count left', async () => {
    const f = await fresh('restricted');
    const g = await keygen(
      f,
      '--type',
      'ec:prime256v1',
      '--label',
      'signer',
      '--algorithms',
      'ecdsa-sha256,WRAP',
      '--use-counter',
      '3',
    );
    expect(g.code, g.stderr).toBe(0);
    expect(g.json()).toMatchObject({ keyRef: 1, algorithms: ['ECDSA-SHA256', 'WRAP'], useCounter: 3 });
    const text = await cli(['keys', '--sim', f]);
    expect(text.stdout).toContain('Key ref 1: algorithms ECDSA-SHA256, WRAP; 3 uses left');
    const j = await cli(['keys', '--sim', f, '--json']);
    expect(j.json().keys[0]).toMatchObject({
      keyRef: 1,
      algorithms: ['ECDSA-SHA256', 'WRAP'],
      useCounter: 3,
    });
    const d = await cli(['dump', '--sim', f]);
    expect(d.stdout).toMatch(/Algorithms\s*: ECDSA-SHA256, WRAP/);
    expect(d.stdout).toMatch(/Uses left\s*: 3/);
    const dj = await cli(['dump', '--sim', f, '--json']);
    expect(dj.json().keys[0]).toMatchObject({ algorithms: ['ECDSA-SHA256', 'WRAP'], useCounter: 3 });
    // a key without restrictions: null in the JSON, no line in the text
    expect((await keygen(f, '--type', 'ec:prime256v1', '--label', 'free')).code).toBe(0);
    const j2 = await cli(['keys', '--sim', f, '--json']);
    expect(j2.json().keys[1]).toMatchObject({ keyRef: 2, algorithms: null, useCounter: null });
    expect((await cli(['keys', '--sim', f])).stdout).not.toContain('Key ref 2:');
  });

  it('the exhausted key: refused before the PIN, the error says "key use counter exhausted" (exit 7)', async () => {
    const f = await fresh('exhaust');
    expect((await keygen(f, '--type', 'ec:prime256v1', '--label', 'once', '--use-counter', '1')).code).toBe(
      0,
    );
    // the state file keeps the count: a signature through the library, then the command sees 0
    const card = await VirtualSmartCardHsm.open(f);
    const { SmartCardHsm } = await import('../src/sc-hsm/session.js');
    const hsm = await SmartCardHsm.open(card);
    await hsm.verifyPin(PIN);
    await hsm.sign(1, 'ECDSA-SHA256', Uint8Array.of(1));
    const e = await hsm.sign(1, 'ECDSA-SHA256', Uint8Array.of(1)).catch((x) => x);
    expect(e.code).toBe('USE_COUNTER_EXHAUSTED');
    await card.close();
    const k = await cli(['keys', '--sim', f]);
    expect(k.stdout).toContain('Key ref 1: use counter exhausted (0 uses left)');
    const c = await cli(['csr', '--sim', f, '--key-ref', '1', '--subject', 'CN=x', '--pin', PIN, '--json']);
    expect(c.code).toBe(7);
    // refused from the key's public FCP before the PIN (precheck.ts): nothing sent, so no status word
    expect(c.json().error).toMatchObject({ code: 'USE_COUNTER_EXHAUSTED' });
    expect(c.json().error.sw).toBeUndefined();
    expect(c.json().error.message).toContain('key use counter exhausted');
    expect(c.json().error.fix).toContain('--use-counter');
  });

  it('hostile: unknown or duplicate names, counter 0, negative, huge, not a number: exit 2, nothing generated', async () => {
    const f = await fresh('hostile');
    const before = await readFile(f, 'utf8');
    const bad: [string[], RegExp][] = [
      [['--algorithms', 'ECDSA-SHA257'], /unknown algorithm name "ECDSA-SHA257"; valid names: RSA-RAW,/],
      [['--algorithms', 'WRAP,wrap'], /WRAP is named twice/],
      [['--algorithms', ''], /algorithm/],
      [['--algorithms', 'ECDSA,,WRAP'], /unknown algorithm name ""/],
      [['--algorithms', 'EC\u001bDSA'], /algorithms/],
      [['--use-counter', '0'], /--use-counter must be an integer from 1 to 4294967295/],
      [['--use-counter', '-5'], /--use-counter needs a value/],
      [['--use-counter=-5'], /--use-counter must be an integer/],
      [['--use-counter', '4294967296'], /--use-counter must be an integer/],
      [['--use-counter', '1e3'], /--use-counter must be an integer/],
    ];
    for (const [args, re] of bad) {
      const r = await keygen(f, '--type', 'ec:prime256v1', '--label', 'x', ...args);
      expect(r.code, args.join(' ')).toBe(2);
      expect(r.json().error.message).toMatch(re);
      expect(r.json().error.message).not.toContain('\u001b');
    }
    expect(await readFile(f, 'utf8')).toBe(before);
    // the list is fixed: options in another order make the same key
    const r = await cli([
      'keygen',
      '--use-counter',
      '9',
      '--algorithms',
      'ECDSA',
      '--label',
      'o',
      '--type',
      'ec:prime256v1',
      '--sim',
      f,
      '--pin',
      PIN,
      '--json',
    ]);
    expect(r.json()).toMatchObject({ algorithms: ['ECDSA'], useCounter: 9 });
  });

  it('a wrap file keeps the list across devices both ways; wrap is refused without WRAP', async () => {
    const a = await fresh('wrap-a');
    const b = await fresh('wrap-b');
    expect(
      (
        await keygen(
          a,
          '--type',
          'ec:prime256v1',
          '--label',
          'w',
          '--algorithms',
          'ECDSA,WRAP',
          '--use-counter',
          '5',
        )
      ).code,
    ).toBe(0);
    expect(
      (await keygen(a, '--type', 'ec:prime256v1', '--label', 'nowrap', '--algorithms', 'ECDSA')).code,
    ).toBe(0);
    const bin = join(dir, 'w.bin');
    const w = await cli(['wrap', '--sim', a, '--key-ref', '1', '--out', bin, '--pin', PIN]);
    expect(w.code, w.stderr).toBe(0);
    const i = await cli(['wrapped', 'inspect', bin, '--json']);
    expect(i.json().algorithmNames).toEqual(['ECDSA', 'WRAP']);
    expect((await cli(['wrapped', 'inspect', bin])).stdout).toContain('ECDSA, WRAP (7092)');
    const u = await cli(['unwrap', bin, '--sim', b, '--key-ref', '4', '--pin', PIN]);
    expect(u.code, u.stderr).toBe(0);
    const kb = (await cli(['keys', '--sim', b, '--json'])).json().keys[0];
    expect(kb).toMatchObject({ keyRef: 4, label: 'w', algorithms: ['ECDSA', 'WRAP'], useCounter: null });
    // and on: B wraps it again, C takes it (A refuses it: the key ID is already A's key 1)
    const back = join(dir, 'back.bin');
    expect((await cli(['wrap', '--sim', b, '--key-ref', '4', '--out', back, '--pin', PIN])).code).toBe(0);
    const again = await cli(['unwrap', back, '--sim', a, '--key-ref', '9', '--pin', PIN, '--json']);
    expect(again.json().error.code).toBe('KEY_ID_IN_USE');
    const c = await fresh('wrap-c');
    expect((await cli(['unwrap', back, '--sim', c, '--key-ref', '9', '--pin', PIN])).code).toBe(0);
    const kc = (await cli(['keys', '--sim', c, '--json'])).json().keys[0];
    expect(kc).toMatchObject({ keyRef: 9, algorithms: ['ECDSA', 'WRAP'] });
    const nw = await cli([
      'wrap',
      '--sim',
      a,
      '--key-ref',
      '2',
      '--out',
      join(dir, 'nw.bin'),
      '--pin',
      PIN,
      '--json',
    ]);
    expect(nw.json().error.code).toBe('ALGORITHM_NOT_ALLOWED');
  });
});

describe('import-key --algorithms', () => {
  it('the blob built on the host carries the list onto the device; a list that cannot apply is refused first', async () => {
    const f = await fresh('import');
    const { privateKey } = generateKeyPairSync('ec', { namedCurve: 'prime256v1' });
    const pem = join(dir, 'imp.pem');
    await writeFile(pem, privateKey.export({ format: 'pem', type: 'pkcs8' }));
    const args = (list: string) => [
      ...['import-key', pem, '--sim', f, '--key-ref', '6', '--label', 'imp'],
      ...['--algorithms', list, '--dkek', share, '--password', 'env:PW', '--pin', PIN, '--json'],
    ];
    const before = await readFile(f, 'utf8');
    const bad = await cli(args('RSA-PSS,WRAP'), { env: ENV });
    expect(bad.code).toBe(2);
    expect(bad.json().error.message).toMatch(/RSA-PSS, which cannot apply to an EC key/);
    expect(await readFile(f, 'utf8')).toBe(before);
    const r = await cli(args('ECDSA-SHA256,WRAP'), { env: ENV });
    expect(r.code, r.stdout).toBe(0);
    expect(r.json()).toMatchObject({ keyRef: 6, algorithms: ['ECDSA-SHA256', 'WRAP'] });
    const k = (await cli(['keys', '--sim', f, '--json'])).json().keys[0];
    expect(k).toMatchObject({ keyRef: 6, algorithms: ['ECDSA-SHA256', 'WRAP'], useCounter: null });
    const bin = join(dir, 'imp.bin');
    expect((await cli(['wrap', '--sim', f, '--key-ref', '6', '--out', bin, '--pin', PIN])).code).toBe(0);
    expect((await cli(['wrapped', 'inspect', bin, '--json'])).json().algorithmNames).toEqual([
      'ECDSA-SHA256',
      'WRAP',
    ]);
  });
});

describe('keygen --derive-from', () => {
  it('derives an EC key; keys lists it with its public key', async () => {
    const f = await fresh('derive');
    expect((await keygen(f, '--type', 'ec:prime256v1', '--label', 'root')).code).toBe(0);
    const r = await cli([
      'keygen',
      '--sim',
      f,
      '--derive-from',
      '1',
      '--tweak',
      TWEAK,
      '--key-ref',
      '7',
      '--label',
      'child',
      '--pin',
      PIN,
      '--json',
    ]);
    expect(r.code, r.stderr).toBe(0);
    expect(r.json()).toMatchObject({
      keyRef: 7,
      derivedFrom: 1,
      type: 'ec',
      curve: 'prime256v1',
      label: 'child',
    });
    const k = (await cli(['keys', '--sim', f, '--json'])).json().keys;
    expect(k.find((x: { keyRef: number }) => x.keyRef === 7)).toMatchObject({
      label: 'child',
      type: 'ec',
      publicKeySha256: r.json().publicKeySha256,
    });
    // a certificate request signed by the derived key verifies against the host-computed key
    const csr = await cli([
      'csr',
      '--sim',
      f,
      '--key-ref',
      '7',
      '--subject',
      'CN=child',
      '--pin',
      PIN,
      '--json',
    ]);
    expect(csr.code, csr.stderr).toBe(0);
  });

  it('hostile: RSA source, existing target, bad tweaks, conflicting options: refused, nothing changed', async () => {
    const f = await fresh('derive-hostile');
    expect((await keygen(f, '--type', 'ec:prime256v1', '--label', 'ec')).code).toBe(0);
    expect((await keygen(f, '--type', 'rsa:1024', '--label', 'rsa')).code).toBe(0);
    const before = await readFile(f, 'utf8');
    const d = (...a: string[]) => cli(['keygen', '--sim', f, '--pin', PIN, '--json', ...a]);
    const cases: [string[], number, RegExp][] = [
      [['--derive-from', '2', '--tweak', TWEAK, '--key-ref', '7', '--label', 'x'], 2, /RSA: only EC keys/],
      [['--derive-from', '1', '--tweak', TWEAK, '--key-ref', '2', '--label', 'x'], 7, /already in use/],
      [['--derive-from', '1', '--tweak', TWEAK, '--key-ref', '1', '--label', 'x'], 2, /must differ/],
      [['--derive-from', '1', '--tweak', 'zz', '--key-ref', '7', '--label', 'x'], 2, /hex bytes/],
      // key material: hex digits only (g16: ` 0 1` was taken for 01)
      ...[' 0 1', '0 1', '01 02', '01:02'].map((t): [string[], number, RegExp] => [
        ['--derive-from', '1', '--tweak', t, '--key-ref', '7', '--label', 'x'],
        2,
        /no spaces or colons/,
      ]),
      [['--derive-from', '1', '--tweak', '0000', '--key-ref', '7', '--label', 'x'], 2, /not be zero/],
      [
        ['--derive-from', '1', '--tweak', 'ff'.repeat(32), '--key-ref', '7', '--label', 'x'],
        2,
        /below the order/,
      ],
      [
        ['--derive-from', '1', '--tweak', '01'.repeat(67), '--key-ref', '7', '--label', 'x'],
        2,
        /1 to 66 hex bytes/,
      ],
      [['--derive-from', '1', '--tweak', TWEAK, '--label', 'x'], 2, /needs --key-ref/],
      [['--derive-from', '1', '--key-ref', '7', '--label', 'x'], 2, /needs --tweak/],
      [['--tweak', TWEAK, '--key-ref', '7', '--label', 'x'], 2, /belongs to --derive-from/],
      [
        ['--derive-from', '1', '--tweak', TWEAK, '--key-ref', '7', '--label', 'x', '--type', 'ec:prime256v1'],
        2,
        /--type does not go/,
      ],
      [
        ['--derive-from', '1', '--tweak', TWEAK, '--key-ref', '7', '--label', 'x', '--use-counter', '3'],
        2,
        /--use-counter does not go/,
      ],
      [['--derive-from', '9', '--tweak', TWEAK, '--key-ref', '7', '--label', 'x'], 5, /no key/],
      [['--derive-from', '1', '--tweak', TWEAK, '--key-ref', '7', '--label', 'a\u0007b'], 2, /label/],
    ];
    for (const [args, code, re] of cases) {
      const r = await d(...args);
      expect(r.code, args.join(' ')).toBe(code);
      expect(r.json().error.message, args.join(' ')).toMatch(re);
    }
    expect(await readFile(f, 'utf8')).toBe(before);
  });
});
