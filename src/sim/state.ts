/**
 * Persistent state of the virtual card: what a real SmartCard-HSM keeps in EEPROM (PINs and their
 * retry counters, option word, DKEK, keys, elementary files, device identity). Serialised as JSON
 * with a format version; every field is validated on load (INVALID_STATE_FILE). Saving is atomic:
 * temp file in the same directory (mode 0600 from its creation: it holds the PINs and the DKEK),
 * fsync, rename. One process at a time holds a state file: src/sim/state-lock.ts.
 */
import { ScHsmError } from '../errors.js';
import { fromHex, toHex } from '../util/bytes.js';
import { CURVES, type CurveName } from '../util/curves.js';
import { writeAtomic, writeAtomicSync } from '../util/host-files.js';

export type KeyKind = 'rsa' | 'ec' | 'aes';

/** A key object `CCxx` (spec §4). */
export interface StoredKey {
  kind: KeyKind;
  /** PKCS#8 DER of an RSA or EC private key. */
  pkcs8?: Uint8Array;
  /** Raw AES key. */
  secret?: Uint8Array;
  curve?: CurveName;
  /** RSA modulus bits, EC field bits, AES key bits. */
  bits: number;
  /** Allowed algorithms (GAKP/GSK tag 91, blob field); undefined = no restriction. */
  algorithms?: Uint8Array;
  /** Remaining uses (GAKP tag 90); undefined = unlimited. */
  useCounter?: number;
  /** Key domain (tag 92). */
  domain?: number;
}

export interface DkekState {
  /** Number of shares declared at INITIALIZE (0 = card-generated DKEK). */
  shares: number;
  outstanding: number;
  /** XOR of the shares imported so far (the DKEK once outstanding = 0). */
  value: Uint8Array;
}

export interface CardState {
  /** Device CHR (`UTVH…00000`), also the outer CAR of GAKP answers (spec §5.4). */
  deviceChr: string;
  firmware: [number, number];
  initialized: boolean;
  /** Device option word (INITIALIZE tag 80, spec §3.9). */
  options: number;
  userPin?: Uint8Array;
  userPinMaxTries: number;
  userPinTries: number;
  /** Transport-PIN mode: VERIFY answers 6984 until CHANGE REFERENCE DATA (option 0002). */
  transportPin: boolean;
  soPin?: Uint8Array;
  soPinTries: number;
  /** Public key authentication N-of-M (INITIALIZE tag 93); keys = the content of each registered `67` request. */
  pka?: { total: number; required: number; keys: Uint8Array[] };
  keyDomains?: number;
  /** DKEK of key domain 0 (INITIALIZE tag 92, or created with MANAGE KEY DOMAIN). */
  dkek?: DkekState;
  /** DKEKs of key domains 1..keyDomains−1 that exist (spec §3.10); absent = unused. */
  domains?: Map<number, DkekState>;
  /** Elementary files by FID (2F02, 2F03, C4xx, CExx, …); never key objects. */
  files: Map<number, Uint8Array>;
  /** Key objects by key reference (0 = device key). */
  keys: Map<number, StoredKey>;
  /** DKEK status shows the KCV only after user PIN verification (VirtualCardOptions.kcvAfterLogin). */
  kcvAfterLogin?: true;
}

export const STATE_FORMAT = 'sc-hsm-ts/virtual-smartcard-hsm';
export const STATE_VERSION = 1;

/** ` (at position N)` from a JSON.parse error when it says one; never any of the text. */
export function jsonErrorPlace(e: unknown): string {
  const m = /at position (\d+)/.exec(e instanceof Error ? e.message : '');
  return m ? ` (at position ${m[1]})` : '';
}

function bad(msg: string): never {
  throw new ScHsmError('INVALID_STATE_FILE', `virtual card state: ${msg}`);
}

const hexOrNull = (b: Uint8Array | undefined) => (b === undefined ? null : toHex(b));

/** Serialises the state as a JSON string (format version STATE_VERSION). */
export function serializeState(s: CardState): string {
  const files: Record<string, string> = {};
  for (const [fid, data] of [...s.files].sort((a, b) => a[0] - b[0])) {
    files[fid.toString(16).toUpperCase().padStart(4, '0')] = toHex(data);
  }
  const keys: Record<string, unknown> = {};
  for (const [id, k] of [...s.keys].sort((a, b) => a[0] - b[0])) {
    keys[String(id)] = {
      kind: k.kind,
      pkcs8: hexOrNull(k.pkcs8),
      secret: hexOrNull(k.secret),
      curve: k.curve ?? null,
      bits: k.bits,
      algorithms: hexOrNull(k.algorithms),
      useCounter: k.useCounter ?? null,
      domain: k.domain ?? null,
    };
  }
  return JSON.stringify(
    {
      format: STATE_FORMAT,
      version: STATE_VERSION,
      deviceChr: s.deviceChr,
      firmware: s.firmware,
      initialized: s.initialized,
      options: s.options,
      userPin: hexOrNull(s.userPin),
      userPinMaxTries: s.userPinMaxTries,
      userPinTries: s.userPinTries,
      transportPin: s.transportPin,
      soPin: hexOrNull(s.soPin),
      soPinTries: s.soPinTries,
      pka: s.pka ? { total: s.pka.total, required: s.pka.required, keys: s.pka.keys.map(toHex) } : null,
      keyDomains: s.keyDomains ?? null,
      dkek: s.dkek
        ? { shares: s.dkek.shares, outstanding: s.dkek.outstanding, value: toHex(s.dkek.value) }
        : null,
      files,
      keys,
      // written only when a domain other than 0 exists: older state files stay as they were
      ...(s.domains?.size
        ? {
            domains: Object.fromEntries(
              [...s.domains]
                .sort((a, b) => a[0] - b[0])
                .map(([d, v]) => [
                  String(d),
                  { shares: v.shares, outstanding: v.outstanding, value: toHex(v.value) },
                ]),
            ),
          }
        : {}),
      // written only when set: state files of cards without the option stay as they were
      ...(s.kcvAfterLogin ? { kcvAfterLogin: true } : {}),
    },
    null,
    2,
  );
}

type Obj = Record<string, unknown>;

function obj(v: unknown, what: string): Obj {
  if (typeof v !== 'object' || v === null || Array.isArray(v)) bad(`${what} must be an object`);
  return v as Obj;
}
function int(v: unknown, what: string, min: number, max: number): number {
  if (typeof v !== 'number' || !Number.isInteger(v) || v < min || v > max) {
    bad(`${what} must be an integer in ${min}..${max}, found ${JSON.stringify(v)}`);
  }
  return v;
}
function bool(v: unknown, what: string): boolean {
  if (typeof v !== 'boolean') bad(`${what} must be true or false`);
  return v;
}
function hex(v: unknown, what: string, min = 0, max = 1 << 20): Uint8Array {
  if (typeof v !== 'string' || !/^([0-9a-fA-F]{2})*$/.test(v))
    bad(`${what} must be a hex string of whole bytes`);
  const b = fromHex(v);
  if (b.length < min || b.length > max) bad(`${what} must be ${min}..${max} bytes, found ${b.length}`);
  return b;
}
function optional<T>(v: unknown, f: (x: unknown) => T): T | undefined {
  return v === null || v === undefined ? undefined : f(v);
}

function parseKey(v: unknown, id: number): StoredKey {
  const what = `keys.${id}`;
  const o = obj(v, what);
  const kind = o.kind;
  if (kind !== 'rsa' && kind !== 'ec' && kind !== 'aes') bad(`${what}.kind must be rsa, ec or aes`);
  const k: StoredKey = { kind, bits: int(o.bits, `${what}.bits`, 1, 8192) };
  const pkcs8 = optional(o.pkcs8, (x) => hex(x, `${what}.pkcs8`, 1));
  const secret = optional(o.secret, (x) => hex(x, `${what}.secret`, 16, 32));
  if (kind === 'aes') {
    if (!secret || pkcs8) bad(`${what}: an AES key needs "secret" and no "pkcs8"`);
    if (secret.length * 8 !== k.bits) bad(`${what}.bits does not match the AES key length`);
    k.secret = secret;
  } else {
    if (!pkcs8 || secret) bad(`${what}: an ${kind.toUpperCase()} key needs "pkcs8" and no "secret"`);
    k.pkcs8 = pkcs8;
  }
  const curve = optional(o.curve, (x) => {
    if (typeof x !== 'string' || !CURVES.some((c) => c.name === x))
      bad(`${what}.curve is not a supported curve`);
    return x as CurveName;
  });
  if (kind === 'ec' && !curve) bad(`${what}: an EC key needs "curve"`);
  if (curve) k.curve = curve;
  const algorithms = optional(o.algorithms, (x) => hex(x, `${what}.algorithms`, 0, 255));
  if (algorithms) k.algorithms = algorithms;
  const useCounter = optional(o.useCounter, (x) => int(x, `${what}.useCounter`, 0, 0xffffffff));
  if (useCounter !== undefined) k.useCounter = useCounter;
  const domain = optional(o.domain, (x) => int(x, `${what}.domain`, 0, 255));
  if (domain !== undefined) k.domain = domain;
  return k;
}

/** Parses and validates a state JSON string. Throws INVALID_STATE_FILE naming the bad field. */
export function deserializeState(json: string): CardState {
  let raw: unknown;
  try {
    raw = JSON.parse(json);
  } catch (e) {
    // never the parser's message: it quotes the file's first characters (a secret file given by mistake)
    bad(`not JSON${jsonErrorPlace(e)}; a state file is made by init --sim FILE`);
  }
  const o = obj(raw, 'the file');
  if (o.format !== STATE_FORMAT) bad(`"format" must be "${STATE_FORMAT}"`);
  if (o.version !== STATE_VERSION)
    bad(`unsupported version ${JSON.stringify(o.version)} (expected ${STATE_VERSION})`);
  if (typeof o.deviceChr !== 'string' || !/^[A-Z0-9]{8,16}$/.test(o.deviceChr)) {
    bad('deviceChr must be 8..16 upper-case letters or digits');
  }
  if (!Array.isArray(o.firmware) || o.firmware.length !== 2) bad('firmware must be [major, minor]');
  const firmware: [number, number] = [
    int(o.firmware[0], 'firmware[0]', 0, 255),
    int(o.firmware[1], 'firmware[1]', 0, 255),
  ];
  const s: CardState = {
    deviceChr: o.deviceChr,
    firmware,
    initialized: bool(o.initialized, 'initialized'),
    options: int(o.options, 'options', 0, 0xffff),
    userPinMaxTries: int(o.userPinMaxTries, 'userPinMaxTries', 1, 15),
    userPinTries: int(o.userPinTries, 'userPinTries', 0, 15),
    transportPin: bool(o.transportPin, 'transportPin'),
    soPinTries: int(o.soPinTries, 'soPinTries', 0, 15),
    files: new Map(),
    keys: new Map(),
  };
  if (s.userPinTries > s.userPinMaxTries) bad('userPinTries exceeds userPinMaxTries');
  const userPin = optional(o.userPin, (x) => hex(x, 'userPin', 6, 16));
  if (userPin) s.userPin = userPin;
  const soPin = optional(o.soPin, (x) => hex(x, 'soPin', 8, 8));
  if (soPin) s.soPin = soPin;
  if (s.initialized && (!userPin || !soPin)) bad('an initialized card needs userPin and soPin');
  const pka = optional(o.pka, (x) => {
    const p = obj(x, 'pka');
    const total = int(p.total, 'pka.total', 1, 90);
    const keys = p.keys === undefined ? [] : p.keys;
    if (!Array.isArray(keys) || keys.length > total)
      bad(`pka.keys must be a list of at most ${total} hex strings`);
    return {
      total,
      required: int(p.required, 'pka.required', 1, total),
      keys: keys.map((k, i) => hex(k, `pka.keys[${i}]`, 16, 4096)),
    };
  });
  if (pka) s.pka = pka;
  const kd = optional(o.keyDomains, (x) => int(x, 'keyDomains', 0, 255));
  if (kd !== undefined) s.keyDomains = kd;
  const dkekOf = (x: unknown, what: string): DkekState => {
    const d = obj(x, what);
    const shares = int(d.shares, `${what}.shares`, 0, 255);
    return {
      shares,
      outstanding: int(d.outstanding, `${what}.outstanding`, 0, shares),
      value: hex(d.value, `${what}.value`, 32, 32),
    };
  };
  const dkek = optional(o.dkek, (x) => dkekOf(x, 'dkek'));
  if (dkek) s.dkek = dkek;
  for (const [k, v] of Object.entries(optional(o.domains, (x) => obj(x, 'domains')) ?? {})) {
    const slots = Math.max(1, s.keyDomains ?? 1);
    if (!/^\d{1,3}$/.test(k) || Number(k) < 1 || Number(k) >= slots)
      bad(`domains: "${k}" is not a key domain 1..${slots - 1}`);
    s.domains ??= new Map();
    s.domains.set(Number(k), dkekOf(v, `domains.${k}`));
  }
  for (const [k, v] of Object.entries(obj(o.files, 'files'))) {
    if (!/^[0-9A-Fa-f]{4}$/.test(k)) bad(`files: "${k}" is not a 4-digit hex FID`);
    const fid = Number.parseInt(k, 16);
    if (fid >> 8 === 0xcc) bad(`files: ${k} is a key FID`);
    s.files.set(fid, hex(v, `files.${k}`, 0, 0xffff));
  }
  for (const [k, v] of Object.entries(obj(o.keys, 'keys'))) {
    if (!/^\d{1,3}$/.test(k) || Number(k) > 255) bad(`keys: "${k}" is not a key reference 0..255`);
    s.keys.set(Number(k), parseKey(v, Number(k)));
  }
  if (optional(o.kcvAfterLogin, (x) => bool(x, 'kcvAfterLogin'))) s.kcvAfterLogin = true;
  if (!s.keys.has(0) || s.keys.get(0)?.kind !== 'ec') bad('the device key (key 0, EC) is missing');
  if (!s.files.has(0x2f02)) bad('EF 2F02 (device certificates) is missing');
  return s;
}

/** Saves the state file atomically and readable by its owner only (src/util/host-files.ts). */
export async function saveStateFile(path: string, text: string): Promise<void> {
  try {
    await writeAtomic(path, text, 0o600);
  } catch (e) {
    throw new ScHsmError(
      'IO_ERROR',
      `cannot save the virtual card state to ${path}: ${(e as Error).message}`,
      {
        cause: e,
      },
    );
  }
}

/**
 * {@link saveStateFile} without yielding: the card bound to its file saves with it before it answers
 * the APDU that changed its state.
 */
export function saveStateFileSync(path: string, text: string): void {
  try {
    writeAtomicSync(path, text, 0o600);
  } catch (e) {
    throw new ScHsmError(
      'IO_ERROR',
      `cannot save the virtual card state to ${path}: ${(e as Error).message}`,
      {
        cause: e,
      },
    );
  }
}

/** Reads a state file (IO_ERROR when unreadable, INVALID_STATE_FILE when malformed). */
export async function readStateFile(path: string): Promise<CardState> {
  const { readFile } = await import('node:fs/promises');
  let text: string;
  try {
    text = await readFile(path, 'utf8');
  } catch (e) {
    throw new ScHsmError('IO_ERROR', `cannot read the virtual card state ${path}: ${(e as Error).message}`, {
      cause: e,
    });
  }
  return deserializeState(text);
}
