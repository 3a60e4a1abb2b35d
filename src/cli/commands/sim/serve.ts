import { connectToVpcd } from '../../../sim/vpcd.js';
import type { Command } from '../../command.js';
import { reqStr, str } from '../../context.js';
import { openSimCard } from '../../device.js';
import { CliError } from '../../exit-codes.js';
import { simServeSpec } from '../meta.js';

/**
 * `sim serve`: the virtual card of `--state FILE` in pcscd through vpcd. The file is held for the
 * life of the process (one holder at a time) and the card saves it before it answers every APDU
 * that changed it, so a pull or a kill never takes back what the card confirmed (a counted PIN
 * try, an UNWRAP answered 9000). A missing FILE is created at once, blank.
 */
export const simServe: Command = {
  ...simServeSpec,
  async run(ctx, v) {
    const state = reqStr(v, 'state', 'the state file');
    const target = str(v, 'vpcd') ?? '127.0.0.1:35963';
    const m = /^(.+):(\d+)$/.exec(target);
    if (!m || Number(m[2]) > 65535)
      throw new CliError('USAGE_ERROR', '--vpcd takes HOST:PORT, e.g. 127.0.0.1:35963');
    const card = await openSimCard(ctx, state, { create: true });
    // a new device's file exists from the start (the card saves itself on every change after that)
    await card.save(state);
    let stopping = false;
    const conn = connectToVpcd(card, { host: m[1]!, port: Number(m[2]), log: (s) => ctx.out.note(s) });
    conn.on('connect', () =>
      ctx.out.note(`connected to vpcd at ${target}; waiting for pcscd to take the card`),
    );
    // vpcd holds one card per port and queues the next one silently; its first GET ATR is the proof
    void conn.adopted.then(() => ctx.out.note('pcscd took the card: it is now in the reader'));
    conn.on('disconnect', () => {
      // our own close on SIGINT/SIGTERM is no lost connection
      if (!stopping) ctx.out.note('vpcd connection lost; reconnecting');
    });
    ctx.out.note(`virtual SmartCard-HSM (state ${state}) for vpcd at ${target}; Ctrl-C stops`);
    await new Promise<void>((resolve) => {
      const stop = () => {
        process.off('SIGINT', stop);
        process.off('SIGTERM', stop);
        resolve();
      };
      process.on('SIGINT', stop);
      process.on('SIGTERM', stop);
      ctx.io.signal?.addEventListener('abort', stop, { once: true });
      if (ctx.io.signal?.aborted) stop();
    });
    stopping = true;
    await conn.close();
    // every change was saved before the card answered it; closing releases the file
    await card.close();
    ctx.out.note('stopped; state saved');
    return { state, vpcd: target, stopped: true };
  },
};
