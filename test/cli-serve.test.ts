import { createServer, type Socket } from 'node:net';
import { join } from 'node:path';
import { PassThrough } from 'node:stream';
import { describe, expect, it } from 'vitest';
import { runCli } from '../src/cli/main.js';
import { cli, tempDir } from './cli-helpers.js';

/** A stand-in for pcscd's vpcd: frames of 2-byte length + payload (spec/pcsc-stack.md §2). */
function frame(b: Uint8Array): Buffer {
  const f = Buffer.alloc(2 + b.length);
  f.writeUInt16BE(b.length, 0);
  Buffer.from(b).copy(f, 2);
  return f;
}

describe('sim serve', () => {
  it('answers APDUs through vpcd, saves its state, stops on abort', async () => {
    const dir = await tempDir();
    const state = join(dir, 'served.json');
    let sock: Socket | undefined;
    const got: Buffer[] = [];
    let waiter: (() => void) | undefined;
    const server = createServer((s) => {
      sock = s;
      let buf = Buffer.alloc(0);
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
    const ac = new AbortController();
    const out = new PassThrough();
    const err = new PassThrough();
    err.resume();
    out.resume();
    const done = runCli(['sim', 'serve', '--state', state, '--vpcd', `127.0.0.1:${port}`], {
      stdout: out,
      stderr: err,
      stdin: new PassThrough(),
      env: {},
      isTTY: false,
      signal: ac.signal,
    });
    while (!sock) await new Promise((r) => setTimeout(r, 20));
    const next = () =>
      new Promise<Buffer>((r) => {
        if (got.length) return r(got.shift()!);
        waiter = () => {
          waiter = undefined;
          r(got.shift()!);
        };
      });
    sock.write(frame(Uint8Array.of(0x01)));
    sock.write(frame(Uint8Array.of(0x04)));
    const atr = await next();
    expect(atr.length).toBeGreaterThan(5);
    sock.write(frame(Uint8Array.from(Buffer.from('00a404000be82b0601040181c31f020100', 'hex'))));
    const sel = await next();
    expect(sel.subarray(-2).toString('hex')).toBe('9000');
    sock.write(frame(Uint8Array.from(Buffer.from('0020008800', 'hex'))));
    expect((await next()).toString('hex')).toBe('6a88');
    ac.abort();
    expect(await done).toBe(0);
    server.close();
    sock.destroy();
    const st = await cli(['status', '--sim', state, '--json']);
    expect(st.json().initialized).toBe(false);
  });

  it('rejects a malformed --vpcd (exit 2)', async () => {
    expect((await cli(['sim', 'serve', '--state', '/tmp/x.json', '--vpcd', 'nohostport'])).code).toBe(2);
  });
});
