/**
 * The files of public key authentication (spec §3.18) as the command reads them: the challenge and
 * response files (JSON) and a registration file, regular files only and of bounded size, so that a
 * FIFO, a device or a symlink to one never holds the device or fills the memory.
 */
import { constants } from 'node:fs';
import { open } from 'node:fs/promises';
import type { PkaChallenge, PkaResponse } from '../../../sc-hsm/session.js';
import { fromHex, toHex } from '../../../util/bytes.js';
import { CliError } from '../../exit-codes.js';
import { printable } from '../../format.js';

export const CHALLENGE_FORMAT = 'sc-hsm-ts/pka-challenge';
export const RESPONSE_FORMAT = 'sc-hsm-ts/pka-response';

/** The largest challenge or response file taken (a real one is under 1 KiB). */
export const MAX_JSON_BYTES = 16 * 1024;
/** The largest registration file taken (a real one is under 2 KiB). */
export const MAX_PKA_FILE_BYTES = 64 * 1024;

export function badFile(path: string, why: string): never {
  throw new CliError('INVALID_PKA_FILE', `${printable(path)}: ${why}`);
}

function kindOf(st: {
  isFIFO(): boolean;
  isCharacterDevice(): boolean;
  isBlockDevice(): boolean;
  isDirectory(): boolean;
  isSocket(): boolean;
}): string {
  if (st.isFIFO()) return 'FIFO';
  if (st.isCharacterDevice() || st.isBlockDevice()) return 'device';
  if (st.isDirectory()) return 'directory';
  if (st.isSocket()) return 'socket';
  return 'special file';
}

/**
 * A regular file of at most `max` bytes (a symlink to one is followed); undefined when it does not
 * exist. Opened without blocking and checked on the open descriptor: a FIFO, a device or a
 * directory is refused before a byte is read, and never more than `max` + 1 bytes are read.
 */
export async function readBoundedFile(
  path: string,
  what: string,
  max: number,
): Promise<Uint8Array | undefined> {
  let fh: Awaited<ReturnType<typeof open>>;
  try {
    fh = await open(path, constants.O_RDONLY | constants.O_NONBLOCK);
  } catch (e) {
    const code = (e as NodeJS.ErrnoException).code;
    if (code === 'ENOENT') return undefined;
    throw new CliError(
      'USAGE_ERROR',
      `cannot read ${what} ${printable(path)} (${code ?? 'error'})`,
      'check the path and its permissions',
    );
  }
  try {
    const st = await fh.stat();
    if (!st.isFile())
      badFile(path, `a ${kindOf(st)}, not a regular file: the ${what} must be a regular file`);
    if (st.size > max) badFile(path, `${st.size} bytes, more than a ${what} can be (at most ${max})`);
    const buf = Buffer.alloc(max + 1);
    const { bytesRead } = await fh.read(buf, 0, max + 1, 0);
    if (bytesRead > max) badFile(path, `more than ${max} bytes, more than a ${what} can be`);
    return new Uint8Array(buf.subarray(0, bytesRead));
  } finally {
    await fh.close();
  }
}

/** Like {@link readBoundedFile}, HOST_FILE_NOT_FOUND when the file does not exist. */
export async function readExistingBounded(path: string, what: string, max: number): Promise<Uint8Array> {
  const b = await readBoundedFile(path, what, max);
  if (!b) throw new CliError('HOST_FILE_NOT_FOUND', `${what} ${printable(path)} does not exist`);
  return b;
}

function field(o: Record<string, unknown>, name: string, re: RegExp, path: string): string {
  const v = o[name];
  if (typeof v !== 'string' || !re.test(v)) badFile(path, `"${name}" missing or malformed`);
  return v;
}

/** The parsed document; undefined when the bytes are not (yet) complete JSON. */
function parseJson(
  raw: Uint8Array,
  path: string,
  format: string,
  what: string,
): Record<string, unknown> | undefined {
  let o: unknown;
  try {
    o = JSON.parse(Buffer.from(raw).toString('utf8'));
  } catch {
    return undefined;
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
  const what = 'challenge file';
  const raw = await readExistingBounded(path, what, MAX_JSON_BYTES);
  const o = parseJson(raw, path, CHALLENGE_FORMAT, what) ?? badFile(path, `not a ${what} (not JSON)`);
  const challenge = fromHex(field(o, 'challenge', /^[0-9a-f]{16}$/, path));
  return { deviceChr: field(o, 'deviceChr', CHR_RE, path), challenge: new Uint8Array(challenge) };
}

/**
 * A response file written by `pka respond` for challenge `c`: undefined while it is missing or not
 * complete JSON yet (a custodian's copy still being written); INVALID_PKA_FILE when it answers
 * something else or is malformed.
 */
export async function readResponse(path: string, c: PkaChallenge): Promise<PkaResponse | undefined> {
  const what = 'response file';
  const raw = await readBoundedFile(path, what, MAX_JSON_BYTES);
  if (!raw) return undefined;
  const o = parseJson(raw, path, RESPONSE_FORMAT, what);
  if (!o) return undefined;
  if (field(o, 'deviceChr', CHR_RE, path) !== c.deviceChr)
    badFile(
      path,
      `answers device ${printable(String(o.deviceChr))}, not this device ${printable(c.deviceChr)}`,
    );
  if (field(o, 'challenge', /^[0-9a-f]{16}$/, path) !== toHex(c.challenge))
    badFile(
      path,
      'answers another challenge (an older one?): the custodian must answer the current challenge file',
    );
  return { chr: field(o, 'chr', CHR_RE, path), signature: fromHex(field(o, 'signature', HEX_RE, path)) };
}
