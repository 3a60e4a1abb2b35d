/**
 * `sc-hsm-ts`: the operator's command for the SmartCard-HSM (Nitrokey HSM 2). A thin shell over
 * the library: it parses, prompts and prints; the work is done by the session and the codecs.
 * `runCli(argv, io)` runs one command in-process and resolves with its exit code.
 */
import { realpathSync } from 'node:fs';
import { fileURLToPath } from 'node:url';
import {
  type Command,
  commandHelp,
  exitCodeHelp,
  fixContext,
  GLOBAL_OPTIONS,
  parseCommandArgs,
} from './command.js';
import { Ctx, type DeviceOpener, type GlobalOptions } from './context.js';
import { CliError, EXIT, errorInfo, exitCodeFor } from './exit-codes.js';
import { printableLines } from './format.js';
import { type CliIo, Output, processIo } from './io.js';
import { COMMANDS, type CommandEntry } from './registry.js';

export { COMMANDS };

/** Opens the card (src/cli/device.ts, which loads the library) when a command first needs it. */
const openDevice: DeviceOpener = async (ctx, o) => (await import('./device.js')).openDevice(ctx, o);

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
    'Global options (before or after the command): --reader NAME|INDEX, --sim FILE, --json, --trace FILE|-,',
    '--trace-overwrite, --yes, --progress, --last-try, --help. An option that takes a value is given once.',
    'Secrets (--pin, --so-pin, --new-pin, --new-so-pin, --password): VALUE, env:NAME or file:PATH;',
    'asked without echo on a terminal when omitted, an error (exit 2) without one.',
    '',
    'Exit codes:',
    ...exitCodeHelp(),
    `  ${EXIT_CLOSED_PIPE}  standard output closed early (e.g. | head): the work was done and kept`,
    '',
  ].join('\n');
}

/** Finds the command named by the first one or two words. */
function findCommand(argv: string[]): { cmd?: CommandEntry; rest: string[] } {
  const two = `${argv[0]} ${argv[1]}`;
  const c2 = COMMANDS.find((c) => c.name === two);
  if (c2) return { cmd: c2, rest: argv.slice(2) };
  const c1 = COMMANDS.find((c) => c.name === argv[0]);
  if (c1) return { cmd: c1, rest: argv.slice(1) };
  return { rest: argv };
}

/**
 * The global options written before the command (`sc-hsm-ts --sim g.json --json status`), taken
 * off the front of `argv` as they were written (`--sim FILE`, `--sim=FILE`, `-y`); they are parsed
 * with the command's own options, so a repeat before and after the command is refused there.
 * `--help`/`-h` and `--version` are noted. Anything else that looks like an option is a usage error
 * naming it (never a value: it could be a secret typed in the wrong place).
 */
function leadingGlobals(argv: string[]): {
  globals: string[];
  rest: string[];
  help: boolean;
  version: boolean;
} {
  const globals: string[] = [];
  let help = false;
  let version = false;
  let i = 0;
  for (; i < argv.length; i++) {
    const a = argv[i]!;
    if (!a.startsWith('-') || a === '-' || a === '--') break;
    if (a === '--help' || a === '-h') {
      help = true;
      continue;
    }
    if (a === '--version') {
      version = true;
      continue;
    }
    const long = /^--([^=]+)(=[\s\S]*)?$/.exec(a);
    const short = /^-([A-Za-z])$/.exec(a);
    const name = long
      ? long[1]!
      : short
        ? Object.keys(GLOBAL_OPTIONS).find((k) => GLOBAL_OPTIONS[k]!.short === short[1])
        : undefined;
    const spec = name !== undefined && name !== 'help' ? GLOBAL_OPTIONS[name] : undefined;
    if (!spec) {
      const shown = /^-{1,2}[A-Za-z][\w-]{0,40}/.exec(a)?.[0];
      throw new CliError(
        'USAGE_ERROR',
        `unknown option ${shown ?? ''} before the command`.replace('  ', ' '),
        'before the command only the global options are accepted (sc-hsm-ts --help lists them); a command\u2019s own options go after it',
      );
    }
    globals.push(a);
    if (spec.type === 'string' && !long?.[2]) {
      const value = argv[i + 1];
      if (value === undefined || (value.length > 1 && value.startsWith('-'))) {
        throw new CliError(
          'USAGE_ERROR',
          `option --${name} needs a value${value === undefined ? '' : `; a value that starts with '-' is written --${name}=VALUE`}`,
          `write --${name} VALUE (or --${name}=VALUE)`,
        );
      }
      globals.push(value);
      i++;
    } else if (spec.type === 'boolean' && long?.[2]) {
      throw new CliError('USAGE_ERROR', `option --${name} takes no value`);
    }
  }
  return { globals, rest: argv.slice(i), help, version };
}

export async function runCli(argv: string[], io: CliIo = processIo()): Promise<number> {
  const wantsJson = argv.includes('--json');
  let lead: ReturnType<typeof leadingGlobals>;
  try {
    lead = leadingGlobals(argv);
  } catch (e) {
    return report(io, new Ctx(io, fallbackOptions(wantsJson), openDevice), e, undefined, wantsJson);
  }
  const { globals } = lead;
  argv = lead.rest;
  if (lead.version) {
    io.stdout.write(`sc-hsm-ts ${VERSION}\n`);
    return EXIT.OK;
  }
  if (lead.help) argv = ['--help', ...argv];
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
  if (argv[0] === 'version') {
    io.stdout.write(`sc-hsm-ts ${VERSION}\n`);
    return EXIT.OK;
  }
  const { cmd, rest } = findCommand(argv);
  let ctx = new Ctx(io, fallbackOptions(wantsJson), openDevice);
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
    const parsed = parseCommandArgs(cmd, [...globals, ...rest]);
    if (parsed.help) {
      io.stdout.write(commandHelp(cmd));
      return EXIT.OK;
    }
    ctx = new Ctx(io, parsed.g, openDevice, cmd.name);
    const data = await (await load(cmd)).run(ctx, parsed.values, parsed.positionals);
    const errors = await ctx.finish();
    if (errors.length) throw errors[0];
    if (ctx.g.json) ctx.out.writeJson(data ?? {});
    return ctx.exitCode;
  } catch (e) {
    await ctx.finish();
    return report(io, ctx, e, cmd, wantsJson);
  }
}

function fallbackOptions(json: boolean): GlobalOptions {
  return { json, yes: false, progress: false, lastTry: false };
}

/** Prints the error (as JSON with --json) and returns its exit code. */
function report(io: CliIo, ctx: Ctx, e: unknown, cmd: CommandEntry | undefined, wantsJson: boolean): number {
  const info = errorInfo(e, fixContext(cmd));
  const code = exitCodeFor(e);
  const out = new Output(io, ctx.g.json || wantsJson);
  if (out.json) out.writeJson({ error: info });
  else {
    // messages can carry labels and names from a card or a file: escaped, our own line breaks kept
    const lines = [`${out.paint('red', 'error:')} ${printableLines(info.message)}`];
    if (info.sw) lines.push(`  status word: ${info.sw}${info.command ? ` (${info.command})` : ''}`);
    if (info.triesLeft !== undefined) lines.push(`  tries left: ${info.triesLeft}`);
    if (info.fix) lines.push(`  fix: ${printableLines(info.fix)}`);
    io.stderr.write(`${lines.join('\n')}\n`);
  }
  return code;
}

/** A command's implementation; the demo runs the real commands, through {@link runCli}. */
async function load(entry: CommandEntry): Promise<Command> {
  const cmd = await entry.load();
  if (cmd.name === 'demo') (await import('./commands/demo.js')).setDemoRunner(runCli);
  return cmd;
}

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

/**
 * Exit code when standard output was closed before everything was printed (`sc-hsm-ts keys | head
 * -1`): 128 + SIGPIPE, what a shell reports for a program a closed pipe stopped. The command's work
 * is done and kept all the same: a virtual card saved before it answered, files are written before
 * anything is printed about them.
 */
export const EXIT_CLOSED_PIPE = 141;

/**
 * A closed standard output or error (EPIPE: the reader of a pipe went away) is handled here, once:
 * further output is dropped quietly, the command runs to its end, and `onStdoutClosed` is told so
 * that the exit code can say it. Without this, Node.js raises the EPIPE as an uncaught exception
 * with a stack trace in the middle of the command.
 */
function quietOnClosedOutput(onStdoutClosed: () => void): void {
  process.stdout.on('error', onStdoutClosed);
  process.stderr.on('error', () => undefined);
}

if (isMain()) {
  let stdoutClosed = false;
  quietOnClosedOutput(() => {
    stdoutClosed = true;
  });
  runCli(process.argv.slice(2)).then(
    (code) => {
      process.exitCode = code === EXIT.OK && stdoutClosed ? EXIT_CLOSED_PIPE : code;
    },
    (e) => {
      process.stderr.write(`error: ${(e as Error).message}\n`);
      process.exitCode = EXIT.FAILED;
    },
  );
}
