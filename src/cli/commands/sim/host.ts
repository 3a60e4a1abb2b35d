/**
 * What `sim run` (and `doctor`) need from the host to put virtual cards into pcscd
 * (spec/pcsc-stack.md §1, §5, §6): as root a private pcscd in its own mount, network and PID
 * namespaces (pcscd, unshare, mount, ip) with the quickack route; otherwise the system's running
 * pcscd. Either way the vsmartcard vpcd reader driver. Every missing piece names its Debian package.
 */
import { constants } from 'node:fs';
import { access, stat } from 'node:fs/promises';
import { delimiter, join } from 'node:path';

/** pcscd's socket; the 1.9 daemon has it hard-coded (spec §1: PCSCLITE_CSOCK_NAME is client-side only). */
export const PCSCD_SOCKET = '/run/pcscd/pcscd.comm';
/** vpcd's reader configuration as Debian's vsmartcard-vpcd installs it (slots on ports 35963, 35964). */
export const VPCD_CONF = '/etc/reader.conf.d/vpcd';
/** vpcd's first port (slot 0, "Virtual PCD 00 00"); slot n is 35963 + n (spec §2). */
export const VPCD_PORT = 35963;
/** vpcd 0.8 has two slots (VPCDSLOTS = 2, spec §2). */
export const VPCD_SLOTS = 2;

/** The reader pcscd shows for vpcd slot `i` (spec §2). */
export function vpcdReaderName(i: number): string {
  return `Virtual PCD 00 ${String(i).padStart(2, '0')}`;
}

/** The executable `name` on `PATH`, if there is one. */
export async function onPath(name: string, path: string | undefined): Promise<string | undefined> {
  for (const dir of (path ?? '').split(delimiter)) {
    if (!dir) continue;
    const p = join(dir, name);
    try {
      await access(p, constants.X_OK);
      if ((await stat(p)).isFile()) return p;
    } catch {
      // not here
    }
  }
  return undefined;
}

/** Where a Debian-family system keeps OpenSC's PKCS#11 module, first match wins. */
const PKCS11_CANDIDATES = [
  '/usr/lib/x86_64-linux-gnu/opensc-pkcs11.so',
  '/usr/lib/aarch64-linux-gnu/opensc-pkcs11.so',
  '/usr/lib/x86_64-linux-gnu/pkcs11/opensc-pkcs11.so',
  '/usr/lib/aarch64-linux-gnu/pkcs11/opensc-pkcs11.so',
  '/usr/lib64/opensc-pkcs11.so',
  '/usr/lib64/pkcs11/opensc-pkcs11.so',
  '/usr/lib/opensc-pkcs11.so',
  '/usr/lib/pkcs11/opensc-pkcs11.so',
  '/usr/local/lib/opensc-pkcs11.so',
];

/**
 * OpenSC's PKCS#11 module (opensc-pkcs11.so): `SC_HSM_PKCS11_MODULE` when set and present, else
 * the first of the usual places for this architecture that exists (Debian:
 * /usr/lib/x86_64-linux-gnu/opensc-pkcs11.so, from the opensc-pkcs11 package).
 */
export async function findPkcs11Module(env: NodeJS.ProcessEnv = process.env): Promise<string | undefined> {
  const own = env.SC_HSM_PKCS11_MODULE;
  const archFirst = process.arch === 'arm64' ? 'aarch64' : 'x86_64';
  const list = [
    ...(own ? [own] : []),
    ...PKCS11_CANDIDATES.filter((p) => p.includes(archFirst)),
    ...PKCS11_CANDIDATES.filter((p) => !p.includes('-linux-gnu')),
  ];
  for (const p of list) {
    if ((await stat(p).catch(() => undefined))?.isFile()) return p;
  }
  return undefined;
}

export interface HostProblem {
  /** What is missing, in words. */
  what: string;
  /** The fix, naming the Debian package(s). */
  fix: string;
}

export interface SimHost {
  /** `private`: root, a pcscd of our own in namespaces; `system`: the host's running pcscd. */
  mode: 'private' | 'system';
  /** What stops `sim run` in this mode; empty when it can run. */
  problems: HostProblem[];
  /** What this mode gives, for the message printed before anything starts. */
  gives: string;
}

const PRIVATE_GIVES =
  'root: a private pcscd in its own mount, network and PID namespaces with the quickack route ' +
  '(about 0.2 ms per APDU instead of 44 ms; nothing shared with the host or with another `sim run`; ' +
  'COMMAND runs inside, without network)';
const SYSTEM_GIVES =
  `not root: the system's pcscd (${PCSCD_SOCKET}) and vpcd on 127.0.0.1 — about 44 ms per APDU ` +
  '(the quickack route needs root) and shared with this machine: a virtual card of another program on ' +
  'the same vpcd slot blocks ours';

/**
 * Which way `sim run` can go on this host and what stops it (spec/pcsc-stack.md §6). `env.PATH`
 * is where the tools are looked for; `uid` is the effective user (0 = root).
 */
export async function checkSimHost(
  env: NodeJS.ProcessEnv = process.env,
  uid: number = process.geteuid?.() ?? -1,
): Promise<SimHost> {
  const problems: HostProblem[] = [];
  const vpcd = await stat(VPCD_CONF).catch(() => undefined);
  if (!vpcd)
    problems.push({
      what: `the vpcd reader driver is not installed (${VPCD_CONF} missing)`,
      fix: 'apt-get install vsmartcard-vpcd',
    });
  if (uid === 0) {
    const tools: [string, string][] = [
      ['pcscd', 'pcscd'],
      ['unshare', 'util-linux'],
      ['mount', 'mount'],
      ['ip', 'iproute2'],
    ];
    for (const [tool, pkg] of tools) {
      if (!(await onPath(tool, env.PATH)))
        problems.push({ what: `'${tool}' is not on PATH`, fix: `apt-get install ${pkg}` });
    }
    return { mode: 'private', problems, gives: PRIVATE_GIVES };
  }
  const sock = await stat(PCSCD_SOCKET).catch(() => undefined);
  if (!sock?.isSocket())
    problems.push({
      what: `no system pcscd is running (${PCSCD_SOCKET} missing), and a pcscd of our own needs root`,
      fix: 'apt-get install pcscd vsmartcard-vpcd, then start it (systemctl start pcscd, or pcscd as root), or run sim run as root',
    });
  return { mode: 'system', problems, gives: SYSTEM_GIVES };
}
