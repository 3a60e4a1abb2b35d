import { execFile } from 'node:child_process';
import { readdir, readFile, stat } from 'node:fs/promises';
import { join } from 'node:path';
import { listReaders } from '../../../sc-hsm/open-pcsc.js';
import type { Command } from '../../command.js';
import { exists } from '../../files.js';
import { printable } from '../../format.js';
import { doctorSpec } from '../meta.js';
import { checkSimHost } from '../sim/host.js';
import { pcscdCheck } from './doctor-pcscd.js';

export interface Check {
  name: string;
  status: 'ok' | 'warn' | 'fail' | 'skip';
  detail: string;
  fix?: string;
}

async function read(path: string): Promise<string | undefined> {
  try {
    return await readFile(path, 'utf8');
  } catch {
    return undefined;
  }
}

function run(cmd: string, args: string[]): Promise<string | undefined> {
  return new Promise((resolve) => {
    execFile(cmd, args, { timeout: 3000 }, (err, stdout) => resolve(err ? undefined : stdout));
  });
}

/** Which OpenSC PKCS#11 module path this distribution uses. */
async function pkcs11Module(): Promise<{ distro: string; path: string }> {
  const osr = (await read('/etc/os-release')) ?? '';
  const id = /^ID=("?)([^"\n]*)\1/m.exec(osr)?.[2] ?? 'unknown';
  const like = /^ID_LIKE=("?)([^"\n]*)\1/m.exec(osr)?.[2] ?? '';
  const family = `${id} ${like}`;
  const arch = process.arch === 'arm64' ? 'aarch64-linux-gnu' : 'x86_64-linux-gnu';
  if (/debian|ubuntu/.test(family)) return { distro: id, path: `/usr/lib/${arch}/opensc-pkcs11.so` };
  if (/rhel|fedora|centos|suse|opensuse/.test(family))
    return { distro: id, path: '/usr/lib64/opensc-pkcs11.so' };
  if (/arch/.test(family)) return { distro: id, path: '/usr/lib/opensc-pkcs11.so' };
  return { distro: id, path: '/usr/lib/opensc-pkcs11.so' };
}

export async function runChecks(env: NodeJS.ProcessEnv = process.env): Promise<Check[]> {
  const checks: Check[] = [];
  // a pcscd process without its socket (another namespace's) is no pcscd: FAIL, as readers says
  checks.push(await pcscdCheck(env));
  try {
    const readers = await listReaders();
    const hsm = readers.filter((r) => r.isSmartCardHsm);
    checks.push({
      name: 'readers',
      status: hsm.length ? 'ok' : readers.length ? 'warn' : 'fail',
      detail: readers.length
        ? readers
            .map(
              (r) =>
                `${r.index}: ${r.name}${r.isSmartCardHsm ? ' [SmartCard-HSM]' : r.cardPresent ? ' [other card]' : ' [empty]'}`,
            )
            .join('; ')
        : 'no reader',
      ...(hsm.length ? {} : { fix: 'plug the Nitrokey HSM in; install libccid (the CCID reader driver)' }),
    });
  } catch (e) {
    checks.push({
      name: 'readers',
      status: 'fail',
      detail: (e as Error).message,
      fix: 'start pcscd; install the pcsclite Node module (optional dependency)',
    });
  }
  let usb = false;
  const devs = await readdir('/sys/bus/usb/devices').catch(() => [] as string[]);
  for (const dv of devs) {
    const base = join('/sys/bus/usb/devices', dv);
    if (
      (await read(join(base, 'idVendor')))?.trim() === '20a0' &&
      (await read(join(base, 'idProduct')))?.trim() === '4230'
    )
      usb = true;
  }
  checks.push({
    name: 'usb',
    status: usb ? 'ok' : 'warn',
    detail: usb
      ? 'Nitrokey HSM (USB 20a0:4230) is connected'
      : 'no Nitrokey HSM (USB 20a0:4230) in /sys/bus/usb/devices',
    ...(usb
      ? {}
      : { fix: 'plug the device in (a VM needs USB pass-through); `lsusb -d 20a0:4230` should list it' }),
  });
  const ruleDirs = ['/etc/udev/rules.d', '/usr/lib/udev/rules.d', '/lib/udev/rules.d'];
  let rule: string | undefined;
  for (const dir of ruleDirs) {
    for (const f of await readdir(dir).catch(() => [] as string[])) {
      const t = await read(join(dir, f));
      if (t && /20a0/i.test(t) && /4230/.test(t)) rule = join(dir, f);
    }
  }
  checks.push({
    name: 'udev rule',
    status: rule ? 'ok' : 'warn',
    detail: rule ? `rule for 20a0:4230 in ${rule}` : 'no udev rule mentions 20a0:4230',
    ...(rule
      ? {}
      : {
          fix: 'install Nitrokey\u2019s 41-nitrokey.rules into /etc/udev/rules.d, then sudo udevadm control --reload',
        }),
  });
  const mod = await pkcs11Module();
  const modThere = await exists(mod.path);
  checks.push({
    name: 'opensc pkcs11 module',
    status: modThere ? 'ok' : 'warn',
    detail: `${mod.distro}: ${mod.path} ${modThere ? 'present' : 'missing'}`,
    ...(modThere
      ? {}
      : {
          fix: 'install OpenSC (apt install opensc / dnf install opensc / zypper install opensc); MTG CARA and pkcs11-tool --module use this path',
        }),
  });
  const vpcd =
    (await stat('/usr/lib/pcsc/drivers/serial/libifdvpcd.so').catch(() => undefined)) ??
    (await stat('/usr/lib64/pcsc/drivers/serial/libifdvpcd.so').catch(() => undefined));
  if (vpcd) {
    const routes = (await run('ip', ['route', 'show', 'table', 'local'])) ?? '';
    // spec/pcsc-stack.md §5: a route of its own for 127.0.0.2 with quickack, 127.0.0.1 left alone
    const route = routes.split('\n').find((l) => /quickack 1/.test(l));
    const addr = route?.match(/^local (127\.\d+\.\d+\.\d+)/)?.[1];
    checks.push({
      name: 'vpcd latency',
      status: route ? 'ok' : 'warn',
      detail: route
        ? `quickack route in place${addr ? `: run the virtual card with --vpcd ${addr}:35963` : ''}`
        : 'vpcd installed, no quickack route: every APDU to a virtual card waits ~40 ms (delayed ACK)',
      ...(route
        ? {}
        : {
            fix:
              'sudo ip route add local 127.0.0.2/32 dev lo table local quickack 1, then ' +
              'sc-hsm-ts sim serve --state FILE --vpcd 127.0.0.2:35963',
          }),
    });
  } else
    checks.push({
      name: 'vpcd latency',
      status: 'skip',
      detail: 'vsmartcard vpcd not installed (only needed for `sim serve`)',
    });
  const sim = await checkSimHost(env);
  checks.push({
    name: 'sim run',
    status: sim.problems.length ? 'warn' : 'ok',
    detail: sim.problems.length ? sim.problems.map((p) => p.what).join('; ') : sim.gives,
    ...(sim.problems.length ? { fix: sim.problems.map((p) => p.fix).join('; ') } : {}),
  });
  return checks;
}

export const doctor: Command = {
  ...doctorSpec,
  async run(ctx) {
    const checks = await runChecks(ctx.io.env);
    const o = ctx.out;
    const mark = {
      ok: o.paint('green', 'ok  '),
      warn: o.paint('yellow', 'warn'),
      fail: o.paint('red', 'FAIL'),
      skip: 'skip',
    };
    for (const c of checks) {
      // details quote reader names, system files and tool output: escaped (printable)
      o.line(`[${mark[c.status]}] ${c.name}: ${printable(c.detail)}`);
      if (c.fix) o.line(`       fix: ${printable(c.fix)}`);
    }
    const failed = checks.filter((c) => c.status === 'fail').length;
    if (failed) ctx.exitCode = 1;
    return { ok: failed === 0, checks };
  },
};
