/** How values are printed for people: KCVs as sc-hsm-tool prints them, flags as pkcs15-tool does. */
import { createHash, createPublicKey } from 'node:crypto';
import { algorithmNames } from '../sc-hsm/key-restrictions.js';
import type { KeyInfo } from '../sc-hsm/session.js';
import { UNSAFE_TEXT } from '../sc-hsm/validate.js';
import { toHex } from '../util/bytes.js';

/**
 * Text from a card or a file, made safe to print on a terminal: every character a terminal would
 * act on instead of showing (UNSAFE_TEXT: C0/C1 controls and DEL, U+2028/U+2029, bidirectional
 * formatting characters, unpaired surrogates) is written as an escape — `\x1b` below U+0100,
 * `\u{202e}` above — so a hostile label cannot move the cursor, clear the screen, ring the bell,
 * start a new line that looks like our output, or reorder what is shown. Everything else is left
 * as it is. The one function for every card- or file-sourced string in human output (JSON output
 * is escaped by JSON.stringify).
 */
export function printable(text: string | undefined): string {
  if (text === undefined) return '';
  let out = '';
  for (const c of String(text)) {
    if (!UNSAFE_TEXT.test(c)) out += c;
    else {
      const n = c.codePointAt(0)!;
      out += n < 0x100 ? `\\x${n.toString(16).padStart(2, '0')}` : `\\u{${n.toString(16)}}`;
    }
  }
  return out;
}

/** {@link printable} for a message of our own that may span lines: its line breaks are kept. */
export function printableLines(text: string): string {
  return text.split('\n').map(printable).join('\n');
}

/** 16 upper-case hex digits, as `sc-hsm-tool` prints "DKEK key check value". */
export function kcvText(kcv: Uint8Array): string {
  return toHex(kcv).toUpperCase();
}

/** `RSA 2048`, `EC prime256v1`, `AES 256`. */
export function keyTypeText(k: { type: string; bits: number; curve?: string }): string {
  if (k.type === 'ec') return `EC ${k.curve ?? `${k.bits}-bit`}`;
  return `${k.type.toUpperCase()} ${k.bits || '?'}`;
}

const USAGE_NAMES: [number, string][] = [
  [0x001, 'encrypt'],
  [0x002, 'decrypt'],
  [0x004, 'sign'],
  [0x008, 'signRecover'],
  [0x010, 'wrap'],
  [0x020, 'unwrap'],
  [0x040, 'verify'],
  [0x080, 'verifyRecover'],
  [0x100, 'derive'],
  [0x200, 'nonRepudiation'],
];

const ACCESS_NAMES: [number, string][] = [
  [0x01, 'sensitive'],
  [0x02, 'extract'],
  [0x04, 'alwaysSensitive'],
  [0x08, 'neverExtract'],
  [0x10, 'local'],
];

const OBJECT_FLAG_NAMES: [number, string][] = [
  [0x01, 'private'],
  [0x02, 'modifiable'],
];

function flagsText(value: number, names: [number, string][]): string {
  const parts = [`[0x${value.toString(16).toUpperCase().padStart(2, '0')}]`];
  for (const [bit, name] of names) if (value & bit) parts.push(name);
  return parts.join(', ');
}

/** `[0x10C], sign, signRecover, derive` as `pkcs15-tool --dump` prints "Usage". */
export function usageText(usage: number): string {
  return flagsText(usage, USAGE_NAMES);
}

export function usageNames(usage: number): string[] {
  return USAGE_NAMES.filter(([b]) => usage & b).map(([, n]) => n);
}

export function accessText(access: number): string {
  return flagsText(access, ACCESS_NAMES);
}

export function objectFlagsText(flags: number): string {
  return flagsText(flags, OBJECT_FLAG_NAMES);
}

/** SHA-256 of the SubjectPublicKeyInfo DER, lowercase hex. */
export function spkiFingerprint(spki: Uint8Array): string {
  return createHash('sha256').update(spki).digest('hex');
}

export function sha256Hex(data: Uint8Array): string {
  return createHash('sha256').update(data).digest('hex');
}

export function spkiPem(spki: Uint8Array): string {
  return createPublicKey({ key: Buffer.from(spki), format: 'der', type: 'spki' })
    .export({ format: 'pem', type: 'spki' })
    .toString();
}

/** The JSON form of a key: the library's KeyInfo fields, plus the public key fingerprint. */
export function keyJson(k: KeyInfo): Record<string, unknown> {
  const o: Record<string, unknown> = {
    keyRef: k.keyRef,
    id: k.id,
    label: k.label,
    type: k.type,
    bits: k.bits,
    curve: k.curve,
    usage: k.usage,
    usageNames: usageNames(k.usage),
    access: k.access,
    hasCertificate: k.hasCertificate,
    // restrictions fixed at generation (null: none, or the card does not report them)
    algorithms: k.algorithms ? algorithmNames(k.algorithms) : null,
    useCounter: k.useCounter ?? null,
    // key domain (tag 92) as the card reports it; null: the card does not say
    domain: k.domain ?? null,
  };
  if (k.publicKey) {
    o.publicKey = k.publicKey;
    o.publicKeySha256 = spkiFingerprint(k.publicKey);
  }
  return o;
}

/** `algorithms ECDSA-SHA256, WRAP; 5 uses left` — a key's restrictions as `keys` and `dump` print them; undefined when none. */
export function restrictionsText(k: { algorithms?: Uint8Array; useCounter?: number }): string | undefined {
  const parts: string[] = [];
  if (k.algorithms) parts.push(`algorithms ${algorithmNames(k.algorithms).join(', ') || '(none)'}`);
  if (k.useCounter !== undefined)
    parts.push(
      k.useCounter === 0
        ? 'use counter exhausted (0 uses left)'
        : `${k.useCounter} ${k.useCounter === 1 ? 'use' : 'uses'} left`,
    );
  return parts.length ? parts.join('; ') : undefined;
}

/**
 * Parses `--id HEX` (also `apdu HEX…`, `--iv`): spaces and colons between digits are allowed, as
 * hex is often copied from a dump. With `strict` (key material such as `--tweak`) only the hex
 * digits are: a value with a space in it is more likely a mistake than a layout.
 */
export function parseHexArg(s: string, o: { strict?: boolean } = {}): Uint8Array | undefined {
  const clean = o.strict ? s : s.replace(/[\s:]/g, '');
  if (!/^([0-9a-fA-F]{2})+$/.test(clean)) return undefined;
  return Uint8Array.from(Buffer.from(clean, 'hex'));
}

/** `1 try left`, `3 tries left`. */
export function triesText(n: number): string {
  return `${n} ${n === 1 ? 'try' : 'tries'} left`;
}

/**
 * A PIN's state as people read it (`pin status`, `status`, `dump`): tries left, blocked, or — when
 * the PIN was verified in this session and the card reports no count — a full counter.
 */
export function pinStateText(
  p: { triesLeft?: number; verified?: boolean; blocked: boolean; transportPin?: boolean },
  pin: 'user-pin' | 'so-pin',
  retryCounter?: number,
): string {
  if (p.blocked) {
    return pin === 'so-pin'
      ? 'BLOCKED for good: the device can no longer be re-initialized nor its user PIN unblocked'
      : 'BLOCKED: unblock it with the SO-PIN (sc-hsm-ts pin unblock)';
  }
  if (p.transportPin) return 'transport PIN active \u2014 set your own PIN with `pin change`';
  if (p.triesLeft === undefined) return p.verified ? 'verified in this session (counter full)' : 'unknown';
  const count =
    retryCounter !== undefined && retryCounter >= p.triesLeft
      ? `${p.triesLeft} of ${retryCounter} tries left`
      : triesText(p.triesLeft);
  const last =
    p.triesLeft === 1
      ? pin === 'so-pin'
        ? ': a wrong SO-PIN blocks it for good'
        : retryCounter === 1
          ? ' (retry counter 1: every wrong PIN blocks it)'
          : ': the next wrong PIN blocks it'
      : '';
  return `${count}${last}${p.verified ? ' (verified)' : ''}`;
}
