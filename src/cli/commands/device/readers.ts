import { listReaders, openPcsc } from '../../../sc-hsm/open-pcsc.js';
import { SmartCardHsm } from '../../../sc-hsm/session.js';
import type { Command } from '../../command.js';
import type { Ctx } from '../../context.js';
import { openSimCard } from '../../device.js';
import { printable } from '../../format.js';
import { table } from '../../io.js';
import { readersSpec } from '../meta.js';

interface ReaderRow {
  index: number;
  name: string;
  cardPresent: boolean;
  atr?: string;
  isSmartCardHsm: boolean;
  initialized?: boolean;
  version?: string;
  serial?: string;
  label?: string;
  error?: string;
}

async function describeHsm(row: ReaderRow, hsm: SmartCardHsm): Promise<void> {
  const st = await hsm.status();
  row.initialized = st.initialized;
  row.version = `${st.version.major}.${st.version.minor}`;
  if (st.serial) row.serial = st.serial;
  if (st.label !== undefined) row.label = st.label;
}

async function simRows(ctx: Ctx, path: string): Promise<ReaderRow[]> {
  const card = await openSimCard(ctx, path);
  const row: ReaderRow = { index: 0, name: `virtual:${path}`, cardPresent: true, isSmartCardHsm: true };
  row.atr = Buffer.from(card.atr).toString('hex').toUpperCase();
  await describeHsm(row, await SmartCardHsm.open(card));
  return [row];
}

export const readers: Command = {
  ...readersSpec,
  async run(ctx) {
    let rows: ReaderRow[];
    if (ctx.g.sim !== undefined) rows = await simRows(ctx, ctx.g.sim);
    else {
      rows = (await listReaders()).map((r) => {
        const row: ReaderRow = {
          index: r.index,
          name: r.name,
          cardPresent: r.cardPresent,
          isSmartCardHsm: r.isSmartCardHsm,
        };
        if (r.atr) row.atr = r.atr;
        if (r.probeError) row.error = r.probeError;
        return row;
      });
      for (const row of rows.filter((r) => r.isSmartCardHsm)) {
        try {
          const t = await openPcsc({ reader: row.index });
          try {
            await describeHsm(row, await SmartCardHsm.open(t));
          } finally {
            await t.close();
          }
        } catch (e) {
          row.error = (e as Error).message;
        }
      }
    }
    const o = ctx.out;
    if (rows.length === 0) o.line('No PC/SC reader found. `sc-hsm-ts doctor` checks the setup.');
    else {
      const cells = rows.map((r) => [
        String(r.index),
        printable(r.name),
        !r.cardPresent
          ? 'no card'
          : !r.isSmartCardHsm
            ? 'other card'
            : r.initialized === undefined
              ? `SmartCard-HSM (${printable(r.error ?? 'state unknown')})`
              : r.initialized
                ? `SmartCard-HSM ${r.version}, initialized${r.label !== undefined ? `, label "${printable(r.label)}"` : ''}`
                : `SmartCard-HSM ${r.version}, UNINITIALIZED`,
        printable(r.serial),
      ]);
      for (const l of table(['#', 'Reader', 'Card', 'Serial'], cells)) o.line(l);
    }
    return { readers: rows };
  },
};
