/**
 * Every behaviour of the virtual card that the sources could not pin down for real CardContact
 * firmware (spec §13 and the **UNCERTAIN** marks), in one place, each with the reason for the
 * choice. Handlers import these constants instead of hard-coding the choice.
 */
import { SW } from './sw.js';

/**
 * READ BINARY when fewer than Ne bytes remain (spec §3.2, §13 item 10): answer the remaining
 * bytes (possibly none) with 6282. OpenSC, sc-hsm-embedded and scsh all accept 6282 with data and
 * ISO 7816-4 defines it as "end of file reached before reading Ne bytes"; an offset beyond the end
 * is 6B00 ("offset outside the EF"), which no host produces.
 */
export const READ_PAST_END_SW = SW.EOF;
export const READ_OFFSET_BEYOND_SW = SW.WRONG_PARAMS;

/** EF.DIR 2F00: absent on our card (spec §4: 6A82 is fine for OpenSC; pico synthesises one). */
export const HAS_EF_DIR = false;

/**
 * EF FCP: `62 { 80 02 size, 82 01 01, 83 02 FID, 8A 01 05 }`. Tag 80 ("number of data bytes",
 * ISO 7816-4) for the size, which OpenSC parses like 81 (spec §3.1, §13 item 1).
 * Applet FCP: `62 { 82 01 38, 84 AID, 85 05 opt opt type maj min }` — only tag 85 is relied upon.
 */
export const EF_SIZE_TAG = 0x80;

/**
 * Key objects (CCxx) are never readable: READ BINARY answers 6982 ("security status not
 * satisfied" — the access condition is NEVER). UPDATE of a key FID, DELETE of CC00 and of 2F02 are
 * refused with 6982 as well: the device key and its certificates survive everything (spec §3.9).
 */
export const KEY_READ_SW = SW.SECURITY_STATUS;
export const PROTECTED_OBJECT_SW = SW.SECURITY_STATUS;

/**
 * ENUMERATE OBJECTS order (spec §13 item 2): keys (CCxx, ascending) first, then EFs with the
 * prefixes below in ascending FID order. 2Fxx files are not listed.
 */
export const ENUMERATED_PREFIXES = [0xc4, 0xc8, 0xc9, 0xca, 0xcc, 0xcd, 0xce, 0xcf] as const;

/**
 * The wrong try that exhausts the user PIN answers 63C0; later tries and queries answer 6983.
 * The trace README lists pico's 6983 on the blocking try as a deviation from real firmware.
 */
export const BLOCKING_TRY_SW = 0x63c0;

/**
 * VERIFY 88 with data (spec §3.6): no OpenSC/CardContact host sends it. We verify the SO-PIN,
 * count down the SO retry counter like any PIN and keep the result only for the session.
 */
export const VERIFY_SO_PIN_SUPPORTED = true;

/**
 * Re-INITIALIZE with a wrong SO-PIN (spec §3.9, §13 item 4): 63Cx with the decremented SO counter
 * (OpenSC reads it as "PIN incorrect" and the Nitrokey forum shows the counter going down).
 */
export const INIT_WRONG_SO_PIN_ANSWERS_TRIES = true;

/**
 * `80 50 00 00` without data (spec §3.9, §13 item 5): 7 bytes `free(4) 00 major minor`,
 * as pico and pypicohsm read it.
 */
export const INIT_STATUS_QUERY = true;

/**
 * Free memory model (spec §4): CardContact's Key Manager showed 78840 free bytes on a fresh
 * Nitrokey HSM 2. Every key and EF costs its stored size plus a fixed overhead; 6A84 when full.
 */
export const EEPROM_FREE_BYTES = 78_840;
export const OBJECT_OVERHEAD = 16;

/**
 * DKEK status / import when no DKEK was configured (no tag 92) or the card is not initialized
 * (spec §3.10, §13 item 6): 6D00. sc-hsm-tool treats exactly that SW as "not supported or not
 * initialized for key shares" (comment by CardContact in sc-hsm-tool.c) and prints nothing.
 */
export const NO_DKEK_SW = SW.INS_NOT_SUPPORTED;

/**
 * Card-generated DKEK (INITIALIZE 92 = 00; spec §12 pico answers `01 00`): status `00 00 KCV` —
 * zero shares declared, none outstanding, the KCV of the random DKEK.
 */
export const RANDOM_DKEK_SHARE_COUNT = 0;

/** Importing a share when none is outstanding (spec §3.10; pico 6986): 6985 conditions not satisfied. */
export const EXTRA_SHARE_SW = SW.CONDITIONS;

/** Key domain P1/P2 other than 00 00 (only domain 0 exists here): P1 ≠ 00 → 6A86, P2 ≠ 00 → 6A86. */
export const OTHER_KEY_DOMAIN_SW = SW.WRONG_P1P2;

/**
 * GAKP / GENERATE SYMMETRIC KEY / UNWRAP while DKEK shares are still outstanding: 6985. The
 * SmartCard-HSM blocks key generation until the DKEK import is complete so that every key can be
 * exported with the final DKEK (CardContact documentation as remembered; not traced).
 */
export const KEYGEN_WHILE_DKEK_PENDING_SW = SW.CONDITIONS;

/**
 * Key generation or UNWRAP into an occupied key reference: 6A89 ("file already exists");
 * sc-hsm-tool's `--force` deletes CCxx before unwrapping, which only makes sense if the card refuses
 * to overwrite. OpenSC always picks a free id for GAKP, so no host relies on overwriting.
 */
export const KEY_OCCUPIED_SW = SW.EXISTS;

/** GAKP P2 (signing key for the outer signature, spec §13 item 14): ignored, CC00 always signs. */
export const GAKP_P2_IGNORED = true;

/** Missing key for SIGN/DECIPHER/WRAP/CIPHER/DERIVE: 6A88 "referenced data not found" (vs 6A82). */
export const KEY_NOT_FOUND_SW = SW.REF_NOT_FOUND;

/** RSA-PSS salt length (spec §13 item 8): the hash length, as mbedTLS/pico and most tokens do. */
export const PSS_SALT = 'hash-length' as const;

/**
 * ECDH answer (spec §3.14, §13 item 3): `04 ‖ X ‖ Y` like a JavaCard ALG_EC_SVDP_DH_PLAIN_XY
 * agreement; hosts take bytes 1..1+fieldLen, so OpenSC works either way.
 */
export const ECDH_RETURNS_Y = true;

/**
 * AES derive `99` (spec §13 item 12): the real KDF is unknown (CardContact calls it SP 800-56C,
 * pico uses HKDF). We use HKDF-SHA-256 with an empty salt, the command data as info, 32 bytes out
 * (or Ne when smaller).
 */
export const AES_DERIVE_KDF = 'hkdf-sha256' as const;

/**
 * WRAP of RSA keys (spec §13 item 9): type 06 (CRT) for keys up to 2048 bits, type 05 (private
 * exponent) above — JavaCard JCOP holds CRT keys, and CardContact's DKEK.js converts keys above
 * 2048 bits to type 05 before import, which suggests the firmware keeps large keys that way.
 */
export function rsaWrapForm(bits: number): 'crt' | 'plain' {
  return bits <= 2048 ? 'crt' : 'plain';
}

/** UNWRAP with a blob that fails KCV, MAC or parsing: 6A80, nothing more on the wire (spec §3.16). */
export const UNWRAP_BAD_BLOB_SW = SW.WRONG_DATA;

/** WRAP/UNWRAP with no DKEK configured: 6D00 (sc-hsm-tool: "Card not initialized for key wrap"). */
export const WRAP_NO_DKEK_SW = SW.INS_NOT_SUPPORTED;
/** WRAP/UNWRAP while DKEK shares are outstanding: 6985. */
export const WRAP_DKEK_INCOMPLETE_SW = SW.CONDITIONS;

/** WRAP of a key whose algorithm list lacks 92: 6A81 (algorithm not allowed for this key). */
export const WRAP_NOT_ALLOWED_SW = SW.FUNC_NOT_SUPPORTED;

/** Exhausted key-use counter (spec §13 item 13): 6984 as CardContact's middleware expects. */
export const USE_COUNTER_EXHAUSTED_SW = SW.NOT_USABLE;

/** SELECT of a key FID CCxx: an FCP with size 0 (keys are listed by ENUMERATE, so they "exist"). */
export const KEY_SELECT_SIZE = 0;

/**
 * SIGN/DECIPHER/WRAP with the device key CC00: refused with 6982. The device authentication key
 * serves chip authentication and GAKP outer signatures only.
 */
export const DEVICE_KEY_USE_SW = SW.SECURITY_STATUS;

/**
 * DKEK status while shares are outstanding: the KCV field is 8 zero bytes (there is no DKEK yet;
/**
 * CIPHER `80 78` (spec §3.15) with more data than fits the APDU buffer of JCOP 3 (1232 bytes per
 * APDU, spec §2, minus the 9 bytes of an extended header and Le): 6700. The card keeps no CBC or
 * CMAC state between commands, so hosts split CBC data themselves (sc-hsm-ts: 1024 bytes per APDU).
 * Data that is no whole number of blocks for 10/11 is 6A80 (sc-hsm-embedded's "invalid data"),
 * an AES algorithm on an RSA/EC key, or an unknown algorithm, 6A81.
 */
export const CIPHER_MAX_DATA = 1223;

 * sc-hsm-tool prints "import pending" and ignores the field).
 */
export const KCV_WHILE_PENDING_IS_ZERO = true;

/**
 * With the card option `kcvAfterLogin` (VirtualCardOptions, kept in the state file): the DKEK
 * status answers an all-zero KCV, also for a complete DKEK, until the user PIN is verified in the
 * session. pico-hsm does this because it keeps the DKEK encrypted under a PIN-derived key
 * (spec §12); CardContact firmware shows the KCV without login, hence off by default. Hosts must
 * read such a zero as "unknown until login", never as a mismatch.
 */
export const KCV_BEFORE_LOGIN_IS_ZERO = true;
