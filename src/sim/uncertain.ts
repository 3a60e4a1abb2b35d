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

/**
 * MANAGE KEY DOMAIN `80 52` with P2 beyond the card's key domains (INITIALIZE tag 97; one domain,
 * 0, without it), or a P1 other than 00–04: 6A86, which pypicohsm relies on to count the domains
 * (spec §3.10, §3.21). A card initialized without tag 97 also answers 6A86 to P1 ≠ 00.
 */
export const OTHER_KEY_DOMAIN_SW = SW.WRONG_P1P2;

/**
 * Key domains (firmware 3.x, spec §3.10; only pico-hsm and pypicohsm describe them, so every choice
 * below follows pico unless noted):
 * - status or import on a domain slot that was never created (or was deleted): 6A88;
 * - creating (P1=01), deleting (03), deleting the DKEK (04) of a domain and importing a share into a
 *   domain other than 0 need the user's security status — the PIN, or the custodians on a PKA
 *   device, or both with option 0010, as every other key-management command: 6982 without it (pico
 *   answers 6985; 6982 is what the SmartCard-HSM answers for every other key-management command
 *   unauthenticated). Domain 0 shares are imported without it, as sc-hsm-tool does;
 * - creating a domain that exists: 6A86 (pico); a share count of 0: 6A80 (pico would create a
 *   domain that can never hold a DKEK);
 * - deleting a domain that still holds keys: 6A89 (pico "file exists"); keys made without tag 92
 *   belong to domain 0;
 * - a successful delete answers 6A88, the status of the now unused domain (pico; pypicohsm reads
 *   6A88 as success); deleting an unused domain: 6A86 (pico);
 * - deleting the DKEK of a domain whose DKEK the card generated (share count 0) is refused with
 *   6985: there are no shares to import it again;
 * - XKEK domains (P1=02) need a PKI-as-a-Service group key this card never has: the membership data
 *   cannot verify, 6985 (pico's answer to membership data that does not verify);
 * - key generation with tag 92 naming a domain beyond the slots: 6A86; an unused domain: 6A88.
 */
export const DOMAIN_UNUSED_SW = SW.REF_NOT_FOUND;
export const DOMAIN_MANAGE_NEEDS_PIN_SW = SW.SECURITY_STATUS;
export const DOMAIN_IN_USE_SW = SW.WRONG_P1P2;
export const DOMAIN_SHARES_INVALID_SW = SW.WRONG_DATA;
export const DOMAIN_HAS_KEYS_SW = SW.EXISTS;
export const DOMAIN_DELETED_SW = SW.REF_NOT_FOUND;
export const DOMAIN_DELETE_UNUSED_SW = SW.WRONG_P1P2;
export const DOMAIN_RANDOM_DKEK_DELETE_SW = SW.CONDITIONS;
export const XKEK_DOMAIN_SW = SW.CONDITIONS;

/**
 * Which domain a key belongs to is not reported by any command in the spec. On a card initialized
 * with key domains, the key's FCP (SELECT of CCxx) carries `92 01 <domain>` in the same
 * proprietary template as the restrictions (KEY_FCP_RESTRICTIONS_TAG); keys of a card without
 * key domains carry none (they are all in domain 0). Hosts that find no tag 92 report the domain
 * as unknown. Keys generated without tag 92 on a card with key domains are in domain 0.
 */
export const KEY_FCP_DOMAIN = true;

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
 * CIPHER `80 78` (spec §3.15) with more data than fits the APDU buffer of JCOP 3 (1232 bytes per
 * APDU, spec §2, minus the 9 bytes of an extended header and Le): 6700. The card keeps no CBC or
 * CMAC state between commands, so hosts split CBC data themselves (sc-hsm-ts: 1024 bytes per APDU).
 * Data that is no whole number of blocks for 10/11 is 6A80 (sc-hsm-embedded's "invalid data"),
 * an AES algorithm on an RSA/EC key, or an unknown algorithm, 6A81.
 */
export const CIPHER_MAX_DATA = 1223;

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

/**
 * Where a host reads a key's restrictions (spec §3.11, §4 "CB key meta data" UNCERTAIN): CardContact's
 * Key Manager and PKCS#11 module show the algorithm list and the use counter left, so the card
 * answers them somewhere; the spec does not say where. Our card puts them into the FCP of SELECT
 * `CCxx` as an ISO 7816-4 proprietary template `A5 { 90 04 count-left, 91 nn algorithms }`, each
 * tag only when the key has it (same tags as at generation). A host that finds no `A5` (a real card
 * that answers otherwise) reports the restrictions as unknown, never as "none".
 */
export const KEY_FCP_RESTRICTIONS_TAG = 0xa5;

/*
 * The key-use counter is not part of the key blob (spec §8.1 has no field for it; CardContact's
 * DKEK.js writes none): a wrapped and unwrapped (or restored) key has no counter. The algorithm
 * list travels in the blob and is kept (dkek.ts wrapKey/unwrapKey).
 */

/**
 * DERIVE EC KEY `80 76 src dst` (spec §3.15; pico `cmd_derive_asym`, no CardContact source):
 * data = `98` ‖ tweak (raw big-endian, 1..field-length bytes); d' = d + tweak mod n (pico reduces
 * mod p, a bug for curves with n < p; the spec says n). No answer data. Refusals:
 * source not an EC key 6A81 (as SIGN with an algorithm that does not fit the key); algorithm list
 * without `98` 6A81 (pico 6985, but 6A81 is the firmware's answer for every other disallowed use);
 * exhausted counter 6984 and one use counted on success; destination occupied 6A89 like key
 * generation (pico overwrites); destination = source 6A89 as well; tweak ≡ −d (d' = 0) or tweak
 * ≥ n: 6A80. What the derived key inherits: DERIVE_INHERITS.
 */
export const DERIVE_DST_OCCUPIED_SW = SW.EXISTS;
export const DERIVE_NOT_ALLOWED_SW = SW.FUNC_NOT_SUPPORTED;

/**
 * The key DERIVE EC KEY makes inherits the source key's key domain (tag 92), algorithm list (tag
 * 91) and use counter, the latter at what the source has left once the derivation has counted
 * (source with N uses → source N−1, derived key N−1). Not documented; pico stores none of them,
 * which would let anyone with the PIN escape every restriction of a key that lists DERIVE: a child
 * without algorithm list can be wrapped (and d = d' − tweak recovered), one without counter is
 * unlimited, one outside the source's domain is wrapped under another domain's DKEK. A
 * security-minded firmware keeps a child no less restricted than its parent; the host checks what
 * the card reports for the child and warns when it came out less restricted (src/sc-hsm/derive.ts).
 */
export const DERIVE_INHERITS = true;

/*
 * Public key authentication (spec §3.18, src/sim/pka.ts). No CardContact source; pico-hsm and
 * OpenSC are the references, and where they leave a choice the card takes the stricter one:
 * - Registration (`80 54 00 00` with data) needs no PIN or PKA: sc-hsm-tool --register-public-key
 *   sends none, and it is documented to work right after --initialize (pico demands a PIN). It is
 *   allowed while a slot is free; a full set answers 6A84 (pico: "file full").
 * - A registered CHR twice is accepted, as pico does (the host refuses it first).
 * - Without option 0010 the n-of-m keys REPLACE the user PIN (CardContact's "public key
 *   authentication instead of PIN"; pico accepts either, which would let the PIN bypass the
 *   custodians): VERIFY 81, with or without a PIN, answers 9000 once M keys are authenticated and
 *   PKA_PIN_REPLACED_SW before, counting no try. sc-hsm-tool prints "Public key authentication
 *   active." for the SW OpenSC maps to SC_ERROR_CARD_CMD_FAILED, which this one is. With 0010 the
 *   PIN is verified as usual and both are needed.
 * - A GET CHALLENGE replaces the pending challenge and drops keys authenticated towards an n-of-m
 *   not yet complete (pico drops them always); a complete one stays until SELECT or reset.
 * - The custodian signs SHA-256(device CHR ‖ challenge) (pico): ECDSA as DER, as SIGN answers it,
 *   or RSA PKCS#1 v1.5. A wrong signature answers PKA_AUTH_FAILED_SW (ISO 7816-4 "verification
 *   failed"; pico 6985) and leaves the challenge pending.
 * - PSO VERIFY CERTIFICATE of a certificate not signed by the key chosen with MSE SET DST answers
 *   PKA_VERIFY_CERT_FAILED_SW (pico: 6A80 as well). The card trusts its own root only.
 */
export const PKA_PIN_REPLACED_SW = 0x6400;
export const PKA_AUTH_FAILED_SW = 0x6300;
export const PKA_VERIFY_CERT_FAILED_SW = SW.WRONG_DATA;

/**
 * A timing profile's key capacity (src/sim/profile.ts, e.g. 300 EC / 38 RSA-2048 keys on the
 * Nitrokey HSM 2, from its FAQ) reached: GAKP, GENERATE SYMMETRIC KEY and UNWRAP answer 6A84
 * ("not enough memory in the file", ISO 7816-4), the status word the firmware gives when its
 * EEPROM is full — the same as our byte-count model (EEPROM_FREE_BYTES) answers.
 */
export const CAPACITY_FULL_SW = SW.MEMORY_FULL;

/**
 * A command APDU longer than a timing profile's `maxApdu` (1462 bytes on JCOP 2.4.1r3): 6700,
 * wrong length. JCOP cannot take it into its APDU buffer; what reaches the host is not documented
 * (a reader may report a transmission error instead). Responses are not limited: OpenSC's sc-hsm
 * driver assumes the card sends extended-length answers of any size (max_recv_size 0) and limits
 * only what it sends.
 */
export const TOO_LONG_APDU_SW = SW.WRONG_LENGTH;

/**
 * Secure messaging after chip authentication (spec §3.19, src/sim/secure-messaging.ts). No
 * CardContact source; TR-03110 / ICAO 9303-11 and pico-hsm's eac.c are the references:
 * - A fault in a protected command (wrong or missing MAC, a data object other than 85/87/97/8E,
 *   a bad padding) and a protected command without an SM session answer plain 69 88 ("SM data
 *   objects incorrect") and end SM together with the security state it protected (TR-03110).
 * - A plain command while SM is active ends SM and the PIN state as well (TR-03110: the session
 *   is aborted by an unprotected APDU); GET RESPONSE is the exception (it fetches a protected answer).
 * - The MAC of a command is AES-CMAC over pad(SSC ‖ pad(header) ‖ DOs) with padding method 2
 *   always applied, as ICAO 9303-11 writes it; pico omits the final padding block when the
 *   command carries no DO at all.
 * - Odd INS (READ/UPDATE BINARY) carry their data in 85 without the padding-content byte
 *   (ISO 7816-4); 87 otherwise. Both are accepted.
 * - SELECT of the applet inside SM keeps SM (it resets the PIN state as always); a reset ends it.
 */
export const SM_ERROR_SW = 0x6988;

/**
 * Session PIN (spec §3.20): `80 5A 01 81` outside SM answers 6982, on a device without option 0004
 * 6A81 (function not supported; pico does not check the option), before the user is authenticated
 * 6982. The PIN is 8 random bytes (pico), a new one on each call, kept until the card is reset or
 * powered off (option 0004 "cleared on reset"; 000C's explicit clear is not modelled). VERIFY inside
 * SM with exactly those bytes verifies the user while the PIN is not blocked; other bytes are
 * checked as the user PIN and a wrong one costs a try, as any VERIFY does.
 */
export const SESSION_PIN_DISABLED_SW = SW.FUNC_NOT_SUPPORTED;
