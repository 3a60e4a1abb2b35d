/**
 * OpenSSL `EVP_BytesToKey(EVP_aes_256_cbc(), EVP_md5(), salt, password, count)` as sc-hsm-tool uses
 * it for DKEK share files (spec §7.1): Dᵢ = MD5^count(Dᵢ₋₁ ‖ password ‖ salt), key ‖ iv = D₁ ‖ D₂ ‖ D₃.
 * The first MD5 of each Dᵢ (variable-length input) is node:crypto's; the other count − 1 run in the
 * specialised chained MD5 (`md5-chain.ts`). The loop runs in chunks and yields to the event loop
 * between them so a caller can show progress and cancel (an AbortSignal checked between chunks:
 * ABORTED); about 100 chunks per derivation.
 */
import { createHash } from 'node:crypto';
import { ScHsmError } from '../errors.js';
import { concat, wipe } from '../util/bytes.js';
import { digestToWords, md5ChainWords, wordsToDigest } from './md5-chain.js';

/** sc-hsm-tool's hard-coded iteration count (`opt_iter = 10000000`, spec §7.1). */
export const SHARE_KDF_ITERATIONS = 10_000_000;

/** How many progress reports (and event-loop yields) one derivation makes, roughly. */
const PROGRESS_STEPS = 100;

const yieldToEventLoop = (): Promise<void> => new Promise((resolve) => setImmediate(resolve));

/** ABORTED when `signal` has fired, carrying its reason as the cause. */
export function throwIfAborted(signal: AbortSignal | undefined, what: string): void {
  if (signal?.aborted) throw new ScHsmError('ABORTED', `${what} was cancelled`, { cause: signal.reason });
}

/**
 * Derives the 32-byte AES key and 16-byte IV of a share file (spec §7.1). `iterations` is the MD5
 * count (≥ 1); `onProgress` gets a fraction in (0, 1], at most about 100 times, the last call with 1.
 * `signal` is checked before the first chunk and after each (one chunk is about 1/100 of the
 * derivation, tens of milliseconds): when it fires, ABORTED and the partial state is wiped.
 */
export async function deriveShareKeyIv(
  password: Uint8Array,
  salt: Uint8Array,
  iterations: number,
  onProgress?: (fraction: number) => void,
  signal?: AbortSignal,
): Promise<{ key: Uint8Array; iv: Uint8Array }> {
  throwIfAborted(signal, 'the share-file key derivation');
  const total = 3 * iterations;
  const chunk = Math.max(1, Math.ceil(total / PROGRESS_STEPS));
  const out = new Uint8Array(48);
  const state = new Int32Array(4);
  let prev = new Uint8Array(0);
  let done = 0;
  let reported = 0;
  for (let block = 0; block < 3; block++) {
    const input = concat(prev, password, salt);
    const first = new Uint8Array(createHash('md5').update(input).digest());
    wipe(input);
    done++;
    digestToWords(first, state);
    wipe(first);
    let left = iterations - 1;
    while (left > 0) {
      const n = Math.min(left, chunk);
      md5ChainWords(state, n);
      left -= n;
      done += n;
      reported = done / total;
      onProgress?.(reported);
      await yieldToEventLoop();
      if (signal?.aborted) {
        state.fill(0);
        wipe(out);
        throwIfAborted(signal, 'the share-file key derivation');
      }
    }
    wordsToDigest(state, out, 16 * block);
    prev = out.subarray(16 * block, 16 * block + 16);
  }
  state.fill(0);
  if (reported !== 1) onProgress?.(1);
  const key = out.slice(0, 32);
  const iv = out.slice(32, 48);
  wipe(out);
  return { key, iv };
}
