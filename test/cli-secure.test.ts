/** `--secure` (docs/cli.md, Secure messaging): chip authentication before anything secret is sent. */
import { X509Certificate } from 'node:crypto';
import { readFile, stat, writeFile } from 'node:fs/promises';
import { join } from 'node:path';
import { beforeAll, describe, expect, it } from 'vitest';
import { cli, copyState, ENV, initArgs, PIN, SO_PIN, secretForms, tempDir } from './cli-helpers.js';

let base: string;
beforeAll(async () => {
  const dir = await tempDir();
  base = join(dir, 'base.json');
  // init's own arguments, with --secure right after the command
  const r = await cli(['init', '--secure', ...initArgs(base, 'S', '--yes').slice(1)], { env: ENV });
  expect(r.code, r.stderr).toBe(0);
});

/** `CMD… --secure --sim F --pin env:PIN MORE…` with the test secrets. */
const securePin = (cmd: string[], f: string, ...more: string[]) =>
  cli([...cmd, '--secure', '--sim', f, '--pin', 'env:PIN', ...more], { env: ENV });

function noSecrets(text: string): void {
  for (const s of [PIN, SO_PIN]) for (const f of secretForms(s)) expect(text).not.toContain(f);
}

describe('--secure', () => {
  it('status --secure --json, before or after the command', async () => {
    const f = await copyState(base, await tempDir());
    const a = await cli(['status', '--secure', '--sim', f, '--json']);
    expect(a.code, a.stderr).toBe(0);
    expect(a.json().label).toBe('S');
    const b = await cli(['--secure', '--sim', f, 'status', '--json']);
    expect(b.code, b.stderr).toBe(0);
    expect(b.json()).toEqual(a.json());
  });

  it('pin verify and keygen --secure: every APDU after chip authentication protected, no secret in trace or output', async () => {
    const dir = await tempDir();
    const f = await copyState(base, dir);
    const trace = join(dir, 'trace.txt');
    const r = await securePin(
      ['keygen'],
      f,
      '--type',
      'ec:secp256r1',
      '--label',
      'k',
      '--json',
      '--trace',
      trace,
    );
    expect(r.code, r.stderr).toBe(0);
    const t = await readFile(trace, 'utf8');
    const lines = t.split('\n').filter((l) => l.startsWith('=> '));
    const ga = lines.findIndex((l) => l.startsWith('=> 00860000'));
    expect(ga).toBeGreaterThan(0);
    expect(lines.slice(ga + 1).length).toBeGreaterThan(3);
    for (const l of lines.slice(ga + 1)) expect(l.slice(3, 5)).toMatch(/^(0c|8c)$/);
    noSecrets(t + r.stdout + r.stderr);
    const v = await securePin(['pin', 'verify'], f, '--json');
    expect(v.code, v.stderr).toBe(0);
    noSecrets(v.stdout + v.stderr);
  });

  it('cert self-sign --secure: a signature made through secure messaging verifies', async () => {
    const dir = await tempDir();
    const f = await copyState(base, dir);
    const k = await securePin(['keygen'], f, '--type', 'ec:prime256v1', '--label', 'ca', '--json');
    expect(k.code, k.stderr).toBe(0);
    const pem = join(dir, 'ca.pem');
    const r = await securePin(
      ['cert', 'self-sign'],
      f,
      ...['--key-ref', String(k.json().keyRef), '--subject', 'CN=SM', '--days', '30', '--out', pem, '--json'],
    );
    expect(r.code, r.stderr + r.stdout).toBe(0);
    const cert = new X509Certificate(await readFile(pem));
    expect(cert.verify(cert.publicKey)).toBe(true);
    noSecrets(r.stdout + r.stderr + k.stdout + k.stderr);
  });

  it('apdu --secure: refused before anything is sent (raw APDUs cannot be protected)', async () => {
    const dir = await tempDir();
    const f = await copyState(base, dir);
    const trace = join(dir, 't.txt');
    const r = await cli(['apdu', '--secure', '--sim', f, '--trace', trace, '00 84 00 00 08', '--json']);
    expect(r.code).toBe(2);
    expect(r.stdout + r.stderr).toContain('--secure');
    expect((await readFile(trace, 'utf8').catch(() => '')).includes('=>')).toBe(false);
  });

  it('a device chain that does not verify: exit 4 DEVICE_NOT_AUTHENTIC, the PIN never sent', async () => {
    const dir = await tempDir();
    const f = await copyState(base, dir);
    const other = join(dir, 'other.json');
    const made = await cli(initArgs(other, 'O', '--yes'), { env: ENV });
    expect(made.code, made.stderr).toBe(0);
    // this device presents another device's certificate: the chain verifies, the key is not here
    const state = JSON.parse(await readFile(f, 'utf8'));
    state.files['2F02'] = JSON.parse(await readFile(other, 'utf8')).files['2F02'];
    await writeFile(f, JSON.stringify(state));
    const trace = join(dir, 't.txt');
    const r = await cli([
      'pin',
      'verify',
      '--secure',
      '--sim',
      f,
      '--pin',
      '111111',
      '--json',
      '--trace',
      trace,
    ]);
    expect(r.code).toBe(4);
    expect(JSON.parse(r.stdout || r.stderr).error?.code ?? r.stderr).toContain('DEVICE_NOT_AUTHENTIC');
    expect(await readFile(trace, 'utf8')).not.toMatch(/=> 0[0c]200081[0-9a-f]{2}/);
    const st = await cli(['pin', 'status', '--sim', f, '--json']);
    expect(st.json().userPin).toMatchObject({ verified: false, triesLeft: 3 });
  });

  it('pin session: a session PIN file (0600, hex) only with --secure; --session-pin usage errors', async () => {
    const dir = await tempDir();
    const f = join(dir, 'sp.json');
    const made = await cli(initArgs(f, 'P', '--session-pin', '--yes'), { env: ENV });
    expect(made.code, made.stderr).toBe(0);
    const out = join(dir, 'session-pin.txt');
    const plain = await cli(['pin', 'session', '--sim', f, '--pin', 'env:PIN', '--out', out, '--json'], {
      env: ENV,
    });
    expect(plain.code).toBe(2);
    expect(plain.stdout + plain.stderr).toContain('--secure');
    const r = await securePin(['pin', 'session'], f, '--out', out, '--json');
    expect(r.code, r.stderr).toBe(0);
    expect(r.json()).toEqual({ out });
    const text = await readFile(out, 'utf8');
    expect(text).toMatch(/^[0-9a-f]{16}\n$/);
    expect((await stat(out)).mode & 0o777).toBe(0o600);
    for (const f2 of secretForms(text.trim())) expect(r.stdout + r.stderr).not.toContain(f2);
    // never replaced
    const again = await securePin(['pin', 'session'], f, '--out', out);
    expect(again.code).toBe(7);
    expect(await readFile(out, 'utf8')).toBe(text);
    // --out -: the PIN on stdout, and a hint that is true for it (g16: said --session-pin file:-)
    const toStdout = await securePin(['pin', 'session'], f, '--out', '-');
    expect(toStdout.code, toStdout.stderr).toBe(0);
    expect(toStdout.stdout).toMatch(/^[0-9a-f]{16}\n$/);
    expect(toStdout.stderr).not.toContain('file:-');
    expect(toStdout.stderr).toContain('env:NAME');
    // --session-pin without --secure, with --pin, or not hex: usage errors, nothing sent
    const noSecure = await cli(['pin', 'verify', '--sim', f, '--session-pin', `file:${out}`]);
    expect(noSecure.code).toBe(2);
    const noSecureStatus = await cli(['status', '--sim', f, '--session-pin', `file:${out}`, '--json']);
    expect(noSecureStatus.code).toBe(2);
    expect(noSecureStatus.stdout + noSecureStatus.stderr).toContain('add --secure');
    const both = await cli(
      ['pin', 'verify', '--secure', '--sim', f, '--session-pin', `file:${out}`, '--pin', 'env:PIN'],
      {
        env: ENV,
      },
    );
    expect(both.code).toBe(2);
    const notHex = await cli(['pin', 'verify', '--secure', '--sim', f, '--session-pin', 'zz']);
    expect(notHex.code).toBe(2);
    const st = await cli(['pin', 'status', '--sim', f, '--json']);
    expect(st.json().userPin).toMatchObject({ triesLeft: 3 });
    // every --sim command powers the virtual card on afresh: the session PIN is gone (option 0004:
    // cleared on reset); it is refused on the host (a trailing blank line too), no try is spent
    await writeFile(out, `${text}\n`, { mode: 0o600 });
    const gone = await cli([
      'pin',
      'verify',
      '--secure',
      '--sim',
      f,
      '--session-pin',
      `file:${out}`,
      '--json',
    ]);
    expect(gone.code).toBe(2);
    expect(gone.stdout + gone.stderr).toContain('powered on afresh');
    expect((await cli(['pin', 'status', '--sim', f, '--json'])).json().userPin).toMatchObject({
      triesLeft: 3,
    });
  });
});
