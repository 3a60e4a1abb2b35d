/**
 * A distinguished name typed by a person (`--subject "CN=Example CA, O=Example, C=DE"`), parsed
 * strictly in the syntax of RFC 4514: relative distinguished names separated by `,`, attributes of
 * one RDN joined by `+`, each `TYPE=value` with a known attribute name or a dotted OID, and `\`
 * escaping a special character (`\,`) or a byte in hex (`\C3\A9`). Anything else — a string
 * without `=`, an unknown attribute name, an empty value, a control character — is refused with
 * INVALID_ARGUMENT naming the bad part, so that a typo never becomes a certificate with an empty
 * subject. The RDNs are kept in the order written, as @peculiar/x509 and OpenSSL's `-subj` do.
 * Pure code: no @peculiar/x509 here (it is loaded on first use, src/x509/lib.ts).
 */
import { ScHsmError } from '../errors.js';
import { checkText } from '../sc-hsm/validate.js';

/** How an attribute value is encoded (X.520: PrintableString where it fits, else UTF8String). */
export type DnValueEncoding = 'printableString' | 'utf8String' | 'ia5String';

export interface DnAttribute {
  /** The attribute's short name as this module knows it (`CN`), or the dotted OID as written. */
  type: string;
  oid: string;
  value: string;
  encoding: DnValueEncoding;
}

/** One relative distinguished name: its attributes (usually one). */
export type DnRdn = DnAttribute[];

interface AttributeKind {
  oid: string;
  /** Longest value in characters (RFC 5280 upper bounds). */
  max?: number;
  ia5?: true;
  /** Country: two letters (ISO 3166-1 alpha-2). */
  country?: true;
}

/** Attribute names (upper case) → OID: the names OpenSSL, OpenSC and RFC 4514 use. */
const ATTRIBUTES: Record<string, AttributeKind> = {
  CN: { oid: '2.5.4.3', max: 64 },
  SN: { oid: '2.5.4.4', max: 64 },
  SURNAME: { oid: '2.5.4.4', max: 64 },
  SERIALNUMBER: { oid: '2.5.4.5', max: 64 },
  C: { oid: '2.5.4.6', country: true },
  L: { oid: '2.5.4.7', max: 128 },
  ST: { oid: '2.5.4.8', max: 128 },
  STREET: { oid: '2.5.4.9', max: 128 },
  O: { oid: '2.5.4.10', max: 64 },
  OU: { oid: '2.5.4.11', max: 64 },
  T: { oid: '2.5.4.12', max: 64 },
  TITLE: { oid: '2.5.4.12', max: 64 },
  GN: { oid: '2.5.4.42', max: 64 },
  G: { oid: '2.5.4.42', max: 64 },
  GIVENNAME: { oid: '2.5.4.42', max: 64 },
  I: { oid: '2.5.4.43', max: 64 },
  INITIALS: { oid: '2.5.4.43', max: 64 },
  DNQUALIFIER: { oid: '2.5.4.46', max: 64 },
  PSEUDONYM: { oid: '2.5.4.65', max: 128 },
  ORGANIZATIONIDENTIFIER: { oid: '2.5.4.97', max: 64 },
  UID: { oid: '0.9.2342.19200300.100.1.1', max: 256 },
  DC: { oid: '0.9.2342.19200300.100.1.25', ia5: true, max: 63 },
  E: { oid: '1.2.840.113549.1.9.1', ia5: true, max: 255 },
  EMAILADDRESS: { oid: '1.2.840.113549.1.9.1', ia5: true, max: 255 },
};

/** The characters X.680 allows in a PrintableString. */
const PRINTABLE = /^[A-Za-z0-9 '()+,\-./:=?]*$/;

/** Characters RFC 4514 says are escaped with a backslash. */
const ESCAPABLE = new Set([' ', '"', '#', '+', ',', ';', '<', '=', '>', '\\']);

function bad(part: string, why: string): ScHsmError {
  return new ScHsmError(
    'INVALID_ARGUMENT',
    `the subject part "${part.length > 40 ? `${part.slice(0, 40)}…` : part}" ${why}; write a distinguished name such as "CN=Example CA, O=Example, C=DE" (RFC 4514: TYPE=value separated by commas, \\, for a comma in a value)`,
  );
}

/** Splits at unescaped `sep`, keeping escapes in the pieces. */
function splitUnescaped(s: string, sep: string): string[] {
  const out: string[] = [];
  let cur = '';
  for (let i = 0; i < s.length; i++) {
    const c = s[i]!;
    if (c === '\\' && i + 1 < s.length) {
      cur += c + s[i + 1];
      i++;
    } else if (c === sep) {
      out.push(cur);
      cur = '';
    } else cur += c;
  }
  out.push(cur);
  return out;
}

/** Removes the escapes of a value (RFC 4514 §3: `\` + special character, or `\` + two hex digits). */
function unescapeValue(raw: string, part: string): string {
  const bytes: number[] = [];
  const pushText = (t: string) => bytes.push(...Buffer.from(t, 'utf8'));
  for (let i = 0; i < raw.length; i++) {
    const c = raw[i]!;
    if (c === '\\') {
      const h = raw.slice(i + 1, i + 3);
      if (/^[0-9A-Fa-f]{2}$/.test(h)) {
        bytes.push(Number.parseInt(h, 16));
        i += 2;
      } else if (i + 1 < raw.length && ESCAPABLE.has(raw[i + 1]!)) {
        pushText(raw[i + 1]!);
        i++;
      } else throw bad(part, 'has a backslash that escapes nothing (use \\\\ for a backslash)');
    } else if (c === '"' || c === ';' || c === '<' || c === '>') {
      throw bad(part, `has an unescaped ${c} (write \\${c})`);
    } else {
      const cp = raw.codePointAt(i)!;
      const ch = String.fromCodePoint(cp);
      pushText(ch);
      i += ch.length - 1;
    }
  }
  try {
    return new TextDecoder('utf-8', { fatal: true }).decode(Uint8Array.from(bytes));
  } catch {
    throw bad(part, 'has \\XX escapes that are not UTF-8');
  }
}

/** Trims unescaped spaces at both ends (an escaped trailing space `\ ` is kept). */
function trimValue(raw: string): string {
  let s = raw.replace(/^ +/, '');
  while (s.endsWith(' ') && !/(^|[^\\])(\\\\)*\\ $/.test(s)) s = s.slice(0, -1);
  return s;
}

/**
 * Parses a subject (or issuer) distinguished name; INVALID_ARGUMENT names the part that is wrong.
 */
export function parseDistinguishedName(subject: string): DnRdn[] {
  if (typeof subject !== 'string' || subject.trim() === '') {
    throw new ScHsmError(
      'INVALID_ARGUMENT',
      'the subject is empty; write a distinguished name such as "CN=Example CA, O=Example, C=DE"',
    );
  }
  checkText(subject, 'the subject');
  const rdns: DnRdn[] = [];
  for (const rdnText of splitUnescaped(subject, ',')) {
    if (rdnText.trim() === '') throw bad(subject, 'has an empty part between commas');
    const rdn: DnRdn = [];
    for (const avaText of splitUnescaped(rdnText, '+')) {
      const part = avaText.trim();
      const eq = part.indexOf('=');
      if (eq < 0) throw bad(part, 'is not TYPE=value');
      const type = part.slice(0, eq).trim();
      let oid: string;
      let kind: AttributeKind | undefined;
      if (/^\d+(\.\d+)+$/.test(type)) {
        if (!/^[0-2]\./.test(type)) throw bad(part, `has an OID that cannot exist (${type})`);
        oid = type;
        kind = Object.values(ATTRIBUTES).find((k) => k.oid === oid);
      } else {
        kind = ATTRIBUTES[type.toUpperCase()];
        if (!kind)
          throw bad(
            part,
            `has an unknown attribute name "${type}" (known: CN, O, OU, C, L, ST, STREET, E, DC, SERIALNUMBER, T, GN, SN, UID, …, or a dotted OID)`,
          );
        oid = kind.oid;
      }
      const rawValue = trimValue(part.slice(eq + 1));
      if (rawValue === '') throw bad(part, 'has an empty value');
      if (rawValue.startsWith('#')) throw bad(part, 'starts with # (write \\# for a literal #)');
      const value = unescapeValue(rawValue, part);
      checkText(value, `the subject part "${type}"`);
      const chars = [...value].length;
      if (kind?.max !== undefined && chars > kind.max)
        throw bad(part, `has a value of ${chars} characters (at most ${kind.max})`);
      if (kind?.country && !/^[A-Za-z]{2}$/.test(value))
        throw bad(part, 'is not a two-letter country code (ISO 3166, e.g. C=DE)');
      let encoding: DnValueEncoding;
      if (kind?.ia5) {
        if (!/^[\x20-\x7e]*$/.test(value)) throw bad(part, 'must be ASCII');
        encoding = 'ia5String';
      } else encoding = PRINTABLE.test(value) ? 'printableString' : 'utf8String';
      rdn.push({ type: /^\d/.test(type) ? type : type.toUpperCase(), oid, value, encoding });
    }
    rdns.push(rdn);
  }
  return rdns;
}
