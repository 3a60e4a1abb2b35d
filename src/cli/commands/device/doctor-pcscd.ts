/**
 * `doctor`'s pcscd check: is there a pcscd this process can reach? A pcscd process and the socket
 * clients connect to (`PCSCLITE_CSOCK_NAME`, else /run/pcscd/pcscd.comm; spec/pcsc-stack.md §1)
 * must go together. /proc also lists processes of other PID namespaces beneath ours (another
 * session's `sim run` or scripts/with-pcscd.sh, a container), whose socket is in their own mount
 * namespace: such a pcscd is no pcscd for us, and saying "ok" there contradicts the readers check
 * right after it ("pcscd is not running").
 */
import { readdir, readFile, readlink, stat } from 'node:fs/promises';
import { join } from 'node:path';
import { PCSCD_SOCKET } from '../sim/host.js';
import type { Check } from './doctor.js';

const INSTALL =
  'sudo apt install pcscd (or dnf/zypper install pcsc-lite) && sudo systemctl enable --now pcscd.socket';

/** The pcscd processes in `proc`, each with whether it shares our mount namespace (undefined: cannot tell). */
async function pcscdProcesses(proc: string): Promise<{ pid: string; here: boolean | undefined }[]> {
  const self = await readlink(join(proc, 'self', 'ns', 'mnt')).catch(() => undefined);
  const out: { pid: string; here: boolean | undefined }[] = [];
  for (const pid of (await readdir(proc).catch(() => [] as string[])).filter((x) => /^\d+$/.test(x))) {
    const comm = await readFile(join(proc, pid, 'comm'), 'utf8').catch(() => undefined);
    if (comm?.trim() !== 'pcscd') continue;
    const ns = await readlink(join(proc, pid, 'ns', 'mnt')).catch(() => undefined);
    out.push({ pid, here: self === undefined || ns === undefined ? undefined : ns === self });
  }
  return out;
}

/**
 * The `pcscd` check. ok: the socket is there (a pcscd in our namespace, or socket activation,
 * which starts pcscd on the first client); fail: no socket, also when a pcscd process is seen,
 * saying whose it likely is (another mount namespace's, or one still starting).
 * `proc` is /proc (a test gives a directory of its own).
 */
export async function pcscdCheck(env: NodeJS.ProcessEnv, proc = '/proc'): Promise<Check> {
  const sock = env.PCSCLITE_CSOCK_NAME || PCSCD_SOCKET;
  const st = await stat(sock).catch(() => undefined);
  const sockThere = st?.isSocket() === true;
  // a left-over plain file there is no socket either
  const absent = st === undefined ? 'is missing' : 'is no socket';
  const seen = await pcscdProcesses(proc);
  const here = seen.filter((p) => p.here !== false);
  const elsewhere = seen.filter((p) => p.here === false);
  const pids = (l: typeof seen) => `pid ${l.map((p) => p.pid).join(', ')}`;
  const others = elsewhere.length
    ? `; a pcscd of another mount namespace (${pids(elsewhere)}: a container's or another session's private pcscd) is none of ours`
    : '';
  if (sockThere)
    return {
      name: 'pcscd',
      status: 'ok',
      detail: here.length
        ? `running (${pids(here)}); socket ${sock} present`
        : `socket ${sock} present (pcscd starts on the first client: socket activation)${others}`,
    };
  if (here.length)
    return {
      name: 'pcscd',
      status: 'fail',
      detail: `a pcscd process runs (${pids(here)}) but its socket ${sock} ${absent}: it belongs to another namespace, or is starting`,
      fix: `if it is starting, run doctor again in a moment; else start this host's pcscd: ${INSTALL}`,
    };
  return {
    name: 'pcscd',
    status: 'fail',
    detail: `no pcscd here: socket ${sock} ${absent}${elsewhere.length ? others : '; no pcscd process seen'}`,
    fix: INSTALL,
  };
}
