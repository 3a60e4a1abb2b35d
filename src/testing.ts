/**
 * `sc-hsm-ts/testing`: what a test of a program built on sc-hsm-ts needs and a program does not.
 * Transports that wrap another one: `FaultInjectingTransport` fails the k-th APDU the way a card
 * or reader does (removed, reset, transport error, malformed or truncated answer; before or after
 * delivery), `RecordingTransport` writes the `=> hex` / `<= hex` transcript of every exchange with
 * the SmartCard-HSM's secrets masked (`secretMask`: PINs, SO-PIN, key shares), and
 * `ReplayTransport` answers from such a transcript and fails on any divergence (README, Design:
 * "Transcript-first tests"). Floor 5 like src/index.ts (test/layers.test.ts).
 */

export {
  FAULT_KINDS,
  FaultInjectingTransport,
  type FaultKind,
  type FaultPlan,
  type ResettableTransport,
} from './apdu/fault.js';
export {
  isoSecretMask,
  MASK,
  maskedHex,
  RecordingTransport,
  ReplayTransport,
  type SecretMask,
  type TranscriptSink,
} from './apdu/transcript.js';
export { maskedCommandHex, secretMask } from './sc-hsm/transcript-mask.js';

// ---- known devices for an application's tests (issue 16: the emulated card in other projects' CI) ----

import {
  accessSync,
  constants as fsConstants,
  readFileSync,
  statSync,
  unlinkSync,
  writeFileSync,
} from 'node:fs';
import { tmpdir } from 'node:os';
import { dirname, join } from 'node:path';
import type { Transport } from './apdu/transport.js';
import {
  findPkcs11Module,
  PCSCD_SOCKET,
  VPCD_PORT,
  VPCD_SLOTS,
  vpcdReaderName,
} from './cli/commands/sim/host.js';
import { ScHsmError } from './errors.js';
import type { GeneratedKey } from './sc-hsm/keys.js';
import { SmartCardHsm } from './sc-hsm/session.js';
import type { VirtualSmartCardHsm } from './sim/card.js';
import { asyncDispose } from './util/dispose.js';

/** The user PIN of every test device made here. */
export const TEST_PIN = '648219';
/** The SO-PIN of every test device made here (16 hex characters). */
export const TEST_SO_PIN = '3537363231383830';
/** The token label of every test device made here. */
export const TEST_LABEL = 'SC-HSM-TS TEST';

export interface TestDeviceOptions {
  /** Import this 32-byte DKEK share after initialization (1 share); else the card makes a random DKEK. */
  dkekShare?: Uint8Array;
  /** Keys generated on it: an EC P-256 key `test-ec` always; an RSA-2048 key `test-rsa` when true. */
  rsa?: boolean;
}

export interface TestKeys {
  /** EC prime256v1, label `test-ec`. */
  ec: GeneratedKey;
  /** RSA-2048, label `test-rsa` (with `rsa: true`). */
  rsa?: GeneratedKey;
}

/** A virtual device initialized with {@link TEST_SO_PIN}, {@link TEST_PIN}, {@link TEST_LABEL} and test keys. */
export interface TestDevice extends AsyncDisposable {
  /** The virtual card: a `Transport`, e.g. for `SmartCardHsm.open(card)` or a `FaultInjectingTransport`. */
  readonly card: VirtualSmartCardHsm;
  /** A session on it, the user PIN verified. */
  readonly hsm: SmartCardHsm;
  readonly keys: TestKeys;
  readonly pin: string;
  readonly soPin: string;
  close(): Promise<void>;
}

/**
 * Initializes `card` the way every test device here is (INITIALIZE DEVICE, spec §3.6: the SO-PIN,
 * the PIN, the label, one DKEK share when given, else a random DKEK), then generates the test keys.
 */
async function provision(
  card: Transport,
  o: TestDeviceOptions,
): Promise<{ hsm: SmartCardHsm; keys: TestKeys }> {
  const hsm = await SmartCardHsm.open(card);
  await hsm.initialize({
    soPin: TEST_SO_PIN,
    userPin: TEST_PIN,
    label: TEST_LABEL,
    dkekShares: o.dkekShare ? 1 : 0,
  });
  if (o.dkekShare) await hsm.importDkekShare(o.dkekShare);
  await hsm.verifyPin(TEST_PIN);
  const keys: TestKeys = {
    ec: await hsm.generateKeyPair({ type: 'ec', curve: 'prime256v1', label: 'test-ec' }),
  };
  if (o.rsa) keys.rsa = await hsm.generateKeyPair({ type: 'rsa', bits: 2048, label: 'test-rsa' });
  return { hsm, keys };
}

/**
 * An in-process virtual SmartCard-HSM, initialized with the test PINs and label and holding test
 * keys (EC P-256 `test-ec`, and RSA-2048 `test-rsa` with `rsa: true`), with a session logged in.
 * Nothing outside the process is touched; works from any test runner (vitest, node:test).
 *
 * ```ts
 * await using dev = await initializedTestDevice();
 * const sig = await dev.hsm.sign(dev.keys.ec.keyRef, 'ECDSA-SHA256', data);
 * ```
 */
export async function initializedTestDevice(o: TestDeviceOptions = {}): Promise<TestDevice> {
  const { VirtualSmartCardHsm } = await import('./sim/card.js');
  const card = new VirtualSmartCardHsm();
  const { hsm, keys } = await provision(card, o);
  const close = async () => {
    await hsm.close();
    await card.close();
  };
  return { card, hsm, keys, pin: TEST_PIN, soPin: TEST_SO_PIN, close, [asyncDispose]: close };
}

/** A virtual card in pcscd, from {@link startPcscCard}. */
export interface PcscTestCard extends AsyncDisposable {
  /** The PC/SC reader holding it ("Virtual PCD 00 00" or "… 01"): `openPcsc({ reader })`, `pkcs11-tool --slot`. */
  readonly reader: string;
  /** OpenSC's PKCS#11 module (opensc-pkcs11.so) when installed: give it to pkcs11js, graphene, OpenSSL. */
  readonly pkcs11Module: string | undefined;
  /** The card itself (its state is in memory; nothing is written). */
  readonly card: VirtualSmartCardHsm;
  /** The test keys when it was initialized (`initialized`, the default). */
  readonly keys: TestKeys | undefined;
  readonly pin: string;
  readonly soPin: string;
  /** Takes the card out of the reader (pcscd sees it removed within ~0.4 s) and closes it. */
  close(): Promise<void>;
}

export interface PcscTestCardOptions extends TestDeviceOptions {
  /** Initialize it and generate the test keys first (default true); false: a card out of its box. */
  initialized?: boolean;
  /**
   * vpcd slot 0 or 1; default the first free one: not holding a card of `sim run` (SC_HSM_READER_0/1)
   * nor one of another `startPcscCard` (of this or another process, claimed beside pcscd's
   * socket), and its reader showing no card of another program (a `sim serve`). None free, or
   * `slot` taken: PCSC_UNAVAILABLE at once, naming who holds it.
   */
  slot?: number;
  /** Where vpcd listens; default `VPCD_HOST` (set by `sim run`) or 127.0.0.1. One that does not resolve: INVALID_ARGUMENT at once. */
  host?: string;
  /** Environment to read `VPCD_HOST`, `SC_HSM_READER_n`, `SC_HSM_PKCS11_MODULE` from (default process.env). */
  env?: NodeJS.ProcessEnv;
}

/**
 * Plugs a virtual SmartCard-HSM (initialized with the test PINs and keys unless `initialized:
 * false`) into pcscd through vpcd (spec/pcsc-stack.md §2) and resolves once pcscd has it: the
 * reader name and OpenSC's PKCS#11 module path for the application under test. Meant for the
 * duration of a test file, under `sc-hsm-ts sim run --cards 0 -- <test runner>` (a private pcscd
 * with the quickack route when root) or beside a running system pcscd with vpcd. The card answers
 * from this process's event loop: run PC/SC tools asynchronously (`execFile`, not `execFileSync`,
 * which blocks the loop and so the card, and waits forever).
 *
 * ```ts
 * let hsm: PcscTestCard;
 * beforeAll(async () => { hsm = await startPcscCard(); });   // node:test: before(...)
 * afterAll(() => hsm.close());                                // node:test: after(...)
 * ```
 */
export async function startPcscCard(o: PcscTestCardOptions = {}): Promise<PcscTestCard> {
  const env = o.env ?? process.env;
  const host = o.host ?? env.VPCD_HOST ?? '127.0.0.1';
  if (o.slot !== undefined && !(Number.isInteger(o.slot) && o.slot >= 0 && o.slot < VPCD_SLOTS))
    throw new ScHsmError(
      'INVALID_ARGUMENT',
      `startPcscCard: slot must be 0 … ${VPCD_SLOTS - 1}, not ${o.slot}`,
    );
  // no pcscd here, or a host that does not resolve: said at once, not after the adoption timeout
  const socket = env.PCSCLITE_CSOCK_NAME ?? PCSCD_SOCKET;
  if (!isSocket(socket))
    throw new ScHsmError('PCSC_UNAVAILABLE', `startPcscCard: no pcscd here (${socket} is no socket)`, {
      fix: 'run the tests under `sc-hsm-ts sim run --cards 0 -- <test runner>` (or start pcscd with vsmartcard-vpcd)',
    });
  await resolvable(host);
  // with no slot given, a reader already showing a card that is not ours (a sim serve) is skipped
  const shown = o.slot === undefined ? await foreignCards(host) : new Set<number>();
  const { slot, release } = claimSlot(o.slot, env, socket, shown);
  try {
    return await plugInTestCard(o, env, host, slot, release);
  } catch (e) {
    release();
    throw e;
  }
}

async function plugInTestCard(
  o: PcscTestCardOptions,
  env: NodeJS.ProcessEnv,
  host: string,
  slot: number,
  release: () => void,
): Promise<PcscTestCard> {
  const { VirtualSmartCardHsm } = await import('./sim/card.js');
  const { plugIn } = await import('./cli/commands/sim/run-cards.js');
  const card = new VirtualSmartCardHsm();
  let keys: TestKeys | undefined;
  if (o.initialized !== false) {
    // provisioned through a view whose close leaves the card open (a session closes its transport)
    const view: Transport = { transmit: (apdu) => card.transmit(apdu), close: async () => undefined };
    const p = await provision(view, o);
    keys = p.keys;
    await p.hsm.close();
    card.reset();
  }
  // keepAlive false: a test that forgets close() (a failed assertion) does not hang its runner
  const link = await plugIn(card, host, VPCD_PORT + slot, { keepAlive: false });
  let closed = false;
  const close = async () => {
    if (closed) return;
    closed = true;
    await link.close();
    await card.close();
    release();
  };
  return {
    reader: vpcdReaderName(slot),
    pkcs11Module: await findPkcs11Module(env),
    card,
    keys,
    pin: TEST_PIN,
    soPin: TEST_SO_PIN,
    close,
    [asyncDispose]: close,
  };
}

/** INVALID_ARGUMENT at once when `host` does not resolve (vpcd would be retried for 30 s). */
async function resolvable(host: string): Promise<void> {
  const { lookup } = await import('node:dns/promises');
  try {
    await lookup(host);
  } catch (e) {
    throw new ScHsmError(
      'INVALID_ARGUMENT',
      `startPcscCard: host ${JSON.stringify(host)} does not resolve (${(e as NodeJS.ErrnoException).code ?? 'lookup failed'})`,
      {
        fix: 'give host the address where pcscd’s vpcd listens (default VPCD_HOST, set by sim run, or 127.0.0.1)',
      },
    );
  }
}

/** When this process last took a card out of each slot (vpcd port): pcscd may list it ~0.4 s longer. */
const closedAt = new Map<string, number>();
/** How long a card this process took out may still be listed (plugIn waits for it to go). */
const OWN_CARD_LISTED_MS = 5_000;

/**
 * Slots whose reader of the local pcscd shows a card now that is none of this process's (a
 * `sim serve`, another program's card): vpcd would keep ours waiting behind it. Empty when pcscd
 * cannot be asked or vpcd is on another host (the local readers say nothing about it).
 */
async function foreignCards(host: string): Promise<Set<number>> {
  const { localVpcd, slotsShowingCards } = await import('./cli/commands/sim/run-cards.js');
  const shown = localVpcd(host) ? await slotsShowingCards() : undefined;
  const now = Date.now();
  const ours = (slot: number) => now - (closedAt.get(String(VPCD_PORT + slot)) ?? 0) < OWN_CARD_LISTED_MS;
  return new Set([...(shown ?? [])].filter((slot) => !ours(slot)));
}

function isSocket(path: string): boolean {
  try {
    return statSync(path).isSocket();
  } catch {
    return false;
  }
}

/** Slots (vpcd ports) this process has a test card in. */
const ownSlots = new Set<string>();

function pidAlive(pid: number): boolean {
  try {
    process.kill(pid, 0);
    return true;
  } catch (e) {
    return (e as NodeJS.ErrnoException).code !== 'ESRCH';
  }
}

/**
 * Claims a vpcd slot for a test card: in this process (a set) and for other processes with the
 * same pcscd (a file `sc-hsm-ts-vpcd-PORT.claim` holding the pid, beside pcscd's socket when
 * that directory is writable, else in the temporary directory; a dead holder's claim is taken
 * over). vpcd itself cannot tell: a second card on a slot waits silently (spec/pcsc-stack.md §2).
 */
function claimSlot(
  wanted: number | undefined,
  env: NodeJS.ProcessEnv,
  socket: string,
  shown: ReadonlySet<number> = new Set(),
): { slot: number; release: () => void } {
  let dir = dirname(socket);
  try {
    accessSync(dir, fsConstants.W_OK);
  } catch {
    dir = tmpdir();
  }
  const why: string[] = [];
  for (const slot of wanted === undefined ? [...Array(VPCD_SLOTS).keys()] : [wanted]) {
    const reader = vpcdReaderName(slot);
    if (env[`SC_HSM_READER_${slot}`] !== undefined) {
      why.push(`${reader} holds a card of sim run`);
      continue;
    }
    const key = String(VPCD_PORT + slot);
    if (ownSlots.has(key)) {
      why.push(`${reader} holds another test card of this process`);
      continue;
    }
    if (shown.has(slot)) {
      why.push(`${reader} shows a card of another program (a sim serve?)`);
      continue;
    }
    const path = join(dir, `sc-hsm-ts-vpcd-${VPCD_PORT + slot}.claim`);
    let holder: number | undefined;
    for (let attempt = 0; attempt < 2 && holder === undefined; attempt++) {
      try {
        writeFileSync(path, `${process.pid}\n`, { flag: 'wx', mode: 0o644 });
        break;
      } catch (e) {
        if ((e as NodeJS.ErrnoException).code !== 'EEXIST') break; // no claims here: this process only
        const pid = Number.parseInt(readFileSync(path, 'utf8'), 10);
        if (pid !== process.pid && pidAlive(pid)) holder = pid;
        else unlinkSync(path);
      }
    }
    if (holder !== undefined) {
      why.push(`${reader} holds a test card of pid ${holder}`);
      continue;
    }
    ownSlots.add(key);
    const onExit = () => unclaim(path);
    process.once('exit', onExit);
    return {
      slot,
      release: () => {
        if (!ownSlots.delete(key)) return;
        closedAt.set(key, Date.now());
        process.off('exit', onExit);
        unclaim(path);
      },
    };
  }
  throw new ScHsmError(
    'PCSC_UNAVAILABLE',
    wanted === undefined
      ? `startPcscCard: no free vpcd slot (${why.join('; ')})`
      : `startPcscCard: vpcd slot ${wanted} is busy (${why.join('; ')})`,
    {
      fix: 'close() the other test card first, run the files one after another, or give sim run fewer cards (`sc-hsm-ts sim run --cards 1 -- …`; with `sc-hsm-ts sim run --cards 0` the kit plugs in every test card)',
    },
  );
}

/** Removes this process's claim file (not a claim another process took over meanwhile). */
function unclaim(path: string): void {
  try {
    if (Number.parseInt(readFileSync(path, 'utf8'), 10) === process.pid) unlinkSync(path);
  } catch {
    // gone already
  }
}
