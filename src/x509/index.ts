/** Host-side X.509 for SmartCard-HSM keys (CSR, self-signed, store/export) and the device authenticity check. */
export {
  type CsrOptions,
  certificateDer,
  createCsr,
  type Encoded,
  exportCertificate,
  importCertificate,
  parseCsr,
  type SelfSignOptions,
  type SigningOptions,
  STORED_CERT_ACCESS,
  selfSignCertificate,
  signatureMechanism,
} from './certificates.js';
export {
  type ChainEntry,
  checkDeviceChain,
  DEFAULT_ANCHORS,
  type DeviceAuthenticity,
  type DeviceVerdict,
  SRCA_ROOT_CERTIFICATE,
  SRCA_ROOT_CHR,
  type TrustAnchor,
  verifyDeviceAuthenticity,
} from './device-auth.js';
export { type DnAttribute, type DnRdn, type DnValueEncoding, parseDistinguishedName } from './dn.js';
export { type DeviceChainVerifierOptions, deviceChainVerifier } from './secure-channel.js';
