/**
 * `pka status|register|export|respond|authenticate`: public key authentication n-of-m
 * (spec §3.18) over the session's pka verbs (src/sc-hsm/pka.ts). The device's authentication
 * lives in its session, so `pka authenticate` writes the challenge, waits for the custodians'
 * response files, authenticates and runs the following step in the same process and session.
 */
import { setTimeout as sleep } from 'node:timers/promises';
import type { PkaChallenge, PkaResponse, PkaStatus } from '../../../sc-hsm/session.js';
import { fromHex, toHex } from '../../../util/bytes.js';
import { type Command, parseCommandArgs } from '../../command.js';
import { type Ctx, int, list, reqInt, reqStr } from '../../context.js';
import { CliError } from '../../exit-codes.js';
import { exists, readHostFile, refuseOverwrite, writeAtomicExclusive } from '../../files.js';
import { printable } from '../../format.js';
import {
  pkaAuthenticateSpec,
  pkaExportSpec,
  pkaRegisterSpec,
  pkaRespondSpec,
  pkaStatusSpec,
} from '../meta.js';

const CHALLENGE_FORMAT = 'sc-hsm-ts/pka-challenge';
const RESPONSE_FORMAT = 'sc-hsm-ts/pka-response';

function badFile(path: string, why: string): never {
  throw new CliError('INVALID_PKA_FILE', `${path}: ${why}`);
}

function field(o: Record<string, unknown>, name: string, re: RegExp, path: string): string {
  const v = o[name];
  if (typeof v !== 'string' || !re.test(v)) badFile(path, `"${name}" missing or malformed`);
  return v;
}

async function readJson(path: string, format: string, what: string): Promise<Record<string, unknown>> {
  const raw = await readHostFile(path, what);
  let o: unknown;
  try {
    o = JSON.parse(Buffer.from(raw).toString('utf8'));
  } catch {
    badFile(path, `not a ${what} (not JSON)`);
  }
  if (typeof o !== 'object' || o === null || (o as Record<string, unknown>).format !== format)
    badFile(path, `not a ${what} (format "${format}" expected)`);
  if ((o as Record<string, unknown>).version !== 1) badFile(path, 'unsupported version');
  return o as Record<string, unknown>;
}

const CHR_RE = /^[\x20-\x7e]{1,32}$/;
const HEX_RE = /^([0-9a-f]{2})+$/;

/** Reads a challenge file written by `pka authenticate --challenge-out`. */
export async function readChallenge(path: string): Promise<PkaChallenge> {
  const o = await readJson(path, CHALLENGE_FORMAT, 'challenge file');
  const challenge = fromHex(field(o, 'challenge', /^[0-9a-f]{16}$/, path));
  return { deviceChr: field(o, 'deviceChr', CHR_RE, path), challenge: new Uint8Array(challenge) };
}

async function readResponse(path: string, c: PkaChallenge): Promise<PkaResponse> {
  const o = await readJson(path, RESPONSE_FORMAT, 'response file');
  if (field(o, 'deviceChr', CHR_RE, path) !== c.deviceChr)
    badFile(path, `answers device ${printable(String(o.deviceChr))}, not this device ${c.deviceChr}`);
  if (field(o, 'challenge', /^[0-9a-f]{16}$/, path) !== toHex(c.challenge))
    badFile(
      path,
      'answers another challenge (an older one?): the custodian must answer the current challenge file',
    );
  return { chr: field(o, 'chr', CHR_RE, path), signature: fromHex(field(o, 'signature', HEX_RE, path)) };
}

/** The four lines of `sc-hsm-tool --public-key-auth-status`, as it prints them. */
function printPkaStatus(ctx: Ctx, st: PkaStatus): void {
  const line = (label: string, n: number) => ctx.out.line(`${`${label}:`.padEnd(27)}${n}`);
  line('Number of public keys', st.total);
  line('Missing public keys', st.missing);
  line('Required pubkeys for auth', st.required);
  line('Authenticated public keys', st.authenticated);
}

export const pkaStatus: Command = {
  ...pkaStatusSpec,
  async run(ctx) {
    const hsm = await ctx.hsm();
    const st = await hsm.pkaStatus();
    if (!st)
      throw new CliError(
        'PKA_NOT_CONFIGURED',
        'the device was initialized without public key authentication',
      );
    const slots = await hsm.pkaSlots();
    const o = ctx.out;
    printPkaStatus(ctx, st);
    for (const s of slots)
      o.line(
        `  ${s.index}: ${s.chr === undefined ? '(free)' : `${printable(s.chr)}${s.authenticated ? ' (authenticated)' : ''}`}`,
      );
    return { ...st, keys: slots };
  },
};

export const pkaRegister: Command = {
  ...pkaRegisterSpec,
  async run(ctx, _v, [file]) {
    const bytes = await readHostFile(file!, 'public key authentication file');
    const hsm = await ctx.hsm();
    const r = await hsm.pkaRegister(bytes);
    ctx.out.ok(`registered ${printable(r.chr)}`);
    printPkaStatus(ctx, r.status);
    return { registered: r.chr, ...r.status };
  },
};

export const pkaExport: Command = {
  ...pkaExportSpec,
  async run(ctx, v) {
    const keyRef = reqInt(v, 'key-ref', 1, 255);
    const out = reqStr(v, 'out', 'the file to write');
    await refuseOverwrite(out, false, 'output file');
    const hsm = await ctx.hsm();
    const bytes = await hsm.pkaExport(keyRef);
    await writeAtomicExclusive(out, bytes, 0o644, 'output file');
    ctx.out.ok(`wrote key ${keyRef} for public key authentication to ${out} (${bytes.length} bytes)`);
    return { keyRef, out, bytes: bytes.length };
  },
};

export const pkaRespond: Command = {
  ...pkaRespondSpec,
  async run(ctx, v, [file]) {
    const keyRef = reqInt(v, 'key-ref', 1, 255);
    const out = reqStr(v, 'out', 'the response file to write');
    await refuseOverwrite(out, false, 'output file');
    const c = await readChallenge(file!);
    const hsm = await ctx.hsm();
    ctx.out.note(
      `answering the challenge of device ${printable(c.deviceChr)}: confirm this device with its operator`,
    );
    await ctx.login(hsm, v);
    const r = await hsm.pkaRespond(keyRef, c);
    const doc = {
      format: RESPONSE_FORMAT,
      version: 1,
      deviceChr: c.deviceChr,
      challenge: toHex(c.challenge),
      chr: r.chr,
      signature: toHex(r.signature),
    };
    await writeAtomicExclusive(out, `${JSON.stringify(doc, null, 2)}\n`, 0o644, 'output file');
    ctx.out.ok(`wrote the answer of ${printable(r.chr)} to ${out}`);
    return { out, deviceChr: c.deviceChr, chr: r.chr };
  },
};

/** Waits until every file exists, polling; USAGE_ERROR naming the missing ones after `seconds`. */
async function waitForFiles(ctx: Ctx, files: string[], seconds: number): Promise<void> {
  const deadline = Date.now() + seconds * 1000;
  let told = false;
  for (;;) {
    const missing: string[] = [];
    for (const f of files) if (!(await exists(f))) missing.push(f);
    if (missing.length === 0) return;
    if (Date.now() >= deadline)
      throw new CliError(
        'USAGE_ERROR',
        `no answer in ${seconds} s from: ${missing.join(', ')}; the device is not authenticated`,
        'run pka authenticate again (a new challenge) and give the custodians time, or raise --wait',
      );
    if (!told) {
      ctx.out.note(`waiting up to ${seconds} s for ${missing.join(', ')}`);
      told = true;
    }
    await sleep(250);
  }
}

/**
 * The step after `--`: a command of ours with its own options, checked before anything is sent and
 * run later with this context (same device, same session).
 */
async function parseStep(argv: string[]): Promise<(ctx: Ctx) => Promise<unknown>> {
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
  const parsed = parseCommandArgs(entry, argv.slice(entry.name.split(' ').length));
  const g = parsed.g;
  if (g.reader !== undefined || g.sim !== undefined || g.trace !== undefined || g.json || g.yes || g.lastTry)
    throw new CliError(
      'USAGE_ERROR',
      'give global options (--sim, --reader, --json, --yes, …) before pka authenticate, not after --',
    );
  if (parsed.help)
    throw new CliError('USAGE_ERROR', `see sc-hsm-ts ${entry.name} --help, outside pka authenticate`);
  return async (ctx) => (await entry.load()).run(ctx, parsed.values, parsed.positionals);
}

export const pkaAuthenticate: Command = {
  ...pkaAuthenticateSpec,
  async run(ctx, v, step) {
    const challengeOut = reqStr(v, 'challenge-out', 'the challenge file for the custodians');
    const responses = list(v, 'response');
    if (responses.length === 0)
      throw new CliError('USAGE_ERROR', '--response FILE is required (one per custodian)');
    if (new Set(responses).size !== responses.length)
      throw new CliError('USAGE_ERROR', 'a --response file is named twice');
    if (responses.includes(challengeOut))
      throw new CliError('USAGE_ERROR', '--challenge-out and a --response name the same file');
    const wait = int(v, 'wait', 0, 86400) ?? 600;
    await refuseOverwrite(challengeOut, false, 'challenge file');
    for (const r of responses)
      if (await exists(r))
        throw new CliError(
          'FILE_EXISTS',
          `response file ${r} exists already: it cannot answer the challenge this command is about to make`,
          'move old response files away; the custodians write new ones',
        );
    const runStep = step.length > 0 ? await parseStep(step) : undefined;
    const hsm = await ctx.hsm();
    const before = await hsm.pkaStatus();
    if (!before)
      throw new CliError(
        'PKA_NOT_CONFIGURED',
        'the device was initialized without public key authentication',
      );
    const c = await hsm.pkaChallenge();
    const doc = {
      format: CHALLENGE_FORMAT,
      version: 1,
      deviceChr: c.deviceChr,
      challenge: toHex(c.challenge),
    };
    await writeAtomicExclusive(challengeOut, `${JSON.stringify(doc, null, 2)}\n`, 0o644, 'challenge file');
    ctx.out.note(
      `challenge for device ${printable(c.deviceChr)} written to ${challengeOut}: each custodian runs sc-hsm-ts pka respond ${challengeOut} --key-ref N --out RESPONSE`,
    );
    await waitForFiles(ctx, responses, wait);
    const answers: PkaResponse[] = [];
    for (const r of responses) answers.push(await readResponse(r, c));
    const st = await hsm.pkaAuthenticate(answers);
    const done = st.authenticated >= st.required;
    ctx.out.ok(
      `${st.authenticated} of ${st.required} required custodian key(s) authenticated${done ? '' : ': not enough'}`,
    );
    if (done && (await hsm.pinStatus()).state === 'verified') ctx.pinNotNeeded = true;
    let result: unknown;
    if (runStep) {
      if (!done)
        throw new CliError(
          'PKA_AUTH_FAILED',
          `only ${st.authenticated} of ${st.required} custodians authenticated: '${printable(step[0]!)}' was not run`,
        );
      result = await runStep(ctx);
    }
    return { deviceChr: c.deviceChr, challengeOut, ...st, ...(step.length > 0 && { step: step[0], result }) };
  },
};
