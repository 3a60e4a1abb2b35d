/**
 * doctor's pcscd check against a /proc of the test's own making: a pcscd process whose socket is
 * missing (seen across PID namespaces: another session's private pcscd) is FAIL, never
 * "[ok] pcscd: running; socket … missing" above "[FAIL] readers: pcscd is not running".
 */
import { mkdir, symlink, writeFile } from 'node:fs/promises';
import { createServer, type Server } from 'node:net';
import { join } from 'node:path';
import { afterAll, describe, expect, it } from 'vitest';
import { pcscdCheck } from '../src/cli/commands/device/doctor-pcscd.js';
import { tempDir } from './cli-helpers.js';

const OUR_NS = 'mnt:[4026531841]';
const OTHER_NS = 'mnt:[4026532999]';

/** A /proc with `self` in OUR_NS and the given processes (comm, mount namespace or none readable). */
async function fakeProc(procs: { pid: number; comm: string; ns?: string }[]): Promise<string> {
  const proc = join(await tempDir(), 'proc');
  await mkdir(join(proc, 'self', 'ns'), { recursive: true });
  await symlink(OUR_NS, join(proc, 'self', 'ns', 'mnt'));
  for (const p of procs) {
    await mkdir(join(proc, String(p.pid), 'ns'), { recursive: true });
    await writeFile(join(proc, String(p.pid), 'comm'), `${p.comm}\n`);
    if (p.ns) await symlink(p.ns, join(proc, String(p.pid), 'ns', 'mnt'));
  }
  return proc;
}

const servers: Server[] = [];
afterAll(() => {
  for (const s of servers) s.close();
});

/** A listening Unix socket (what pcscd's pcscd.comm is). */
async function socketFile(): Promise<string> {
  const path = join(await tempDir(), 'pcscd.comm');
  const s = createServer();
  servers.push(s);
  await new Promise<void>((r) => s.listen(path, r));
  return path;
}

const missing = async () => join(await tempDir(), 'pcscd.comm');

describe('doctor: pcscd', () => {
  it('a pcscd process in our namespace without its socket: FAIL, naming the socket, another namespace or starting', async () => {
    const sock = await missing();
    const c = await pcscdCheck(
      { PCSCLITE_CSOCK_NAME: sock },
      await fakeProc([{ pid: 412, comm: 'pcscd', ns: OUR_NS }]),
    );
    expect(c.status).toBe('fail');
    expect(c.detail).toBe(
      `a pcscd process runs (pid 412) but its socket ${sock} is missing: it belongs to another namespace, or is starting`,
    );
    expect(c.fix).toContain('run doctor again in a moment');
    expect(c.fix).toContain('systemctl enable --now pcscd.socket');
  });

  it('a pcscd whose namespace cannot be read (another user\u2019s process) counts as maybe ours: still FAIL without the socket', async () => {
    const sock = await missing();
    const c = await pcscdCheck({ PCSCLITE_CSOCK_NAME: sock }, await fakeProc([{ pid: 7, comm: 'pcscd' }]));
    expect(c.status).toBe('fail');
    expect(c.detail).toContain('is missing: it belongs to another namespace, or is starting');
  });

  it('only a pcscd of another mount namespace: FAIL, saying it is none of ours', async () => {
    const sock = await missing();
    const c = await pcscdCheck(
      { PCSCLITE_CSOCK_NAME: sock },
      await fakeProc([
        { pid: 900, comm: 'pcscd', ns: OTHER_NS },
        { pid: 901, comm: 'bash', ns: OUR_NS },
      ]),
    );
    expect(c.status).toBe('fail');
    expect(c.detail).toMatch(
      /^no pcscd here: socket .* is missing; a pcscd of another mount namespace \(pid 900: /,
    );
    expect(c.detail).not.toContain('901');
  });

  it('no pcscd and no socket: FAIL with the install line', async () => {
    const c = await pcscdCheck(
      { PCSCLITE_CSOCK_NAME: await missing() },
      await fakeProc([{ pid: 3, comm: 'sshd', ns: OUR_NS }]),
    );
    expect(c.status).toBe('fail');
    expect(c.detail).toContain('no pcscd process seen');
    expect(c.fix).toContain('apt install pcscd');
  });

  it('socket and pcscd: ok', async () => {
    const sock = await socketFile();
    const c = await pcscdCheck(
      { PCSCLITE_CSOCK_NAME: sock },
      await fakeProc([{ pid: 55, comm: 'pcscd', ns: OUR_NS }]),
    );
    expect(c).toEqual({ name: 'pcscd', status: 'ok', detail: `running (pid 55); socket ${sock} present` });
  });

  it('socket without a process (socket activation): ok; another namespace\u2019s pcscd is said not to be ours', async () => {
    const sock = await socketFile();
    const c = await pcscdCheck(
      { PCSCLITE_CSOCK_NAME: sock },
      await fakeProc([{ pid: 900, comm: 'pcscd', ns: OTHER_NS }]),
    );
    expect(c.status).toBe('ok');
    expect(c.detail).toContain('socket activation');
    expect(c.detail).toContain('another mount namespace (pid 900');
  });

  it('a plain file where the socket should be is no socket: FAIL', async () => {
    const sock = join(await tempDir(), 'pcscd.comm');
    await writeFile(sock, '');
    const c = await pcscdCheck(
      { PCSCLITE_CSOCK_NAME: sock },
      await fakeProc([{ pid: 55, comm: 'pcscd', ns: OUR_NS }]),
    );
    expect(c.status).toBe('fail');
    expect(c.detail).toContain(`its socket ${sock} is no socket: it belongs to another namespace`);
  });

  it('PCSCLITE_CSOCK_NAME names the socket (sim run sets it); else /run/pcscd/pcscd.comm', async () => {
    const c = await pcscdCheck({}, await fakeProc([]));
    expect(c.detail).toContain('/run/pcscd/pcscd.comm');
  });
});
