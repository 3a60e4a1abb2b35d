/**
 * Input that public card data rules out is refused before the PIN (docs/cli.md): csr, cert
 * self-sign and pka respond on a key whose algorithm list forbids the signature they send or whose
 * use counter is exhausted (SmartCardHsm.precheck checks the SIGN it stopped at against the key's
 * FCP), cert import of another key's certificate, pin session on a device without option 0004.
 * Each runs with a wrong PIN: the error code, and the user PIN still has its 3 tries. In-process,
 * on virtual cards (--sim).
 */
import { writeFile } from 'node:fs/promises';
import { join } from 'node:path';
import { beforeAll, describe, expect, it } from 'vitest';
import {
  cli,
  copyState,
  ENV,
  initArgs,
  keygenArgs,
  respondArgs,
  tempDir,
  writeChallenge,
} from './cli-helpers.js';

const BAD = { ...ENV, BAD: '111111' };
let dir: string;
/**
 * EC P-256 at 1 (unrestricted), EC ECDH-only at 30, EC with one use at 31 (already spent), EC
 * ECDSA-SHA256-only at 33, RSA with only RSA-DECRYPT-OAEP at 32 and only RSA-PKCS1-SHA256 at 34,
 * and a self-signed certificate of key 1 in other.pem.
 */
let base: string;
let otherPem: string;

beforeAll(async () => {
  dir = await tempDir();
  base = join(dir, 'base.json');
  expect((await cli(initArgs(base, 'P', '--yes'), { env: ENV })).code).toBe(0);
  for (const more of [
    ['ec:prime256v1', 'plain', '--key-ref', '1'],
    ['ec:prime256v1', 'ecdh', '--key-ref', '30', '--algorithms', 'ECDH'],
    ['ec:prime256v1', 'once', '--key-ref', '31', '--use-counter', '1'],
    ['ec:prime256v1', 'sha256', '--key-ref', '33', '--algorithms', 'ECDSA-SHA256'],
    ['rsa:2048', 'dec', '--key-ref', '32', '--algorithms', 'RSA-DECRYPT-OAEP'],
    ['rsa:2048', 'pkcs1', '--key-ref', '34', '--algorithms', 'RSA-PKCS1-SHA256'],
  ]) {
    const [type, label, ...rest] = more as [string, string, ...string[]];
    const k = await cli([...keygenArgs(base, type, label, ...rest), '--pin', 'env:PIN'], { env: ENV });
    expect(k.code, k.stderr).toBe(0);
  }
  // spend key 31's one use
  const c = join(dir, 'c0.json');
  await writeChallenge(c, 'UTTARGET00001', '11'.repeat(8));
  const used = await cli(respondArgs(base, c, join(dir, 'r0.json'), '31'), { env: ENV });
  expect(used.code, used.stderr).toBe(0);
  otherPem = join(dir, 'other.pem');
  const s = await cli(
    [
      'cert',
      'self-sign',
      '--sim',
      base,
      '--key-ref',
      '1',
      '--subject',
      'CN=other',
      '--days',
      '1',
      '--pin',
      'env:PIN',
    ],
    { env: ENV },
  );
  expect(s.code, s.stderr).toBe(0);
  await writeFile(otherPem, s.stdout);
}, 60_000);

let n = 0;
const fresh = () => copyState(base, dir, `c${++n}.json`);
const tries = async (s: string) => (await cli(['status', '--sim', s, '--json'])).json().userPin.triesLeft;

async function refusedBeforePin(args: (s: string) => string[], code: string): Promise<string> {
  const s = await fresh();
  const r = await cli([...args(s), '--pin', 'env:BAD', '--json'], { env: BAD });
  expect(r.json().error?.code, r.stdout + r.stderr).toBe(code);
  expect(await tries(s)).toBe(3);
  return r.json().error.message as string;
}

describe('signatures a key cannot make are refused before the PIN', () => {
  it('csr with an ECDH-only key: ALGORITHM_NOT_ALLOWED naming the list, no try spent', async () => {
    const m = await refusedBeforePin(
      (s) => ['csr', '--sim', s, '--key-ref', '30', '--subject', 'CN=a'],
      'ALGORITHM_NOT_ALLOWED',
    );
    expect(m).toMatch(/key 30 .*ECDH/);
  });

  it('cert self-sign with an ECDH-only key: ALGORITHM_NOT_ALLOWED, no try spent', async () => {
    await refusedBeforePin(
      (s) => ['cert', 'self-sign', '--sim', s, '--key-ref', '30', '--subject', 'CN=a', '--days', '1'],
      'ALGORITHM_NOT_ALLOWED',
    );
  });

  it('pka respond with an ECDH-only key: ALGORITHM_NOT_ALLOWED, no try spent', async () => {
    const c = join(dir, `ch${++n}.json`);
    await writeChallenge(c, 'UTTARGET00001', '22'.repeat(8));
    await refusedBeforePin(
      (s) => respondArgs(s, c, join(dir, `r${n}.json`), '30').slice(0, -2),
      'ALGORITHM_NOT_ALLOWED',
    );
  });

  it('pka respond and csr with an exhausted key: USE_COUNTER_EXHAUSTED, no try spent', async () => {
    const c = join(dir, `ch${++n}.json`);
    await writeChallenge(c, 'UTTARGET00001', '33'.repeat(8));
    await refusedBeforePin(
      (s) => respondArgs(s, c, join(dir, `r${n}.json`), '31').slice(0, -2),
      'USE_COUNTER_EXHAUSTED',
    );
    await refusedBeforePin(
      (s) => ['csr', '--sim', s, '--key-ref', '31', '--subject', 'CN=a'],
      'USE_COUNTER_EXHAUSTED',
    );
  });

  it('the right PIN still gets the same refusal, and an allowed key still signs', async () => {
    const s = await fresh();
    const r = await cli(
      ['csr', '--sim', s, '--key-ref', '30', '--subject', 'CN=a', '--pin', 'env:PIN', '--json'],
      {
        env: ENV,
      },
    );
    expect(r.json().error?.code).toBe('ALGORITHM_NOT_ALLOWED');
    const ok = await cli(['csr', '--sim', s, '--key-ref', '1', '--subject', 'CN=a', '--pin', 'env:PIN'], {
      env: ENV,
    });
    expect(ok.code, ok.stderr).toBe(0);
    expect(ok.stdout).toContain('BEGIN CERTIFICATE REQUEST');
  });
});

describe('a key whose list allows the signature the signing code picks passes the pre-check', () => {
  it('csr with an ECDSA-SHA256-only key: the wrong PIN is what fails (the card-hash algorithm is allowed)', async () => {
    const s = await fresh();
    const r = await cli(
      ['csr', '--sim', s, '--key-ref', '33', '--subject', 'CN=a', '--pin', 'env:BAD', '--json'],
      {
        env: BAD,
      },
    );
    expect(r.json().error?.code, r.stdout).toBe('WRONG_PIN');
    expect(await tries(s)).toBe(2);
  });

  it('RSA: a decrypt-only key is refused before the PIN; an RSA-PKCS1-SHA256-only key passes to the PIN', async () => {
    await refusedBeforePin(
      (s) => ['csr', '--sim', s, '--key-ref', '32', '--subject', 'CN=a'],
      'ALGORITHM_NOT_ALLOWED',
    );
    const s = await fresh();
    const r = await cli(
      ['csr', '--sim', s, '--key-ref', '34', '--subject', 'CN=a', '--pin', 'env:BAD', '--json'],
      {
        env: BAD,
      },
    );
    expect(r.json().error?.code, r.stdout).toBe('WRONG_PIN');
  });

  it('a --hash the ECDSA-SHA256-only key does not allow: ALGORITHM_NOT_ALLOWED before the PIN', async () => {
    await refusedBeforePin(
      (s) => ['csr', '--sim', s, '--key-ref', '33', '--subject', 'CN=a', '--hash', 'sha384'],
      'ALGORITHM_NOT_ALLOWED',
    );
  });

  it('csr with an ECDSA-SHA256-only key and the right PIN makes the request', async () => {
    const s = await fresh();
    const r = await cli(['csr', '--sim', s, '--key-ref', '33', '--subject', 'CN=a', '--pin', 'env:PIN'], {
      env: ENV,
    });
    expect(r.code, r.stderr).toBe(0);
    expect(r.stdout).toContain('BEGIN CERTIFICATE REQUEST');
  });
});

describe('cert import of a certificate of another key', () => {
  it('is refused before the PIN (the public keys are public)', async () => {
    const m = await refusedBeforePin(
      (s) => ['cert', 'import', otherPem, '--sim', s, '--key-ref', '30'],
      'INVALID_ARGUMENT',
    );
    expect(m).toContain('does not belong to key reference 30');
  });

  it('to an empty key reference: KEY_NOT_FOUND before the PIN', async () => {
    await refusedBeforePin(
      (s) => ['cert', 'import', otherPem, '--sim', s, '--key-ref', '99'],
      'KEY_NOT_FOUND',
    );
  });

  it('its own certificate is still stored with the right PIN', async () => {
    const s = await fresh();
    const r = await cli(['cert', 'import', otherPem, '--sim', s, '--key-ref', '1', '--pin', 'env:PIN'], {
      env: ENV,
    });
    expect(r.code, r.stderr).toBe(0);
  });
});

describe('pin session on a device without option 0004', () => {
  it('is refused before the PIN, naming the option and init --session-pin', async () => {
    const s = await fresh();
    const r = await cli(
      ['pin', 'session', '--secure', '--sim', s, '--out', join(dir, `sp${n}`), '--pin', 'env:BAD', '--json'],
      { env: BAD },
    );
    const e = r.json().error;
    expect(e?.code, r.stdout + r.stderr).toBe('NOT_SUPPORTED');
    expect(e.message).toContain('0004');
    expect(e.fix).toContain('--session-pin');
    expect(await tries(s)).toBe(3);
  });
});
