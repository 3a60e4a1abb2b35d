/**
 * PKCS#15 descriptions, EF.TokenInfo and CV certificates of the SmartCard-HSM: pure codecs,
 * no I/O (spec §5, §6).
 *
 * The DER here is written by hand on src/util/tlv.ts rather than with asn1js: the encodings
 * must be byte-exact with what OpenSC 0.23 writes (minimal bit strings, omitted defaults,
 * field order), which a generic schema encoder does not guarantee.
 */
export {
  type AuthenticatedRequest,
  type CvCertificate,
  type CvcPublicKey,
  cvcPublicKeyToSpki,
  decodeCvc,
  decodeCvRequest,
  decodeDeviceCertificateFile,
  decodeDeviceCertificates,
  encodeAuthenticatedRequest,
  encodeCvc,
  encodeCvcBody,
  encodeCvcPublicKey,
  spkiToCvcPublicKey,
  verifyCvcSignature,
} from './cvc.js';
export {
  type CertificateDescription,
  type DataObjectDescription,
  decodeCertificateDescription,
  decodeDataObjectDescription,
  encodeCertificateDescription,
  encodeDataObjectDescription,
} from './descriptions.js';
export { ecdsaDerToPlain, ecdsaPlainToDer } from './ecdsa.js';
export { KEY_ACCESS, KEY_USAGE, OBJECT_FLAGS, TOKEN_FLAGS } from './flags.js';
export { decodeKeyDescription, encodeKeyDescription, type KeyDescription } from './key-description.js';
export { decodePkaFile, encodePkaFile, PKA_FILE_OID, type PkaFile } from './pka-file.js';
export { decodeTokenInfo, encodeTokenInfo, type TokenInfo } from './token-info.js';
