/**
 * The step after `pka authenticate … --`: parsed, and run once as a rehearsal before the challenge
 * is made, so that everything it would refuse (its options, its output files, its checks from
 * public card data, a missing PIN, a PIN with one try left) is refused before the custodians
 * answer. The rehearsal runs with the session limited to public reads (SmartCardHsm.precheck) and
 * stops at the step's login, before VERIFY (spec §3.6) or anything that needs authentication.
 */
import { PrecheckStop } from '../../../sc-hsm/precheck.js';
import type { SmartCardHsm } from '../../../sc-hsm/session.js';
import { parseUserPin } from '../../../sc-hsm/validate.js';
import { parseCommandArgs } from '../../command.js';
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
  const parsed = parseCommandArgs(entry, argv.slice(entry.name.split(' ').length));
  const g = parsed.g;
  if (g.reader !== undefined || g.sim !== undefined || g.trace !== undefined || g.json || g.yes || g.lastTry)
    throw new CliError(
      'USAGE_ERROR',
      'give global options (--sim, --reader, --json, --yes, …) before pka authenticate, not after --',
    );
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
  return {
    name: entry.name,
    async rehearse(ctx, hsm, pinReplaced) {
      const dry = Object.create(ctx) as Ctx;
      Object.assign(dry, {
        out: silent(ctx),
        secret: secret(ctx),
        async confirm(warning: string) {
          await ctx.confirm(warning);
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
          throw new RehearsalDone();
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
        confirm: (warning: string) => (confirmed ? Promise.resolve() : ctx.confirm(warning)),
      });
      return command.run(real, parsed.values, parsed.positionals);
    },
  };
}
