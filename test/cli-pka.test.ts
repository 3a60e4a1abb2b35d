/**
 * The command's transport PIN (init --transport-pin, status, pin change in one session) and public
 * key authentication (init --pka, pka export/register/status, pka authenticate with custodians'
 * pka respond and a following step in the same session), on virtual devices in-process.
 */
import { readFile, writeFile } from 'node:fs/promises';
import { join } from 'node:path';
import { describe, expect, it } from 'vitest';
import { exists } from '../src/cli/files.js';
import { cli, keygenArgs, pkaAuthArgs, pkaKit, respondArgs, tempDir, writeChallenge } from './cli-helpers.js';

/** The secrets; init; a custodian device with an EC key 1 and its export file; pka respond; waitFor a file. */
const { env, init, custodian, respond, waitFor } = pkaKit({ NEW_PIN: '123456' });

/** The custodian NAME's key registered on DIR/target.json, initialized for 1-of-1 public key authentication. */
async function oneOfOne(dir: string, name: string) {
  const a = await custodian(dir, name);
  const t = join(dir, 'target.json');
  expect((await init(t, '--pka', '1', '--required', '1')).code).toBe(0);
  expect((await cli(['pka', 'register', '--sim', t, a.file])).code).toBe(0);
  return { a, t };
}

/** `pin change --sim F [--last-try] --pin PIN --new-pin NEW MORE…` with the environment `e`. */
function pinChange(
  f: string,
  lastTry: boolean,
  pin: string,
  newPin: string,
  e: Record<string, string>,
  ...more: string[]
) {
  const last = lastTry ? ['--last-try'] : [];
  return cli(['pin', 'change', '--sim', f, ...last, '--pin', pin, '--new-pin', newPin, ...more], { env: e });
}

describe('transport PIN (option 0002)', () => {
  it('init --transport-pin; status says so; VERIFY refused; pin change replaces it in one session', async () => {
    const dir = await tempDir();
    const f = join(dir, 't.json');
    const bad = await init(f, '--transport-pin', '--label', 'x');
    expect(bad.code).toBe(2);
    expect(bad.stderr).toContain('--label cannot be set with --transport-pin');
    const r = await init(f, '--transport-pin');
    expect(r.code, r.stderr).toBe(0);
    expect(r.stdout).toContain('Transport-PIN mode enabled');
    const st = await cli(['status', '--sim', f]);
    expect(st.stdout).toContain('transport PIN active — set your own PIN with `pin change`');
    const dump = await cli(['dump', '--sim', f]);
    expect(dump.stdout).toContain('transport PIN active — set your own PIN with `pin change`');
    const j = (await cli(['status', '--sim', f, '--json'])).json();
    expect(j.transportPin).toBe(true);
    const v = await cli(['pin', 'verify', '--sim', f, '--pin', 'env:PIN'], { env });
    expect(v.code).toBe(3);
    expect(v.stderr).toContain('transport PIN');
    // the change: one SELECT, the free status query (6984), CHANGE REFERENCE DATA — no reset, no second SELECT
    // the card does not report a transport PIN's tries: any try may be the last, so --last-try
    const unsure = await pinChange(f, false, 'env:PIN', 'env:NEW_PIN', env);
    expect(unsure.code).toBe(7);
    expect(unsure.stderr).toContain('does not report how many tries the transport PIN has left');
    expect(unsure.stderr).toContain('--last-try');
    const trace = join(dir, 'change.apdu');
    const c = await pinChange(f, true, 'env:PIN', 'env:NEW_PIN', env, '--trace', trace);
    expect(c.code, c.stderr).toBe(0);
    const cmds = (await readFile(trace, 'utf8'))
      .split('\n')
      .filter((l) => l.startsWith('=>') || l.startsWith('<='))
      .map((l) => l.slice(3, 11));
    expect(cmds).toEqual(['00a40400', expect.any(String), '00200081', '6984', '00240081', '9000']);
    expect((await readFile(trace, 'utf8')).includes('313233343536')).toBe(false);
    const after = (await cli(['status', '--sim', f, '--json'])).json();
    expect(after.transportPin).toBe(false);
    expect((await cli(['pin', 'verify', '--sim', f, '--pin', 'env:NEW_PIN'], { env })).code).toBe(0);
  });
});

describe('tries the card does not report (transport PIN, PIN replaced by custodians)', () => {
  it('a wrong transport PIN: each try needs --last-try, and the new PIN cannot be the transport PIN', async () => {
    const dir = await tempDir();
    const f = join(dir, 't.json');
    expect((await init(f, '--transport-pin')).code).toBe(0);
    const wrong = { ...env, W: '000000' };
    for (let i = 0; i < 3; i++) {
      const r = await pinChange(f, false, 'env:W', 'env:NEW_PIN', wrong);
      expect(r.code).toBe(7);
      expect(r.stderr).toContain('does not report how many tries');
    }
    const w = await pinChange(f, true, 'env:W', 'env:NEW_PIN', wrong);
    expect(w.code).toBe(3);
    expect(w.stderr).toContain('2 tries left');
    const same = await pinChange(f, true, 'env:PIN', 'env:PIN', env);
    expect(same.code).toBe(2);
    expect(same.stderr).toContain('is the current one');
    expect((await cli(['status', '--sim', f, '--json'])).json().transportPin).toBe(true);
    const ok = await pinChange(f, true, 'env:PIN', 'env:NEW_PIN', env);
    expect(ok.code, ok.stderr).toBe(0);
  });

  it('custodians replace the PIN: pin change needs --last-try; a blocked unused PIN does not stop the step', async () => {
    const dir = await tempDir();
    const { a, t } = await oneOfOne(dir, 'ivan');
    const wrong = { ...env, W: '000000' };
    const r = await pinChange(t, false, 'env:W', 'env:NEW_PIN', wrong);
    expect(r.code).toBe(7);
    expect(r.stderr).toContain('instead of the user PIN');
    // block the unused PIN on purpose
    for (let i = 0; i < 3; i++) await pinChange(t, true, 'env:W', 'env:NEW_PIN', wrong);
    const c = join(dir, 'c.json');
    const resp = join(dir, 'r.json');
    const auth = cli(
      pkaAuthArgs(t, c, [resp], '--wait', '30', '--', 'keygen', '--type', 'ec:prime256v1', '--label', 'z'),
    );
    await waitFor(c);
    await respond(a.sim, c, resp);
    const done = await auth;
    expect(done.code, done.stderr).toBe(0);
    expect(done.stdout).toContain('1 of 1');
  });
});

describe('public key authentication (init --pka, pka …)', () => {
  it('validates --pka/--required on the host before anything is sent', async () => {
    const dir = await tempDir();
    const f = join(dir, 'v.json');
    for (const [args, text] of [
      [['--pka', '2', '--required', '3'], 'exceeds'],
      [['--required', '1'], 'needs --pka'],
      [['--pka-and-pin'], 'needs --pka'],
      [['--pka', '2'], 'needs --required'],
      [['--pka', '0', '--required', '1'], '--pka must be'],
      [['--pka', '91', '--required', '1'], '--pka must be'],
      [['--pka', '2', '--required', '1', '--label', 'x'], '--label cannot be set'],
    ] as [string[], string][]) {
      const r = await init(f, ...args);
      expect(r.code, args.join(' ')).toBe(2);
      expect(r.stderr).toContain(text);
      expect(await exists(f)).toBe(false);
    }
  });

  it('2-of-2: register, status, remote answers, then the following step runs in the same session', async () => {
    const dir = await tempDir();
    const a = await custodian(dir, 'alice');
    const b = await custodian(dir, 'bob');
    const t = join(dir, 'target.json');
    const i = await init(t, '--pka', '2', '--required', '2');
    expect(i.code, i.stderr).toBe(0);
    expect(i.stdout).toContain('pka register');
    expect((await cli(['pin', 'status', '--sim', t])).stdout).toContain('public keys replace it');
    expect((await cli(['pka', 'register', '--sim', t, a.file])).code).toBe(0);
    // the same file twice: refused on the host
    const twice = await cli(['pka', 'register', '--sim', t, a.file]);
    expect(twice.code).toBe(7);
    expect(twice.stderr).toContain('registered on this device already');
    expect((await cli(['pka', 'register', '--sim', t, b.file])).code).toBe(0);
    const st = (await cli(['pka', 'status', '--sim', t, '--json'])).json();
    expect(st).toMatchObject({ total: 2, missing: 0, required: 2, authenticated: 0 });
    expect(st.keys).toHaveLength(2);
    const sj = (await cli(['status', '--sim', t, '--json'])).json();
    expect(sj.pka).toEqual({ total: 2, missing: 0, required: 2, authenticated: 0 });
    // no key generation without the custodians
    const denied = await cli(keygenArgs(t, 'ec:prime256v1', 'x', '--pin', 'env:PIN'), { env });
    expect(denied.code).not.toBe(0);

    const challenge = join(dir, 'challenge.json');
    const ra = join(dir, 'alice.response.json');
    const rb = join(dir, 'bob.response.json');
    const auth = cli([
      'pka',
      'authenticate',
      '--sim',
      t,
      '--json',
      '--challenge-out',
      challenge,
      '--response',
      ra,
      '--response',
      rb,
      '--wait',
      '30',
      '--',
      'keygen',
      '--type',
      'ec:prime256v1',
      '--label',
      'after-pka',
    ]);
    await waitFor(challenge);
    const c = JSON.parse(await readFile(challenge, 'utf8'));
    expect(c.format).toBe('sc-hsm-ts/pka-challenge');
    for (const [who, out] of [
      [a, ra],
      [b, rb],
    ] as const) {
      await respond(who.sim, challenge, out);
    }
    const done = await auth;
    expect(done.code, done.stderr).toBe(0);
    const dj = done.json();
    expect(dj).toMatchObject({ authenticated: 2, required: 2, step: 'keygen' });
    const keys = (await cli(['keys', '--sim', t, '--json'])).json();
    expect(JSON.stringify(keys)).toContain('after-pka');
  });

  it('refuses a stale response (an older challenge) on the host, and an existing response file up front', async () => {
    const dir = await tempDir();
    const { a, t } = await oneOfOne(dir, 'carol');
    const c1 = join(dir, 'c1.json');
    const r1 = join(dir, 'r1.json');
    // a first round whose answer arrives too late
    const first = await cli(pkaAuthArgs(t, c1, [r1], '--wait', '1'));
    expect(first.code).toBe(3);
    expect(first.stderr).toContain('no complete answer in 1 s');
    await respond(a.sim, c1, r1);
    const pre = await cli(pkaAuthArgs(t, join(dir, 'c2.json'), [r1]));
    expect(pre.code).toBe(7);
    expect(pre.stderr).toContain('exists already');
    // the stale answer renamed to the name the new round waits for
    const r2 = join(dir, 'r2.json');
    const c3 = join(dir, 'c3.json');
    const auth = cli(pkaAuthArgs(t, c3, [r2], '--wait', '30'));
    await waitFor(c3);
    await writeFile(r2, await readFile(r1));
    const r = await auth;
    // reported and not used; with no other answer the device stays unauthenticated
    expect(r.code).toBe(3);
    expect(r.stderr).toContain('answers another challenge');
    expect(r.stderr).toContain('not used: ');
    // a response file with a forged signature reaches the card and is refused there
    const c4 = join(dir, 'c4.json');
    const r4 = join(dir, 'r4.json');
    const auth4 = cli(pkaAuthArgs(t, c4, [r4], '--wait', '30'));
    await waitFor(c4);
    const r4src = join(dir, 'r4.src.json');
    await respond(a.sim, c4, r4src);
    const doc = JSON.parse(await readFile(r4src, 'utf8'));
    doc.signature = doc.signature.replace(/..$/, (x: string) => (x === '00' ? '01' : '00'));
    await writeFile(r4, JSON.stringify(doc));
    const out4 = await auth4;
    expect(out4.code).toBe(3);
    expect(out4.stderr).toContain('refused');
  });

  it('pka status on a device without PKA, and pka respond with a damaged challenge file', async () => {
    const dir = await tempDir();
    const f = join(dir, 'plain.json');
    expect((await init(f, '--label', 'plain')).code).toBe(0);
    const r = await cli(['pka', 'status', '--sim', f]);
    expect(r.code).toBe(4);
    expect(r.stderr).toContain('without public key authentication');
    const bad = join(dir, 'bad.json');
    await writeFile(
      bad,
      '{"format":"sc-hsm-ts/pka-challenge","version":1,"deviceChr":"X\\u0007","challenge":"00"}',
    );
    const x = await cli(respondArgs(f, bad, join(dir, 'o.json')), { env });
    expect(x.code).toBe(2);
    expect(await exists(join(dir, 'o.json'))).toBe(false);
  });
});

describe('pka commands refuse bad input before the device is touched', () => {
  it('response and challenge names, an existing challenge file (a killed earlier run), the step after --', async () => {
    const dir = await tempDir();
    const { t } = await oneOfOne(dir, 'dave');
    const c = join(dir, 'c.json');
    const r = join(dir, 'r.json');
    const before = await readFile(t, 'utf8');
    const cases: [string[], number, string][] = [
      [['--challenge-out', c], 2, '--response FILE is required'],
      [['--challenge-out', c, '--response', r, '--response', r], 2, 'named twice'],
      [['--challenge-out', c, '--response', c], 2, 'name the same file'],
      [['--response', r], 2, '--challenge-out is required'],
      [['--challenge-out', c, '--response', r, '--wait', 'soon'], 2, '--wait must be'],
      [['--challenge-out', c, '--response', r, '--', 'pka', 'status'], 2, 'another pka command'],
    ];
    for (const [args, code, text] of cases) {
      const x = await cli(['pka', 'authenticate', '--sim', t, ...args]);
      expect(x.code, args.join(' ')).toBe(code);
      expect(x.stderr).toContain(text);
      expect(await exists(c)).toBe(false);
    }
    // the step: global options after --, an unknown command — refused before anything is sent
    for (const [step, text] of [
      [['keys', '--sim', join(dir, 'other.json')], 'before pka authenticate'],
      [['frobnicate'], "got 'frobnicate'"],
      [['keygen', '--no-such-option'], 'no-such-option'],
      [['init', '--so-pin', 'env:SO_PIN', '--pin', 'env:PIN'], 'init cannot be the step'],
    ] as [string[], string][]) {
      const x = await cli(pkaAuthArgs(t, c, [r], '--', ...step));
      expect(x.code, step.join(' ')).toBe(2);
      expect(x.stderr).toContain(text);
      expect(await exists(c)).toBe(false);
    }
    // a challenge file left by a killed run is never replaced
    await writeFile(c, 'left over');
    const left = await cli(pkaAuthArgs(t, c, [r]));
    expect(left.code).toBe(7);
    expect(await readFile(c, 'utf8')).toBe('left over');
    // nothing above changed the device
    expect(await readFile(t, 'utf8')).toBe(before);
  });

  it('pka respond: a control character in the challenge file, a missing key, an existing output', async () => {
    const dir = await tempDir();
    const a = await custodian(dir, 'erin');
    const c = join(dir, 'c.json');
    await writeChallenge(c, 'UTVH\u001b[31m', '0011223344556677');
    const bad = await cli(respondArgs(a.sim, c, join(dir, 'r.json'), '1'), { env });
    expect(bad.code).toBe(2);
    expect(bad.stderr).not.toContain('\u001b');
    await writeChallenge(c, 'UTVH000000100000', '0011223344556677');
    const none = await cli(respondArgs(a.sim, c, join(dir, 'r.json'), '9'), { env });
    expect(none.code).toBe(5);
    expect(await exists(join(dir, 'r.json'))).toBe(false);
    await writeFile(join(dir, 'r.json'), 'mine');
    const ex = await cli(respondArgs(a.sim, c, join(dir, 'r.json'), '1'), { env });
    expect(ex.code).toBe(7);
    expect(await readFile(join(dir, 'r.json'), 'utf8')).toBe('mine');
    // options in another order, --key-ref before the file
    const ok = await cli(
      [
        'pka',
        'respond',
        '--key-ref',
        '1',
        '--pin',
        'env:PIN',
        '--out',
        join(dir, 'r2.json'),
        '--sim',
        a.sim,
        c,
      ],
      {
        env,
      },
    );
    expect(ok.code, ok.stderr).toBe(0);
  });
});

describe('n-of-m with fewer answers than required', () => {
  it('2-of-3 with one answer: the device stays unauthenticated and the step is not run (exit 3)', async () => {
    const dir = await tempDir();
    const a = await custodian(dir, 'frank');
    const b = await custodian(dir, 'grace');
    const t = join(dir, 'target.json');
    expect((await init(t, '--pka', '3', '--required', '2')).code).toBe(0);
    for (const x of [a, b]) expect((await cli(['pka', 'register', '--sim', t, x.file])).code).toBe(0);
    const st = (await cli(['pka', 'status', '--sim', t, '--json'])).json();
    expect(st).toMatchObject({ total: 3, missing: 1, required: 2 });
    expect(st.keys.map((k: { chr?: string }) => k.chr === undefined)).toEqual([false, false, true]);
    const c = join(dir, 'c.json');
    const r = join(dir, 'r.json');
    const auth = cli(pkaAuthArgs(t, c, [r], '--wait', '30', '--', 'keys'));
    await waitFor(c);
    await respond(a.sim, c, r);
    const x = await auth;
    expect(x.code).toBe(3);
    expect(x.stderr).toContain("only 1 of 2 custodians authenticated: 'keys' was not run");
    expect(x.stdout).not.toContain('No keys on the device.');
  });
});

describe('--pka-and-pin (option 0010)', () => {
  it('the step after the custodians still needs the user PIN', async () => {
    const dir = await tempDir();
    const a = await custodian(dir, 'heidi');
    const t = join(dir, 'target.json');
    const i = await init(t, '--pka', '1', '--required', '1', '--pka-and-pin');
    expect(i.code, i.stderr).toBe(0);
    expect(i.stdout).toContain('Combined authentication (user PIN and public key authentication)');
    expect((await cli(['pka', 'register', '--sim', t, a.file])).code).toBe(0);
    const round = async (n: number, step: string[]) => {
      const c = join(dir, `c${n}.json`);
      const r = join(dir, `r${n}.json`);
      const auth = cli(pkaAuthArgs(t, c, [r], '--wait', '30', '--', ...step), { env });
      await waitFor(c);
      await respond(a.sim, c, r);
      return auth;
    };
    // no PIN given to the step: without a terminal that is a usage error, refused before the challenge
    const c1 = join(dir, 'c1.json');
    const without = await cli(
      pkaAuthArgs(t, c1, [join(dir, 'r1.json')], '--', 'keygen', '--type', 'ec:prime256v1', '--label', 'k'),
      { env },
    );
    expect(without.code).toBe(2);
    expect(await exists(c1)).toBe(false);
    const withPin = await round(2, ['keygen', '--type', 'ec:prime256v1', '--label', 'k', '--pin', 'env:PIN']);
    expect(withPin.code, withPin.stderr).toBe(0);
  });
});
