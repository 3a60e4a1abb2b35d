/**
 * `sim serve --trace FILE` (the card-side transcript, secrets masked, the --trace file rules) and
 * a clean stop on SIGTERM, against a stand-in for pcscd's vpcd (spec/pcsc-stack.md §2 framing).
 */
import { readFile, writeFile } from 'node:fs/promises';
import { createServer, type Server, type Socket } from 'node:net';
import { join } from 'node:path';
import { PassThrough } from 'node:stream';
import { beforeAll, describe, expect, it } from 'vitest';
import { runCli } from '../src/cli/main.js';
import { ReplayTransport } from '../src/testing.js';
import { cli, PIN, SO_PIN, tempDir } from './cli-helpers.js';
import { buildCli, finished, startCli, stderrSays } from './helpers/cli-process.js';

function frame(b: Uint8Array): Buffer {
  const f = Buffer.alloc(2 + b.length);
  f.writeUInt16BE(b.length, 0);
  Buffer.from(b).copy(f, 2);
  return f;
}

/** A fake vpcd: accepts one card and exchanges frames with it. */
async function fakeVpcd(): Promise<{
  server: Server;
  port: number;
  card: () => Promise<Socket>;
  send: (hex: string) => Promise<string>;
}> {
  let sock: Socket | undefined;
  const got: Buffer[] = [];
  let waiter: (() => void) | undefined;
  const server = createServer((s) => {
    sock = s;
    let buf = Buffer.alloc(0);
    s.on('error', () => undefined);
    s.on('data', (d) => {
      buf = Buffer.concat([buf, d]);
      while (buf.length >= 2 && buf.length >= 2 + buf.readUInt16BE(0)) {
        got.push(buf.subarray(2, 2 + buf.readUInt16BE(0)));
        buf = buf.subarray(2 + buf.readUInt16BE(0));
        waiter?.();
      }
    });
  });
  await new Promise<void>((r) => server.listen(0, '127.0.0.1', r));
  const port = (server.address() as { port: number }).port;
  const card = async () => {
    while (!sock) await new Promise((r) => setTimeout(r, 20));
    return sock;
  };
  const next = () =>
    new Promise<Buffer>((r) => {
      if (got.length) return r(got.shift()!);
      waiter = () => {
        waiter = undefined;
        r(got.shift()!);
      };
    });
  const send = async (hex: string) => {
    (await card()).write(frame(Uint8Array.from(Buffer.from(hex, 'hex'))));
    // control bytes other than GET ATR get no answer
    if (hex.length === 2 && hex !== '04') return '';
    return (await next()).toString('hex');
  };
  return { server, port, card, send };
}

function serveInProcess(args: string[]) {
  const ac = new AbortController();
  const err = new PassThrough();
  let stderr = '';
  err.on('data', (d) => {
    stderr += d.toString();
  });
  const out = new PassThrough();
  out.resume();
  const done = runCli(['sim', 'serve', ...args], {
    stdout: out,
    stderr: err,
    stdin: new PassThrough(),
    env: {},
    isTTY: false,
    signal: ac.signal,
  });
  return { stop: () => ac.abort(), done, stderr: () => stderr };
}

const SELECT = '00a404000be82b0601040181c31f020100';
const PIN_HEX = Buffer.from(PIN).toString('hex');

describe('sim serve --trace FILE', () => {
  it('writes the card-side transcript with the PIN masked; it replays', async () => {
    const dir = await tempDir();
    const state = join(dir, 'hsm.json');
    const init = await cli([
      'init',
      '--sim',
      state,
      '--so-pin',
      SO_PIN,
      '--pin',
      PIN,
      '--label',
      'T',
      '--yes',
    ]);
    expect(init.code, init.stderr).toBe(0);
    const trace = join(dir, 'serve.apdu');
    const v = await fakeVpcd();
    const s = serveInProcess(['--state', state, '--vpcd', `127.0.0.1:${v.port}`, '--trace', trace]);
    await v.send('01');
    expect((await v.send('04')).length).toBeGreaterThan(10);
    expect((await v.send(SELECT)).slice(-4)).toBe('9000');
    expect(await v.send(`0020008106${PIN_HEX}`)).toBe('9000');
    expect(await v.send('0020008100')).toBe('9000');
    s.stop();
    expect(await s.done).toBe(0);
    v.server.close();
    (await v.card()).destroy();
    const text = await readFile(trace, 'utf8');
    expect(text).not.toContain(PIN_HEX);
    expect(text).toContain('=> 0020008106************');
    expect(text).toContain('# power on');
    // GET ATR polls are no part of it; every command has its answer
    const commands = text.split('\n').filter((l) => l.startsWith('=> '));
    expect(commands).toHaveLength(3);
    expect(text.split('\n').filter((l) => l.startsWith('<= '))).toHaveLength(3);
    // what the card saw is a transcript ReplayTransport accepts (masked bytes match any)
    const replay = new ReplayTransport(text);
    expect(
      Buffer.from(await replay.transmit(Buffer.from(SELECT, 'hex')))
        .toString('hex')
        .slice(-4),
    ).toBe('9000');
    expect(s.stderr()).not.toContain(PIN_HEX);
  });

  it('refuses an existing trace file before the card is opened (the state file is not created)', async () => {
    const dir = await tempDir();
    const trace = join(dir, 'old.apdu');
    await writeFile(trace, 'keep me\n');
    const state = join(dir, 'new.json');
    const r = await cli(['sim', 'serve', '--state', state, '--vpcd', '127.0.0.1:1', '--trace', trace]);
    expect(r.code).not.toBe(0);
    expect(r.stderr).toMatch(/trace file .* already exists/);
    expect(await readFile(trace, 'utf8')).toBe('keep me\n');
    await expect(readFile(state)).rejects.toThrow(/ENOENT/);
  });

  it('refuses the state file as the trace (nothing opened)', async () => {
    const dir = await tempDir();
    const state = join(dir, 's.json');
    const r = await cli(['sim', 'serve', '--state', state, '--trace', state]);
    expect(r.code).toBe(2);
    await expect(readFile(state)).rejects.toThrow(/ENOENT/);
  });

  it('--trace-overwrite replaces an existing trace file with this run', async () => {
    const dir = await tempDir();
    const trace = join(dir, 'old.apdu');
    await writeFile(trace, 'old\n');
    const v = await fakeVpcd();
    const s = serveInProcess([
      '--state',
      join(dir, 'h.json'),
      '--vpcd',
      `127.0.0.1:${v.port}`,
      '--trace',
      trace,
      '--trace-overwrite',
    ]);
    await v.send('01');
    expect((await v.send(SELECT)).slice(-4)).toBe('9000');
    s.stop();
    expect(await s.done).toBe(0);
    v.server.close();
    (await v.card()).destroy();
    const text = await readFile(trace, 'utf8');
    expect(text).not.toContain('old');
    expect(text).toContain(`=> ${SELECT}`);
  });
});

describe('sim serve stopped by SIGTERM', () => {
  beforeAll(buildCli, 60_000);

  for (const peerGoes of [false, true]) {
    it(`prints only "stopped; state saved"${peerGoes ? ' when pcscd goes in the same instant' : ''}`, async () => {
      const dir = await tempDir();
      const v = await fakeVpcd();
      const child = startCli([
        'sim',
        'serve',
        '--state',
        join(dir, 'h.json'),
        '--vpcd',
        `127.0.0.1:${v.port}`,
      ]);
      const result = finished(child);
      await stderrSays(child, 'connected to vpcd');
      // listening before the GET ATR that makes the child say it
      const took = stderrSays(child, 'pcscd took the card');
      await v.send('01');
      await v.send('04');
      await took;
      if (peerGoes) {
        // both events wait for the process at once: the peer's close and the signal
        child.kill('SIGSTOP');
        (await v.card()).destroy();
        await new Promise((r) => setTimeout(r, 100));
        child.kill('SIGTERM');
        child.kill('SIGCONT');
      } else child.kill('SIGTERM');
      const r = await result;
      v.server.close();
      expect(r.code).toBe(0);
      const after = r.stderr.slice(r.stderr.indexOf('pcscd took the card'));
      expect(after).toContain('stopped; state saved');
      expect(r.stderr).not.toContain('connection lost');
    });
  }
});
