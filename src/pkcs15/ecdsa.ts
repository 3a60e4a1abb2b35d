/**
 * ECDSA signature forms: the card's SIGN answers DER `30 { 02 r, 02 s }` (spec §3.13), CV
 * certificates carry plain `r ‖ s`, each at field length (spec §3.11, §5.1).
 */
import { concat, padStart, stripLeadingZeros } from '../util/bytes.js';
import { readAll, tlv } from '../util/tlv.js';
import { encodeUnsignedInteger, invalid, malformed, readFirst, TAG } from './der.js';

/**
 * DER ECDSA-Sig-Value → `r ‖ s`, each left-padded to `size` bytes (the field length, 66 for
 * P-521). Non-minimal INTEGERs are accepted and read as unsigned; a value longer than `size` is MALFORMED_DATA.
 */
export function ecdsaDerToPlain(der: Uint8Array, size: number): Uint8Array {
  if (!Number.isInteger(size) || size <= 0 || size > 1024)
    invalid(`size must be a positive byte length, got ${size}`);
  const what = 'ECDSA DER signature';
  const seq = readFirst(der, TAG.SEQUENCE, what);
  if (seq.end !== der.length) malformed(`${what}: ${der.length - seq.end} bytes after the SEQUENCE`);
  const parts = readAll(seq.value);
  if (parts.length !== 2 || parts.some((p) => p.tag !== TAG.INTEGER || p.value.length === 0)) {
    malformed(`${what}: expected SEQUENCE { INTEGER r, INTEGER s }`);
  }
  return concat(
    ...parts.map((p, i) => {
      const v = stripLeadingZeros(p.value);
      if (v.length > size) malformed(`${what}: ${i ? 's' : 'r'} is longer than ${size} bytes`);
      return padStart(v, size);
    }),
  );
}

/** `r ‖ s` (two halves of equal length) → DER ECDSA-Sig-Value with minimal INTEGERs. */
export function ecdsaPlainToDer(rs: Uint8Array): Uint8Array {
  if (!(rs instanceof Uint8Array) || rs.length === 0 || rs.length % 2 !== 0) {
    invalid('plain ECDSA signature must be r ‖ s with two halves of equal length');
  }
  const half = rs.length / 2;
  return tlv(
    TAG.SEQUENCE,
    encodeUnsignedInteger(rs.subarray(0, half)),
    encodeUnsignedInteger(rs.subarray(half)),
  );
}
