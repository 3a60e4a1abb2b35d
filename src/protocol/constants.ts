/**
 * The ground floor: SmartCard-HSM facts as named constants (spec/sc-hsm-protocol.md), read by
 * every layer — the transports' reader scan, the codecs, the virtual card and the session. Data
 * only: no behaviour here, and nothing of ours is imported but the byte helpers.
 */
import { fromHex } from '../util/bytes.js';

/** Application identifier E8 ‖ OID 1.3.6.1.4.1.24991.2.1 (spec §1.3). */
export const AID = fromHex('E82B0601040181C31F0201');

/** ATRs (spec §1.1). The Nitrokey HSM 2 presents `ATR_NITROKEY_HSM2`. */
export const ATR_NITROKEY_HSM2 = fromHex('3BDE18FF8191FE1FC38031815448534D317380214081071C');
export const ATR_NITROKEY_HSM = fromHex('3BFE1800008131FE458031815448534D31738021408107FA');
export const ATR_JCOP3_FAST = fromHex('3BDE96FF8191FE1FC38031815448534D3173802140810792');
export const ATR_CONTACTLESS = fromHex('3B8E80018031815448534D3173802140810718');
export const ATR_RFID = fromHex('3B8E80018031815448534D3173802140FFFF9E');
/** Every ATR that identifies a SmartCard-HSM without a SELECT probe. */
export const KNOWN_ATRS: readonly { atr: Uint8Array; name: string }[] = [
  { atr: ATR_NITROKEY_HSM2, name: 'Nitrokey HSM 2 / SmartCard-HSM 4K (JCOP 3)' },
  { atr: ATR_NITROKEY_HSM, name: 'Nitrokey HSM / SmartCard-HSM (JCOP 2.4.1)' },
  { atr: ATR_JCOP3_FAST, name: 'SmartCard-HSM (JCOP 3)' },
  { atr: ATR_CONTACTLESS, name: 'SmartCard-HSM (contactless)' },
  { atr: ATR_RFID, name: 'SmartCard-HSM RFID' },
];

/** Instruction bytes (spec §3.0). */
export const INS = {
  SELECT: 0xa4,
  READ_BINARY: 0xb1,
  UPDATE_BINARY: 0xd7,
  DELETE_FILE: 0xe4,
  ENUMERATE_OBJECTS: 0x58,
  VERIFY: 0x20,
  CHANGE_REFERENCE_DATA: 0x24,
  RESET_RETRY_COUNTER: 0x2c,
  INITIALIZE: 0x50,
  MANAGE_KEY_DOMAIN: 0x52,
  PKA: 0x54,
  GENERATE_ASYMMETRIC_KEY_PAIR: 0x46,
  GENERATE_SYMMETRIC_KEY: 0x48,
  SIGN: 0x68,
  DECIPHER: 0x62,
  DERIVE_EC_KEY: 0x76,
  CIPHER: 0x78,
  WRAP_KEY: 0x72,
  UNWRAP_KEY: 0x74,
  GET_CHALLENGE: 0x84,
  GET_RESPONSE: 0xc0,
  MSE: 0x22,
  PSO: 0x2a,
  EXTERNAL_AUTHENTICATE: 0x82,
  GENERAL_AUTHENTICATE: 0x86,
  /** Session PIN `80 5A 01 81` (spec §3.20), only inside secure messaging. */
  SESSION_PIN: 0x5a,
} as const;

export const CLA_ISO = 0x00;
export const CLA_PROPRIETARY = 0x80;

/** PIN references (P2 of VERIFY etc., spec §3.6). */
export const PIN_USER = 0x81;
export const PIN_SO = 0x88;
export const PIN_PINPAD = 0x85;
export const PIN_BIO = 0x86;

/** File identifier prefixes (high byte of the FID, spec §4). */
export const PREFIX = {
  KEY: 0xcc,
  PRKD: 0xc4,
  EE_CERTIFICATE: 0xce,
  CA_CERTIFICATE: 0xca,
  CD: 0xc8,
  DCOD: 0xc9,
  DATA_PUBLIC: 0xcf,
  DATA_PRIVATE: 0xcd,
} as const;

/** Reserved EFs (spec §4). */
export const EF = {
  DIR: 0x2f00,
  DEVICE_CERTIFICATES: 0x2f02,
  TOKEN_INFO: 0x2f03,
  UNWRAP_TRANSFER: 0x2f10,
} as const;

/** INITIALIZE DEVICE tags (spec §3.9). */
export const INIT_TAG = {
  OPTIONS: 0x80,
  USER_PIN: 0x81,
  SO_PIN: 0x82,
  USER_PIN_RETRY: 0x91,
  DKEK_SHARES: 0x92,
  PUBLIC_KEY_AUTH: 0x93,
  BIO_SERVER_1: 0x95,
  BIO_SERVER_2: 0x96,
  KEY_DOMAINS: 0x97,
} as const;

/** Device option word bits (INITIALIZE tag 80, FCP tag 85 bytes 0–1; spec §3.9). */
export const OPTION = {
  RESET_RETRY_COUNTER: 0x0001,
  TRANSPORT_PIN: 0x0002,
  SESSION_PIN: 0x0004,
  SESSION_PIN_EXPLICIT: 0x000c,
  REPLACE_PKA: 0x0008,
  COMBINED_AUTH: 0x0010,
  RRC_COUNTER_ONLY: 0x0020,
} as const;

/** Algorithm identifiers (P2 of SIGN / DECIPHER / CIPHER / WRAP / UNWRAP; spec §3.13–3.16). */
export const ALGO = {
  RSA_RAW: 0x20,
  RSA_DECRYPT_RAW: 0x21,
  RSA_DECRYPT_PKCS1: 0x22,
  RSA_DECRYPT_OAEP: 0x23,
  RSA_PKCS1_DIGESTINFO: 0x30,
  RSA_PKCS1_SHA1: 0x31,
  RSA_PKCS1_SHA224: 0x32,
  RSA_PKCS1_SHA256: 0x33,
  RSA_PKCS1_SHA384: 0x34,
  RSA_PKCS1_SHA512: 0x35,
  RSA_PSS: 0x40,
  RSA_PSS_SHA1: 0x41,
  RSA_PSS_SHA224: 0x42,
  RSA_PSS_SHA256: 0x43,
  RSA_PSS_SHA384: 0x44,
  RSA_PSS_SHA512: 0x45,
  ECDSA: 0x70,
  ECDSA_SHA1: 0x71,
  ECDSA_SHA224: 0x72,
  ECDSA_SHA256: 0x73,
  ECDSA_SHA384: 0x74,
  ECDSA_SHA512: 0x75,
  ECDH: 0x80,
  WRAP: 0x92,
  UNWRAP: 0x93,
  AES_CBC_ENCRYPT: 0x10,
  AES_CBC_DECRYPT: 0x11,
  AES_CMAC: 0x18,
  AES_DERIVE: 0x99,
  /** DERIVE EC KEY `80 76`: the first data byte, and the algorithm-list entry that permits it (spec §3.15). */
  EC_DERIVE: 0x98,
} as const;

/**
 * Names of the algorithm bytes a key's algorithm list (GAKP/GSK tag 91, spec §3.11–3.12) may hold:
 * exactly the P2 values of SIGN (§3.13), DECIPHER (§3.14), CIPHER (§3.15), WRAP/UNWRAP (§3.16)
 * and the first byte of DERIVE EC KEY (§3.15). `keygen --algorithms` takes these names; `keys`
 * and `dump` print them. Names are upper case; a byte without a name is shown as `0xNN`.
 */
export const ALGORITHM_NAMES: Readonly<Record<string, number>> = {
  'RSA-RAW': ALGO.RSA_RAW,
  'RSA-DECRYPT-RAW': ALGO.RSA_DECRYPT_RAW,
  'RSA-DECRYPT-PKCS1': ALGO.RSA_DECRYPT_PKCS1,
  'RSA-DECRYPT-OAEP': ALGO.RSA_DECRYPT_OAEP,
  'RSA-PKCS1': ALGO.RSA_PKCS1_DIGESTINFO,
  'RSA-PKCS1-SHA1': ALGO.RSA_PKCS1_SHA1,
  'RSA-PKCS1-SHA224': ALGO.RSA_PKCS1_SHA224,
  'RSA-PKCS1-SHA256': ALGO.RSA_PKCS1_SHA256,
  'RSA-PKCS1-SHA384': ALGO.RSA_PKCS1_SHA384,
  'RSA-PKCS1-SHA512': ALGO.RSA_PKCS1_SHA512,
  'RSA-PSS': ALGO.RSA_PSS,
  'RSA-PSS-SHA1': ALGO.RSA_PSS_SHA1,
  'RSA-PSS-SHA224': ALGO.RSA_PSS_SHA224,
  'RSA-PSS-SHA256': ALGO.RSA_PSS_SHA256,
  'RSA-PSS-SHA384': ALGO.RSA_PSS_SHA384,
  'RSA-PSS-SHA512': ALGO.RSA_PSS_SHA512,
  ECDSA: ALGO.ECDSA,
  'ECDSA-SHA1': ALGO.ECDSA_SHA1,
  'ECDSA-SHA224': ALGO.ECDSA_SHA224,
  'ECDSA-SHA256': ALGO.ECDSA_SHA256,
  'ECDSA-SHA384': ALGO.ECDSA_SHA384,
  'ECDSA-SHA512': ALGO.ECDSA_SHA512,
  ECDH: ALGO.ECDH,
  WRAP: ALGO.WRAP,
  UNWRAP: ALGO.UNWRAP,
  DERIVE: ALGO.EC_DERIVE,
  'AES-CBC-ENCRYPT': ALGO.AES_CBC_ENCRYPT,
  'AES-CBC-DECRYPT': ALGO.AES_CBC_DECRYPT,
  'AES-CMAC': ALGO.AES_CMAC,
  'AES-DERIVE': ALGO.AES_DERIVE,
};

/** Key metadata tags of GENERATE ASYMMETRIC KEY PAIR / GENERATE SYMMETRIC KEY (spec §3.11–3.12). */
export const KEYGEN_TAG = {
  USE_COUNTER: 0x90,
  ALGORITHMS: 0x91,
  KEY_DOMAIN: 0x92,
} as const;

/** Largest key-use counter (tag 90 is 4 bytes big-endian, spec §3.11). */
export const USE_COUNTER_MAX = 0xffffffff;
/** Most entries of an algorithm list (tag 91, spec §3.11). */
export const ALGORITHMS_MAX = 16;

/** GENERATE SYMMETRIC KEY P2 by AES key size in bits (spec §3.12). */
export const AES_KEYGEN_ALGO: Record<number, number> = { 128: 0xb0, 192: 0xb1, 256: 0xb2 };

/** CV certificate / key blob OIDs (DER content, spec §3.11, §5.1, §8.1). */
export const OID = {
  TA_RSA_V15_SHA256: fromHex('04007F00070202020102'),
  TA_ECDSA_SHA256: fromHex('04007F00070202020203'),
  AES: fromHex('6086480165030401'),
  CHAT_SC_HSM: fromHex('2B0601040181C31F030101'),
  /** id-CA-ECDH-AES-CBC-CMAC-128 (0.4.0.127.0.7.2.2.3.2.2): chip authentication, spec §3.19. */
  CA_ECDH_AES_CBC_CMAC_128: fromHex('04007F00070202030202'),
} as const;

/** RSA key sizes the card generates (spec §3.11). */
export const RSA_SIZES = [1024, 1536, 2048, 3072, 4096] as const;

/** Retry counters and PIN lengths (spec §9). */
export const SO_PIN_TRIES = 15;
export const USER_PIN_MIN = 6;
/** OpenSC's PKCS#15 PIN object and profile cap the user PIN at 15; sc-hsm-tool at 16. We follow the stricter 15. */
export const USER_PIN_MAX = 15;
