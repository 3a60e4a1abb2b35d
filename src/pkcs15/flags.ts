/**
 * PKCS#15 flag words as OpenSC's `pkcs15.h` defines them (spec §6, table "Flag values").
 * Each is a bit mask; on the card they are BIT STRINGs (bit i counted from the MSB).
 */

/** CommonObjectFlags (spec §6). OpenSC writes 0x03 (private, modifiable) for keys. */
export const OBJECT_FLAGS = { PRIVATE: 0x01, MODIFIABLE: 0x02 } as const;

/** KeyUsageFlags (spec §6). */
export const KEY_USAGE = {
  ENCRYPT: 0x001,
  DECRYPT: 0x002,
  SIGN: 0x004,
  SIGN_RECOVER: 0x008,
  WRAP: 0x010,
  UNWRAP: 0x020,
  VERIFY: 0x040,
  VERIFY_RECOVER: 0x080,
  DERIVE: 0x100,
  NON_REPUDIATION: 0x200,
} as const;

/** KeyAccessFlags (spec §6). OpenSC shows 0x1D when a PRKD carries none. */
export const KEY_ACCESS = {
  SENSITIVE: 0x01,
  EXTRACTABLE: 0x02,
  ALWAYS_SENSITIVE: 0x04,
  NEVER_EXTRACTABLE: 0x08,
  LOCAL: 0x10,
} as const;

/** TokenFlags of EF.TokenInfo (spec §6, §6.6). OpenSC writes PRN_GENERATION. */
export const TOKEN_FLAGS = {
  READONLY: 0x01,
  LOGIN_REQUIRED: 0x02,
  PRN_GENERATION: 0x04,
  EID_COMPLIANT: 0x08,
} as const;
