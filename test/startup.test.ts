/**
 * Cold start (bench/startup.bench.ts): importing the library (each of the package's entries:
 * tsup.config.ts) loads neither webcrypto-core nor @peculiar/x509, the CLI's help loads neither,
 * and each is loaded on first use. The command registry names the module of each command correctly and its metadata is the module's.
 */
import { createRequire } from 'node:module';
import { describe, expect, it } from 'vitest';
import { COMMANDS } from '../src/cli/registry.js';
import * as lib from '../src/index.js';
import * as sim from '../src/sim/index.js';
import * as testing from '../src/testing.js';
import { isCoreLoaded } from '../src/webcrypto/core.js';
import * as webcrypto from '../src/webcrypto/index.js';
import * as x509 from '../src/x509/index.js';
import { isX509Loaded } from '../src/x509/lib.js';
import { cli } from './cli-helpers.js';

describe('cold start', () => {
  it('importing every entry and --help load neither webcrypto-core nor @peculiar/x509; first use does', async () => {
    expect(typeof lib.SmartCardHsm).toBe('function');
    expect(typeof testing.FaultInjectingTransport).toBe('function');
    expect(typeof webcrypto.ScHsmCrypto).toBe('function');
    expect(isCoreLoaded()).toBe(false);
    expect(isX509Loaded()).toBe(false);
    for (const argv of [['--help'], ['cert', 'self-sign', '--help'], ['help', 'csr'], ['dump', '--help']]) {
      const r = await cli(argv);
      expect(r.code).toBe(0);
      expect(r.stdout).toContain('Usage: sc-hsm-ts');
    }
    expect(isCoreLoaded()).toBe(false);
    expect(isX509Loaded()).toBe(false);

    expect(x509.certificateDer.length).toBe(1);
    expect(() => x509.certificateDer(new Uint8Array([0x30, 0x03, 1, 2, 3]))).toThrow(/not an X.509/);
    expect(isX509Loaded()).toBe(true);

    const hsm = await lib.SmartCardHsm.open(new sim.VirtualSmartCardHsm());
    const crypto = new webcrypto.ScHsmCrypto(hsm);
    expect(isCoreLoaded()).toBe(true);
    // the CommonJS build, which src/webcrypto/core.ts loads
    const { CryptoKey, Crypto, SubtleCrypto } = createRequire(import.meta.url)(
      'webcrypto-core',
    ) as typeof import('webcrypto-core');
    expect(crypto).toBeInstanceOf(Crypto);
    expect(crypto.subtle).toBeInstanceOf(SubtleCrypto);
    const key = await crypto.subtle.generateKey({ name: 'HMAC', hash: 'SHA-256' }, false, ['sign']);
    expect(key).toBeInstanceOf(CryptoKey);
    expect(key).toBeInstanceOf(webcrypto.NativeKey);
  });

  it('every registry entry loads its own command, with the same metadata', async () => {
    for (const entry of COMMANDS) {
      const cmd = await entry.load();
      const { load: _load, ...spec } = entry;
      const { run, ...own } = cmd;
      expect(typeof run).toBe('function');
      expect(own).toEqual(spec);
    }
  });
});
