/**
 * What @peculiar/x509 must know of the card's curves to work with {@link ScHsmCrypto}'s keys.
 *
 * - It turns WebCrypto's ECDSA r‖s into DER and back by the curve's field size, looked up by
 *   `namedCurve` in `AsnEcSignatureFormatter.namedCurveSize`; it knows P-256, P-384, P-521 and
 *   K-256, and on any other curve it cuts at 32 bytes without a word: the certificate's signature
 *   does not verify.
 * - It names the curve of a SubjectPublicKeyInfo by OID and knows neither prime192v1 nor
 *   secp192k1: it cannot verify with such a key.
 *
 * So each loaded copy of @peculiar/x509 is taught every curve of the card (sizes, and an algorithm
 * entry naming the curves by OID) when an {@link ScHsmCrypto} is made and before every ECDSA
 * signature or public-key import through which @peculiar/x509 reaches a key on another curve. A
 * copy is found in node's module cache (also the one an ESM `import` loads: the package has no
 * `exports`, so node loads its CommonJS `main`); nothing is loaded here, so `import 'sc-hsm-ts'`
 * stays free of it, and a copy that is not loaded is not the one calling.
 */
import { createRequire } from 'node:module';
import { CURVES, curveByOid } from '../util/curves.js';
import { curveSize, webCurveName } from './keys.js';

/** The curves @peculiar/x509 sizes itself: nothing to do for them. */
const KNOWN = new Set(['P-256', 'P-384', 'P-521', 'K-256']);
/** `build/x509.cjs.js` of any copy of @peculiar/x509. */
const X509_BUILD = /[\\/]@peculiar[\\/]x509[\\/]build[\\/][^\\/]+\.js$/;
const ID_EC_PUBLIC_KEY = '1.2.840.10045.2.1';

const cache = createRequire(import.meta.url).cache;
const taught = new WeakSet<object>();

interface X509Module {
  AsnEcSignatureFormatter?: { namedCurveSize?: unknown };
  diAlgorithm?: unknown;
}

/** An entry of @peculiar/x509's algorithm registry (its `IAlgorithm`): SPKI curve OID → name. */
const CARD_CURVES = {
  toAsnAlgorithm: (): null => null,
  toWebAlgorithm(alg: { algorithm?: string; parameters?: ArrayBuffer | null }): Algorithm | null {
    if (alg.algorithm !== ID_EC_PUBLIC_KEY || !alg.parameters) return null;
    const p = new Uint8Array(alg.parameters);
    if (p[0] !== 0x06 || p[1] !== p.length - 2) return null;
    const curve = curveByOid(p.subarray(2));
    return curve ? { name: 'ECDSA', namedCurve: webCurveName(curve.name) } : null;
  },
};
type Algorithm = { name: string; namedCurve: string };

/** Teaches every loaded, not yet taught copy of @peculiar/x509 the card's curves. */
export function teachLoadedX509(): void {
  for (const [file, mod] of Object.entries(cache)) {
    if (!X509_BUILD.test(file)) continue;
    const lib = mod?.exports as X509Module | undefined;
    const sizes = lib?.AsnEcSignatureFormatter?.namedCurveSize;
    if (!lib || taught.has(lib) || !(sizes instanceof Map)) continue;
    for (const c of CURVES) {
      const name = webCurveName(c.name);
      if (!sizes.has(name)) sizes.set(name, curveSize(c));
    }
    if (typeof lib.diAlgorithm === 'string') {
      // the registry is the container of the tsyringe this copy loaded
      const { container } = createRequire(file)('tsyringe') as {
        container: { register(token: string, provider: { useValue: unknown }): unknown };
      };
      container.register(lib.diAlgorithm, { useValue: CARD_CURVES });
    }
    taught.add(lib);
  }
}

/** {@link teachLoadedX509} before an ECDSA operation with a key on `namedCurve`. */
export function teachX509Curve(namedCurve: string | undefined): void {
  if (namedCurve !== undefined && !KNOWN.has(namedCurve)) teachLoadedX509();
}
