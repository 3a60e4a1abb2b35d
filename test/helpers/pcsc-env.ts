/**
 * Gate for the PC/SC interop tests. They need the private pcscd that scripts/with-pcscd.sh starts
 * (spec/pcsc-stack.md §6), which sets SC_HSM_PCSC=1, VPCD_HOST and VPCD_PORT.
 * An interop test that silently skips in CI is a failure, so under CI=true a missing environment
 * fails the suite; elsewhere the suite is skipped with a loud note.
 */
import { describe, it } from 'vitest';

/** True inside `bash scripts/with-pcscd.sh …`. */
export function pcscAvailable(): boolean {
  return process.env.SC_HSM_PCSC === '1';
}

/** Where the virtual cards connect (the quickack address inside with-pcscd.sh). */
export function vpcdEndpoint(): { host: string; port: number } {
  return { host: process.env.VPCD_HOST ?? '127.0.0.1', port: Number(process.env.VPCD_PORT ?? 35963) };
}

const HOW = 'run them with: bash scripts/with-pcscd.sh npx vitest run test/pcsc';

/** `describe` when the PC/SC environment is there; otherwise a failing (CI) or loudly skipped suite. */
export function describePcsc(name: string, fn: () => void): void {
  if (pcscAvailable()) {
    describe(name, fn);
    return;
  }
  if (process.env.CI === 'true') {
    describe(name, () => {
      it('needs the PC/SC environment (SC_HSM_PCSC=1)', () => {
        throw new Error(`PC/SC interop tests cannot run: SC_HSM_PCSC is not set under CI=true; ${HOW}`);
      });
    });
    return;
  }
  console.warn(`\n*** PC/SC interop suite "${name}" NOT RUN: SC_HSM_PCSC is not set; ${HOW} ***\n`);
  describe.skip(`${name} [NOT RUN: needs scripts/with-pcscd.sh]`, fn);
}
