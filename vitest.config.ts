import { defineConfig } from 'vitest/config';

/**
 * Tests that need the private pcscd of scripts/with-pcscd.sh share its two vpcd slots, and a second
 * card on an occupied slot hangs silently (spec/pcsc-stack.md §2): they run one file at a time,
 * after the in-process tests, which run in parallel.
 */
const PCSC = [
  'test/pcsc.test.ts',
  'test/pcsc-daemon.test.ts',
  'test/**/*.pcsc.test.ts',
  'test/interop-opensc.test.ts',
  'test/interop-cert.test.ts',
];

export default defineConfig({
  test: {
    testTimeout: 60_000,
    hookTimeout: 60_000,
    pool: 'forks',
    projects: [
      {
        extends: true,
        test: { name: 'unit', include: ['test/**/*.test.ts'], exclude: PCSC, sequence: { groupOrder: 0 } },
      },
      {
        extends: true,
        test: { name: 'pcsc', include: PCSC, fileParallelism: false, sequence: { groupOrder: 1 } },
      },
    ],
  },
});
