/**
 * `sc-hsm-ts/testing` as an application's test suite uses it: a known initialized device with keys
 * in-process, the fault-injecting transport on it for the application's error paths, and the
 * same from node's own test runner (a child process).
 */
import { execFile } from 'node:child_process';
import { createPublicKey, verify } from 'node:crypto';
import { writeFile } from 'node:fs/promises';
import { join, resolve } from 'node:path';
import { describe, expect, it } from 'vitest';
import { isScHsmError, SmartCardHsm } from '../src/index.js';
import { FaultInjectingTransport, initializedTestDevice, TEST_LABEL, TEST_PIN } from '../src/testing.js';
import { tempDir } from './cli-helpers.js';

const ROOT = resolve(import.meta.dirname, '..');
const data = new TextEncoder().encode('to be signed');

describe('initializedTestDevice', () => {
  it('is initialized with the test PINs and label, and its EC key signs what node:crypto verifies', async () => {
    await using dev = await initializedTestDevice();
    const st = await dev.hsm.status();
    expect(st.initialized).toBe(true);
    expect(st.label).toBe(TEST_LABEL);
    const sig = await dev.hsm.sign(dev.keys.ec.keyRef, 'ECDSA-SHA256', data);
    const pub = createPublicKey({ key: Buffer.from(dev.keys.ec.publicKey), format: 'der', type: 'spki' });
    expect(verify('sha256', data, pub, Buffer.from(sig))).toBe(true);
    expect(dev.keys.rsa).toBeUndefined();
  });

  it('a second session of the application on the same card needs the test PIN, and a wrong one costs a try', async () => {
    await using dev = await initializedTestDevice();
    const app = await SmartCardHsm.open(dev.card);
    await expect(app.verifyPin('000000')).rejects.toSatisfy((e) => isScHsmError(e, 'WRONG_PIN'));
    await app.verifyPin(TEST_PIN);
    expect((await app.listKeys()).map((k) => k.label)).toContain('test-ec');
  });

  it('fault injection: the application sees CARD_REMOVED when the card goes in the middle of its sign', async () => {
    await using dev = await initializedTestDevice();
    // the application's own code path: open, log in, sign; the sign's APDU loses the card
    const faulty = new FaultInjectingTransport(dev.card);
    const app = await SmartCardHsm.open(faulty);
    await app.verifyPin(TEST_PIN);
    faulty.arm({ at: faulty.count + 1, kind: 'card-removed', delivered: false });
    const err = await app.sign(dev.keys.ec.keyRef, 'ECDSA-SHA256', data).catch((e: unknown) => e);
    expect(isScHsmError(err, 'CARD_REMOVED')).toBe(true);
    expect(faulty.fired).toBe(true);
  });

  it('works from node:test (node --test), not only from vitest', async () => {
    const dir = await tempDir();
    const file = join(dir, 'kit.test.mts');
    await writeFile(
      file,
      [
        "import { test } from 'node:test';",
        "import assert from 'node:assert/strict';",
        `import { initializedTestDevice, TEST_PIN } from ${JSON.stringify(join(ROOT, 'src/testing.ts'))};`,
        "test('signs on the test device', async () => {",
        '  const dev = await initializedTestDevice({ rsa: true });',
        "  const sig = await dev.hsm.sign(dev.keys.rsa.keyRef, 'RSA-PKCS1-SHA256', new Uint8Array(8));",
        '  assert.equal(sig.length, 256);',
        "  assert.equal(TEST_PIN, '648219');",
        '  await dev.close();',
        '});',
      ].join('\n'),
    );
    const out = await new Promise<{ code: number; text: string }>((r) =>
      execFile(
        process.execPath,
        ['--import', 'tsx', '--test', file],
        { cwd: ROOT, timeout: 120_000 },
        (err, stdout, stderr) => r({ code: err ? Number(err.code ?? 1) : 0, text: stdout + stderr }),
      ),
    );
    expect(out.code, out.text).toBe(0);
    expect(out.text).toMatch(/# pass 1/);
  });
});

describe('FaultInjectingTransport: a plan that could never fire is refused at arm()', () => {
  const bad: [string, unknown][] = [
    ['at -1', { at: -1, kind: 'card-removed', delivered: false }],
    ['at 0', { at: 0, kind: 'card-removed', delivered: false }],
    ['at 1.5', { at: 1.5, kind: 'card-removed', delivered: false }],
    ["at 'x'", { at: 'x', kind: 'card-removed', delivered: false }],
    ['at {}', { at: {}, kind: 'card-removed', delivered: false }],
    ['an unknown kind', { at: 1, kind: 'card-eaten', delivered: false }],
    ['no kind', { at: 1, delivered: false }],
    ['delivered a string', { at: 1, kind: 'card-reset', delivered: 'yes' }],
    ['not an object', 3],
  ];
  for (const [name, plan] of bad) {
    it(name, async () => {
      await using dev = await initializedTestDevice();
      const f = new FaultInjectingTransport(dev.card);
      let e: unknown;
      try {
        f.arm(plan as never);
      } catch (x) {
        e = x;
      }
      expect(isScHsmError(e, 'INVALID_ARGUMENT'), String(e)).toBe(true);
      expect(() => new FaultInjectingTransport(dev.card, plan as never)).toThrow(/FaultInjectingTransport/);
    });
  }

  it('a good plan still fires at its APDU', async () => {
    await using dev = await initializedTestDevice();
    const f = new FaultInjectingTransport(dev.card);
    f.arm({ at: 1, kind: 'transport-error', delivered: false });
    const e = await f.transmit(Uint8Array.of(0x00, 0xa4, 0x04, 0x00)).catch((x: unknown) => x);
    expect(isScHsmError(e, 'TRANSPORT_ERROR')).toBe(true);
  });
});
