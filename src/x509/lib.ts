/**
 * @peculiar/x509, loaded on first use: the loader is the WebCrypto floor's
 * (src/webcrypto/x509-lib.ts), which `crypto.certStorage` uses too, so there is one load.
 */
export { isX509Loaded, x509 } from '../webcrypto/x509-lib.js';
