/**
 * A virtual card's state file is a device: one holder at a time, saved before every answer that
 * changed it. Real processes where the issue is about processes (issue #10 §3, §8, §10): parallel
 * commands on one file keep every key and count every PIN try; a second holder is told who holds
 * the file; a killed holder's lock and temps go; `sim serve` saves before it answers and stops
 * quietly on SIGTERM.
 */
import {
  existsSync,
  readdirSync,
  readFileSync,
  realpathSync,
  rmSync,
  statSync,
  utimesSync,
  writeFileSync,
} from 'node:fs';
import { createServer, type Server, type Socket } from 'node:net';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { VirtualSmartCardHsm } from '../src/sim/index.js';
import { cli, ENV, tempDir } from './cli-helpers.js';
import { buildCli, finished, runCliProcess, startCli } from './helpers/cli-process.js';

/**
 * Generous: twenty commands (each a Node.js process) queue for one file on a shared two-core
 * machine. The outcome does not depend on it: no command may give up.
 */
const WAIT = { SC_HSM_TS_LOCK_WAIT: '300' };

let dir: string;
/** Initialized, no DKEK, user PIN 3 tries, SO-PIN 15. */
let base: string;

beforeAll(async () => {
  await buildCli();
  dir = await tempDir();
  base = join(dir, 'base.json');
  const r = await cli(
    ['init', '--sim', base, '--so-pin', 'env:SO_PIN', '--pin', 'env:PIN', '--label', 'Lock', '--yes'],
    { env: ENV },
  );
  expect(r.code, r.stderr).toBe(0);
});

function copyOfBase(name: string): string {
  const f = join(dir, name);
  writeFileSync(f, readFileSync(base), { mode: 0o600 });
  return f;
}

function stateOf(f: string): { userPinTries: number; soPinTries: number; keys: Record<string, unknown> } {
  return JSON.parse(readFileSync(f, 'utf8'));
}

describe('one state file, many processes', () => {
  it('five parallel keygens keep five keys at five key references', async () => {
    const f = copyOfBase('keygen.json');
    const runs = await Promise.all(
      [1, 2, 3, 4, 5].map((i) =>
        runCliProcess(
          ['keygen', '--sim', f, '--type', 'ec:prime256v1', '--label', `k${i}`, '--pin', 'env:PIN', '--json'],
          { env: { ...ENV, ...WAIT } },
        ),
      ),
    );
    for (const r of runs) expect(r.code, r.stderr).toBe(0);
    const refs = runs.map((r) => r.json().keyRef).sort();
    expect(new Set(refs).size).toBe(5);
    const keys = await cli(['keys', '--sim', f, '--json']);
    expect(
      keys
        .json()
        .keys.map((k: { keyRef: number }) => k.keyRef)
        .sort(),
    ).toEqual(refs);
    expect(
      keys
        .json()
        .keys.map((k: { label: string }) => k.label)
        .sort(),
    ).toEqual(['k1', 'k2', 'k3', 'k4', 'k5']);
  }, 120_000);

  it('20 parallel wrong PINs with --last-try: each try counted once, the PIN ends blocked', async () => {
    const f = copyOfBase('verify.json');
    const runs = await Promise.all(
      Array.from({ length: 20 }, () =>
        runCliProcess(['pin', 'verify', '--sim', f, '--pin', '111111', '--last-try', '--json'], {
          env: WAIT,
        }),
      ),
    );
    const sws: string[] = [];
    for (const r of runs) {
      expect(r.code, r.stderr).toBe(3);
      const e = r.json().error;
      expect(['WRONG_PIN', 'PIN_BLOCKED']).toContain(e.code);
      if (e.sw !== undefined && /^63C/.test(e.sw)) sws.push(e.sw);
    }
    // three tries, each answered once: 2 left, 1 left, blocked; the 17 others found it blocked
    expect(sws.sort()).toEqual(['63C0', '63C1', '63C2']);
    expect(stateOf(f).userPinTries).toBe(0);
    const st = await cli(['pin', 'status', '--sim', f, '--json']);
    expect(st.json().userPin).toMatchObject({ blocked: true });
  }, 240_000);

  it('10 parallel unblocks with a wrong SO-PIN lower the SO-PIN counter by 10', async () => {
    const f = copyOfBase('so.json');
    const runs = await Promise.all(
      Array.from({ length: 10 }, () =>
        runCliProcess(
          ['pin', 'unblock', '--sim', f, '--so-pin', '0000000000000000', '--new-pin', '123456', '--json'],
          { env: WAIT },
        ),
      ),
    );
    const left = runs.map((r) => {
      expect(r.code, r.stderr).toBe(3);
      return r.json().error.triesLeft as number;
    });
    expect(left.sort((a, b) => a - b)).toEqual([5, 6, 7, 8, 9, 10, 11, 12, 13, 14]);
    expect(stateOf(f).soPinTries).toBe(5);
  }, 180_000);
});

describe('a second holder', () => {
  it('is told who holds the file (pid and command), after the bounded wait; nothing changes', async () => {
    const f = copyOfBase('held.json');
    const before = readFileSync(f);
    const holder = await VirtualSmartCardHsm.open(f, { command: 'the test holder' });
    try {
      const r = await cli(['pin', 'verify', '--sim', f, '--pin', '111111', '--json'], {
        env: { SC_HSM_TS_LOCK_WAIT: '0' },
      });
      expect(r.code).toBe(4);
      const e = r.json().error;
      expect(e.code).toBe('READER_BUSY');
      expect(e.message).toContain(`pid ${process.pid} (the test holder)`);
      expect(e.fix).toContain('SC_HSM_TS_LOCK_WAIT');
      await expect(VirtualSmartCardHsm.open(f, { waitMs: 0 })).rejects.toMatchObject({ code: 'READER_BUSY' });
      await expect(VirtualSmartCardHsm.load(f, { waitMs: 0 })).rejects.toMatchObject({ code: 'READER_BUSY' });
      await expect(new VirtualSmartCardHsm().save(f, { waitMs: 0 })).rejects.toMatchObject({
        code: 'READER_BUSY',
      });
      expect(readFileSync(f)).toEqual(before);
    } finally {
      await holder.close();
    }
    const r = await cli(['pin', 'verify', '--sim', f, '--pin', '111111', '--json'], {
      env: { SC_HSM_TS_LOCK_WAIT: '0' },
    });
    expect(r.json().error.code).toBe('WRONG_PIN');
    expect(readdirSync(dir).filter((n) => n.startsWith('held.json.lock'))).toEqual([]);
  });

  it('a bad SC_HSM_TS_LOCK_WAIT is a usage error naming the variable', async () => {
    const r = await cli(['keys', '--sim', base, '--json'], { env: { SC_HSM_TS_LOCK_WAIT: 'soon' } });
    expect(r.code).toBe(2);
    expect(r.json().error.message).toContain('SC_HSM_TS_LOCK_WAIT');
  });
});

describe('the card saves before it answers', () => {
  it('a counted wrong PIN try is in the file when VERIFY returns', async () => {
    const f = copyOfBase('eeprom.json');
    const card = await VirtualSmartCardHsm.open(f);
    try {
      const sel = card.process(Buffer.from('00a404000be82b0601040181c31f020100', 'hex'));
      expect(Buffer.from(sel.subarray(-2)).toString('hex')).toBe('9000');
      const r = card.process(Buffer.from('0020008106313131313131', 'hex'));
      expect(Buffer.from(r).toString('hex')).toBe('63c2');
      // no await in between: the file was written before process() returned
      expect(stateOf(f).userPinTries).toBe(2);
    } finally {
      await card.close();
    }
  });

  it('a failed save answers 6581 (memory failure) and stops the card', async () => {
    const d = join(dir, 'vanishing');
    const f = copyOfBase('x.json');
    const { mkdirSync, renameSync } = await import('node:fs');
    mkdirSync(d);
    renameSync(f, join(d, 'card.json'));
    const failures: string[] = [];
    const card = await VirtualSmartCardHsm.open(join(d, 'card.json'), {
      onFailure: (e) => failures.push(e.code),
    });
    try {
      card.process(Buffer.from('00a404000be82b0601040181c31f020100', 'hex'));
      rmSync(d, { recursive: true, force: true });
      const r = card.process(Buffer.from('0020008106313131313131', 'hex'));
      expect(Buffer.from(r).toString('hex')).toBe('6581');
      expect(failures).toEqual(['IO_ERROR']);
      expect(
        Buffer.from(card.process(Buffer.from('00a404000be82b0601040181c31f020100', 'hex'))).toString('hex'),
      ).toBe('6581');
    } finally {
      await card.close();
    }
  });
});

describe('a --sim FILE that does not exist', () => {
  it('is an error with the fix (init creates it), not a blank device; no file is made', async () => {
    const f = join(dir, 'typo.json');
    const r = await cli(['keys', '--sim', f, '--json']);
    expect(r.code).toBe(5);
    expect(r.json().error.code).toBe('HOST_FILE_NOT_FOUND');
    expect(r.json().error.fix).toContain(`sc-hsm-ts init --sim ${f}`);
    expect(existsSync(f)).toBe(false);
    expect(readdirSync(dir).filter((n) => n.startsWith('typo'))).toEqual([]);
  });

  it('a directory or a device is no state file: refused before any lock appears beside it', async () => {
    for (const p of [dir, '/dev/null']) {
      const r = await cli(['keys', '--sim', p, '--json']);
      expect(r.code).toBe(4);
      expect(r.json().error.code).toBe('INVALID_STATE_FILE');
      expect(existsSync(`${p}.lock`)).toBe(false);
    }
  });

  it('in a directory that does not exist: the error comes first, nothing is printed', async () => {
    const r = await cli(['status', '--sim', '/no-such-dir/x.json']);
    expect(r.code).toBe(5);
    expect(r.stdout).toBe('');
    expect(r.stderr).toContain('/no-such-dir');
    expect(r.stderr).toContain('does not exist');
  });
});

/** A stand-in for pcscd's vpcd (spec/pcsc-stack.md §2): frames of 2-byte length + payload. */
class FakeVpcd {
  readonly server: Server;
  socket?: Socket;
  private buf = Buffer.alloc(0);
  private frames: Buffer[] = [];
  private waiter: (() => void) | undefined;
  private connected: Promise<void>;

  constructor() {
    let onConnect: () => void;
    this.connected = new Promise((r) => {
      onConnect = r;
    });
    this.server = createServer((s) => {
      this.socket = s;
      s.on('data', (d) => {
        this.buf = Buffer.concat([this.buf, d]);
        while (this.buf.length >= 2 && this.buf.length >= 2 + this.buf.readUInt16BE(0)) {
          this.frames.push(this.buf.subarray(2, 2 + this.buf.readUInt16BE(0)));
          this.buf = this.buf.subarray(2 + this.buf.readUInt16BE(0));
          this.waiter?.();
        }
      });
      s.on('error', () => undefined);
      onConnect();
    });
  }

  async listen(): Promise<number> {
    await new Promise<void>((r) => this.server.listen(0, '127.0.0.1', r));
    return (this.server.address() as { port: number }).port;
  }

  whenConnected(): Promise<void> {
    return this.connected;
  }

  /** Sends one frame and returns the card's answer. */
  async exchange(hex: string): Promise<string> {
    const b = Buffer.from(hex, 'hex');
    const f = Buffer.alloc(2 + b.length);
    f.writeUInt16BE(b.length, 0);
    b.copy(f, 2);
    this.socket!.write(f);
    if (!this.frames.length)
      await new Promise<void>((r) => {
        this.waiter = () => {
          this.waiter = undefined;
          r();
        };
      });
    return this.frames.shift()!.toString('hex');
  }

  close(): void {
    this.socket?.destroy();
    this.server.close();
  }
}

describe('sim serve', () => {
  const fakes: FakeVpcd[] = [];
  afterAll(() => {
    for (const f of fakes) f.close();
  });

  async function serve(state: string): Promise<{ vpcd: FakeVpcd; child: ReturnType<typeof startCli> }> {
    const vpcd = new FakeVpcd();
    fakes.push(vpcd);
    const port = await vpcd.listen();
    const child = startCli(['sim', 'serve', '--state', state, '--vpcd', `127.0.0.1:${port}`]);
    await vpcd.whenConnected();
    expect(await vpcd.exchange('04')).toMatch(/^3b/);
    return { vpcd, child };
  }

  it('a wrong PIN try it answered survives a kill right after the answer', async () => {
    const f = copyOfBase('served.json');
    const { vpcd, child } = await serve(f);
    const done = finished(child);
    expect(await vpcd.exchange('00a404000be82b0601040181c31f020100')).toMatch(/9000$/);
    expect(await vpcd.exchange('0020008106313131313131')).toBe('63c2');
    child.kill('SIGKILL');
    expect((await done).signal).toBe('SIGKILL');
    expect(stateOf(f).userPinTries).toBe(2);
  });

  it('holds its file for its life; SIGTERM stops it with only "stopped; state saved"', async () => {
    const f = copyOfBase('served-term.json');
    const { child } = await serve(f);
    const done = finished(child);
    const r = await cli(['keys', '--sim', f, '--json'], { env: { SC_HSM_TS_LOCK_WAIT: '0' } });
    expect(r.json().error.code).toBe('READER_BUSY');
    expect(r.json().error.message).toMatch(/pid \d+ \(sc-hsm-ts sim serve\)/);
    child.kill('SIGTERM');
    const end = await done;
    expect(end.code).toBe(0);
    expect(end.stderr).toContain('stopped; state saved');
    expect(end.stderr).not.toContain('connection lost');
    expect((await cli(['keys', '--sim', f, '--json'])).code).toBe(0);
  });

  it('after a kill: the lock names a dead holder, is taken over once stale, and the temps left are removed', async () => {
    const f = copyOfBase('pulled.json');
    const { child } = await serve(f);
    const done = finished(child);
    child.kill('SIGKILL');
    await done;
    // what a kill during a save leaves: a temp holding the PINs and the DKEK
    const temp = join(dir, '.pulled.json.0123456789ab.tmp');
    writeFileSync(temp, readFileSync(f), { mode: 0o600 });
    const other = join(dir, '.other.json.0123456789ab.tmp');
    writeFileSync(other, 'not ours');
    const busy = await cli(['keys', '--sim', f, '--json'], { env: { SC_HSM_TS_LOCK_WAIT: '0' } });
    expect(busy.json().error.code).toBe('READER_BUSY');
    expect(busy.json().error.message).toContain('no longer running');
    // the fix fits a dead holder: not "wait for that command to end", but the lock's expiry
    expect(busy.json().error.fix).toMatch(/once the stale lock has expired \(in about \d+ s\)/);
    expect(busy.json().error.fix).toContain(`rmdir ${realpathSync(f)}.lock`);
    expect(busy.json().error.fix).not.toMatch(/wait for that command to end/);
    // as if the stale time had passed since the killed holder last refreshed its lock
    const old = new Date(Date.now() - 120_000);
    utimesSync(`${f}.lock`, old, old);
    const r = await cli(['keys', '--sim', f, '--json'], { env: { SC_HSM_TS_LOCK_WAIT: '0' } });
    expect(r.code, r.stdout).toBe(0);
    expect(existsSync(temp)).toBe(false);
    expect(existsSync(other)).toBe(true);
    expect(existsSync(`${f}.lock`)).toBe(false);
    expect(statSync(f).mode & 0o777).toBe(0o600);
  });

  it('creates a missing state file at once (blank), as init does', async () => {
    const f = join(dir, 'new-served.json');
    const { child } = await serve(f);
    const done = finished(child);
    expect(existsSync(f)).toBe(true);
    child.kill('SIGTERM');
    expect((await done).code).toBe(0);
    const st = await cli(['status', '--sim', f, '--json']);
    expect(st.json().initialized).toBe(false);
  });
});
