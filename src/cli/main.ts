/**
 * `sc-hsm-ts`: the operator's command for the SmartCard-HSM (Nitrokey HSM 2). A thin shell over
 * the library: it parses, prompts and prints; the work is done by the session and the codecs.
 * `runCli(argv, io)` runs one command in-process and resolves with its exit code.
 */
import { realpathSync } from 'node:fs';
import { fileURLToPath } from 'node:url';
import { type Command, commandHelp, exitCodeHelp, parseCommandArgs } from './command.js';
import { backup } from './commands/backup/backup.js';
import { importKey } from './commands/backup/import-key.js';
import { restore } from './commands/backup/restore.js';
import { unwrap } from './commands/backup/unwrap.js';
import { wrap } from './commands/backup/wrap.js';
import { certExport, certImport, certSelfSign, csr } from './commands/cert.js';
import { demo, setDemoRunner } from './commands/demo.js';
import { apdu } from './commands/device/apdu.js';
import { doctor } from './commands/device/doctor.js';
import { dump } from './commands/device/dump.js';
import { init } from './commands/device/init.js';
import { readers } from './commands/device/readers.js';
import { status } from './commands/device/status.js';
import { dkekCreate } from './commands/dkek/create.js';
import { dkekImport } from './commands/dkek/import.js';
import { dkekInspect } from './commands/dkek/inspect.js';
import { dkekResplit } from './commands/dkek/resplit.js';
import { deleteKey } from './commands/keys/delete.js';
import { keygen } from './commands/keys/keygen.js';
import { keys } from './commands/keys/list.js';
import { pinChange, pinStatus, pinUnblock, pinVerify, soPinChange } from './commands/pin/pin.js';
import { simServe } from './commands/sim/serve.js';
import { verifyDevice } from './commands/verify-device.js';
import { wrappedExport } from './commands/wrapped/export.js';
import { wrappedInspect } from './commands/wrapped/inspect.js';
import { Ctx, type GlobalOptions } from './context.js';
import { openDevice } from './device.js';
import { CliError, EXIT, errorInfo, exitCodeFor } from './exit-codes.js';
import { type CliIo, Output, processIo } from './io.js';

export const COMMANDS: Command[] = [
  readers,
  status,
  init,
  dkekCreate,
  dkekImport,
  dkekInspect,
  dkekResplit,
  keys,
  keygen,
  deleteKey,
  wrap,
  unwrap,
  backup,
  restore,
  importKey,
  wrappedInspect,
  wrappedExport,
  pinVerify,
  pinChange,
  pinUnblock,
  pinStatus,
  soPinChange,
  dump,
  verifyDevice,
  csr,
  certSelfSign,
  certImport,
  certExport,
  simServe,
  doctor,
  demo,
  apdu,
];

export const VERSION = '0.1.0';

function topHelp(): string {
  const w = Math.max(...COMMANDS.map((c) => c.name.length + (c.args ? c.args.length + 1 : 0)));
  return [
    'Usage: sc-hsm-ts COMMAND [options]      (sc-hsm-ts COMMAND --help for its options)',
    '',
    'The operator\u2019s tool for the SmartCard-HSM / Nitrokey HSM 2: initialize, DKEK shares, keys,',
    'backup and restore onto a replacement device, PINs. Without a command it runs `demo`.',
    '',
    'Commands:',
    ...COMMANDS.map((c) => `  ${`${c.name}${c.args ? ` ${c.args}` : ''}`.padEnd(w)}  ${c.summary}`),
    '',
    'Global options: --reader NAME|INDEX, --sim FILE, --json, --trace FILE, --yes, --progress, --last-try, --help',
    'Secrets (--pin, --so-pin, --new-pin, --new-so-pin, --password): VALUE, env:NAME or file:PATH;',
    'asked without echo on a terminal when omitted, an error (exit 2) without one.',
    '',
    'Exit codes:',
    ...exitCodeHelp(),
    '',
  ].join('\n');
}

/** Finds the command named by the first one or two words. */
function findCommand(argv: string[]): { cmd?: Command; rest: string[] } {
  const two = `${argv[0]} ${argv[1]}`;
  const c2 = COMMANDS.find((c) => c.name === two);
  if (c2) return { cmd: c2, rest: argv.slice(2) };
  const c1 = COMMANDS.find((c) => c.name === argv[0]);
  if (c1) return { cmd: c1, rest: argv.slice(1) };
  return { rest: argv };
}

export async function runCli(argv: string[], io: CliIo = processIo()): Promise<number> {
  const wantsJson = argv.includes('--json');
  if (argv.length === 0) argv = ['demo'];
  if (argv[0] === '--help' || argv[0] === '-h' || argv[0] === 'help') {
    if (argv[1]) {
      const { cmd } = findCommand(argv.slice(1));
      if (cmd) {
        io.stdout.write(commandHelp(cmd));
        return EXIT.OK;
      }
    }
    io.stdout.write(topHelp());
    return EXIT.OK;
  }
  if (argv[0] === '--version' || argv[0] === 'version') {
    io.stdout.write(`sc-hsm-ts ${VERSION}\n`);
    return EXIT.OK;
  }
  const { cmd, rest } = findCommand(argv);
  const fallback: GlobalOptions = { json: wantsJson, yes: false, progress: false, lastTry: false };
  let ctx = new Ctx(io, fallback, openDevice);
  try {
    if (!cmd) {
      const group = COMMANDS.filter((c) => c.name.startsWith(`${argv[0]} `)).map((c) => c.name);
      throw new CliError(
        'USAGE_ERROR',
        group.length
          ? `'${argv[0]}' needs a subcommand: ${group.join(', ')}`
          : `unknown command '${/^[\w-]{1,40}$/.test(argv[0] ?? '') ? argv[0] : '…'}'`,
        'sc-hsm-ts --help lists the commands',
      );
    }
    const parsed = parseCommandArgs(cmd, rest);
    if (parsed.help) {
      io.stdout.write(commandHelp(cmd));
      return EXIT.OK;
    }
    ctx = new Ctx(io, parsed.g, openDevice);
    const data = await cmd.run(ctx, parsed.values, parsed.positionals);
    const errors = await ctx.finish();
    if (errors.length) throw errors[0];
    if (ctx.g.json) ctx.out.writeJson(data ?? {});
    return ctx.exitCode;
  } catch (e) {
    await ctx.finish();
    const info = errorInfo(e);
    const code = exitCodeFor(e);
    const out = new Output(io, ctx.g.json || wantsJson);
    if (out.json) out.writeJson({ error: info });
    else {
      const lines = [`${out.paint('red', 'error:')} ${info.message}`];
      if (info.sw) lines.push(`  status word: ${info.sw}${info.command ? ` (${info.command})` : ''}`);
      if (info.triesLeft !== undefined) lines.push(`  tries left: ${info.triesLeft}`);
      if (info.fix) lines.push(`  fix: ${info.fix}`);
      io.stderr.write(`${lines.join('\n')}\n`);
    }
    return code;
  }
}

setDemoRunner(runCli);

function isMain(): boolean {
  try {
    return (
      process.argv[1] !== undefined &&
      realpathSync(process.argv[1]) === realpathSync(fileURLToPath(import.meta.url))
    );
  } catch {
    return false;
  }
}

if (isMain()) {
  runCli(process.argv.slice(2)).then(
    (code) => {
      process.exitCode = code;
    },
    (e) => {
      process.stderr.write(`error: ${(e as Error).message}\n`);
      process.exitCode = EXIT.FAILED;
    },
  );
}
