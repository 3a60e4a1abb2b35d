/**
 * @peculiar/x509 (with reflect-metadata and tsyringe, which it needs), loaded on first use: it
 * costs ~150 ms to load, and neither `import 'sc-hsm-ts'` nor `import 'sc-hsm-ts/webcrypto'` must
 * pay for it. The load is synchronous because `certificateDer` and `parseCsr` are; @peculiar/x509
 * is a CommonJS package (its `main`), so `require` gives the same module instance an `import` of
 * it does. In the CommonJS build of this package tsup's shim supplies `import.meta.url`. Here, on
 * the WebCrypto floor, because `crypto.certStorage` parses certificates with it; src/x509/ uses
 * the same loader.
 */
import { createRequire } from 'node:module';
import type * as X509 from '@peculiar/x509';
import { teachLoadedX509 } from './x509-curves.js';

let lib: typeof X509 | undefined;

/** @peculiar/x509, loaded now if it is not yet. */
export function x509(): typeof X509 {
  if (lib === undefined) {
    const require = createRequire(import.meta.url);
    require('reflect-metadata');
    const loaded = require('@peculiar/x509') as typeof X509;
    // the card's curves: signature sizes and SPKI curve names (src/webcrypto/x509-curves.ts)
    teachLoadedX509();
    lib = loaded;
  }
  return lib;
}

/** True once @peculiar/x509 is loaded (tests of the cold start). */
export function isX509Loaded(): boolean {
  return lib !== undefined;
}
