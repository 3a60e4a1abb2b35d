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

/**
 * The package version, as in package.json (test/cli-docs.test.ts holds the two equal: the CLI is
 * bundled without reading package.json at run time).
 */
export const VERSION = '0.1.0';

/** `sc-hsm-ts --version` / `-V`: `sc-hsm-ts 0.1.0`, with --json `{"name":"sc-hsm-ts","version":…}`. */
function printVersion(io: CliIo, json: boolean): number {
  if (json) new Output(io, true).writeJson({ name: 'sc-hsm-ts', version: VERSION });
  else io.stdout.write(`sc-hsm-ts ${VERSION}\n`);
  return EXIT.OK;
}

/** The global options as `--name ARG`, from GLOBAL_OPTIONS (the one list the parser uses too). */
function globalOptionList(): string {
  return Object.entries(GLOBAL_OPTIONS)
    .map(([k, o]) => `--${k}${o.arg ? `${KEEP}${k === 'trace' ? `${o.arg}|-` : o.arg}` : ''}`)
    .join(', ');
}

/** Every option of any command (or global) that takes a secret (`arg: 'SECRET'`), once each. */
function secretOptionList(): string {
  const names = new Set<string>();
  for (const c of COMMANDS)
    for (const [k, o] of Object.entries({ ...(c.options ?? {}), ...GLOBAL_OPTIONS }))
      if (o.arg === 'SECRET') names.add(`--${k}`);
  return [...names].join(', ');
}

/** A space {@link wrapWords} never breaks at (an option and its value stay on one line). */
const KEEP = '\u0001';

/** `text` in lines of at most 100 characters, broken between words (not at {@link KEEP}). */
function wrapWords(text: string): string[] {
  const lines: string[] = [];
  let line = '';
  for (const word of text.split(' ')) {
    if (line && line.length + 1 + word.length > 100) {
      lines.push(line);
      line = word;
    } else line = line ? `${line} ${word}` : word;
  }
  if (line) lines.push(line);
  return lines.map((l) => l.replaceAll(KEEP, ' '));
}

function topHelp(): string {
  const w = Math.max(...COMMANDS.map((c) => c.name.length + (c.args ? c.args.length + 1 : 0)));
  return [
    'Usage: sc-hsm-ts COMMAND [options]      (sc-hsm-ts COMMAND --help for its options)',
    '',
    'The operator\u2019s tool for the SmartCard-HSM / Nitrokey HSM 2: initialize, DKEK shares, keys,',
    'backup and restore onto a replacement device, PINs. `sc-hsm-ts demo` runs the whole guide on',
    'virtual devices. Without a command this usage is printed on stderr (exit 2).',
    '',
    'Commands:',
    ...COMMANDS.map((c) => `  ${`${c.name}${c.args ? ` ${c.args}` : ''}`.padEnd(w)}  ${c.summary}`),
    '',
    ...wrapWords(
      `Global options (before or after the command): ${globalOptionList()} (sim run, sim serve, doctor and demo take fewer: COMMAND --help lists them). An option that takes a value is given once.`,
    ),
    'Before the command only: --version, -V (the version; with --json {"name":"sc-hsm-ts","version":…}).',
    ...wrapWords(
      `Secrets (${secretOptionList()}): VALUE, env:NAME or file:PATH; asked without echo on a terminal when omitted, an error (exit 2) without one.`,
    ),
    '',
    'Exit codes:',
    ...exitCodeHelp(),
    `  ${EXIT_CLOSED_PIPE}  standard output closed early (e.g. | head): the work was done and kept`,
    '',
  ].join('\n');
}

/** The commands of the group `word` (`aes` → aes encrypt, aes decrypt, aes cmac); [] for no group. */
function groupOf(word: string | undefined): CommandEntry[] {
  return word === undefined ? [] : COMMANDS.filter((c) => c.name.startsWith(`${word} `));
}

/** `sc-hsm-ts GROUP --help`: the group's commands with their summaries (stdout, exit 0). */
function groupHelp(word: string, cmds: CommandEntry[]): string {
  const w = Math.max(...cmds.map((c) => c.name.length + (c.args ? c.args.length + 1 : 0)));
  return [
    `Usage: sc-hsm-ts ${word} SUBCOMMAND [options]      (sc-hsm-ts ${word} SUBCOMMAND --help for its options)`,
    '',
    'Commands:',
    ...cmds.map((c) => `  ${`${c.name}${c.args ? ` ${c.args}` : ''}`.padEnd(w)}  ${c.summary}`),
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
 * Edit distance between two words (optimal string alignment: an insertion, a deletion, a
 * substitution or a swap of two neighbouring letters each count 1).
 */
export function editDistance(a: string, b: string): number {
  const d: number[][] = Array.from({ length: a.length + 1 }, (_, i) =>
    Array.from({ length: b.length + 1 }, (_, j) => (i === 0 ? j : j === 0 ? i : 0)),
  );
  for (let i = 1; i <= a.length; i++) {
    for (let j = 1; j <= b.length; j++) {
      const cost = a[i - 1] === b[j - 1] ? 0 : 1;
      let v = Math.min(d[i - 1]![j]! + 1, d[i]![j - 1]! + 1, d[i - 1]![j - 1]! + cost);
      if (i > 1 && j > 1 && a[i - 1] === b[j - 2] && a[i - 2] === b[j - 1])
        v = Math.min(v, d[i - 2]![j - 2]! + 1);
      d[i]![j] = v;
    }
  }
  return d[a.length]![b.length]!;
}

/** The closest of `names` to `word` (at most 2 edits, 1 for a word of up to 4 letters), if one is. */
function closest(word: string, names: string[]): string | undefined {
  const limit = word.length <= 4 ? 1 : 2;
  let best: { name: string; d: number } | undefined;
  for (const name of names) {
    const d = editDistance(word.toLowerCase(), name);
    if (d <= limit && (!best || d < best.d)) best = { name, d };
  }
  return best?.name;
}

/**
 * The usage error for a command line naming no command: an unknown word, a group without (or with
 * a mistyped) subcommand. A near miss is named ("did you mean 'pin verify'?", as git does); what
 * was typed is repeated only when it looks like a command word (it could be a secret).
 */
function unknownCommand(argv: string[]): CliError {
  const shown = (w: string | undefined) => (/^[\w-]{1,40}$/.test(w ?? '') ? w! : '…');
  const first = argv[0] ?? '';
  const group = COMMANDS.filter((c) => c.name.startsWith(`${first} `)).map((c) => c.name);
  const fix = 'sc-hsm-ts --help lists the commands';
  if (group.length) {
    const sub = argv[1];
    if (sub === undefined || sub.startsWith('-'))
      return new CliError('USAGE_ERROR', `'${first}' needs a subcommand: ${group.join(', ')}`, fix);
    const near = closest(`${first} ${sub}`, group);
    return new CliError(
      'USAGE_ERROR',
      `unknown command '${first} ${shown(sub)}'${near ? `; did you mean '${near}'?` : `; '${first}' has ${group.join(', ')}`}`,
      fix,
    );
  }
  // one word against the one-word commands and the groups, two words against the two-word commands
  const words = [...new Set(COMMANDS.map((c) => c.name.split(' ')[0]!))];
  let near = closest(first, words);
  if (near && COMMANDS.some((c) => c.name.startsWith(`${near} `))) {
    const sub = argv[1];
    const inGroup = COMMANDS.filter((c) => c.name.startsWith(`${near} `)).map((c) => c.name);
    near = (sub !== undefined && closest(`${near} ${sub}`, inGroup)) || near;
  }
  return new CliError(
    'USAGE_ERROR',
    `unknown command '${shown(first)}'${near ? `; did you mean '${near}'?` : ''}`,
    fix,
  );
}

/**
 * The global options written before the command (`sc-hsm-ts --sim g.json --json status`), taken
 * off the front of `argv` as they were written (`--sim FILE`, `--sim=FILE`, `-y`); they are parsed
 * with the command's own options, so a repeat before and after the command is refused there.
 * `--help`/`-h` and `--version`/`-V` are noted. Anything else that looks like an option is a usage error
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
    if (a === '--version' || a === '-V') {
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
  if (lead.version) return printVersion(io, wantsJson);
  if (lead.help) argv = ['--help', ...argv];
  if (argv.length === 0) {
    // nothing was asked (as git): the usage, exit 2; the demo is `sc-hsm-ts demo`
    if (!wantsJson) {
      io.stderr.write(topHelp());
      return EXIT.USAGE;
    }
    const e = new CliError('USAGE_ERROR', 'no command given', 'sc-hsm-ts --help lists the commands');
    return report(io, new Ctx(io, fallbackOptions(true), openDevice), e, undefined, true);
  }
  if (argv[0] === '--help' || argv[0] === '-h' || argv[0] === 'help') {
    if (argv[1]) {
      const { cmd } = findCommand(argv.slice(1));
      if (cmd) {
        io.stdout.write(commandHelp(cmd));
        return EXIT.OK;
      }
      const group = groupOf(argv[1]);
      if (group.length) {
        io.stdout.write(groupHelp(argv[1]!, group));
        return EXIT.OK;
      }
    }
    io.stdout.write(topHelp());
    return EXIT.OK;
  }
  if (argv[0] === 'version') return printVersion(io, wantsJson);
  const { cmd, rest } = findCommand(argv);
  let ctx = new Ctx(io, fallbackOptions(wantsJson), openDevice);
  try {
    if (!cmd) {
      const group = groupOf(argv[0]);
      if (group.length && argv.slice(1).some((a) => a === '--help' || a === '-h')) {
        io.stdout.write(groupHelp(argv[0]!, group));
        return EXIT.OK;
      }
      throw unknownCommand(argv);
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
  if (cmd.name === 'sim run') (await import('./commands/sim/run.js')).setSimRunRunner(runCli);
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
