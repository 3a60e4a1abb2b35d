/** The virtual SmartCard-HSM (spec §11): card, state file and device identity. */
export {
  DEFAULT_FIRMWARE,
  type OpenStateFileOptions,
  type VirtualCardOptions,
  VirtualSmartCardHsm,
} from './card.js';
export {
  VIRTUAL_ISSUER_CERTIFICATE,
  VIRTUAL_ISSUER_CHR,
  VIRTUAL_ROOT_CERTIFICATE,
  VIRTUAL_ROOT_CHR,
} from './device.js';
// timing profiles: a latency model of the real device (src/sim/profile.ts, docs/cli.md "Timing profiles")
export {
  BUILTIN_PROFILES,
  loadProfile,
  NITROKEY_HSM2,
  NITROKEY_HSM2_SOURCES,
  parseProfile,
  type TimingProfile,
  validateProfile,
} from './profile.js';
export { STATE_FORMAT, STATE_VERSION } from './state.js';
export {
  DEFAULT_STATE_LOCK_WAIT_MS,
  STATE_LOCK_STALE_MS,
  type StateFileHolder,
  type StateLockOptions,
} from './state-lock.js';
// the vpcd bridge that plugs a virtual card into pcscd (spec/pcsc-stack.md §2)
export { connectToVpcd, type VpcdCard, type VpcdConnection, type VpcdOptions } from './vpcd.js';
