/**
 * The device-chain judgement `openSecureChannel` needs (spec §3.19 step 1, §5.3): EF 2F02 must
 * verify up to the SmartCard-HSM Root CA — or, only when the caller says so, up to the sc-hsm-ts
 * virtual test root (whose keys are published: anyone can mint such a "device", so it proves
 * nothing outside tests and the virtual card itself).
 */
import type { DeviceChainVerdict } from '../sc-hsm/session.js';
import { checkDeviceChain, DEFAULT_ANCHORS, type TrustAnchor } from './device-auth.js';

export interface DeviceChainVerifierOptions {
  /** Accept a chain ending at the sc-hsm-ts virtual test root (a virtual card). Default false. */
  acceptVirtual?: boolean;
  /** Trust anchors instead of the production SRCA and the virtual test root (tests). */
  anchors?: readonly TrustAnchor[];
}

/**
 * A `verifyChain` for `SmartCardHsm.openSecureChannel`: `checkDeviceChain` over EF 2F02, trusted
 * when the verdict is `genuine` (or `virtual` with `acceptVirtual`).
 */
export function deviceChainVerifier(
  o: DeviceChainVerifierOptions = {},
): (ef2f02: Uint8Array) => DeviceChainVerdict {
  const anchors = o.anchors ?? DEFAULT_ANCHORS;
  return (ef2f02) => {
    const r = checkDeviceChain(ef2f02, anchors);
    const trusted = r.verdict === 'genuine' || (r.verdict === 'virtual' && o.acceptVirtual === true);
    const reason =
      r.verdict === 'virtual' && !trusted
        ? `${r.reason} (accepted only for a virtual card: acceptVirtual)`
        : r.reason;
    return { trusted, reason };
  };
}
