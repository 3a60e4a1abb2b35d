/**
 * Opening the device for a command: `--sim FILE` (the virtual card kept in FILE, held for the
 * whole command and saved before each answer that changed it; only `init` and `sim serve` create a
 * missing FILE) or PC/SC through `openPcsc` (`--reader NAME|INDEX`, default the only
 * SmartCard-HSM present). `--trace FILE` wraps the transport in a RecordingTransport (secrets
 * masked) and writes the transcript when the command ends, also after a failure (bug reports):
 * `-` is standard error, a device or FIFO is written in place, an existing regular file is refused
 * (before anything is sent) unless `--trace-overwrite`, a new file is created exclusively.
 */
import { fstatSync, statSync } from 'node:fs';
import { dirname, resolve } from 'node:path';
import { RecordingTransport } from '../apdu/transcript.js';
import type { Transport } from '../apdu/transport.js';
import { isScHsmError } from '../errors.js';
import { openPcsc } from '../sc-hsm/open-pcsc.js';
import { SmartCardHsm } from '../sc-hsm/session.js';
import { secretMask } from '../sc-hsm/transcript-mask.js';
import type { StateFileHolder, VirtualSmartCardHsm } from '../sim/index.js';
import { hostPathKind, writeAtomicExclusive } from '../util/host-files.js';
import type { Ctx, Device } from './context.js';
import { CliError } from './exit-codes.js';
import { writeAtomic } from './files.js';

/** `--reader 2` is an index, anything else a name or a unique substring of one. */
export function readerSelector(reader: string | undefined): string | number | undefined {
  if (reader === undefined) return undefined;
  return /^\d+$/.test(reader) ? Number(reader) : reader;
}

/** Environment variable: seconds to wait for another process holding a --sim FILE (default 10). */
export const LOCK_WAIT_ENV = 'SC_HSM_TS_LOCK_WAIT';
const DEFAULT_LOCK_WAIT_S = 10;

function lockWaitMs(ctx: Ctx): number {
  const raw = ctx.io.env[LOCK_WAIT_ENV];
  if (raw === undefined || raw === '') return DEFAULT_LOCK_WAIT_S * 1000;
  const n = Number(raw);
  if (!/^\d+(\.\d+)?$/.test(raw.trim()) || !(n >= 0 && n <= 3600)) {
    throw new CliError(
      'USAGE_ERROR',
      `${LOCK_WAIT_ENV} must be a number of seconds from 0 to 3600; got '${raw.slice(0, 20)}'`,
      `unset it (the default wait is ${DEFAULT_LOCK_WAIT_S} s) or set e.g. ${LOCK_WAIT_ENV}=30`,
    );
  }
  return Math.round(n * 1000);
}

function holderText(h: StateFileHolder | undefined): string {
  return h ? `pid ${h.pid} (${h.command}) since ${h.since}` : 'another process';
}

/**
 * The virtual card of `--sim FILE` (or `sim serve --state FILE`), held until the command ends.
 * Only `create` (init, sim serve) makes a missing FILE; a missing directory, a file held by
 * another process beyond the wait, a missing FILE otherwise: typed errors with the fix, before
 * anything is sent to the card.
 */
export async function openSimCard(
  ctx: Ctx,
  path: string,
  o: { create?: boolean } = {},
): Promise<VirtualSmartCardHsm> {
  // loaded only for --sim: a command on a real card does not load the simulator
  const { VirtualSmartCardHsm } = await import('../sim/index.js');
  // a bad --profile is refused before the state file is touched
  const profile =
    ctx.g.profile === undefined
      ? undefined
      : await (await import('../sim/profile.js')).loadProfile(ctx.g.profile);
  let card: VirtualSmartCardHsm;
  try {
    card = await VirtualSmartCardHsm.open(path, {
      create: o.create === true,
      waitMs: lockWaitMs(ctx),
      command: `sc-hsm-ts ${ctx.command ?? ''}`.trim(),
      onWait: (h) => ctx.out.note(`waiting for ${path}: it is in use by ${holderText(h)}`),
      onFailure: (e) =>
        ctx.out.warn(
          `${e.message}; the virtual card stopped (it answers 6581, memory failure) and kept its last saved state`,
        ),
    });
  } catch (e) {
    throw await simOpenError(e, path);
  }
  ctx.onFinish(() => card.close());
  if (profile) card.profile = profile;
  return card;
}

async function simOpenError(e: unknown, path: string): Promise<unknown> {
  if (isScHsmError(e, 'HOST_FILE_NOT_FOUND')) {
    if ((await hostPathKind(dirname(resolve(path))).catch(() => 'absent')) !== 'directory') {
      return new CliError('HOST_FILE_NOT_FOUND', e.message, 'check the path; create the directory first');
    }
    return new CliError(
      'HOST_FILE_NOT_FOUND',
      `the virtual card state ${path} does not exist (only init and sim serve create one)`,
      `check the path, or create the virtual device: sc-hsm-ts init --sim ${path} --so-pin … --pin … --label …`,
    );
  }
  if (isScHsmError(e, 'INVALID_STATE_FILE')) {
    return new CliError(
      'INVALID_STATE_FILE',
      e.message,
      'check the path; a new virtual device is made by `sc-hsm-ts init --sim NEW-FILE …`',
    );
  }
  if (isScHsmError(e, 'READER_BUSY')) {
    // a holder that is no longer running: the library's fix names the lock's expiry
    if (e.fix !== undefined)
      return new CliError(
        'READER_BUSY',
        e.message,
        `${e.fix} (${LOCK_WAIT_ENV}=SECONDS makes a command wait that long for the file)`,
      );
    return new CliError(
      'READER_BUSY',
      e.message,
      `wait for that command to end and retry (${LOCK_WAIT_ENV}=SECONDS waits longer); a \`sim serve\` holds its file until it is stopped: use its reader (--reader) instead`,
    );
  }
  return e;
}

/** The command's stdout or stderr when `path` names the same file (device, pipe, socket) as fd 1 or 2. */
function standardStreamAt(ctx: Ctx, path: string): NodeJS.WritableStream | undefined {
  try {
    const st = statSync(path);
    for (const [fd, stream] of [
      [2, ctx.io.stderr],
      [1, ctx.io.stdout],
    ] as const) {
      const s = fstatSync(fd);
      if (s.dev === st.dev && s.ino === st.ino) return stream;
    }
  } catch {
    // not ours
  }
  return undefined;
}

/**
 * Checks `--trace PATH` before anything is sent and returns the writer used when the command ends.
 */
export async function traceWriter(ctx: Ctx, path: string): Promise<(text: string) => Promise<void>> {
  if (path === '-') return async (text) => void ctx.io.stderr.write(text);
  // the --sim state file and the command's own files were refused when the options were parsed
  const kind = await hostPathKind(path);
  // /dev/stderr, /dev/fd/N, /proc/self/fd/N (links to whatever the stream is), devices, FIFOs:
  // appended to in place, never replaced
  if (kind === 'other' || /^\/(dev|proc)\//.test(resolve(path))) {
    // our own standard output or error (which cannot be opened by name when it is a socket)
    const std = standardStreamAt(ctx, path);
    if (std) return async (text) => void std.write(text);
    return async (text) => {
      const { appendFile } = await import('node:fs/promises');
      await appendFile(path, text);
    };
  }
  if (kind === 'directory')
    throw new CliError(
      'USAGE_ERROR',
      `--trace ${path} is a directory`,
      'name a new file, or - for standard error',
    );
  if (kind === 'file') {
    if (!ctx.g.traceOverwrite) {
      throw new CliError(
        'FILE_EXISTS',
        `trace file ${path} already exists; it was left unchanged and nothing was sent to the card`,
        'name a new file, --trace - for standard error, or add --trace-overwrite to replace it',
      );
    }
    const { realpath, stat } = await import('node:fs/promises');
    return async (text) => {
      // through a symbolic link to the file it names, with the mode it had
      const real = await realpath(path).catch(() => path);
      const mode = await stat(real).then(
        (s) => s.mode & 0o777,
        () => 0o600,
      );
      await writeAtomic(real, text, mode);
    };
  }
  if ((await hostPathKind(dirname(resolve(path)))) !== 'directory') {
    throw new CliError(
      'HOST_FILE_NOT_FOUND',
      `the directory of the trace file ${path} does not exist`,
      'check the path; create the directory first',
    );
  }
  // --trace-overwrite allows replacing a file, also one that appears while the command runs
  if (ctx.g.traceOverwrite) return (text) => writeAtomic(path, text, 0o600);
  return async (text) => {
    try {
      await writeAtomicExclusive(path, text, 0o600, 'trace file');
    } catch (e) {
      // made meanwhile (by another program): the fix is the trace's own option, not the command's --force
      if (!isScHsmError(e, 'FILE_EXISTS')) throw e;
      throw new CliError(
        'FILE_EXISTS',
        `trace file ${path} appeared while the command ran; it was left unchanged and the transcript was not written`,
        'name a new file for --trace, --trace - for standard error, or add --trace-overwrite to replace it',
      );
    }
  };
}

export async function openDevice(ctx: Ctx, o: { destructive?: boolean }): Promise<Device> {
  let transport: Transport;
  let reader: string;
  let atr: Uint8Array | undefined;
  const virtual = ctx.g.sim !== undefined;
  const writeTrace = ctx.g.trace !== undefined ? await traceWriter(ctx, ctx.g.trace) : undefined;
  if (ctx.g.sim !== undefined) {
    const card = await openSimCard(ctx, ctx.g.sim, { create: ctx.command === 'init' });
    transport = card;
    reader = `virtual:${ctx.g.sim}`;
    atr = card.atr;
  } else {
    const sel = readerSelector(ctx.g.reader);
    const t = await openPcsc(sel === undefined ? { destructive: o.destructive } : { reader: sel });
    transport = t;
    reader = t.readerName;
    atr = t.atr;
  }
  if (writeTrace) {
    const rec = new RecordingTransport(transport, undefined, secretMask);
    rec.comment(`sc-hsm-ts ${reader}`);
    ctx.onFinish(() => writeTrace(rec.text()));
    transport = rec;
  }
  const inner = transport;
  ctx.onFinish(() => inner.close());
  const hsm = await SmartCardHsm.open(transport);
  if (ctx.g.secure) {
    // --secure: the chain must end at the SmartCard-HSM root; the virtual test root only for --sim
    const { deviceChainVerifier } = await import('../x509/secure-channel.js');
    await hsm.openSecureChannel({ verifyChain: deviceChainVerifier({ acceptVirtual: virtual }) });
  }
  const d: Device = { hsm, reader, virtual };
  if (atr) d.atr = atr;
  return d;
}
