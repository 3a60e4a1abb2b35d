/**
 * Opening the device for a command: `--sim FILE` (the virtual card, its state loaded from FILE or
 * created fresh, saved atomically when the command ends if anything changed) or PC/SC through
 * `openPcsc` (`--reader NAME|INDEX`, default the only SmartCard-HSM present). `--trace FILE`
 * wraps the transport in a RecordingTransport (secrets masked) and writes the transcript
 * atomically when the command ends, also after a failure (bug reports).
 */
import { openPcsc } from '../apdu/readers.js';
import { RecordingTransport } from '../apdu/transcript.js';
import type { Transport } from '../apdu/transport.js';
import { SmartCardHsm } from '../sc-hsm/session.js';
import type { VirtualSmartCardHsm } from '../sim/index.js';
import type { Ctx, Device } from './context.js';
import { exists, writeAtomic } from './files.js';

/** `--reader 2` is an index, anything else a name or a unique substring of one. */
export function readerSelector(reader: string | undefined): string | number | undefined {
  if (reader === undefined) return undefined;
  return /^\d+$/.test(reader) ? Number(reader) : reader;
}

/** Loads (or creates) the virtual card of `--sim FILE` and saves it when the command ends. */
export async function openSimCard(ctx: Ctx, path: string): Promise<VirtualSmartCardHsm> {
  const fresh = !(await exists(path));
  // loaded only for --sim: a command on a real card does not load the simulator
  const { VirtualSmartCardHsm } = await import('../sim/index.js');
  const card = fresh ? new VirtualSmartCardHsm() : await VirtualSmartCardHsm.load(path);
  let dirty = fresh;
  card.onChange = () => {
    dirty = true;
  };
  ctx.onFinish(async () => {
    if (dirty) await card.save(path);
  });
  return card;
}

export async function openDevice(ctx: Ctx, o: { destructive?: boolean }): Promise<Device> {
  let transport: Transport;
  let reader: string;
  let atr: Uint8Array | undefined;
  const virtual = ctx.g.sim !== undefined;
  if (ctx.g.sim !== undefined) {
    const card = await openSimCard(ctx, ctx.g.sim);
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
  if (ctx.g.trace !== undefined) {
    const rec = new RecordingTransport(transport);
    rec.comment(`sc-hsm-ts ${reader}`);
    const path = ctx.g.trace;
    ctx.onFinish(() => writeAtomic(path, rec.text()));
    transport = rec;
  }
  const inner = transport;
  ctx.onFinish(() => inner.close());
  const hsm = await SmartCardHsm.open(transport);
  const d: Device = { hsm, reader, virtual };
  if (atr) d.atr = atr;
  return d;
}
