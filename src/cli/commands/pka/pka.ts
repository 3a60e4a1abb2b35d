/**
 * `pka status|register|export|respond|authenticate`: public key authentication n-of-m
 * (spec §3.18) over the session's pka verbs (src/sc-hsm/pka.ts). The device's authentication
 * lives in its session, so `pka authenticate` writes the challenge, waits for the custodians'
 * response files, authenticates and runs the following step in the same process and session.
 */
import { setTimeout as sleep } from 'node:timers/promises';
import { ScHsmError } from '../../../errors.js';
import { OPTION } from '../../../protocol/constants.js';
import type { PkaChallenge, PkaResponse, PkaStatus, SmartCardHsm } from '../../../sc-hsm/session.js';
import { toHex } from '../../../util/bytes.js';
import type { Command } from '../../command.js';
import { type Ctx, int, list, reqInt, reqStr } from '../../context.js';
import { CliError } from '../../exit-codes.js';
import { exists, prepareOutput, refuseOverwrite, writeAtomicExclusive, writeOutput } from '../../files.js';
import { printable } from '../../format.js';
import {
  pkaAuthenticateSpec,
  pkaExportSpec,
  pkaRegisterSpec,
  pkaRespondSpec,
  pkaStatusSpec,
} from '../meta.js';
import {
  CHALLENGE_FORMAT,
  MAX_PKA_FILE_BYTES,
  RESPONSE_FORMAT,
  readChallenge,
  readExistingBounded,
  readResponse,
} from './files.js';
import { parseStep } from './step.js';

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
    const bytes = await readExistingBounded(file!, 'public key authentication file', MAX_PKA_FILE_BYTES);
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
    const target = await prepareOutput(ctx, out);
    const hsm = await ctx.hsm();
    const bytes = await hsm.pkaExport(keyRef);
    await writeOutput(ctx, target, bytes, 0o644);
    ctx.out.ok(`wrote key ${keyRef} for public key authentication to ${out} (${bytes.length} bytes)`);
    return { keyRef, out, bytes: bytes.length };
  },
};

export const pkaRespond: Command = {
  ...pkaRespondSpec,
  async run(ctx, v, [file]) {
    const keyRef = reqInt(v, 'key-ref', 1, 255);
    const out = reqStr(v, 'out', 'the response file to write');
    const target = await prepareOutput(ctx, out);
    const c = await readChallenge(file!);
    const hsm = await ctx.hsm();
    ctx.out.note(
      `answering the challenge of device ${printable(c.deviceChr)}: confirm this device with its operator`,
    );
    // the key's request and type are checked from public card data before the PIN is sent
    await ctx.login(hsm, v, () => hsm.pkaRespond(keyRef, c));
    const r = await hsm.pkaRespond(keyRef, c);
    const doc = {
      format: RESPONSE_FORMAT,
      version: 1,
      deviceChr: c.deviceChr,
      challenge: toHex(c.challenge),
      chr: r.chr,
      signature: toHex(r.signature),
    };
    await writeOutput(ctx, target, `${JSON.stringify(doc, null, 2)}\n`, 0o644);
    ctx.out.ok(`wrote the answer of ${printable(r.chr)} to ${out}`);
    return { out, deviceChr: c.deviceChr, chr: r.chr };
  },
};

/** A response file that was not used, and why. */
interface Rejected {
  file: string;
  reason: string;
}

/**
 * Takes the custodians' answers as they arrive (spec §3.18): a response file is read once it is
 * complete JSON (a copy still being written is waited for), checked against the challenge and sent
 * (MSE SET AT, EXTERNAL AUTHENTICATE). An answer the host or the device refuses is reported and
 * skipped; the others still count. Ends as soon as the device has enough keys authenticated, when
 * every file was dealt with, or at the deadline (`pending` then names the files still missing).
 */
async function collectAnswers(
  ctx: Ctx,
  hsm: SmartCardHsm,
  files: string[],
  c: PkaChallenge,
  seconds: number,
  before: PkaStatus,
): Promise<{ status: PkaStatus; rejected: Rejected[]; pending: string[] }> {
  const deadline = Date.now() + seconds * 1000;
  const pending = new Set(files);
  const rejected: Rejected[] = [];
  let status = before;
  const reject = (file: string, reason: string) => {
    pending.delete(file);
    rejected.push({ file, reason });
    ctx.out.warn(`${reason}: this answer is not used`);
  };
  let told = false;
  for (;;) {
    for (const f of [...pending]) {
      let a: PkaResponse | undefined;
      try {
        a = await readResponse(f, c);
      } catch (e) {
        if (!(e instanceof CliError && e.code === 'INVALID_PKA_FILE')) throw e;
        reject(f, e.message);
        continue;
      }
      if (!a) continue;
      pending.delete(f);
      try {
        status = await hsm.pkaAuthenticate([a]);
      } catch (e) {
        if (!(e instanceof ScHsmError && e.code === 'PKA_AUTH_FAILED')) throw e;
        reject(f, `${f}: ${e.message}`);
        continue;
      }
      if (status.authenticated >= status.required) return { status, rejected, pending: [] };
    }
    if (pending.size === 0) return { status, rejected, pending: [] };
    if (Date.now() >= deadline) return { status, rejected, pending: [...pending] };
    if (!told) {
      ctx.out.note(`waiting up to ${seconds} s for ${[...pending].join(', ')}`);
      told = true;
    }
    await sleep(250);
  }
}

export const pkaAuthenticate: Command = {
  ...pkaAuthenticateSpec,
  async run(ctx, v, rest) {
    const challengeOut = reqStr(v, 'challenge-out', 'the challenge file for the custodians');
    const responses = list(v, 'response');
    if (responses.length === 0)
      throw new CliError('USAGE_ERROR', '--response FILE is required (one per custodian)');
    if (new Set(responses).size !== responses.length)
      throw new CliError('USAGE_ERROR', 'a --response file is named twice');
    if (responses.includes(challengeOut))
      throw new CliError('USAGE_ERROR', '--challenge-out and a --response name the same file');
    const wait = int(v, 'wait', 1, 86400) ?? 600;
    await refuseOverwrite(challengeOut, false, 'challenge file');
    for (const r of responses)
      if (await exists(r))
        throw new CliError(
          'FILE_EXISTS',
          `response file ${r} exists already: it cannot answer the challenge this command is about to make`,
          'move old response files away; the custodians write new ones',
        );
    const step = rest.length > 0 ? await parseStep(rest) : undefined;
    step?.refuseOutputsOn([
      { path: challengeOut, option: '--challenge-out' },
      ...responses.map((path) => ({ path, option: '--response' })),
      // the device's state and the transcript written when the command ends
      ...(ctx.g.sim ? [{ path: ctx.g.sim, option: '--sim' }] : []),
      ...(ctx.g.trace && ctx.g.trace !== '-' ? [{ path: ctx.g.trace, option: '--trace' }] : []),
    ]);
    const hsm = await ctx.hsm();
    const before = await hsm.pkaStatus();
    if (!before)
      throw new CliError(
        'PKA_NOT_CONFIGURED',
        'the device was initialized without public key authentication',
      );
    // without option 0010 the custodians' keys replace the user PIN (spec §3.18): the step sends none
    const pinReplaced = (hsm.info.options & OPTION.COMBINED_AUTH) === 0;
    // everything the step would refuse is refused now, before the custodians answer
    if (step) await step.rehearse(ctx, hsm, pinReplaced);
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
    const { status: st, rejected, pending } = await collectAnswers(ctx, hsm, responses, c, wait, before);
    const done = st.authenticated >= st.required;
    const count = `${st.authenticated} of ${st.required} required custodian key(s) authenticated`;
    const unused = rejected.length > 0 ? ` (not used: ${rejected.map((r) => r.file).join(', ')})` : '';
    if (!done && pending.length > 0)
      throw new CliError(
        'PKA_AUTH_FAILED',
        `no complete answer in ${wait} s from: ${pending.join(', ')}; ${count}${unused}: the device is not authenticated${step ? `, '${printable(step.name)}' was not run` : ''}`,
        'run pka authenticate again (a new challenge) and give the custodians time (--wait SECONDS); each writes the response file in one go (pka respond does)',
      );
    if (!done && (step || rejected.length > 0))
      throw new CliError(
        'PKA_AUTH_FAILED',
        `only ${st.authenticated} of ${st.required} custodians authenticated${unused}: ${step ? `'${printable(step.name)}' was not run` : 'the device is not authenticated'}`,
      );
    ctx.out.ok(`${count}${done ? '' : ': not enough'}${unused}`);
    ctx.pkaAuthenticated = done;
    if (done && (pinReplaced || (await hsm.pinStatus()).state === 'verified')) ctx.pinNotNeeded = true;
    const result = step ? await step.run(ctx) : undefined;
    return {
      deviceChr: c.deviceChr,
      challengeOut,
      ...st,
      rejected,
      ...(step && { step: step.name, result }),
    };
  },
};
