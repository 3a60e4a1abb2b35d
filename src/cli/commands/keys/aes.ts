/**
 * `aes encrypt|decrypt|cmac`: files through an AES key of the device (CIPHER `80 78`, spec §3.15),
 * thin shells over the session's aesEncrypt / aesDecrypt / aesCmac (src/sc-hsm/aes.ts). Everything
 * the host can check (options, IV, input size and shape, output path) is checked before the device
 * is opened or the PIN sent.
 *
 * File format: without `--iv`, `encrypt` writes `IV (16 bytes) ‖ ciphertext` and `decrypt` reads
 * the same; with `--iv` the file is the bare ciphertext.
 */
import { randomBytes } from 'node:crypto';
import { open, stat } from 'node:fs/promises';
import { ScHsmError } from '../../../errors.js';
import type { SmartCardHsm } from '../../../sc-hsm/session.js';
import { concat, toHex, wipe } from '../../../util/bytes.js';
import type { Command } from '../../command.js';
import { type Ctx, flag, reqInt, reqStr, str, type Values } from '../../context.js';
import { CliError } from '../../exit-codes.js';
import { type OutputTarget, prepareOutput, readHostFile, writeOutput } from '../../files.js';
import { parseHexArg } from '../../format.js';
import { aesCmacSpec, aesDecryptSpec, aesEncryptSpec } from '../meta.js';

/** Largest input of `aes encrypt|decrypt`: the whole file is held in memory, 1 KB goes per APDU. */
export const AES_FILE_MAX = 16 * 1024 * 1024;
/** Largest CMAC message: one CIPHER APDU (the card keeps no state between commands). */
const CMAC_MAX = 1024;
const BLOCK = 16;

function parseIv(v: Values): Uint8Array | undefined {
  const text = str(v, 'iv');
  if (text === undefined) return undefined;
  const iv = parseHexArg(text);
  if (!iv || iv.length !== BLOCK) {
    throw new CliError(
      'USAGE_ERROR',
      `--iv takes 16 bytes as 32 hex digits; got ${iv ? `${iv.length} bytes` : 'something that is not hex'}`,
      'give --iv as 32 hex digits (e.g. 000102030405060708090a0b0c0d0e0f), or leave it out',
    );
  }
  return iv;
}

/**
 * The input file, at most `max` bytes: a regular file larger than that is refused from its size
 * before it is read; anything else (a pipe, `/dev/stdin`, a device such as `/dev/zero`) is read
 * only up to one byte more than `max`.
 */
async function readInput(path: string, max: number): Promise<Uint8Array> {
  const tooLong = (size: number | bigint | undefined) =>
    new CliError(
      'USAGE_ERROR',
      size === undefined
        ? `--in ${path} gives more than ${max} bytes, the most that are taken`
        : `--in ${path} has ${size} bytes; at most ${max} are taken`,
      max === CMAC_MAX ? 'authenticate a shorter message (e.g. its SHA-256)' : 'split the file',
    );
  let s: Awaited<ReturnType<typeof stat>> | undefined;
  try {
    s = await stat(path);
  } catch {
    // readHostFile reports a missing or unreadable file
  }
  if (!s || s.isDirectory()) return readHostFile(path, 'input file'); // its own error
  if (s.isFile() && s.size > max) throw tooLong(s.size);
  let h: Awaited<ReturnType<typeof open>>;
  try {
    h = await open(path, 'r');
  } catch {
    return readHostFile(path, 'input file');
  }
  try {
    const parts: Uint8Array[] = [];
    let total = 0;
    for (;;) {
      const buf = new Uint8Array(Math.min(1 << 20, max + 1 - total));
      const { bytesRead } = await h.read(buf, 0, buf.length, null);
      if (bytesRead === 0) break;
      parts.push(buf.subarray(0, bytesRead));
      total += bytesRead;
      if (total > max) throw tooLong(undefined);
    }
    return concat(...parts);
  } finally {
    await h.close();
  }
}

/**
 * --out: not the --in file; its kind checked (prepareOutput: `-`, a device or FIFO written in
 * place, no symbolic link, directory or missing directory) and not there unless --force.
 */
async function checkOutput(ctx: Ctx, input: string, out: string, force: boolean): Promise<OutputTarget> {
  try {
    const [a, b] = await Promise.all([stat(input), stat(out)]);
    if (a.dev === b.dev && a.ino === b.ino && a.isFile())
      throw new CliError('USAGE_ERROR', `--out ${out} is the --in file`, 'write the result to another file');
  } catch (e) {
    if (e instanceof CliError) throw e;
  }
  return prepareOutput(ctx, out, { force });
}

interface CbcJob {
  keyRef: number;
  input: string;
  out: string;
  target: OutputTarget;
  iv: Uint8Array | undefined;
}

async function cbcJob(ctx: Ctx, v: Values): Promise<CbcJob> {
  const keyRef = reqInt(v, 'key-ref', 1, 255);
  const input = reqStr(v, 'in', 'the input file');
  const out = reqStr(v, 'out', 'the output file');
  const force = flag(v, 'force');
  const iv = parseIv(v);
  const target = await checkOutput(ctx, input, out, force);
  return { keyRef, input, out, target, iv };
}

/**
 * The device, the PIN verified after `op`'s checks from public data (Ctx.login's precheck: the key
 * is AES, its algorithm list allows the operation, it has uses left for every APDU of the job).
 */
async function session<T>(
  ctx: Ctx,
  v: Values,
  keyRef: number,
  op: (hsm: SmartCardHsm) => Promise<T>,
): Promise<T> {
  const hsm = await ctx.hsm();
  const info = await hsm.keyInfo(keyRef);
  if (info.type !== 'aes' && info.type !== 'unknown') {
    throw new CliError(
      'INVALID_ARGUMENT',
      `key ${keyRef} is an ${info.type.toUpperCase()} key, not AES`,
      'name an AES key (sc-hsm-ts keys lists them as AES), or make one: sc-hsm-ts keygen --type aes:256 --label L',
    );
  }
  await ctx.login(hsm, v, () => op(hsm));
  return op(hsm);
}

export const aesEncrypt: Command = {
  ...aesEncryptSpec,
  async run(ctx, v) {
    const job = await cbcJob(ctx, v);
    const plain = await readInput(job.input, AES_FILE_MAX);
    const iv = job.iv ?? new Uint8Array(randomBytes(BLOCK));
    let ct: Uint8Array;
    try {
      ct = await session(ctx, v, job.keyRef, (hsm) => hsm.aesEncrypt(job.keyRef, plain, { iv }));
    } finally {
      wipe(plain);
    }
    const file = job.iv ? ct : Buffer.concat([iv, ct]);
    await writeOutput(ctx, job.target, file);
    ctx.out.ok(`${job.input} encrypted with key ${job.keyRef} into ${job.out}`);
    ctx.out.kv('IV', `${toHex(iv)}${job.iv ? '' : ' (random, the first 16 bytes of the file)'}`);
    return {
      keyRef: job.keyRef,
      in: job.input,
      out: job.out,
      iv: toHex(iv),
      ivInFile: !job.iv,
      bytes: file.length,
    };
  },
};

export const aesDecrypt: Command = {
  ...aesDecryptSpec,
  async run(ctx, v) {
    const job = await cbcJob(ctx, v);
    const data = await readInput(job.input, AES_FILE_MAX + BLOCK);
    const iv = job.iv ?? data.subarray(0, BLOCK);
    const ct = job.iv ? data : data.subarray(BLOCK);
    if (ct.length === 0 || ct.length % BLOCK !== 0 || data.length < BLOCK) {
      throw new CliError(
        'USAGE_ERROR',
        `--in ${job.input} is not an AES-CBC ciphertext: ${job.iv ? '' : 'after its 16-byte IV '}it must be a whole number of 16-byte blocks (at least one); it has ${job.iv ? data.length : Math.max(0, data.length - BLOCK)} bytes`,
        job.iv
          ? 'without --iv the IV is taken from the first 16 bytes of --in (as aes encrypt writes it)'
          : 'if the file holds the ciphertext only, give its IV with --iv',
      );
    }
    let plain: Uint8Array;
    try {
      plain = await session(ctx, v, job.keyRef, (hsm) => hsm.aesDecrypt(job.keyRef, ct, { iv }));
    } catch (e) {
      if (e instanceof ScHsmError && e.code === 'INCORRECT_DATA')
        throw new CliError(
          'INCORRECT_DATA',
          e.message,
          'check --key-ref and the IV (without --iv it is the first 16 bytes of --in, as aes encrypt writes it)',
        );
      throw e;
    }
    try {
      await writeOutput(ctx, job.target, plain);
    } finally {
      wipe(plain);
    }
    ctx.out.ok(`${job.input} decrypted with key ${job.keyRef} into ${job.out}`);
    return {
      keyRef: job.keyRef,
      in: job.input,
      out: job.out,
      iv: toHex(iv),
      ivInFile: !job.iv,
      bytes: plain.length,
    };
  },
};

export const aesCmac: Command = {
  ...aesCmacSpec,
  async run(ctx, v) {
    const keyRef = reqInt(v, 'key-ref', 1, 255);
    const input = reqStr(v, 'in', 'the message file');
    const msg = await readInput(input, CMAC_MAX);
    const mac = toHex(await session(ctx, v, keyRef, (hsm) => hsm.aesCmac(keyRef, msg)));
    ctx.out.line(mac);
    return { keyRef, in: input, cmac: mac, bytes: msg.length };
  },
};
