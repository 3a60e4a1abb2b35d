/**
 * The step after `pka authenticate … --`: parsed, and run once as a rehearsal before the challenge
 * is made, so that everything it would refuse (its options, its output files, its checks from
 * public card data, a missing PIN, a PIN with one try left) is refused before the custodians
 * answer. The rehearsal runs with the session limited to public reads (SmartCardHsm.precheck) and
 * stops at the step's login, before VERIFY (spec §3.6) or anything that needs authentication (a
 * step that asks for confirmation right after its login: at its next call on the device). Global
 * options after `--` and step outputs that are files of pka authenticate are refused when parsed.
 */
import { dirname, resolve } from 'node:path';
import { parseArgs } from 'node:util';
import { PrecheckStop } from '../../../sc-hsm/precheck.js';
import type { SmartCardHsm } from '../../../sc-hsm/session.js';
import { parseUserPin } from '../../../sc-hsm/validate.js';
import { type CommandSpec, commandPaths, GLOBAL_OPTIONS, parseCommandArgs, sameFile } from '../../command.js';
import type { Ctx, Values } from '../../context.js';
import { CliError } from '../../exit-codes.js';
import { printable } from '../../format.js';
import { applyKnownRetryCounter } from '../../pin-retry.js';
import type { SecretRequest } from '../../secrets.js';

export interface Step {
  /** The step's name (`keygen`, `pin change`). */
  name: string;
  /**
   * Runs the step up to its login with the channel limited to public reads: its refusals are thrown,
   * nothing is sent that needs authentication or changes the card, no file is written.
   * `pinReplaced`: the custodians' keys replace the user PIN, so the step will ask for none.
   */
  rehearse(ctx: Ctx, hsm: SmartCardHsm, pinReplaced: boolean): Promise<void>;
  /**
   * USAGE_ERROR when an output of the step (`--out`, an output directory) is one of `files` (the
   * challenge, response, --trace and --sim files of pka authenticate) or, for a directory, holds
   * one: the step
   * would fail on it, or replace it, only after the custodians answered.
   */
  refuseOutputsOn(files: { path: string; option: string }[]): void;
  /** Runs the step in this session; secrets and confirmations given to the rehearsal are reused. */
  run(ctx: Ctx): Promise<unknown>;
}

class RehearsalDone extends Error {}

function stopped(e: unknown): boolean {
  for (let x = e, depth = 0; x && depth < 8; x = (x as { cause?: unknown }).cause, depth++)
    if (x instanceof PrecheckStop) return true;
  return false;
}

/** Runs `fn`; a stop of the pre-check (a command that is not a public read) ends it quietly. */
async function untilStop(fn: () => Promise<unknown>): Promise<void> {
  try {
    await fn();
  } catch (e) {
    if (!stopped(e)) throw e;
  }
}

/** The output of the rehearsal: nothing is printed twice. */
function silent(ctx: Ctx): Ctx['out'] {
  const o = Object.create(ctx.out) as Ctx['out'];
  for (const m of ['line', 'heading', 'kv', 'warn', 'note', 'ok', 'writeJson'] as const)
    (o as unknown as Record<string, () => void>)[m] = () => {};
  return o;
}

/**
 * The steps that ask for confirmation after their login and before their next card command
 * (`delete-key`'s question, `import-key --force`'s): the rehearsal runs them up to the question, so
 * that it is asked (on a terminal) or refused (without one and without --yes) before the challenge.
 * A step that asks before its login is rehearsed up to its question anyway; one that asks after
 * further card commands (`restore --force`, `unwrap --force`) is refused when it asks, with the
 * same fix.
 */
const CONFIRMS_AFTER_LOGIN = new Set(['delete-key', 'import-key']);

/** ctx.confirm for the step: without a terminal and --yes the fix says where --yes goes. */
async function confirmStep(ctx: Ctx, warning: string, name: string, outcome: string): Promise<void> {
  try {
    await ctx.confirm(warning);
  } catch (e) {
    if (!(e instanceof CliError && e.code === 'CONFIRMATION_REQUIRED')) throw e;
    throw new CliError(
      'CONFIRMATION_REQUIRED',
      `${name} after -- needs confirmation, and the step cannot take --yes: ${outcome}`,
      `put --yes before the -- (sc-hsm-ts pka authenticate --yes … -- ${name} …), or run it on a terminal and type yes`,
    );
  }
}

/**
 * Every global option (GLOBAL_OPTIONS, whatever it holds) given after `--` is refused: the step runs
 * with those of `pka authenticate`, so one given here would be dropped unseen (`--secure` would leave
 * the step's PIN in clear). Read from the tokens before the step's own checks, so that no message
 * about a global option (`--session-pin` needs `--secure`) sends the operator the wrong way.
 */
function refuseGlobalOptions(entry: CommandSpec, args: string[]): void {
  const specs = { ...GLOBAL_OPTIONS, ...(entry.options ?? {}) };
  const options: Record<string, { type: 'string' | 'boolean'; short?: string }> = {};
  for (const [k, s] of Object.entries(specs))
    options[k] = s.short ? { type: s.type, short: s.short } : { type: s.type };
  const { tokens } = parseArgs({ args, options, allowPositionals: true, strict: false, tokens: true });
  for (const t of tokens) {
    if (t.kind !== 'option' || t.name === 'help' || !(t.name in GLOBAL_OPTIONS)) continue;
    if (entry.options && t.name in entry.options) continue; // the step's own option of that name
    throw new CliError(
      'USAGE_ERROR',
      `give global options (--sim, --reader, --json, --yes, --secure, …) before pka authenticate, not after --: --${t.name} was given to ${entry.name}`,
      `move --${t.name} before the -- (sc-hsm-ts pka authenticate --${t.name} … -- ${entry.name} …)`,
    );
  }
}

/**
 * Parses the step after `--`: a command of ours that needs authentication (it takes --pin), with its
 * own options and no global ones.
 */
export async function parseStep(argv: string[]): Promise<Step> {
  const { COMMANDS } = await import('../../registry.js');
  const two = COMMANDS.find((c) => c.name === `${argv[0]} ${argv[1]}`);
  const entry = two ?? COMMANDS.find((c) => c.name === argv[0]);
  if (argv[0] === 'pka') throw new CliError('USAGE_ERROR', 'the step after -- cannot be another pka command');
  // init would erase what the custodians just authorized (and skip its own reader check)
  if (entry?.name === 'init')
    throw new CliError(
      'USAGE_ERROR',
      'init cannot be the step after --: it erases the device; run it on its own',
    );
  if (!entry || entry.name === 'demo' || entry.name.startsWith('sim '))
    throw new CliError(
      'USAGE_ERROR',
      `after -- give an sc-hsm-ts command to run in the session; got '${printable(argv[0] ?? '')}'`,
    );
  if (!entry.options?.pin)
    throw new CliError(
      'USAGE_ERROR',
      `${entry.name} needs no authentication: run it on its own, not after pka authenticate --`,
    );
  const args = argv.slice(entry.name.split(' ').length);
  refuseGlobalOptions(entry, args);
  const parsed = parseCommandArgs(entry, args);
  if (parsed.help)
    throw new CliError('USAGE_ERROR', `see sc-hsm-ts ${entry.name} --help, outside pka authenticate`);
  const command = await entry.load();
  const secrets = new Map<string, Promise<string>>();
  let confirmed = false;
  const secret = (ctx: Ctx) => (spec: string | boolean | string[] | undefined, req: SecretRequest) => {
    const key = `${req.option}\0${typeof spec === 'string' ? spec : ''}`;
    let p = secrets.get(key);
    if (!p) {
      p = ctx.secret(spec, req);
      secrets.set(key, p);
    }
    return p;
  };
  const outputs = commandPaths(
    { ...GLOBAL_OPTIONS, ...(entry.options ?? {}) },
    entry,
    parsed.values,
    parsed.positionals,
  ).filter((p) => p.path !== '' && (p.role === 'output' || p.role === 'output-dir'));
  return {
    name: entry.name,
    refuseOutputsOn(files) {
      for (const o of outputs)
        for (const f of files) {
          const clash =
            sameFile(o.path, f.path) ||
            (o.role === 'output-dir' && sameFile(dirname(resolve(f.path)), o.path));
          if (!clash) continue;
          const where = o.where === entry.name ? `the argument ${o.path}` : `${o.where} ${o.path}`;
          throw new CliError(
            'USAGE_ERROR',
            `${where} of ${entry.name} after -- ${o.role === 'output-dir' ? 'is the directory of' : 'is the same file as'} ${f.option} ${f.path}: it would fail or replace it after the custodians answered. Nothing was sent, no challenge was made`,
            `name another file for ${o.where === entry.name ? `the output of ${entry.name}` : o.where}`,
          );
        }
    },
    async rehearse(ctx, hsm, pinReplaced) {
      // past the step's login every call on the device ends the rehearsal unsent
      let loggedIn = false;
      const guarded = new Proxy(hsm, {
        get(target, prop) {
          const x = Reflect.get(target, prop, target);
          if (typeof x !== 'function') return x;
          return (...a: unknown[]) => {
            if (loggedIn) throw new RehearsalDone();
            return x.apply(target, a);
          };
        },
      });
      const dry = Object.create(ctx) as Ctx;
      Object.assign(dry, {
        out: silent(ctx),
        secret: secret(ctx),
        hsm: async () => guarded,
        // the custodians authenticate before the step runs
        refuseWithoutCustodians: () => {},
        open: async () => ({ ...(await ctx.open()), hsm: guarded }),
        async confirm(warning: string) {
          await confirmStep(ctx, warning, entry.name, 'nothing was sent, no challenge was made');
          confirmed = true;
        },
        async login(h: SmartCardHsm, v: Values, precheck?: () => Promise<unknown>) {
          if (precheck) await untilStop(precheck);
          if (!pinReplaced && ctx.g.sessionPin === undefined) {
            const pin = await dry.secret(v.pin, { option: 'pin', prompt: 'User PIN' });
            parseUserPin(pin);
            await applyKnownRetryCounter(ctx.io, h);
            // the free status query and the tries check run; VERIFY itself is stopped unsent
            await untilStop(() => h.verifyPin(pin, { force: ctx.g.lastTry }));
          }
          // a step that asks right after its login (before its next card command) goes on to the
          // question; any other ends here (what it does next may touch host files)
          if (!CONFIRMS_AFTER_LOGIN.has(entry.name)) throw new RehearsalDone();
          loggedIn = true;
        },
      });
      try {
        await hsm.precheck(() => command.run(dry, parsed.values, parsed.positionals));
      } catch (e) {
        if (!(e instanceof RehearsalDone)) throw e;
      }
    },
    run(ctx) {
      const real = Object.create(ctx) as Ctx;
      Object.assign(real, {
        secret: secret(ctx),
        confirm: (warning: string) =>
          confirmed ? Promise.resolve() : confirmStep(ctx, warning, entry.name, 'nothing was changed'),
      });
      return command.run(real, parsed.values, parsed.positionals);
    },
  };
}
