/**
 * PC/SC without a (working) pcscd. Only one pcscd can run per mount namespace (spec/pcsc-stack.md §1
 * "A second pcscd refuses to start"), and the suite's own pcscd must stay up for test/pcsc.test.ts,
 * so each scenario runs a child process in namespaces of its own:
 *  - no pcscd at all: a fresh mount namespace with an empty tmpfs on /run/pcscd;
 *  - pcscd stopped mid-session: fresh mount+net+pid namespaces where the child's own pcscd runs,
 *    the child opens a session to a virtual card, SIGTERMs that pcscd, and reports what it saw;
 *  - the binding missing: the module name is pointed at a package that does not exist.
 * Each child prints one JSON line and must end by itself (a handle left open by the binding would
 * keep it alive: the parent's bounded wait then fails the test).
 */
import { execFile } from 'node:child_process';
import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join, resolve } from 'node:path';
import { afterAll, expect, it } from 'vitest';
import { describePcsc } from './helpers/pcsc-env.js';

const ROOT = resolve(import.meta.dirname, '..');
const TSX = join(ROOT, 'node_modules', '.bin', 'tsx');
let dir = '';

interface ChildResult {
  exitCode: number | null;
  signal: string | null;
  killed: boolean;
  json: Record<string, { code?: string; message?: string } | string | number | boolean | undefined>;
  output: string;
}

function runChild(cmd: string, args: string[], env: NodeJS.ProcessEnv = process.env): Promise<ChildResult> {
  return new Promise((resolvePromise) => {
    execFile(cmd, args, { timeout: 30000, env, killSignal: 'SIGKILL' }, (err, stdout, stderr) => {
      const line = stdout
        .split('\n')
        .reverse()
        .find((l) => l.startsWith('{'));
      resolvePromise({
        exitCode: err ? (typeof err.code === 'number' ? err.code : null) : 0,
        signal: err?.signal ?? null,
        killed: err?.killed ?? false,
        json: line ? JSON.parse(line) : {},
        output: `${stdout}\n${stderr}`,
      });
    });
  });
}

function script(name: string, body: string): string {
  dir ||= mkdtempSync(join(tmpdir(), 'pcsc-daemon-test-'));
  const p = join(dir, name);
  writeFileSync(
    p,
    `import { listReaders, openPcsc } from ${JSON.stringify(join(ROOT, 'src/sc-hsm/open-pcsc.ts'))};\n` +
      `import { connectToVpcd } from ${JSON.stringify(join(ROOT, 'src/sim/vpcd.ts'))};\n` +
      'const err = (e) => ({ code: e?.code, message: String(e?.message ?? e) });\n' +
      'const sleep = (ms) => new Promise((r) => setTimeout(r, ms));\n' +
      `${body}\n`,
  );
  return p;
}

describePcsc('PC/SC service missing or stopped', () => {
  afterAll(() => {
    if (dir) rmSync(dir, { recursive: true, force: true });
  });

  it('no pcscd at all → PCSC_UNAVAILABLE with the fix in the message', async () => {
    const child = script(
      'no-daemon.mts',
      `const out = {};
const t0 = Date.now();
try { await listReaders(); out.list = 'resolved'; } catch (e) { out.list = err(e); }
try { await openPcsc(); out.open = 'resolved'; } catch (e) { out.open = err(e); }
out.ms = Date.now() - t0;
console.log(JSON.stringify(out));`,
    );
    const r = await runChild('unshare', [
      '--mount',
      '--kill-child',
      '--fork',
      '--',
      'bash',
      '-c',
      'mount -t tmpfs -o mode=0755 tmpfs /run/pcscd && exec "$0" "$@"',
      TSX,
      child,
    ]);
    expect(r.killed, r.output).toBe(false);
    expect(r.exitCode, r.output).toBe(0);
    for (const k of ['list', 'open'] as const) {
      const e = r.json[k] as { code: string; message: string };
      expect(e.code, r.output).toBe('PCSC_UNAVAILABLE');
      expect(e.message).toContain('systemctl start pcscd');
      expect(e.message).toContain('pcscd --foreground');
    }
    expect(r.json.ms as number).toBeLessThan(5000);
  });

  it('pcscd stopped mid-session → PCSC_UNAVAILABLE, close() is quiet, nothing keeps the process alive', async () => {
    const child = script(
      'stopped.mts',
      `import { existsSync } from 'node:fs';
const pid = Number(process.argv[2]);
const ATR = Uint8Array.from(Buffer.from('3BDE18FF8191FE1FC38031815448534D317380214081071C', 'hex'));
const card = { atr: ATR, powerOn() {}, powerOff() {}, reset() {}, process: () => Uint8Array.of(0x90, 0x00) };
const link = connectToVpcd(card, { host: '127.0.0.2', port: 35963 });
const out = {};
await link.connected;
await link.adopted;
for (let i = 0; i < 80; i++) {
  if ((await listReaders({ probe: false }))[0]?.cardPresent) break;
  await sleep(50);
}
const t = await openPcsc();
out.before = Buffer.from(await t.transmit(Uint8Array.of(0x80, 0xee, 0, 0))).toString('hex');
process.kill(pid, 'SIGTERM');
for (let i = 0; i < 60 && existsSync('/run/pcscd/pcscd.comm'); i++) await sleep(50);
out.socketGone = !existsSync('/run/pcscd/pcscd.comm');
await sleep(300);
try { await t.transmit(Uint8Array.of(0x80, 0xee, 0, 0)); out.transmit = 'resolved'; } catch (e) { out.transmit = err(e); }
try { await listReaders(); out.list = 'resolved'; } catch (e) { out.list = err(e); }
out.contextError = t.context.lastError?.code;
try { await t.close(); out.close = 'ok'; } catch (e) { out.close = err(e); }
await link.close();
console.log(JSON.stringify(out));`,
    );
    const inner = [
      'set -e',
      'mount -t tmpfs -o mode=0755 tmpfs /run/pcscd',
      'ip link set lo up',
      'ip route add local 127.0.0.2/32 dev lo table local quickack 1',
      'pcscd --foreground >/dev/null 2>&1 & P=$!',
      'for i in $(seq 100); do [ -S /run/pcscd/pcscd.comm ] && break; sleep 0.05; done',
      '"$0" "$1" "$P"',
    ].join('\n');
    const r = await runChild('unshare', [
      '--mount',
      '--net',
      '--pid',
      '--fork',
      '--mount-proc',
      '--kill-child',
      '--',
      'bash',
      '-c',
      inner,
      TSX,
      child,
    ]);
    console.log(`after stopping pcscd: ${JSON.stringify(r.json)}`);
    expect(r.killed, `child did not end by itself:\n${r.output}`).toBe(false);
    expect(r.exitCode, r.output).toBe(0);
    expect(r.json.before, r.output).toBe('9000');
    expect(r.json.socketGone).toBe(true);
    const tx = r.json.transmit as { code: string; message: string };
    expect(tx.code, r.output).toBe('PCSC_UNAVAILABLE');
    expect(tx.message).toContain('pcscd --foreground');
    expect((r.json.list as { code: string }).code).toBe('PCSC_UNAVAILABLE');
    expect(r.json.contextError).toBe('PCSC_UNAVAILABLE');
    expect(r.json.close).toBe('ok');
  });

  it('pcsclite not installed → PCSC_UNAVAILABLE saying how to install it', async () => {
    const child = script(
      'no-binding.mts',
      `const out = {};
try { await listReaders(); out.list = 'resolved'; } catch (e) { out.list = err(e); }
console.log(JSON.stringify(out));`,
    );
    const r = await runChild(TSX, [child], {
      ...process.env,
      SC_HSM_PCSCLITE_MODULE: 'pcsclite-not-installed-here',
    });
    expect(r.exitCode, r.output).toBe(0);
    const e = r.json.list as { code: string; message: string };
    expect(e.code, r.output).toBe('PCSC_UNAVAILABLE');
    expect(e.message).toContain('npm install pcsclite');
    expect(e.message).toContain('libpcsclite-dev');
  });
});
