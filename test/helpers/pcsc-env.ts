/**
 * Gate for the PC/SC interop tests. They need the private pcscd that scripts/with-pcscd.sh starts
 * (spec/pcsc-stack.md §6), which sets SC_HSM_PCSC=1, VPCD_HOST and VPCD_PORT.
 * An interop test that silently skips in CI is a failure, so under CI=true a missing environment
 * fails the suite; elsewhere the suite is skipped with a loud note.
 */
import { describe, it } from 'vitest';
import { RelayCard } from '../../harness/relay-card.js';
import type { PcscTransport } from '../../src/apdu/pcsc.js';
import { listReaders, openPcsc } from '../../src/sc-hsm/open-pcsc.js';
import { SmartCardHsm } from '../../src/sc-hsm/session.js';
import { VirtualSmartCardHsm } from '../../src/sim/index.js';
import { connectToVpcd, type VpcdCard, type VpcdConnection } from '../../src/sim/vpcd.js';
import type { Harness } from './session-suite.js';

/** True inside `bash scripts/with-pcscd.sh …`. */
export function pcscAvailable(): boolean {
  return process.env.SC_HSM_PCSC === '1';
}

/** Where the virtual cards connect (the quickack address inside with-pcscd.sh). */
export function vpcdEndpoint(): { host: string; port: number } {
  return { host: process.env.VPCD_HOST ?? '127.0.0.1', port: Number(process.env.VPCD_PORT ?? 35963) };
}

const HOW = 'run them with: bash scripts/with-pcscd.sh npx vitest run test/pcsc';

/** `describe` when the PC/SC environment is there; otherwise a failing (CI) or loudly skipped suite. */
export function describePcsc(name: string, fn: () => void): void {
  if (pcscAvailable()) {
    describe(name, fn);
    return;
  }
  if (process.env.CI === 'true') {
    describe(name, () => {
      it('needs the PC/SC environment (SC_HSM_PCSC=1)', () => {
        throw new Error(`PC/SC interop tests cannot run: SC_HSM_PCSC is not set under CI=true; ${HOW}`);
      });
    });
    return;
  }
  console.warn(`\n*** PC/SC interop suite "${name}" NOT RUN: SC_HSM_PCSC is not set; ${HOW} ***\n`);
  describe.skip(`${name} [NOT RUN: needs scripts/with-pcscd.sh]`, fn);
}

/**
 * vpcd slot `n` (0 or 1) of the private pcscd: the endpoint its card connects to and the reader
 * pcscd names for it (vpcdEndpoint's port + n, vpcdReaderName).
 */
export function vpcdSlot(n = 0): { host: string; port: number; reader: string } {
  const { host, port } = vpcdEndpoint();
  return { host, port: port + n, reader: vpcdReaderName(port + n) };
}

/** The vpcd reader a port feeds: 35963 → "Virtual PCD 00 00", 35964 → "Virtual PCD 00 01". */
export function vpcdReaderName(port: number): string {
  return `Virtual PCD 00 ${String(port - 35963).padStart(2, '0')}`;
}

/**
 * Resolves when vpcd has taken `link`'s card (its first GET ATR, see VpcdConnection.adopted);
 * fails after `ms` naming the likely cause. Until then the reader may still show the previous
 * test file's card, whose dead socket answers the first APDU with SCARD_E_NOT_TRANSACTED.
 */
export async function waitAdopted(link: VpcdConnection, port: number, ms = 5000): Promise<void> {
  let timer: NodeJS.Timeout | undefined;
  const timeout = new Promise<never>((_, reject) => {
    timer = setTimeout(
      () =>
        reject(
          new Error(
            `pcscd's vpcd did not take our virtual card on port ${port} within ${ms} ms (no GET ATR): ` +
              'another virtual card probably occupies this vpcd slot',
          ),
        ),
      ms,
    );
  });
  try {
    await Promise.race([link.adopted, timeout]);
  } finally {
    clearTimeout(timer);
  }
}

/** Polls pcscd (no probing) until reader `name` shows a card (or none, `present=false`); bounded. */
export async function waitForCard(name: string, present = true, ms = 4000): Promise<void> {
  const end = Date.now() + ms;
  while ((await listReaders({ probe: false })).find((r) => r.name === name)?.cardPresent !== present) {
    if (Date.now() > end)
      throw new Error(`timed out after ${ms} ms waiting for ${name} ${present ? 'present' : 'empty'}`);
    await new Promise((r) => setTimeout(r, 50));
  }
}

/**
 * Inserts `card` into the vpcd slot at `port` and resolves once pcscd lists it: vpcd took this very
 * card (not a stale predecessor), and the reader shows a card present.
 */
export async function insertCard(
  card: VpcdCard,
  endpoint: { host: string; port: number },
  ms = 8000,
): Promise<VpcdConnection> {
  const link = connectToVpcd(card, endpoint);
  try {
    await link.connected;
    await waitAdopted(link, endpoint.port, ms);
    await waitForCard(vpcdReaderName(endpoint.port), true, ms);
    return link;
  } catch (e) {
    await link.close();
    throw e;
  }
}

/**
 * Takes a card out (insertCard's counterpart): closes its vpcd connection, if any, and resolves once
 * pcscd lists the reader of vpcd `port` empty.
 */
export async function removeCard(link: VpcdConnection | undefined, port: number): Promise<void> {
  await link?.close();
  await waitForCard(vpcdReaderName(port), false);
}

/**
 * A virtual card prepared in-process before a test inserts it: INITIALIZE DEVICE with the SO-PIN
 * 3537363231383830 and `userPin` (spec §3.9); with `dkekShare`, one DKEK share announced and that
 * share imported (IMPORT DKEK SHARE, spec §3.10); then the user PIN verified (VERIFY, spec §3.6). The session on it is
 * returned open, for the test to add keys.
 */
export async function initializedCard(
  userPin: string,
  o: { label?: string; deviceId?: string; dkekShare?: Uint8Array } = {},
): Promise<{ card: VirtualSmartCardHsm; hsm: SmartCardHsm }> {
  const card = new VirtualSmartCardHsm(o.deviceId === undefined ? {} : { deviceId: o.deviceId });
  const hsm = await SmartCardHsm.open(card);
  await hsm.initialize({
    soPin: '3537363231383830',
    userPin,
    ...(o.label === undefined ? {} : { label: o.label }),
    ...(o.dkekShare ? { dkekShares: 1 } : {}),
  });
  if (o.dkekShare) await hsm.importDkekShare(o.dkekShare);
  await hsm.verifyPin(userPin);
  return { card, hsm };
}

/**
 * The shared suites' harness (test/helpers/session-suite.ts) through pcscd: one vpcd connection and
 * one PC/SC transport for the whole file, made on first use (the card inserted with insertCard).
 * `fresh()` swaps a new virtual card behind that connection, as if the token were replaced between
 * two exchanges (each session starts with its own SELECT); `close()`, for afterAll, closes the
 * transport and takes the card out if they were made.
 */
export function swappedCardHarness(endpoint = vpcdEndpoint()): Harness & { close(): Promise<void> } {
  let setup:
    | Promise<{ slot: RelayCard<VirtualSmartCardHsm>; vpcd: VpcdConnection; transport: PcscTransport }>
    | undefined;
  const env = () => {
    setup ??= (async () => {
      const slot = new RelayCard(new VirtualSmartCardHsm());
      // vpcd takes the card at its next presence poll (≤ ~0.5 s); insertCard waits for this card
      const vpcd = await insertCard(slot, endpoint);
      const transport = await openPcsc({ reader: vpcdReaderName(endpoint.port) });
      return { slot, vpcd, transport };
    })();
    return setup;
  };
  return {
    async fresh() {
      const { slot, transport } = await env();
      slot.card = new VirtualSmartCardHsm();
      return { card: slot.card, hsm: await SmartCardHsm.open(transport) };
    },
    async close() {
      if (!setup) return;
      const { vpcd, transport } = await setup;
      await transport.close();
      await vpcd.close();
    },
  };
}
