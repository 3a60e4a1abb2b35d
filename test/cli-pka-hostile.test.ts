/**
 * A hostile user against `pka authenticate` / `pka respond` / `init --pka` (virtual devices,
 * in-process): the step after `--` is refused before the challenge is made, response files that are
 * not regular files or not complete yet, answers that are refused next to valid ones, a key that
 * cannot answer refused before the PIN.
 */
import { execFileSync } from 'node:child_process';
import { readFile, symlink, writeFile } from 'node:fs/promises';
import { join } from 'node:path';
import { setTimeout as sleep } from 'node:timers/promises';
import { describe, expect, it } from 'vitest';
import { exists } from '../src/cli/files.js';
import { SmartCardHsm } from '../src/sc-hsm/session.js';
import { VirtualSmartCardHsm } from '../src/sim/index.js';
import { cli, keygenArgs, pkaAuthArgs, pkaKit, respondArgs, tempDir, writeChallenge } from './cli-helpers.js';

/** The secrets; init; a custodian device with an EC key 1 and its export file; pka respond; waitFor a file. */
const { env, init, custodian, respond, waitFor } = pkaKit({ W: '000000', NEW_PIN: '123456' });

/** A target device with `n` custodians registered, `required` of them needed. */
async function target(dir: string, n: number, required: number, ...extra: string[]) {
  const cs = [];
  for (let i = 0; i < n; i++) cs.push(await custodian(dir, `c${i}`));
  const t = join(dir, 'target.json');
  expect((await init(t, '--pka', String(n), '--required', String(required), ...extra)).code).toBe(0);
  for (const c of cs) expect((await cli(['pka', 'register', '--sim', t, c.file])).code).toBe(0);
  return { t, cs };
}

function authenticate(t: string, c: string, responses: string[], ...rest: string[]) {
  return cli(pkaAuthArgs(t, c, responses, '--wait', '30', ...rest), { env });
}

async function userTries(sim: string): Promise<number> {
  return (await cli(['pin', 'status', '--sim', sim, '--json'])).json().userPin.triesLeft;
}

describe('the step after -- is checked in full before GET CHALLENGE', () => {
  it('bad type, missing --label, existing output, a PIN with one try left: refused, no challenge made', async () => {
    const dir = await tempDir();
    const { t } = await target(dir, 1, 1);
    const c = join(dir, 'c.json');
    const r = join(dir, 'r.json');
    const badType = await authenticate(t, c, [r], '--', 'keygen', '--type', 'foo', '--label', 'a');
    expect(badType.code).toBe(2);
    expect(await exists(c)).toBe(false);
    const noLabel = await authenticate(t, c, [r], '--', 'keygen', '--type', 'ec:prime256v1');
    expect(noLabel.code).toBe(2);
    expect(noLabel.stderr).toContain('--label');
    expect(await exists(c)).toBe(false);
    const existing = join(dir, 'exists.bin');
    await writeFile(existing, 'keep');
    const out = await authenticate(t, c, [r], '--', 'wrap', '--key-ref', '1', '--out', existing);
    expect(out.code).toBe(7);
    expect(await exists(c)).toBe(false);
    expect(await readFile(existing, 'utf8')).toBe('keep');
    // a command that needs no authentication is no step
    const noAuth = await authenticate(t, c, [r], '--', 'status');
    expect(noAuth.code).toBe(2);
    expect(noAuth.stderr).toContain('needs no authentication');
    expect(await exists(c)).toBe(false);
  });

  it('--pka-and-pin with one PIN try left: PIN_TRIES_LOW before the custodians are asked', async () => {
    const dir = await tempDir();
    const { t } = await target(dir, 1, 1, '--pka-and-pin');
    // every PIN command is refused on its own there (the PIN alone proves nothing): the library spends the tries
    const card = await VirtualSmartCardHsm.load(t);
    const hsm = await SmartCardHsm.open(card);
    for (let i = 0; i < 2; i++)
      await expect(hsm.verifyPin('000000')).rejects.toMatchObject({ code: 'WRONG_PIN' });
    await card.save(t);
    expect(await userTries(t)).toBe(1);
    const c = join(dir, 'c.json');
    const step = ['keygen', '--type', 'ec:prime256v1', '--label', 'k', '--pin', 'env:PIN'];
    const low = await authenticate(t, c, [join(dir, 'r.json')], '--', ...step);
    expect(low.code).toBe(7);
    expect(low.stderr).toContain('one try left');
    expect(await exists(c)).toBe(false);
    expect(await userTries(t)).toBe(1);
  });

  it('--pka-and-pin: plain keygen with the right PIN says the custodians are missing, and spends no try', async () => {
    const dir = await tempDir();
    const { t } = await target(dir, 1, 1, '--pka-and-pin');
    const k = await cli(keygenArgs(t, 'ec:prime256v1', 'k', '--pin', 'env:W'), { env });
    expect(k.code).not.toBe(0);
    expect(k.stderr).toContain("custodians' public key authentication");
    expect(k.stderr).toContain('pka authenticate');
    expect(await userTries(t)).toBe(3);
  });
});

describe('response files', () => {
  it('a symlink to /dev/urandom and a FIFO are refused at once, not read', async () => {
    const dir = await tempDir();
    const { t } = await target(dir, 1, 1);
    const c = join(dir, 'c.json');
    const r = join(dir, 'r.json');
    const auth = authenticate(t, c, [r]);
    await waitFor(c);
    await symlink('/dev/urandom', r);
    const x = await auth;
    expect(x.code).toBe(3);
    expect(x.stderr).toContain('a device, not a regular file');
    const c2 = join(dir, 'c2.json');
    const fifo = join(dir, 'fifo.json');
    const auth2 = authenticate(t, c2, [fifo]);
    await waitFor(c2);
    execFileSync('mkfifo', [fifo]);
    const y = await auth2;
    expect(y.code).toBe(3);
    expect(y.stderr).toContain('a FIFO, not a regular file');
  });

  it('a response file still being written is waited for until it is complete', async () => {
    const dir = await tempDir();
    const { t, cs } = await target(dir, 1, 1);
    const c = join(dir, 'c.json');
    const r = join(dir, 'r.json');
    const auth = authenticate(t, c, [r], '--', 'keygen', '--type', 'ec:prime256v1', '--label', 'late');
    await waitFor(c);
    const whole = join(dir, 'whole.json');
    await respond(cs[0]!.sim, c, whole);
    const text = await readFile(whole, 'utf8');
    await writeFile(r, text.slice(0, 40));
    await sleep(700); // the command polls every 250 ms: it sees the half file
    await writeFile(r, text);
    const x = await auth;
    expect(x.code, x.stderr).toBe(0);
    expect(x.stdout).toContain('late');
  });

  it('1-of-2: a bad answer is reported and the valid one is used', async () => {
    const dir = await tempDir();
    const { t, cs } = await target(dir, 2, 1);
    const c = join(dir, 'c.json');
    const bad = join(dir, 'bad.json');
    const good = join(dir, 'good.json');
    const auth = authenticate(t, c, [bad, good], '--', 'keygen', '--type', 'ec:prime256v1', '--label', 'one');
    await waitFor(c);
    const doc = JSON.parse(await readFile(c, 'utf8'));
    await writeFile(
      bad,
      JSON.stringify({
        format: 'sc-hsm-ts/pka-response',
        version: 1,
        deviceChr: doc.deviceChr,
        challenge: '00'.repeat(8),
        chr: 'X',
        signature: '00',
      }),
    );
    await respond(cs[1]!.sim, c, good);
    const x = await auth;
    expect(x.code, x.stderr).toBe(0);
    expect(x.stderr).toContain('answers another challenge');
    expect(x.stdout).toContain('1 of 1 required custodian key(s) authenticated (not used: ');
  });
});

describe('pka respond and init', () => {
  it('pka respond with a key that has no request: KEY_NOT_FOUND before VERIFY, no try spent', async () => {
    const dir = await tempDir();
    const a = await custodian(dir, 'k');
    const c = join(dir, 'c.json');
    await writeChallenge(c, 'UTTARGET00001', '11'.repeat(8));
    const x = await cli(respondArgs(a.sim, c, join(dir, 'ro'), '99', 'env:W'), { env });
    expect(x.code).not.toBe(0);
    expect(x.stderr).toContain('key 99 has no CV request');
    expect(await userTries(a.sim)).toBe(3);
  });

  it('refuses --transport-pin where the custodians replace the PIN, and --wait 0', async () => {
    const dir = await tempDir();
    const f = join(dir, 'x.json');
    const r = await init(f, '--pka', '2', '--required', '1', '--transport-pin');
    expect(r.code).toBe(2);
    expect(r.stderr).toContain('--pka-and-pin');
    expect(await exists(f)).toBe(false);
    const { t } = await target(dir, 1, 1);
    const c = join(dir, 'c.json');
    const w = await cli(pkaAuthArgs(t, c, [join(dir, 'r')], '--wait', '0'));
    expect(w.code).toBe(2);
    expect(await exists(c)).toBe(false);
  });

  it('a challenge or registration file that is a device or a FIFO is refused unread', async () => {
    const dir = await tempDir();
    const a = await custodian(dir, 'k');
    const link = join(dir, 'c.json');
    await symlink('/dev/zero', link);
    const x = await cli(respondArgs(a.sim, link, join(dir, 'ro'), '1', 'env:W'), { env });
    expect(x.code).toBe(2);
    expect(x.stderr).toContain('a device, not a regular file');
    expect(await userTries(a.sim)).toBe(3);
    const fifo = join(dir, 'reg.pka');
    execFileSync('mkfifo', [fifo]);
    const r = await cli(['pka', 'register', '--sim', a.sim, fifo]);
    expect(r.code).toBe(2);
    expect(r.stderr).toContain('a FIFO, not a regular file');
  });

  it('a bad registration file: the fix names export files, not pka respond', async () => {
    const dir = await tempDir();
    const { t } = await target(dir, 1, 1);
    const bad = join(dir, 'bad.pka');
    await writeFile(bad, 'nonsense');
    const r = await cli(['pka', 'register', '--sim', t, bad]);
    expect(r.code).toBe(2);
    expect(r.stderr).toContain('pka export');
    expect(r.stderr).not.toContain('pka respond');
  });
});
