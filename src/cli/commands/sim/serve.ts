import { maskedCommandHex } from '../../../sc-hsm/transcript-mask.js';
import { connectToVpcd, type VpcdCard } from '../../../sim/vpcd.js';
import { toHex } from '../../../util/bytes.js';
import type { Command } from '../../command.js';
import { reqStr, str } from '../../context.js';
import { openSimCard, traceWriter } from '../../device.js';
import { CliError } from '../../exit-codes.js';
import { simServeSpec } from '../meta.js';

/**
 * The card as vpcd sees it, with every command and answer written as a card-side transcript line
 * (`=> hex` with the SmartCard-HSM's secrets masked by `maskedCommandHex`, `<= hex`; power and
 * reset as `#` comments), the format `ReplayTransport` reads (README, Design: transcripts).
 */
export function tracedCard(card: VpcdCard, line: (text: string) => void): VpcdCard {
  return {
    get atr() {
      return card.atr;
    },
    process(apdu) {
      line(`=> ${maskedCommandHex(apdu)}`);
      const r = card.process(apdu);
      line(`<= ${toHex(r)}`);
      return r;
    },
    powerOn() {
      line('# power on');
      card.powerOn();
    },
    powerOff() {
      line('# power off');
      card.powerOff();
    },
    reset() {
      line('# reset');
      card.reset();
    },
    // a timing profile's waiting (--profile) stays with the traced card
    answerReady() {
      return card.answerReady?.();
    },
  };
}

/** `--vpcd HOST:PORT` → host and port; USAGE_ERROR otherwise. */
export function vpcdTarget(target: string): { host: string; port: number } {
  const m = /^(.+):(\d+)$/.exec(target);
  if (!m || Number(m[2]) > 65535)
    throw new CliError('USAGE_ERROR', '--vpcd takes HOST:PORT, e.g. 127.0.0.1:35963');
  return { host: m[1]!, port: Number(m[2]) };
}

/**
 * `sim serve`: the virtual card of `--state FILE` in pcscd through vpcd. The file is held for the
 * life of the process (one holder at a time) and the card saves it before it answers every APDU
 * that changed it, so a pull or a kill never takes back what the card confirmed (a counted PIN
 * try, an UNWRAP answered 9000). A missing FILE is created at once, blank. `--trace FILE` writes
 * the card-side transcript when it stops (checked before the card is opened, like every --trace).
 */
export const simServe: Command = {
  ...simServeSpec,
  async run(ctx, v) {
    const state = reqStr(v, 'state', 'the state file');
    const target = str(v, 'vpcd') ?? '127.0.0.1:35963';
    const { host, port } = vpcdTarget(target);
    // an existing trace file, a missing directory: refused before the card is opened
    const writeTrace = ctx.g.trace !== undefined ? await traceWriter(ctx, ctx.g.trace) : undefined;
    const card = await openSimCard(ctx, state, { create: true });
    // a new device's file exists from the start (the card saves itself on every change after that)
    await card.save(state);
    let served: VpcdCard = card;
    if (writeTrace) {
      const lines = [`# sc-hsm-ts sim serve: card side of vpcd ${target}, state ${state}`];
      served = tracedCard(card, (l) => lines.push(l));
      // registered after the card's close: runs first, also when the command fails
      ctx.onFinish(() => writeTrace(`${lines.join('\n')}\n`));
    }
    let stopping = false;
    const conn = connectToVpcd(served, { host, port, log: (s) => ctx.out.note(s) });
    conn.on('connect', () =>
      ctx.out.note(`connected to vpcd at ${target}; waiting for pcscd to take the card`),
    );
    // vpcd holds one card per port and queues the next one silently; its first GET ATR is the proof
    void conn.adopted.then(() => ctx.out.note('pcscd took the card: it is now in the reader'));
    conn.on('disconnect', () => {
      // Our own close on SIGINT/SIGTERM is no lost connection; neither is pcscd going away in the
      // same instant (a process-group SIGTERM, `sim run` teardown): a signal that arrived with the
      // socket's close is handled before this check (setImmediate runs after that poll phase).
      setImmediate(() => {
        if (!stopping) ctx.out.note('vpcd connection lost; reconnecting');
      });
    });
    ctx.out.note(`virtual SmartCard-HSM (state ${state}) for vpcd at ${target}; Ctrl-C stops`);
    if (card.profile)
      ctx.out.note(
        `timing profile ${card.profile.name}: every answer takes the modelled time of the real device`,
      );
    await new Promise<void>((resolve) => {
      const stop = () => {
        stopping = true;
        process.off('SIGINT', stop);
        process.off('SIGTERM', stop);
        resolve();
      };
      process.on('SIGINT', stop);
      process.on('SIGTERM', stop);
      ctx.io.signal?.addEventListener('abort', stop, { once: true });
      if (ctx.io.signal?.aborted) stop();
    });
    await conn.close();
    // every change was saved before the card answered it; closing releases the file
    await card.close();
    ctx.out.note('stopped; state saved');
    return { state, vpcd: target, stopped: true };
  },
};
