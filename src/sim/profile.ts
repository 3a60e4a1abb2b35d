/**
 * Timing profiles of the virtual card: a latency model of a real device, so that host-side choices
 * (how many APDUs, how many bytes, which card operations) are measured where an operator feels
 * them. A profile gives a per-APDU transfer cost (fixed + per byte, each direction), a card time
 * per command (SIGN by algorithm and key size, key generation, DECIPHER/ECDH, WRAP/UNWRAP, VERIFY,
 * READ/UPDATE BINARY by length, INITIALIZE) and the device's limits (largest command APDU, key
 * capacity). Off by default; `VirtualCardOptions.profile`, `sim serve --profile` and
 * `--sim FILE --profile` turn it on. It is a MODEL: the built-in `nitrokey-hsm2` profile takes
 * every figure it can from published measurements (named in {@link NITROKEY_HSM2_SOURCES}) and
 * says where it assumes.
 */
import { readFile } from 'node:fs/promises';
import type { ParsedCommand } from '../apdu/command.js';
import { ScHsmError } from '../errors.js';
import { ALGO, INS } from '../protocol/constants.js';
import { jsonErrorPlace, type StoredKey } from './state.js';

/** Milliseconds by key size in bits; a size not listed takes the next larger one (else the largest). */
export type BySize = Readonly<Record<string, number>>;

/** A latency model of a device; every time in milliseconds, every figure ≥ 0. */
export interface TimingProfile {
  /** Short name, shown by `sim serve`. */
  name: string;
  /** Per APDU, through the reader: a fixed round trip plus a cost per byte of command and of response. */
  transfer: { fixedMs: number; commandByteMs: number; responseByteMs: number };
  /** The card's own processing time per command (added to the transfer cost). */
  card: {
    /** Every command not listed below, and every command the card refuses (an SW other than 9000/61xx/6282). */
    otherMs: number;
    signRsa: BySize;
    signEc: BySize;
    /** Added per data byte when the card hashes (SIGN with a SHA-x algorithm: RSA 31–35, 41–45, ECDSA 71–75). */
    hashByteMs: number;
    decipherRsa: BySize;
    ecdh: BySize;
    generateRsa: BySize;
    generateEc: BySize;
    generateAesMs: number;
    wrapMs: number;
    unwrapMs: number;
    /** VERIFY with a PIN (the status query without data costs `otherMs`). */
    verifyMs: number;
    readBinary: { fixedMs: number; byteMs: number };
    updateBinary: { fixedMs: number; byteMs: number };
    initializeMs: number;
  };
  limits: {
    /** Largest command APDU the card takes (header, Lc, data, Le); a longer one is answered 6700. */
    maxApdu: number;
    /**
     * How many keys fit, for keys of one kind: EC keys (any curve; AES keys count as EC, as the
     * source counts them) and RSA-2048 keys; a mix uses the same memory linearly (an RSA key of
     * n bits takes n/2048 of an RSA-2048 key's share). Beyond it key generation and UNWRAP answer 6A84.
     */
    capacity: { ecKeys: number; rsa2048Keys: number };
  };
}

/** Where the `nitrokey-hsm2` figures come from (documentation; the profile's `sources` in the README). */
export const NITROKEY_HSM2_SOURCES: readonly string[] = [
  'Nitrokey HSM FAQ (nitrokey-documentation hsm/faq.rst): RSA-2048 sign 100/min (600 ms), ECDSA P-256 sign 360/min (167 ms), with SHA-256 of 1 kB on the card 68/min and 125/min (≈0.3 ms per hashed byte), RSA-2048 keygen 2/min (30 s), EC P-256 keygen 10/min (6 s), capacity 300 ECC/AES-256 keys or 38 RSA-2048 keys',
  'OpenSC issues 2432, 3602, 715 (debug-log timestamps): VERIFY status query 29 ms, SELECT answered 6A82 27 ms, SELECT answered 6A86 20 ms per APDU round trip',
  'Nitrokey/nitrokey-pro-firmware issue 78: initializing a heavily used token takes around 30 s',
  'SmartCard-HSM 3.5 documentation quoted in OpenSC issue 2469: largest APDU 1462 bytes on JCOP 2.4.1r3',
  'ASSUMED (nothing published): per-byte transfer from the ATR (TA1 = 18: Fi 372, Di 12) at a 4.8 MHz clock ≈ 15.5 kB/s ≈ 0.065 ms per byte each way; RSA-1024/1536/3072/4096 and P-384/P-521 scaled from the published sizes (RSA ∝ bits^3 for private operations, EC ∝ bits^2); DECIPHER as SIGN, ECDH as ECDSA; WRAP 250 ms, UNWRAP 500 ms; VERIFY with a PIN 8 ms (two EEPROM writes); READ BINARY 1 ms + 0.002 ms/byte, UPDATE BINARY 6 ms + 0.05 ms/byte (EEPROM pages)',
];

/** The Nitrokey HSM 2 (SmartCard-HSM 3.x on JCOP) as the published figures describe it. */
export const NITROKEY_HSM2: TimingProfile = {
  name: 'nitrokey-hsm2',
  transfer: { fixedMs: 24, commandByteMs: 0.065, responseByteMs: 0.065 },
  card: {
    otherMs: 1,
    signRsa: { 1024: 75, 1536: 253, 2048: 600, 3072: 2025, 4096: 4800 },
    signEc: { 192: 94, 224: 128, 256: 167, 320: 261, 384: 376, 512: 668, 521: 692 },
    hashByteMs: 0.3,
    decipherRsa: { 1024: 75, 1536: 253, 2048: 600, 3072: 2025, 4096: 4800 },
    ecdh: { 192: 94, 224: 128, 256: 167, 320: 261, 384: 376, 512: 668, 521: 692 },
    generateRsa: { 1024: 3750, 1536: 12660, 2048: 30000, 3072: 101250, 4096: 240000 },
    generateEc: { 192: 3375, 224: 4594, 256: 6000, 320: 9375, 384: 13500, 512: 24000, 521: 24844 },
    generateAesMs: 50,
    wrapMs: 250,
    unwrapMs: 500,
    verifyMs: 8,
    readBinary: { fixedMs: 1, byteMs: 0.002 },
    updateBinary: { fixedMs: 6, byteMs: 0.05 },
    initializeMs: 30000,
  },
  limits: { maxApdu: 1462, capacity: { ecKeys: 300, rsa2048Keys: 38 } },
};

/** The smallest `limits.maxApdu` a profile may give: the buffer of JCOP 2.4.1r3 (Nitrokey HSM 2). */
export const MIN_MAX_APDU = 1462;

/** Built-in profiles by name (`--profile NAME`). */
export const BUILTIN_PROFILES: Readonly<Record<string, TimingProfile>> = { 'nitrokey-hsm2': NITROKEY_HSM2 };

function bad(where: string, what: string): never {
  throw new ScHsmError('INVALID_ARGUMENT', `timing profile ${where}: ${what}`, {
    fix: 'give --profile nitrokey-hsm2, or a JSON file shaped like it (docs/cli.md, "Timing profiles")',
  });
}

function record(v: unknown, where: string, keys: readonly string[]): Record<string, unknown> {
  if (typeof v !== 'object' || v === null || Array.isArray(v)) bad(where, 'must be an object');
  const o = v as Record<string, unknown>;
  for (const k of Object.keys(o))
    if (!keys.includes(k)) bad(where, `unknown key "${k}" (known: ${keys.join(', ')})`);
  for (const k of keys) if (!(k in o)) bad(where, `"${k}" is missing`);
  return o;
}

function ms(v: unknown, where: string): number {
  if (typeof v !== 'number' || !Number.isFinite(v) || v < 0 || v > 3_600_000)
    bad(where, `must be a number of milliseconds from 0 to 3600000, not ${JSON.stringify(v)}`);
  return v;
}

function bySize(v: unknown, where: string): BySize {
  if (typeof v !== 'object' || v === null || Array.isArray(v))
    bad(where, 'must be an object of key size → ms');
  const out: Record<string, number> = {};
  const entries = Object.entries(v as Record<string, unknown>);
  if (entries.length === 0) bad(where, 'needs at least one key size');
  for (const [k, t] of entries) {
    if (!/^[1-9]\d{2,4}$/.test(k)) bad(where, `"${k}" is not a key size in bits`);
    out[k] = ms(t, `${where}.${k}`);
  }
  return out;
}

function count(v: unknown, where: string, min: number, max: number): number {
  if (typeof v !== 'number' || !Number.isInteger(v) || v < min || v > max)
    bad(where, `must be a whole number from ${min} to ${max}, not ${JSON.stringify(v)}`);
  return v;
}

/**
 * Checks a profile given as parsed JSON (every key required, no unknown key, every time a
 * non-negative number of milliseconds): INVALID_ARGUMENT naming the field otherwise.
 */
export function validateProfile(v: unknown): TimingProfile {
  const o = record(v, '', ['name', 'transfer', 'card', 'limits']);
  if (typeof o.name !== 'string' || !/^[\w.-]{1,64}$/.test(o.name))
    bad('name', 'must be 1-64 letters, digits, ".", "-" or "_"');
  const t = record(o.transfer, 'transfer', ['fixedMs', 'commandByteMs', 'responseByteMs']);
  const c = record(o.card, 'card', Object.keys(NITROKEY_HSM2.card));
  const l = record(o.limits, 'limits', ['maxApdu', 'capacity']);
  const cap = record(l.capacity, 'limits.capacity', ['ecKeys', 'rsa2048Keys']);
  const rb = record(c.readBinary, 'card.readBinary', ['fixedMs', 'byteMs']);
  const ub = record(c.updateBinary, 'card.updateBinary', ['fixedMs', 'byteMs']);
  return {
    name: o.name,
    transfer: {
      fixedMs: ms(t.fixedMs, 'transfer.fixedMs'),
      commandByteMs: ms(t.commandByteMs, 'transfer.commandByteMs'),
      responseByteMs: ms(t.responseByteMs, 'transfer.responseByteMs'),
    },
    card: {
      otherMs: ms(c.otherMs, 'card.otherMs'),
      signRsa: bySize(c.signRsa, 'card.signRsa'),
      signEc: bySize(c.signEc, 'card.signEc'),
      hashByteMs: ms(c.hashByteMs, 'card.hashByteMs'),
      decipherRsa: bySize(c.decipherRsa, 'card.decipherRsa'),
      ecdh: bySize(c.ecdh, 'card.ecdh'),
      generateRsa: bySize(c.generateRsa, 'card.generateRsa'),
      generateEc: bySize(c.generateEc, 'card.generateEc'),
      generateAesMs: ms(c.generateAesMs, 'card.generateAesMs'),
      wrapMs: ms(c.wrapMs, 'card.wrapMs'),
      unwrapMs: ms(c.unwrapMs, 'card.unwrapMs'),
      verifyMs: ms(c.verifyMs, 'card.verifyMs'),
      readBinary: {
        fixedMs: ms(rb.fixedMs, 'card.readBinary.fixedMs'),
        byteMs: ms(rb.byteMs, 'card.readBinary.byteMs'),
      },
      updateBinary: {
        fixedMs: ms(ub.fixedMs, 'card.updateBinary.fixedMs'),
        byteMs: ms(ub.byteMs, 'card.updateBinary.byteMs'),
      },
      initializeMs: ms(c.initializeMs, 'card.initializeMs'),
    },
    limits: {
      // the smallest APDU every host needs: a SELECT by AID (5 + 11) plus room for a PIN VERIFY
      // the host sends UNWRAP KEY, certificates and PKA requests whole (no chaining): a buffer
      // below the SmartCard-HSM's own 1462 bytes would fail them only after the PIN
      maxApdu: count(l.maxApdu, 'limits.maxApdu', MIN_MAX_APDU, 65544),
      capacity: {
        ecKeys: count(cap.ecKeys, 'limits.capacity.ecKeys', 1, 65535),
        rsa2048Keys: count(cap.rsa2048Keys, 'limits.capacity.rsa2048Keys', 1, 65535),
      },
    },
  };
}

/** A profile from JSON text (a file's content): INVALID_ARGUMENT on bad JSON or a bad field. */
export function parseProfile(json: string, source = 'the profile'): TimingProfile {
  let v: unknown;
  try {
    v = JSON.parse(json);
  } catch (e) {
    // never the parser's message: it quotes the text's first characters
    bad(source, `is not JSON${jsonErrorPlace(e)}`);
  }
  try {
    return validateProfile(v);
  } catch (e) {
    // the file named: "timing profile limits: …" alone does not say which
    if (source === 'the profile' || !(e instanceof ScHsmError)) throw e;
    throw new ScHsmError(e.code, e.message.replace(/^timing profile (?:: )?/, `timing profile ${source}: `), {
      ...(e.fix !== undefined && { fix: e.fix }),
    });
  }
}

/**
 * `--profile NAME|FILE.json`: a built-in profile by name, else the JSON file at that path
 * (HOST_FILE_NOT_FOUND when it does not exist, INVALID_ARGUMENT when it is not a valid profile).
 * `sim serve`, `--sim` and the test kit's `sim run` take their profile through this one function.
 */
export async function loadProfile(nameOrPath: string): Promise<TimingProfile> {
  const builtin = Object.hasOwn(BUILTIN_PROFILES, nameOrPath) ? BUILTIN_PROFILES[nameOrPath] : undefined;
  if (builtin) return builtin;
  if (!nameOrPath.endsWith('.json'))
    bad(
      JSON.stringify(nameOrPath),
      `is neither a built-in profile (${Object.keys(BUILTIN_PROFILES).join(', ')}) nor a .json file`,
    );
  let text: string;
  try {
    text = await readFile(nameOrPath, 'utf8');
  } catch (e) {
    const code = (e as NodeJS.ErrnoException).code;
    if (code === 'ENOENT')
      throw new ScHsmError('HOST_FILE_NOT_FOUND', `the timing profile ${nameOrPath} does not exist`);
    throw new ScHsmError(
      'IO_ERROR',
      `cannot read the timing profile ${nameOrPath}: ${(e as Error).message}`,
      {
        cause: e,
      },
    );
  }
  return parseProfile(text, nameOrPath);
}

/** The time for `bits` in a by-size table: the next listed size at or above, else the largest. */
export function timeForSize(table: BySize, bits: number): number {
  const sizes = Object.keys(table)
    .map(Number)
    .sort((a, b) => a - b);
  const at = sizes.find((s) => s >= bits) ?? sizes[sizes.length - 1]!;
  return table[String(at)]!;
}

const HASHING = new Set([
  0x31, 0x32, 0x33, 0x34, 0x35, 0x41, 0x42, 0x43, 0x44, 0x45, 0x71, 0x72, 0x73, 0x74, 0x75,
]);

/** The card's own time for a command it answered with `sw`; `key` is the key at P1 after the command. */
export function cardTimeMs(p: TimingProfile, cmd: ParsedCommand, sw: number, key?: StoredKey): number {
  const c = p.card;
  const ok = sw === 0x9000 || sw >> 8 === 0x61 || sw === 0x6282;
  if (!ok) return c.otherMs;
  const proprietary = cmd.cla === 0x80;
  switch (proprietary ? -cmd.ins : cmd.ins) {
    case -INS.SIGN: {
      if (!key) return c.otherMs;
      const base = timeForSize(key.kind === 'rsa' ? c.signRsa : c.signEc, key.bits);
      return base + (HASHING.has(cmd.p2) ? cmd.data.length * c.hashByteMs : 0);
    }
    case -INS.DECIPHER:
      if (!key) return c.otherMs;
      return cmd.p2 === ALGO.ECDH || key.kind === 'ec'
        ? timeForSize(c.ecdh, key.bits)
        : timeForSize(c.decipherRsa, key.bits);
    case INS.GENERATE_ASYMMETRIC_KEY_PAIR:
      if (!key) return c.otherMs;
      return timeForSize(key.kind === 'rsa' ? c.generateRsa : c.generateEc, key.bits);
    case INS.GENERATE_SYMMETRIC_KEY:
      return c.generateAesMs;
    case -INS.WRAP_KEY:
      return c.wrapMs;
    case -INS.UNWRAP_KEY:
      return c.unwrapMs;
    case INS.VERIFY:
      return cmd.data.length > 0 ? c.verifyMs : c.otherMs;
    case -INS.INITIALIZE:
      return cmd.data.length > 0 ? c.initializeMs : c.otherMs;
    default:
      return c.otherMs;
  }
}

/** Transfer time of one APDU exchange: fixed + command bytes + response bytes. */
export function transferMs(p: TimingProfile, commandBytes: number, responseBytes: number): number {
  const t = p.transfer;
  return t.fixedMs + commandBytes * t.commandByteMs + responseBytes * t.responseByteMs;
}

/** READ/UPDATE BINARY card time by length (they are ISO commands, so outside `cardTimeMs`'s switch). */
export function fileTimeMs(p: TimingProfile, cmd: ParsedCommand, sw: number, responseData: number): number {
  const ok = sw === 0x9000 || sw >> 8 === 0x61 || sw === 0x6282;
  if (!ok || cmd.cla !== 0x00) return -1;
  if (cmd.ins === INS.READ_BINARY) return p.card.readBinary.fixedMs + responseData * p.card.readBinary.byteMs;
  if (cmd.ins === INS.UPDATE_BINARY)
    return p.card.updateBinary.fixedMs + cmd.data.length * p.card.updateBinary.byteMs;
  return -1;
}

/**
 * The whole modelled time of one exchange: transfer both ways plus the card's time. `command` and
 * `response` are the raw APDUs; `cmd` the parsed command (undefined when it did not parse).
 */
export function exchangeMs(
  p: TimingProfile,
  command: Uint8Array,
  response: Uint8Array,
  cmd: ParsedCommand | undefined,
  key?: StoredKey,
): number {
  const sw =
    response.length >= 2 ? (response[response.length - 2]! << 8) | response[response.length - 1]! : 0x6f00;
  let card = p.card.otherMs;
  if (cmd) {
    const f = fileTimeMs(p, cmd, sw, Math.max(0, response.length - 2));
    card = f >= 0 ? f : cardTimeMs(p, cmd, sw, key);
  }
  return transferMs(p, command.length, response.length) + card;
}

/** Capacity units a key takes (see `limits.capacity`): `ecKeys × rsa2048Keys` units fill the device. */
export function capacityUnits(p: TimingProfile, key: Pick<StoredKey, 'kind' | 'bits'>): number {
  const { ecKeys, rsa2048Keys } = p.limits.capacity;
  if (key.kind === 'rsa') return Math.ceil((ecKeys * key.bits) / 2048);
  return rsa2048Keys;
}

/** The capacity of a device in units (see {@link capacityUnits}). */
export function capacityTotal(p: TimingProfile): number {
  return p.limits.capacity.ecKeys * p.limits.capacity.rsa2048Keys;
}

/** Largest lateness of a timer carried into the next wait (ms). */
const MAX_CARRY_MS = 20;

/**
 * Real waiting for modelled times. A timer fires a little late (about 1 ms on Linux); the lateness
 * is taken off the next wait, so that a run of APDUs takes the sum of its modelled times and the
 * host's own time, not one timer slack per APDU more.
 */
export class ModelTimer {
  private late = 0;

  wait(ms: number): Promise<void> {
    const want = ms - this.late;
    if (want <= 0) {
      this.late = -want;
      return Promise.resolve();
    }
    const t0 = performance.now();
    return new Promise((resolve) =>
      setTimeout(() => {
        this.late = Math.min(MAX_CARRY_MS, Math.max(0, performance.now() - t0 - want));
        resolve();
      }, want),
    );
  }
}
