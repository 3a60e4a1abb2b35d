/**
 * PIN tries nobody meant to spend, through the command (issue #10 §6): secrets from files and the
 * command line, the raw `apdu` guard, a retry counter of 1, SO-PIN wording and the PIN alphabet.
 * Each test reads the card's retry counters from its state file before and after.
 */
import { chmod, readFile, stat, writeFile } from 'node:fs/promises';
import { join } from 'node:path';
import { beforeAll, describe, expect, it } from 'vitest';
import { cli, copyState, ENV, initArgs, initializedState, PIN, SO_PIN, tempDir } from './cli-helpers.js';

const WRONG = '111111';
const WRONG_SO = '0102030405060708';
const hex = (s: string) => Buffer.from(s).toString('hex');

let dir: string;
/** An initialized virtual card (user PIN 648219, 3 tries; SO-PIN 15 tries), no keys. */
let base: string;

beforeAll(async () => {
  dir = await tempDir();
  base = await initializedState(dir, 'Pins');
});

let n = 0;
async function fresh(): Promise<string> {
  return copyState(base, dir, `card-${++n}.json`);
}

interface Tries {
  userPinTries: number;
  soPinTries: number;
  userPinMaxTries: number;
}

async function tries(sim: string): Promise<Tries> {
  return JSON.parse(await readFile(sim, 'utf8')) as Tries;
}

/** Sets retry counters directly in the state file (no command runs meanwhile). */
async function setTries(sim: string, t: Partial<Tries>): Promise<void> {
  const s = JSON.parse(await readFile(sim, 'utf8')) as Record<string, unknown>;
  await writeFile(sim, JSON.stringify({ ...s, ...t }));
}

async function secretFile(name: string, content: string, mode = 0o600): Promise<string> {
  const p = join(dir, name);
  await writeFile(p, content);
  await chmod(p, mode);
  return p;
}

describe('secrets from files and the command line', () => {
  for (const [what, content] of [
    ['two line ends', `${PIN}\n\n`],
    ['a trailing space and a line end', `${PIN} \n`],
    ['a UTF-8 byte order mark', `\uFEFF${PIN}\n`],
    ['CR LF', `${PIN}\r\n`],
    ['white space on both sides', ` \t${PIN}\t \n`],
  ]) {
    it(`a PIN file with ${what} verifies and costs no try`, async () => {
      const sim = await fresh();
      const f = await secretFile(`pin-${n}.txt`, content!);
      const r = await cli(['pin', 'verify', '--sim', sim, '--pin', `file:${f}`]);
      expect(r.code, r.stderr).toBe(0);
      expect((await tries(sim)).userPinTries).toBe(3);
    });
  }

  it('a PIN file with a second line or a character outside ASCII is refused before anything is sent', async () => {
    const sim = await fresh();
    for (const content of [`${PIN}\n123456\n`, '648219é\n', `64\u00a08219\n`]) {
      const f = await secretFile('pin-bad.txt', content);
      const r = await cli(['pin', 'verify', '--sim', sim, '--pin', `file:${f}`, '--json']);
      expect(r.code, r.stderr).toBe(2);
      expect(r.json().error.code).toBe('INVALID_PIN');
      expect(r.stdout + r.stderr).not.toContain(PIN);
    }
    expect((await tries(sim)).userPinTries).toBe(3);
  });

  it('a new share-file password from a file keeps inner spaces, drops line ends, refuses spaces at the ends', async () => {
    const spaced = await secretFile('pw-spaced.txt', 'correct horse \n');
    const out = join(dir, 'share-spaced.pbe');
    const r = await cli(['dkek', 'create', out, '--password', `file:${spaced}`]);
    expect(r.code, r.stderr).toBe(2);
    expect(r.stderr).toMatch(/begins or ends with white space/);
    await expect(stat(out)).rejects.toMatchObject({ code: 'ENOENT' });

    const good = await secretFile('pw-good.txt', '\uFEFFcorrect horse battery\n\n');
    const share = join(dir, 'share-good.pbe');
    const c = await cli(['dkek', 'create', share, '--password', `file:${good}`, '--json']);
    expect(c.code, c.stderr).toBe(0);
    const i = await cli(['dkek', 'inspect', share, '--password', 'env:PW', '--json'], {
      env: { PW: 'correct horse battery' },
    });
    expect(i.code, i.stderr).toBe(0);
    expect(i.json().kcv).toBe(c.json().kcv);
  });

  it('a new share-file password with a control character is refused; an existing one decrypts as it is', async () => {
    for (const [how, args, env] of [
      ['env', ['--password', 'env:PW'], { PW: 'correct\u001bhorse' }],
      ['file', ['--password', `file:${await secretFile('pw-bel.txt', 'correct\u0007horse\n')}`], {}],
    ] as const) {
      const out = join(dir, `share-ctl-${how}.pbe`);
      const r = await cli(['dkek', 'create', out, ...args, '--json'], { env });
      expect(r.code, how).toBe(2);
      expect(r.json().error.message).toMatch(
        /new password given with --password contains a control .*U\+00(1B|07)/,
      );
      expect(r.stdout + r.stderr).not.toContain('horse');
      await expect(stat(out)).rejects.toMatchObject({ code: 'ENOENT' });
    }
    // a share file made elsewhere with such a password is still opened with it
    const { encryptDkekShare } = await import('../src/index.js');
    const made = join(dir, 'share-made-elsewhere.pbe');
    await writeFile(made, await encryptDkekShare(new Uint8Array(32).fill(7), 'old\u001bpass'), {
      mode: 0o600,
    });
    const i = await cli(['dkek', 'inspect', made, '--password', 'env:PW', '--json'], {
      env: { PW: 'old\u001bpass' },
    });
    expect(i.code, i.stderr).toBe(0);
  });

  it('warns (one line, never the value) about a secret on the command line or in a file others can read', async () => {
    const sim = await fresh();
    const literal = await cli(['pin', 'verify', '--sim', sim, '--pin', PIN]);
    expect(literal.code).toBe(0);
    expect(literal.stderr).toMatch(/^warning: --pin was given on the command line.*env:NAME or file:PATH$/m);
    expect(literal.stderr).not.toContain(PIN);

    const open = await secretFile('pin-open.txt', `${PIN}\n`, 0o644);
    const readable = await cli(['pin', 'verify', '--sim', sim, '--pin', `file:${open}`]);
    expect(readable.code).toBe(0);
    expect(readable.stderr).toContain(
      `warning: --pin file:${open} can be read by other users (mode 0644): chmod 600`,
    );

    const closed = await secretFile('pin-closed.txt', `${PIN}\n`);
    const quiet = [
      await cli(['pin', 'verify', '--sim', sim, '--pin', `file:${closed}`]),
      await cli(['pin', 'verify', '--sim', sim, '--pin', 'env:PIN'], { env: ENV }),
    ];
    for (const q of quiet) {
      expect(q.code).toBe(0);
      expect(q.stderr).not.toContain('warning');
    }
  });
});

describe('the PIN alphabet: printable ASCII, counted in characters', () => {
  it('refuses non-ASCII PINs at init and change, naming characters, before anything is sent', async () => {
    const sim = await fresh();
    const before = await readFile(sim, 'utf8');
    for (const pin of ['ééé', 'é'.repeat(8), 'caf\u00e9123', 'cafe\u0301123']) {
      const r = await cli(
        ['pin', 'change', '--sim', sim, '--pin', 'env:PIN', '--new-pin', 'env:NEW', '--json'],
        { env: { ...ENV, NEW: pin } },
      );
      expect(r.code, r.stderr).toBe(2);
      expect(r.json().error.code).toBe('INVALID_PIN');
      expect(r.json().error.message).toMatch(/printable ASCII/);
      expect(r.json().error.message).not.toMatch(/has 16/);
    }
    const long = await cli(
      ['pin', 'change', '--sim', sim, '--pin', 'env:PIN', '--new-pin', 'env:NEW', '--json'],
      { env: { ...ENV, NEW: 'a'.repeat(16) } },
    );
    expect(long.json().error.message).toMatch(/6 to 15 characters long; it has 16\b/);
    expect(await readFile(sim, 'utf8')).toBe(before);
  });
});

describe('raw APDUs obey the PIN guard', () => {
  it('a raw VERIFY or CHANGE REFERENCE DATA with one user-PIN try left needs --last-try', async () => {
    const sim = await fresh();
    await setTries(sim, { userPinTries: 1 });
    const verify = `0020008106${hex(PIN)}`;
    const change = `002400810C${hex(PIN)}${hex('123456')}`;
    for (const a of [verify, change]) {
      const r = await cli(['apdu', '--sim', sim, '0020008100', a, '--json']);
      expect(r.code, r.stderr).toBe(7);
      expect(r.json().error).toMatchObject({ code: 'PIN_TRIES_LOW', pin: 'user-pin', triesLeft: 1 });
      expect(r.json().error.fix).toContain('--last-try');
    }
    expect((await tries(sim)).userPinTries).toBe(1);
    const ok = await cli(['apdu', '--sim', sim, verify, '--last-try', '--json']);
    expect(ok.code, ok.stderr).toBe(0);
    expect(ok.json().responses[0].sw).toBe('9000');
    expect((await tries(sim)).userPinTries).toBe(3);
    // a status query (no data) costs nothing and is never refused
    await setTries(sim, { userPinTries: 1 });
    expect((await cli(['apdu', '--sim', sim, '0020008100'])).code).toBe(0);
  });

  it('a raw RESET RETRY COUNTER, SO-PIN change or INITIALIZE with one SO-PIN try left needs --last-try', async () => {
    const sim = await fresh();
    await setTries(sim, { soPinTries: 1 });
    const init = `8050000019800200018106${hex(PIN)}8208${SO_PIN}910103`;
    for (const a of [
      `002C018108${SO_PIN}`,
      `002C00810E${SO_PIN}${hex(PIN)}`,
      `0024008810${SO_PIN}${WRONG_SO}`,
      init,
    ]) {
      const r = await cli(['apdu', '--sim', sim, a, '--json']);
      expect(r.code, `${a}: ${r.stderr}`).toBe(7);
      expect(r.json().error).toMatchObject({ code: 'PIN_TRIES_LOW', pin: 'so-pin' });
      expect(r.json().error.message).toMatch(/SO-PIN.*for good.*re-initialized/);
    }
    expect((await tries(sim)).soPinTries).toBe(1);
    const ok = await cli(['apdu', '--sim', sim, `002C018108${SO_PIN}`, '--last-try']);
    expect(ok.code, ok.stderr).toBe(0);
    expect((await tries(sim)).soPinTries).toBe(15);
  });
});

describe('a user PIN retry counter of 1', () => {
  it('init warns; on this computer the correct PIN then needs no --last-try, elsewhere it does', async () => {
    const sim = join(dir, 'retry1.json');
    const cfg = { XDG_CONFIG_HOME: join(dir, 'config') };
    const r = await cli(initArgs(sim, 'R1', '--pin-retry', '1', '--yes'), { env: { ...ENV, ...cfg } });
    expect(r.code, r.stderr).toBe(0);
    expect(r.stderr).toMatch(/warning: --pin-retry 1: a single wrong user PIN blocks it/);
    const record = join(dir, 'config', 'sc-hsm-ts', 'pin-retry.json');
    expect((await stat(record)).mode & 0o777).toBe(0o600);
    expect(await readFile(record, 'utf8')).not.toContain(PIN);
    expect((await tries(sim)).userPinMaxTries).toBe(1);

    const here = await cli(['pin', 'verify', '--sim', sim, '--pin', 'env:PIN'], { env: { ...ENV, ...cfg } });
    expect(here.code, here.stderr).toBe(0);
    const st = await cli(['pin', 'status', '--sim', sim], { env: cfg });
    expect(st.stdout).toMatch(/User PIN +: 1 of 1 tries left \(retry counter 1: every wrong PIN blocks it\)/);

    const elsewhere = await cli(['pin', 'verify', '--sim', sim, '--pin', 'env:PIN', '--json'], { env: ENV });
    expect(elsewhere.code).toBe(7);
    expect(elsewhere.json().error.fix).toContain('--last-try');
    expect(
      (await cli(['pin', 'verify', '--sim', sim, '--pin', 'env:PIN', '--last-try'], { env: ENV })).code,
    ).toBe(0);

    // re-initialized with 3: the record is dropped, and one try left is the last one again
    const again = await cli(initArgs(sim, 'R3', '--yes'), { env: { ...ENV, ...cfg } });
    expect(again.code, again.stderr).toBe(0);
    expect(await readFile(record, 'utf8')).not.toMatch(/"UT/);
    for (const left of [2, 1]) {
      const w = await cli(['pin', 'verify', '--sim', sim, '--pin', WRONG, '--json'], { env: cfg });
      expect(w.json().error).toMatchObject({ code: 'WRONG_PIN', triesLeft: left });
    }
    const refused = await cli(['pin', 'verify', '--sim', sim, '--pin', 'env:PIN', '--json'], {
      env: { ...ENV, ...cfg },
    });
    expect(refused.json().error.code).toBe('PIN_TRIES_LOW');
  });

  it('a record made stale by a re-initialization elsewhere is dropped when the card shows more tries; the last try then needs --last-try', async () => {
    const sim = join(dir, 'retry1-stale.json');
    const cfg = { XDG_CONFIG_HOME: join(dir, 'config-stale') };
    const other = { XDG_CONFIG_HOME: join(dir, 'config-other') };
    const init = (retry: string, env: Record<string, string>) =>
      cli(initArgs(sim, 'R', '--pin-retry', retry, '--yes'), { env: { ...ENV, ...env } });
    expect((await init('1', cfg)).code).toBe(0);
    const record = join(cfg.XDG_CONFIG_HOME, 'sc-hsm-ts', 'pin-retry.json');
    const devices = async () => Object.keys(JSON.parse(await readFile(record, 'utf8')).devices);
    expect(await devices()).toHaveLength(1);
    // re-initialized with 3 tries from another config directory: cfg's record is now stale
    expect((await init('3', other)).code).toBe(0);
    for (const left of [2, 1]) {
      const w = await cli(['pin', 'verify', '--sim', sim, '--pin', WRONG, '--json'], { env: cfg });
      expect(w.json().error).toMatchObject({ code: 'WRONG_PIN', triesLeft: left });
      // the card showed more tries left than the record's 1: dropped for good, file rewritten
      expect(await devices()).toEqual([]);
      expect((await stat(record)).mode & 0o777).toBe(0o600);
    }
    const third = await cli(['pin', 'verify', '--sim', sim, '--pin', WRONG, '--json'], { env: cfg });
    expect(third.code).toBe(7);
    expect(third.json().error.code).toBe('PIN_TRIES_LOW');
    expect((await tries(sim)).userPinTries).toBe(1);
  });

  it('pin status and status drop a stale record too', async () => {
    const sim = join(dir, 'retry1-status.json');
    const cfg = { XDG_CONFIG_HOME: join(dir, 'config-status') };
    const args = initArgs(sim, 'R', '--yes');
    expect((await cli([...args, '--pin-retry', '1'], { env: { ...ENV, ...cfg } })).code).toBe(0);
    // re-initialized with 3 tries without this config directory
    expect((await cli(args, { env: ENV })).code).toBe(0);
    const record = join(cfg.XDG_CONFIG_HOME, 'sc-hsm-ts', 'pin-retry.json');
    const stale = await readFile(record, 'utf8');
    expect(Object.keys(JSON.parse(stale).devices)).toHaveLength(1);
    for (const cmd of [['status'], ['pin', 'status']]) {
      await writeFile(record, stale, { mode: 0o600 });
      const r = await cli([...cmd, '--sim', sim], { env: cfg });
      expect(r.code, r.stderr).toBe(0);
      expect(Object.keys(JSON.parse(await readFile(record, 'utf8')).devices), cmd.join(' ')).toEqual([]);
    }
  });
});

describe('SO-PIN messages name the SO-PIN and what a blocked one means', () => {
  it('the wrong SO-PIN that exhausts the counter', async () => {
    const sim = await fresh();
    await setTries(sim, { soPinTries: 2 });
    const env = { ...ENV, WSO: WRONG_SO };
    const first = await cli(
      ['pin', 'unblock', '--sim', sim, '--so-pin', 'env:WSO', '--reset-only', '--json'],
      {
        env,
      },
    );
    expect(first.code).toBe(3);
    expect(first.json().error).toMatchObject({ code: 'WRONG_PIN', pin: 'so-pin', triesLeft: 1 });
    expect(first.json().error.message).toMatch(
      /wrong SO-PIN, 1 try left before the SO-PIN is blocked for good/,
    );
    expect(first.json().error.fix).toMatch(/SO-PIN/);

    const refused = await cli(
      ['pin', 'unblock', '--sim', sim, '--so-pin', 'env:WSO', '--reset-only', '--json'],
      {
        env,
      },
    );
    expect(refused.code).toBe(7);
    expect(refused.json().error.message).toMatch(/^the SO-PIN has one try left/);

    const last = await cli(
      ['pin', 'unblock', '--sim', sim, '--so-pin', 'env:WSO', '--reset-only', '--last-try', '--json'],
      { env },
    );
    expect(last.code).toBe(3);
    const e = last.json().error;
    expect(e).toMatchObject({ code: 'PIN_BLOCKED', pin: 'so-pin', triesLeft: 0 });
    expect(e.message).toMatch(/wrong SO-PIN, no tries left: the SO-PIN is now blocked for good/);
    expect(e.message).toMatch(/can no longer be re-initialized/);
    expect(e.message).not.toMatch(/user PIN is/);
    expect(e.fix).not.toMatch(/pin unblock/);
    expect((await tries(sim)).soPinTries).toBe(0);

    const text = await cli(['pin', 'status', '--sim', sim]);
    expect(text.stdout).toMatch(/SO-PIN +: BLOCKED for good/);
  });

  it('init does not print "User PIN tries left: verified"', async () => {
    const r = await cli(initArgs(join(dir, 'words.json'), 'W', '--yes'), { env: ENV });
    expect(r.code, r.stderr).toBe(0);
    expect(r.stdout).not.toMatch(/tries left +: verified/);
    expect(r.stdout).toMatch(/User PIN tries left +: all \(the PIN is verified in this session/);
  });

  it('the user PIN with one try left: "1 try left", never "1 tries left"', async () => {
    const sim = await fresh();
    await setTries(sim, { userPinTries: 1 });
    const r = await cli(['pin', 'status', '--sim', sim]);
    expect(r.stdout).toMatch(/User PIN +: 1 try left: the next wrong PIN blocks it/);
    expect(r.stdout).not.toMatch(/1 tries/);
  });
});

describe('option values that start with a dash', () => {
  it('--key-ref -1 says how to write such a value', async () => {
    const sim = await fresh();
    const r = await cli(['delete-key', '--sim', sim, '--key-ref', '-1', '--json']);
    expect(r.code).toBe(2);
    expect(r.json().error.message).toMatch(
      /--key-ref needs a value; a value that starts with '-' is written --key-ref=VALUE/,
    );
    const eq = await cli(['delete-key', '--sim', sim, '--key-ref=-1', '--json']);
    expect(eq.json().error.message).toMatch(/--key-ref must be an integer from 1 to 255/);
  });
});
