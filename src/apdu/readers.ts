/**
 * PC/SC readers, knowing nothing of any card application: a context whose first list of readers
 * has arrived (spec/pcsc-stack.md §7), and a reader chosen by exact name, unique substring or
 * index, numbered as pcscd lists them (the number `opensc-tool -r N` takes). Which reader holds a
 * SmartCard-HSM, and which one to open when none is named, is decided above the transport, in
 * src/sc-hsm/open-pcsc.ts.
 */
import { ScHsmError } from '../errors.js';
import { PcscContext, type ReaderEvent } from './pcsc.js';

/** How long to wait for pcscd's first list of readers and their first statuses. */
export interface ReaderScanOptions {
  /**
   * Quiet window ending the initial burst of reader events, ms (default 60), used only with a
   * binding that does not show when its first reader list arrived (see PcscContext.settle).
   */
  settleMs?: number;
  /** Upper bound for the whole burst, ms (default 1500). */
  timeoutMs?: number;
}

/**
 * Establishes a PC/SC context, waits for its first list of readers and runs `fn` with it. The
 * context is closed when `establish`, the wait or `fn` fails; on success `fn` owns it (closes it,
 * or hands it to a transport that does). Rejects with PCSC_UNAVAILABLE when pcscd is not running
 * or `pcsclite` is not installed.
 */
export async function withPcscContext<T>(
  fn: (ctx: PcscContext) => Promise<T>,
  o: ReaderScanOptions = {},
): Promise<T> {
  const ctx = await PcscContext.establish();
  try {
    await ctx.settle({
      ...(o.settleMs !== undefined ? { quietMs: o.settleMs } : {}),
      ...(o.timeoutMs !== undefined ? { timeoutMs: o.timeoutMs } : {}),
    });
    return await fn(ctx);
  } catch (e) {
    await ctx.close();
    throw e;
  }
}

/**
 * The reader a user named: an exact name, else a substring matching exactly one name
 * (case-insensitive), or an index into `list` (pcscd's order). NO_READER when nothing matches,
 * AMBIGUOUS_READER when a substring matches several; `show` renders readers for the message.
 */
export function chooseReader<R extends { name: string }>(
  list: readonly R[],
  sel: string | number,
  show: (readers: readonly R[]) => string,
): R {
  if (typeof sel === 'number') {
    const r = list[sel];
    if (!Number.isInteger(sel) || !r) {
      throw new ScHsmError('NO_READER', `no reader with index ${sel}; readers:\n${show(list)}`);
    }
    return r;
  }
  const exact = list.find((r) => r.name === sel);
  if (exact) return exact;
  const needle = sel.toLowerCase();
  const hits = list.filter((r) => r.name.toLowerCase().includes(needle));
  if (hits.length === 1) return hits[0]!;
  if (hits.length === 0) {
    throw new ScHsmError('NO_READER', `no reader name contains '${sel}'; readers:\n${show(list)}`);
  }
  throw new ScHsmError(
    'AMBIGUOUS_READER',
    `'${sel}' matches ${hits.length} readers; give more of the name or an index:\n${show(hits)}`,
  );
}

/**
 * Readers appearing and going, cards inserted and removed, as they happen: an async iterator over
 * one PC/SC context's reader list and status events (SCardGetStatusChange through pcsclite). The
 * first events describe what is there at the start (`reader-added` for each reader, then
 * `card-inserted` for each card present). It runs until `signal` fires or the loop ends (`break`,
 * `return()`), then closes its context. PCSC_UNAVAILABLE when pcscd is not running.
 *
 * ```ts
 * for await (const e of watchReaders({ signal })) console.log(e.type, e.reader);
 * ```
 */
export async function* watchReaders(
  o: { signal?: AbortSignal } = {},
): AsyncGenerator<ReaderEvent, void, undefined> {
  if (o.signal?.aborted) return;
  const ctx = await PcscContext.establish();
  const queue: ReaderEvent[] = [];
  let wake: (() => void) | undefined;
  const off = ctx.onReaderEvent((e) => {
    queue.push(e);
    wake?.();
  });
  const onAbort = (): void => wake?.();
  o.signal?.addEventListener('abort', onAbort, { once: true });
  try {
    while (!o.signal?.aborted) {
      const e = queue.shift();
      if (e) {
        yield e;
        continue;
      }
      await new Promise<void>((resolve) => {
        wake = resolve;
      });
      wake = undefined;
    }
  } finally {
    off();
    o.signal?.removeEventListener('abort', onAbort);
    await ctx.close();
  }
}
