/**
 * A hostile pass on `pka authenticate … -- STEP`, PIN commands on PKA devices and `--session-pin`
 * (virtual devices, in-process): every global option after `--` is refused, a step's confirmation
 * and its output files are settled before the challenge, a PIN command on a `--pka-and-pin` or a
 * PKA-only device is refused on the host, `--session-pin` with `--sim` or empty is refused by every
 * command alike.
 */
import { generateKeyPairSync } from 'node:crypto';
import { readFile, writeFile } from 'node:fs/promises';
import { join } from 'node:path';
import { describe, expect, it } from 'vitest';
import { GLOBAL_OPTIONS } from '../src/cli/command.js';
import { exists } from '../src/cli/files.js';
import { cli, pkaAuthArgs, pkaKit, tempDir } from './cli-helpers.js';

const { env, init, custodian, respond, waitFor } = pkaKit({
  W: '000000',
  NEW_PIN: '123456',
  PW: 'share-password-1',
});

/** DIR/target.json for 1-of-1 public key authentication by the custodian `c0` (its device and key). */
async function target(dir: string, ...extra: string[]) {
  const c = await custodian(dir, 'c0');
  const t = join(dir, 'target.json');
  expect((await init(t, '--pka', '1', '--required', '1', ...extra)).code).toBe(0);
  expect((await cli(['pka', 'register', '--sim', t, c.file])).code).toBe(0);
  return { t, c };
}

/** `pka authenticate` with `rest` (options, then `-- STEP`), refused before the challenge: it waits 1 s at most. */
function refused(t: string, ch: string, responses: string[], ...rest: string[]) {
  return cli(pkaAuthArgs(t, ch, responses, '--wait', '1', ...rest), { env });
}

/** `pka authenticate … --wait 30 MORE…` while the custodian answers the challenge: the run's result. */
async function authenticated(
  t: string,
  custodianSim: string,
  dir: string,
  name: string,
  more: string[],
  o: { stdin?: string; isTTY?: boolean } = {},
) {
  const ch = join(dir, `${name}.challenge`);
  const r = join(dir, `${name}.response`);
  const run = cli(pkaAuthArgs(t, ch, [r], '--wait', '30', ...more), { env, ...o });
  // a run refused before its challenge ends without one: its result says why
  await Promise.race([run, waitFor(ch)]);
  if (!(await exists(ch))) return run;
  await respond(custodianSim, ch, r);
  return run;
}

/** The step that creates key domain 1 with one share. */
const CREATE_STEP = ['--', 'domain', 'create', '--domain', '1', '--shares', '1'];

/** The step that gives the target its key 1. */
const KEYGEN_STEP = ['--', 'keygen', '--type', 'ec:prime256v1', '--label', 'doomed'];

async function userTries(sim: string): Promise<number> {
  return (await cli(['pin', 'status', '--sim', sim, '--json'])).json().userPin.triesLeft;
}

/** The commands of an APDU trace file (`=> …` lines), lower-case hex. */
async function sent(trace: string): Promise<string[]> {
  return (await readFile(trace, 'utf8'))
    .split('\n')
    .filter((l) => l.startsWith('=>'))
    .map((l) => l.slice(3).replace(/\s/g, ''));
}

describe('pka authenticate -- STEP: every global option after -- is refused before the challenge', () => {
  it('each of GLOBAL_OPTIONS (--secure, --progress, --trace-overwrite, --session-pin, -y, …)', async () => {
    const dir = await tempDir();
    const { t } = await target(dir);
    const ch = join(dir, 'c.json');
    const step = ['keys', '--pin', 'env:PIN'];
    const given = Object.entries(GLOBAL_OPTIONS)
      .filter(([name]) => name !== 'help')
      .map(([name, s]) => (s.type === 'string' ? [`--${name}`, join(dir, 'v.json')] : [`--${name}`]));
    given.push(['-y']);
    expect(given.map((g) => g[0])).toEqual(
      expect.arrayContaining(['--secure', '--progress', '--trace-overwrite']),
    );
    for (const g of given) {
      const r = await refused(t, ch, [join(dir, 'r.json')], '--', ...step, ...g);
      expect(r.code, `${g[0]}: ${r.stderr}`).toBe(2);
      expect(r.stdout + r.stderr).toContain('before pka authenticate');
      expect(r.stdout + r.stderr).toContain(`--${g[0] === '-y' ? 'yes' : g[0]!.slice(2)} was given to keys`);
      expect(await exists(ch)).toBe(false);
    }
  });
});

describe('a --pka-and-pin device: pin verify, pin session and pin change only as the step', () => {
  it('on their own they send no PIN and spend no try; after pka authenticate -- they work', async () => {
    const dir = await tempDir();
    const { t, c } = await target(dir, '--pka-and-pin', '--session-pin');
    const trace = join(dir, 'verify.apdu');
    for (const pin of ['env:W', 'env:PIN']) {
      const v = await cli(
        ['pin', 'verify', '--sim', t, '--pin', pin, '--trace', trace, '--trace-overwrite'],
        {
          env,
        },
      );
      expect(v.code).toBe(3);
      expect(v.stderr).toContain("custodians' public key authentication");
      expect(v.stderr).toContain('pka authenticate');
      expect(await sent(trace)).not.toContainEqual(expect.stringMatching(/^00200081[0-9a-f]{2}/));
    }
    const out = join(dir, 'sp.txt');
    const s = await cli(['pin', 'session', '--secure', '--sim', t, '--pin', 'env:PIN', '--out', out], {
      env,
    });
    expect(s.code).toBe(3);
    expect(s.stderr).toContain('pka authenticate');
    expect(s.stderr).not.toContain('give the user PIN with --pin');
    expect(await exists(out)).toBe(false);
    // pin change needs no custodians (the card checks the old PIN; the change grants nothing)
    for (const [from, to] of [
      ['env:PIN', 'env:NEW_PIN'],
      ['env:NEW_PIN', 'env:PIN'],
    ]) {
      const change = await cli(['pin', 'change', '--sim', t, '--pin', from!, '--new-pin', to!], { env });
      expect(change.code, change.stderr).toBe(0);
    }
    expect(await userTries(t)).toBe(3);
    const ok = await authenticated(t, c.sim, dir, 'v', ['--json', '--', 'pin', 'verify', '--pin', 'env:PIN']);
    expect(ok.code, ok.stderr).toBe(0);
    expect(ok.json()).toMatchObject({ step: 'pin verify', result: { verified: true } });
    const sp = await authenticated(t, c.sim, dir, 's', [
      '--secure',
      '--',
      'pin',
      'session',
      '--pin',
      'env:PIN',
      '--out',
      out,
    ]);
    expect(sp.code, sp.stderr).toBe(0);
    expect(await readFile(out, 'utf8')).toMatch(/^[0-9a-f]{16}\n$/);
    const changed = await authenticated(t, c.sim, dir, 'p', [
      '--',
      'pin',
      'change',
      '--pin',
      'env:PIN',
      '--new-pin',
      'env:NEW_PIN',
    ]);
    expect(changed.code, changed.stderr).toBe(0);
    const pinAfter = await authenticated(t, c.sim, dir, 'n', ['--', 'pin', 'verify', '--pin', 'env:NEW_PIN']);
    expect(pinAfter.code, pinAfter.stderr).toBe(0);
  });
});

describe('a step that needs confirmation', () => {
  it('delete-key without --yes and no terminal: refused before the challenge, the fix says where --yes goes', async () => {
    const dir = await tempDir();
    const { t, c } = await target(dir);
    const made = await authenticated(t, c.sim, dir, 'k', KEYGEN_STEP);
    expect(made.code, made.stderr).toBe(0);
    const ch = join(dir, 'd.json');
    const del = ['--', 'delete-key', '--key-ref', '1', '--pin', 'env:PIN'];
    const r = await refused(t, ch, [join(dir, 'r.json')], ...del);
    expect(r.code).toBe(7);
    expect(r.stderr).toContain('put --yes before the --');
    expect(r.stderr).not.toMatch(/fix: pass --yes/);
    expect(await exists(ch)).toBe(false);
    expect((await cli(['keys', '--sim', t, '--json'])).json().keys).toHaveLength(1);
    // on a terminal the question comes before the challenge, and only once
    const tty = await authenticated(t, c.sim, dir, 'tty', del, { isTTY: true, stdin: 'yes\n' });
    expect(tty.code, tty.stderr).toBe(0);
    expect(tty.stderr.match(/deleting key 1/g)).toHaveLength(1);
    expect((await cli(['keys', '--sim', t, '--json'])).json().keys).toHaveLength(0);
  });

  it('with --yes before the -- the step runs', async () => {
    const dir = await tempDir();
    const { t, c } = await target(dir);
    const made = await authenticated(t, c.sim, dir, 'k', KEYGEN_STEP);
    expect(made.code, made.stderr).toBe(0);
    const r = await authenticated(t, c.sim, dir, 'd', [
      '--yes',
      '--',
      'delete-key',
      '--key-ref',
      '1',
      '--pin',
      'env:PIN',
    ]);
    expect(r.code, r.stderr).toBe(0);
    expect((await cli(['keys', '--sim', t, '--json'])).json().keys).toHaveLength(0);
  });
});

describe('import-key --force as the step: its question right after its login', () => {
  it('without --yes and no terminal: refused before the challenge; with --yes the key is replaced', async () => {
    const dir = await tempDir();
    const share = join(dir, 'share.pbe');
    expect((await cli(['dkek', 'create', share, '--password', 'env:PW'], { env })).code).toBe(0);
    const { t, c } = await target(dir, '--dkek-shares', '1');
    const imp = await cli(['dkek', 'import', share, '--sim', t, '--password', 'env:PW'], { env });
    expect(imp.code, imp.stderr).toBe(0);
    const made = await authenticated(t, c.sim, dir, 'k', KEYGEN_STEP);
    expect(made.code, made.stderr).toBe(0);
    const pem = join(dir, 'in.pem');
    const { privateKey } = generateKeyPairSync('ec', { namedCurve: 'prime256v1' });
    await writeFile(pem, privateKey.export({ format: 'pem', type: 'pkcs8' }));
    const step = ['--', 'import-key', pem, '--key-ref', '1', '--label', 'new', '--force'];
    const more = ['--dkek', share, '--password', 'env:PW'];
    const ch = join(dir, 'i.json');
    const r = await refused(t, ch, [join(dir, 'r.json')], ...step, ...more);
    expect(r.code, r.stderr).toBe(7);
    expect(r.stderr).toContain('put --yes before the --');
    expect(await exists(ch)).toBe(false);
    expect((await cli(['keys', '--sim', t, '--json'])).json().keys[0].label).toBe('doomed');
    const yes = await authenticated(t, c.sim, dir, 'yes', ['--yes', ...step, ...more]);
    expect(yes.code, yes.stderr).toBe(0);
    expect((await cli(['keys', '--sim', t, '--json'])).json().keys[0].label).toBe('new');
  });
});

describe('a step that asks before its login (domain delete)', () => {
  it('without --yes and no terminal: refused before the challenge with the same fix; with --yes it runs', async () => {
    const dir = await tempDir();
    // --pka-and-pin: the virtual card wants the user PIN verified for MANAGE KEY DOMAIN (src/sim/dkek.ts)
    const { t, c } = await target(dir, '--key-domains', '2', '--pka-and-pin');
    const made = await authenticated(t, c.sim, dir, 'mk', [...CREATE_STEP, '--pin', 'env:PIN']);
    expect(made.code, made.stderr).toBe(0);
    const ch = join(dir, 'd.json');
    const del = ['--', 'domain', 'delete', '--domain', '1', '--pin', 'env:PIN'];
    const r = await refused(t, ch, [join(dir, 'r.json')], ...del);
    expect(r.code).toBe(7);
    expect(r.stderr).toContain('put --yes before the --');
    expect(await exists(ch)).toBe(false);
    const yes = await authenticated(t, c.sim, dir, 'del', ['--yes', ...del]);
    expect(yes.code, yes.stderr).toBe(0);
    expect(yes.stdout).toContain('key domain 1 was deleted');
  });
});

describe('key domains on a PKA-only device', () => {
  it('after the custodians (no user PIN on the device): domain create and domain delete run as the step', async () => {
    const dir = await tempDir();
    const { t, c } = await target(dir, '--key-domains', '2');
    const made = await authenticated(t, c.sim, dir, 'mk', CREATE_STEP);
    expect(made.code, made.stderr).toBe(0);
    expect(made.stdout).toContain('key domain 1 created');
    const del = ['--yes', '--', 'domain', 'delete', '--domain', '1'];
    const gone = await authenticated(t, c.sim, dir, 'del', del);
    expect(gone.code, gone.stderr).toBe(0);
    expect(gone.stdout).toContain('key domain 1 was deleted');
  });
});

describe("the step's output is not a file of pka authenticate", () => {
  it('--out equal to a --response, --challenge-out, --trace or --sim file: refused before the challenge', async () => {
    const dir = await tempDir();
    const { t } = await target(dir);
    const ch = join(dir, 'c.json');
    const r9 = join(dir, 'r9.json');
    const same = await refused(
      t,
      ch,
      [join(dir, 'r1.json'), r9],
      '--',
      'wrap',
      '--key-ref',
      '1',
      '--out',
      r9,
    );
    expect(same.code).toBe(2);
    expect(same.stderr).toContain(`--out ${r9} of wrap after -- is the same file as --response`);
    expect(await exists(ch)).toBe(false);
    const onChallenge = await refused(t, ch, [r9], '--', 'wrap', '--key-ref', '1', '--out', ch);
    expect(onChallenge.code).toBe(2);
    expect(onChallenge.stderr).toContain('--challenge-out');
    expect(await exists(ch)).toBe(false);
    // the transcript pka authenticate writes when it ends, and the device's state file
    const tr = join(dir, 'tr.apdu');
    const onTrace = await refused(t, ch, [r9], '--trace', tr, '--', 'wrap', '--key-ref', '1', '--out', tr);
    expect(onTrace.code).toBe(2);
    expect(onTrace.stderr).toContain(`is the same file as --trace ${tr}`);
    const onState = await refused(t, ch, [r9], '--', 'wrap', '--key-ref', '1', '--out', t);
    expect(onState.code).toBe(2);
    expect(onState.stderr).toContain(`is the same file as --sim ${t}`);
    expect(await exists(ch)).toBe(false);
    expect(await exists(tr)).toBe(false);
  });
});

describe('a PKA-only device (no --pka-and-pin) has no user PIN to send', () => {
  it('keys --pin and pin verify: refused on the host, no VERIFY with a PIN', async () => {
    const dir = await tempDir();
    const { t } = await target(dir);
    for (const cmd of [['keys'], ['pin', 'verify']]) {
      const trace = join(dir, `${cmd.join('-')}.apdu`);
      const r = await cli([...cmd, '--sim', t, '--pin', 'env:W', '--trace', trace], { env });
      expect(r.code, r.stderr).toBe(3);
      expect(r.stderr).toContain('public keys replace it');
      expect(r.stderr).toContain('pka authenticate');
      expect(r.stderr).not.toContain('CARD_ERROR');
      const cmds = await sent(trace);
      expect(cmds).toContainEqual(expect.stringMatching(/^00200081$/)); // the free status query
      expect(cmds).not.toContainEqual(expect.stringMatching(/^00200081[0-9a-f]{2}/));
    }
  });
});

describe('--session-pin: the same refusal on every command', () => {
  it('with --sim, or empty: usage error before anything is sent', async () => {
    const dir = await tempDir();
    const f = join(dir, 'a.json');
    expect((await init(f, '--session-pin', '--label', 'a')).code).toBe(0);
    for (const cmd of [['status'], ['keys'], ['pin', 'status'], ['pin', 'verify']]) {
      const sim = await cli([...cmd, '--sim', f, '--secure', '--session-pin', '0011']);
      expect(sim.code, `${cmd.join(' ')}: ${sim.stderr}`).toBe(2);
      expect(sim.stderr).toContain('powered on afresh');
      const empty = await cli([...cmd, '--reader', '0', '--secure', '--session-pin', '']);
      expect(empty.code, `${cmd.join(' ')}: ${empty.stderr}`).toBe(2);
      expect(empty.stderr).toContain('--session-pin was given an empty value');
    }
    expect(await userTries(f)).toBe(3);
  });
});
