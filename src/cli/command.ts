/**
 * Command definitions and argument parsing (node:util parseArgs). Every command declares its
 * options; the global ones are added to each. Parse errors never repeat a value (it could be a
 * secret typed in the wrong place).
 */
import { realpathSync, statSync } from 'node:fs';
import { basename, dirname, resolve, sep } from 'node:path';
import { parseArgs } from 'node:util';
import { unsafeTextPosition } from '../sc-hsm/validate.js';
import type { Ctx, GlobalOptions, Values } from './context.js';
import { CliError, EXIT_TABLE, type FixContext } from './exit-codes.js';

/**
 * What a path given on the command line is to the command: a file it reads or writes, or a
 * directory it reads or writes files in. A --trace file must be none of them (it would replace the
 * file, or be replaced by it), and a path's messages speak of paths.
 */
export type PathRole = 'input' | 'output' | 'input-dir' | 'output-dir';

export interface OptionSpec {
  type: 'string' | 'boolean';
  multiple?: boolean;
  short?: string;
  /** Placeholder in the help, e.g. `N`. */
  arg?: string;
  /** The value is a path (see {@link PathRole}). */
  path?: PathRole;
  help: string;
}

/**
 * What a command is, without its implementation: its name, arguments and options, and what
 * `--help` says. Each command module `X.ts` takes it from `X.meta.ts`, which the registry
 * (src/cli/registry.ts) imports: the help and the command list load no implementation.
 */
export interface CommandSpec {
  /** `status`, `dkek create`, … */
  name: string;
  summary: string;
  /** Positional arguments in the usage line, e.g. `FILE`. */
  args?: string;
  /** Longer explanation in `--help`. */
  description?: string;
  options?: Record<string, OptionSpec>;
  /** Minimum and maximum number of positional arguments (default none). */
  positionals?: [number, number];
  /** The positional arguments are paths (see {@link PathRole}). */
  argPath?: PathRole;
  /**
   * The positional arguments are another program's command line (`sim run -- COMMAND…`), handed
   * to it as they are and never printed: not refused for control characters (a multi-line
   * `sh -c` script is common in CI).
   */
  argsArePassedOn?: boolean;
  /** Examples in `--help`. */
  examples?: string[];
  /**
   * The global options the command takes (`--help` always), when not all of them: the others are
   * left out of its `--help` and refused (usage error naming the option) instead of ignored.
   */
  globals?: readonly string[];
  /** With {@link globals}: what to use instead of a refused global option (its fix line), by option. */
  globalsInstead?: Record<string, string>;
}

export interface Command extends CommandSpec {
  /** Runs the command; the return value is the `--json` document. */
  run(ctx: Ctx, v: Values, positionals: string[]): Promise<unknown>;
}

export const SECRET_HELP = 'VALUE, env:NAME or file:PATH; asked without echo on a terminal when omitted';

export const GLOBAL_OPTIONS: Record<string, OptionSpec> = {
  reader: {
    type: 'string',
    arg: 'NAME|INDEX',
    help: 'PC/SC reader (default: the only SmartCard-HSM present)',
  },
  sim: {
    type: 'string',
    arg: 'FILE',
    path: 'input',
    help: 'use the virtual SmartCard-HSM whose state is in FILE (only init creates a missing FILE)',
  },
  profile: {
    type: 'string',
    arg: 'NAME|FILE',
    help: 'with --sim, sim serve or sim run: the virtual card answers as slowly as the modelled device (nitrokey-hsm2, or a JSON profile)',
  },
  json: { type: 'boolean', help: 'machine-readable output and errors (schema: docs/cli.md)' },
  trace: {
    type: 'string',
    arg: 'FILE',
    path: 'output',
    help: 'write the APDU transcript to FILE (secrets masked; - is stderr; never replaces a file)',
  },
  'trace-overwrite': { type: 'boolean', help: 'let --trace replace an existing file' },
  yes: { type: 'boolean', short: 'y', help: 'confirm destructive steps without asking' },
  progress: { type: 'boolean', help: 'show progress on stderr also without a terminal' },
  'last-try': { type: 'boolean', help: 'allow sending a PIN/SO-PIN that has one try left' },
  secure: {
    type: 'boolean',
    help: 'secure messaging: verify the device chain, authenticate the device key, then protect every APDU',
  },
  'session-pin': {
    type: 'string',
    arg: 'SECRET',
    help: `with --secure: log in with a session PIN (pin session) instead of --pin (${SECRET_HELP})`,
  },
  help: { type: 'boolean', short: 'h', help: 'show this help' },
};

/** The global options `cmd` takes ({@link CommandSpec.globals}; all of them when it names none). */
export function globalOptionsOf(cmd: CommandSpec | undefined): Record<string, OptionSpec> {
  const takes = cmd?.globals;
  if (takes === undefined) return GLOBAL_OPTIONS;
  return Object.fromEntries(
    Object.entries(GLOBAL_OPTIONS).filter(([k]) => k === 'help' || takes.includes(k)),
  );
}

/**
 * A global option given to a command that does not take it (`sim run --yes`): a usage error
 * naming it, before anything is read or started, rather than an option silently ignored.
 */
function refuseOtherGlobals(cmd: CommandSpec, tokens: { kind: string; name?: string }[]): void {
  if (cmd.globals === undefined) return;
  const taken = globalOptionsOf(cmd);
  const other = tokens.find(
    (t) =>
      t.kind === 'option' &&
      t.name !== undefined &&
      !(t.name in taken) &&
      t.name in GLOBAL_OPTIONS &&
      !(t.name in (cmd.options ?? {})),
  );
  if (other?.name === undefined) return;
  const list = Object.keys(taken).map((k) => `--${k}`);
  throw new CliError(
    'USAGE_ERROR',
    `${cmd.name} takes no --${other.name}: of the global options it takes only ${list.slice(0, -1).join(', ')} and ${list.at(-1)}`,
    `leave --${other.name} out${cmd.globalsInstead?.[other.name] ? `; ${cmd.globalsInstead[other.name]}` : ''}`,
  );
}

export interface Parsed {
  g: GlobalOptions;
  values: Values;
  positionals: string[];
  help: boolean;
}

/** Rewrites parseArgs errors without repeating what was typed (it could be a secret). */
function parseError(e: unknown): CliError {
  const msg = (e as Error).message ?? '';
  const code = (e as { code?: string }).code;
  const opt = /'(--?[A-Za-z][\w-]*)/.exec(msg)?.[1];
  if (code === 'ERR_PARSE_ARGS_UNKNOWN_OPTION')
    return new CliError('USAGE_ERROR', `unknown option ${opt ?? ''}`.trim());
  if (code === 'ERR_PARSE_ARGS_INVALID_OPTION_VALUE') {
    // `--key-ref -1`: parseArgs will not take a value that starts with a dash
    if (/ambiguous|starting with a dash/.test(msg)) {
      return new CliError(
        'USAGE_ERROR',
        `option ${opt ?? ''} needs a value; a value that starts with '-' is written ${opt ?? '--option'}=VALUE`.trim(),
        `write ${opt ?? '--option'}=VALUE`,
      );
    }
    return new CliError(
      'USAGE_ERROR',
      `option ${opt ?? ''} ${/requires|argument missing/.test(msg) ? 'needs a value' : 'takes no value'}`,
    );
  }
  return new CliError('USAGE_ERROR', 'the arguments could not be parsed');
}

/** What the fix line says for a value with a control character, by what the value is. */
function unsafeTextFix(spec: OptionSpec | undefined, isPath: boolean): string {
  if (isPath)
    return 'choose a path without control characters (rename the file or directory whose name has one)';
  if (spec?.arg === 'LABEL')
    return 'retype the label without it (a label is 1 to 32 bytes of printable UTF-8)';
  if (spec?.arg === 'SECRET')
    return 'retype the value without it; a secret is better given as env:NAME or file:PATH';
  return 'retype the value without it';
}

/**
 * No option value or argument may hold a control or text-direction character (UNSAFE_TEXT: ESC,
 * BEL, newline, U+202E, …): labels and names typed here end up on the card or in output. The
 * message names the option and the character's code, never the value (it could be a secret); the
 * fix fits what the value is (a label, a path, a secret).
 */
function refuseUnsafeText(
  specs: Record<string, OptionSpec>,
  cmd: CommandSpec,
  v: Values,
  positionals: string[],
): void {
  const check = (text: string, where: string, fix: string) => {
    const at = unsafeTextPosition(text);
    if (at > 0) {
      const c = [...text][at - 1]!.codePointAt(0)!;
      throw new CliError(
        'USAGE_ERROR',
        `${where} contains a control or text-direction character (U+${c.toString(16).toUpperCase().padStart(4, '0')} at character ${at}); only printable text is accepted`,
        fix,
      );
    }
  };
  for (const [name, value] of Object.entries(v)) {
    const spec = specs[name];
    for (const x of Array.isArray(value) ? value : [value]) {
      if (typeof x !== 'string') continue;
      const isPath = spec?.path !== undefined || (spec?.arg === 'SECRET' && x.startsWith('file:'));
      check(x, `--${name}`, unsafeTextFix(spec, isPath));
    }
  }
  if (!cmd.argsArePassedOn)
    for (const [i, p] of positionals.entries())
      check(p, `argument ${i + 1}`, unsafeTextFix(undefined, cmd.argPath !== undefined));
}

/**
 * An option that takes one value may be given once: `--sim a.json --sim b.json` would otherwise
 * act on b.json, which the operator may not have meant (options marked `multiple` repeat).
 */
function refuseRepeatedOptions(
  specs: Record<string, OptionSpec>,
  tokens: ReadonlyArray<{ kind: string; name?: string }>,
): void {
  const seen = new Map<string, number>();
  for (const t of tokens) {
    if (t.kind !== 'option' || t.name === undefined) continue;
    const spec = specs[t.name];
    if (spec?.type !== 'string' || spec.multiple) continue;
    const n = (seen.get(t.name) ?? 0) + 1;
    seen.set(t.name, n);
    if (n === 2) {
      throw new CliError(
        'USAGE_ERROR',
        `option --${t.name} was given more than once; it takes one value`,
        `give --${t.name} once`,
      );
    }
  }
}

/** The canonical form of a path that may not exist yet: its realpath, or its directory's plus its name. */
function canonicalPath(path: string): string {
  const abs = resolve(path);
  try {
    return realpathSync(abs);
  } catch {
    try {
      return resolve(realpathSync(dirname(abs)), basename(abs));
    } catch {
      return abs;
    }
  }
}

/** Whether two paths (existing or not) name the same file. */
export function sameFile(a: string, b: string): boolean {
  if (canonicalPath(a) === canonicalPath(b)) return true;
  try {
    const x = statSync(a);
    const y = statSync(b);
    return x.dev === y.dev && x.ino === y.ino;
  } catch {
    return false;
  }
}

/**
 * Every path the command will read or write, other than --trace: options marked with a path role,
 * `file:` secrets (read), and the arguments of a command with `argPath`.
 */
export function commandPaths(
  specs: Record<string, OptionSpec>,
  cmd: CommandSpec,
  v: Values,
  positionals: string[],
): { path: string; role: PathRole; where: string }[] {
  const paths: { path: string; role: PathRole; where: string }[] = [];
  for (const [name, value] of Object.entries(v)) {
    const spec = specs[name];
    if (!spec || name === 'trace') continue;
    for (const x of Array.isArray(value) ? value : [value]) {
      if (typeof x !== 'string') continue;
      if (spec.path) paths.push({ path: x, role: spec.path, where: `--${name}` });
      else if (spec.arg === 'SECRET' && x.startsWith('file:'))
        paths.push({ path: x.slice(5), role: 'input', where: `--${name}` });
    }
  }
  if (cmd.argPath) for (const p of positionals) paths.push({ path: p, role: cmd.argPath, where: cmd.name });
  return paths;
}

/**
 * USAGE_ERROR, before anything is sent, when `--trace FILE` is a file the command reads or writes
 * (an --out file, a share file, a backup directory's files, a `file:` secret, the --sim state): the
 * transcript written when the command ends would replace it, or fail after the work was done.
 */
function refuseTraceOnCommandFiles(
  specs: Record<string, OptionSpec>,
  cmd: CommandSpec,
  v: Values,
  positionals: string[],
): void {
  const trace = v.trace;
  if (typeof trace !== 'string' || trace === '-') return;
  // the virtual device's lock, temps and DKEK import records: the transcript would replace them
  if (typeof v.sim === 'string' && v.sim !== '' && isSimStateCompanion(trace, v.sim))
    throw new CliError(
      'USAGE_ERROR',
      `--trace ${trace} is a file the virtual device keeps beside its state file ${v.sim} (its lock, temp or DKEK import record): the transcript would replace it. Nothing was sent.`,
      'name another file for --trace (or --trace - for standard error)',
    );
  const paths = commandPaths(specs, cmd, v, positionals);
  const traceDir = canonicalPath(dirname(resolve(trace)));
  for (const p of paths) {
    const clash = sameFile(trace, p.path) || (p.role === 'output-dir' && traceDir === canonicalPath(p.path));
    if (clash) {
      const what =
        p.role === 'output-dir'
          ? `is inside the directory ${p.path} that ${p.where} writes into`
          : `is the same file as ${p.where === cmd.name ? `the argument ${p.path}` : `${p.where} ${p.path}`}`;
      throw new CliError(
        'USAGE_ERROR',
        p.where === '--sim'
          ? `--trace ${trace} is the state file of the virtual device (--sim): writing there would destroy the device. Nothing was sent.`
          : `--trace ${trace} ${what}: the transcript would replace it, or fail after the work. Nothing was sent.`,
        'name another file for --trace (or --trace - for standard error)',
      );
    }
  }
}

/**
 * What lives beside a virtual device's state file FILE: its lock (`FILE.lock`, `FILE.lock.holder`,
 * src/sim/state-lock.ts), its temps (`.FILE.*.tmp`, src/util/host-files.ts) and the DKEK import
 * record (`FILE.dkek-import.json`, src/cli/dkek-ceremony.ts). Named here, not imported, so that
 * parsing a command loads no simulator code.
 */
function isSimStateCompanion(path: string, sim: string): boolean {
  const p = canonicalPath(path);
  const s = canonicalPath(sim);
  if (p === `${s}.lock` || p.startsWith(`${s}.lock${sep}`) || p === `${s}.lock.holder`) return true;
  if (p === `${s}.dkek-import.json`) return true;
  // the record of a key domain's share import (`domain import`)
  if (p.startsWith(`${s}.dkek-import-domain-`) && p.endsWith('.json')) return true;
  return dirname(p) === dirname(s) && basename(p).startsWith(`.${basename(s)}.`) && p.endsWith('.tmp');
}

/**
 * The directories where the virtual device's state file FILE and its companions live (see
 * {@link isSimStateCompanion}): FILE's directory as named, and that of the file FILE links to.
 */
function simStateDirs(sim: string): string[] {
  return [...new Set([canonicalPath(dirname(resolve(sim))), dirname(canonicalPath(sim))])];
}

/**
 * USAGE_ERROR, before anything is sent, when an output of the command (`--out`, a created file
 * argument, `--save-replaced`, a backup directory) is the --sim state file or one of its
 * companions, or when a directory the command writes into (an `output-dir`, or restore's
 * `input-dir` where it notes restore-progress.json) holds them: with --force it would replace the virtual device (its keys) or its lock, otherwise
 * it would fail only after the work.
 */
function refuseOutputsOnSimState(
  specs: Record<string, OptionSpec>,
  cmd: CommandSpec,
  v: Values,
  positionals: string[],
): void {
  const sim = v.sim;
  if (typeof sim !== 'string' || sim === '') return;
  const outputs = commandPaths(specs, cmd, v, positionals).filter(
    (p) => p.path !== '' && (p.role === 'output' || p.role === 'output-dir'),
  );
  const simDirs = simStateDirs(sim);
  const dirs = commandPaths(specs, cmd, v, positionals).filter(
    (p) => p.path !== '' && (p.role === 'output-dir' || p.role === 'input-dir'),
  );
  for (const d of dirs) {
    const dir = canonicalPath(d.path);
    if (!simDirs.some((s) => s === dir || s.startsWith(dir.endsWith(sep) ? dir : `${dir}${sep}`))) continue;
    const what = d.where === cmd.name ? `${cmd.name} ${d.path}` : `${d.where} ${d.path}`;
    throw new CliError(
      'USAGE_ERROR',
      `the state file of the virtual device (--sim ${sim}) and its lock, temp and record files are inside the directory of ${what}, which the command writes into: they could be replaced or taken for its files. Nothing was sent.`,
      `keep the --sim state file outside that directory, or name another directory for ${d.where === cmd.name ? 'the argument' : d.where}`,
    );
  }
  for (const o of outputs) {
    const state = sameFile(o.path, sim);
    if (state || isSimStateCompanion(o.path, sim)) {
      const what = o.where === cmd.name ? `${cmd.name} ${o.path}` : `${o.where} ${o.path}`;
      throw new CliError(
        'USAGE_ERROR',
        state
          ? `${what} is the state file of the virtual device (--sim): writing there would destroy the device. Nothing was sent.`
          : `${what} is a file the virtual device keeps beside its state file ${sim} (its lock, temp or DKEK import record). Nothing was sent.`,
        `name another file for ${o.where === cmd.name ? 'the output' : o.where}`,
      );
    }
  }
}

/**
 * USAGE_ERROR naming the option when a path option (`--sim=`, `--out ''`) or a path argument is
 * empty: not taken for the current directory or reported as a bad file later.
 */
function refuseEmptyPaths(
  specs: Record<string, OptionSpec>,
  cmd: CommandSpec,
  v: Values,
  positionals: string[],
): void {
  for (const [name, value] of Object.entries(v)) {
    if (!specs[name]?.path) continue;
    if ((Array.isArray(value) ? value : [value]).some((x) => x === ''))
      throw new CliError(
        'USAGE_ERROR',
        `--${name} was given an empty path; nothing was done`,
        `give --${name} a path`,
      );
  }
  if (cmd.argPath && positionals.some((p) => p === ''))
    throw new CliError(
      'USAGE_ERROR',
      `${cmd.name} was given an empty path as its argument; nothing was done`,
    );
}

/**
 * `--session-pin` on every command alike, before anything is read or sent: never an empty value
 * (a secret never is), and never with `--sim` (each --sim command powers the virtual card on
 * afresh, which ends any session PIN: trying one would cost a PIN try; spec §3.20).
 */
function refuseSessionPinValue(g: GlobalOptions): void {
  if (g.sessionPin === undefined) return;
  if (g.sessionPin === '')
    throw new CliError('SECRET_REQUIRED', '--session-pin was given an empty value; nothing was sent');
  if (g.sim !== undefined)
    throw new CliError(
      'USAGE_ERROR',
      'with --sim the virtual card is powered on afresh for every command, which ends any session PIN: one from an earlier command cannot be valid, and trying it would cost a PIN try; nothing was sent',
      'leave --session-pin out; a command that needs the user PIN takes --pin env:NAME',
    );
}

export function parseCommandArgs(cmd: CommandSpec, argv: string[]): Parsed {
  const specs = { ...GLOBAL_OPTIONS, ...(cmd.options ?? {}) };
  const options: Record<string, { type: 'string' | 'boolean'; multiple?: boolean; short?: string }> = {};
  for (const [k, s] of Object.entries(specs)) {
    options[k] = { type: s.type };
    if (s.multiple) options[k].multiple = true;
    if (s.short) options[k].short = s.short;
  }
  let parsed: { values: Values; positionals: string[]; tokens: { kind: string; name?: string }[] };
  try {
    parsed = parseArgs({ args: argv, options, allowPositionals: true, strict: true, tokens: true }) as never;
  } catch (e) {
    const err = parseError(e);
    // `sim run ls -la`: COMMAND's own options were taken for the command's
    if (cmd.argsArePassedOn && err.message.startsWith('unknown option') && !argv.includes('--'))
      throw new CliError(
        'USAGE_ERROR',
        `${err.message} (${cmd.name} passes on only what follows --)`,
        `put COMMAND after --: sc-hsm-ts ${cmd.name} [options] -- COMMAND…`,
      );
    throw err;
  }
  const v = parsed.values;
  if (v.help !== true) refuseOtherGlobals(cmd, parsed.tokens);
  refuseRepeatedOptions(specs, parsed.tokens);
  refuseUnsafeText(specs, cmd, v, parsed.positionals);
  refuseEmptyPaths(specs, cmd, v, parsed.positionals);
  const help = v.help === true;
  const [min, max] = cmd.positionals ?? [0, 0];
  if (!help) {
    if (parsed.positionals.length > max) {
      throw new CliError(
        'USAGE_ERROR',
        `${cmd.name} takes ${max === 0 ? 'no' : `at most ${max}`} argument${max === 1 ? '' : 's'}; got ${parsed.positionals.length}` +
          ' (values of options are written --option VALUE)',
      );
    }
    if (parsed.positionals.length < min)
      throw new CliError('USAGE_ERROR', `${cmd.name} needs ${cmd.args ?? 'an argument'}`);
  }
  const g: GlobalOptions = {
    json: v.json === true,
    yes: v.yes === true,
    progress: v.progress === true,
    lastTry: v['last-try'] === true,
  };
  if (v.secure === true) g.secure = true;
  if (typeof v['session-pin'] === 'string') g.sessionPin = v['session-pin'];
  if (g.sessionPin !== undefined && !g.secure) {
    throw new CliError(
      'USAGE_ERROR',
      '--session-pin is accepted only with --secure (the card checks a session PIN inside secure messaging only); nothing was sent',
      'add --secure',
    );
  }
  if (typeof v.reader === 'string') g.reader = v.reader;
  if (typeof v.sim === 'string') g.sim = v.sim;
  if (typeof v.trace === 'string') g.trace = v.trace;
  if (v['trace-overwrite'] === true) g.traceOverwrite = true;
  if (g.sim !== undefined && g.reader !== undefined) {
    throw new CliError('USAGE_ERROR', '--sim and --reader exclude each other');
  }
  refuseSessionPinValue(g);
  if (typeof v.profile === 'string') {
    // a latency model of the virtual card: nothing to do on a real device
    if (g.sim === undefined && !cmd.name.startsWith('sim '))
      throw new CliError(
        'USAGE_ERROR',
        '--profile models the virtual card: give it with --sim FILE, or to sim serve or sim run',
        'add --sim FILE, or leave --profile out for a real device',
      );
    g.profile = v.profile;
  }
  if (!help) {
    refuseTraceOnCommandFiles(specs, cmd, v, parsed.positionals);
    refuseOutputsOnSimState(specs, cmd, v, parsed.positionals);
  }
  return { g, values: v, positionals: parsed.positionals, help };
}

function optionLines(specs: Record<string, OptionSpec>): string[] {
  const rows = Object.entries(specs).map(([k, s]) => {
    const left = `${s.short ? `-${s.short}, ` : '    '}--${k}${s.arg ? ` ${s.arg}` : s.type === 'string' ? ' VALUE' : ''}`;
    return [left, `${s.help}${s.multiple ? ' (repeatable)' : ''}`] as const;
  });
  const w = Math.max(...rows.map((r) => r[0].length));
  return rows.map(([l, r]) => `  ${l.padEnd(w)}  ${r}`);
}

export function exitCodeHelp(): string[] {
  return EXIT_TABLE.map(([c, t]) => `  ${c}  ${t}`);
}

export function commandHelp(cmd: CommandSpec): string {
  // options come before `--`: after it everything is COMMAND's (sim run)
  const usage = cmd.argsArePassedOn
    ? `${cmd.name} [options] ${cmd.args ?? ''}`.trim()
    : `${cmd.name}${cmd.args ? ` ${cmd.args}` : ''} [options]`;
  const lines = [`Usage: sc-hsm-ts ${usage}`, '', cmd.summary];
  if (cmd.description) lines.push('', cmd.description);
  if (cmd.options && Object.keys(cmd.options).length) lines.push('', 'Options:', ...optionLines(cmd.options));
  lines.push('', 'Global options:', ...optionLines(globalOptionsOf(cmd)));
  if (cmd.examples?.length) lines.push('', 'Examples:', ...cmd.examples.map((e) => `  ${e}`));
  lines.push('', 'Exit codes:', ...exitCodeHelp());
  return `${lines.join('\n')}\n`;
}

/** What the fix line of an error of `cmd` may name: the command's own options and the global ones. */
export function fixContext(cmd?: CommandSpec): FixContext {
  return { has: (o) => o in globalOptionsOf(cmd) || (cmd?.options !== undefined && o in cmd.options) };
}
