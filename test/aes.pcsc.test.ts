/**
 * `aes encrypt|decrypt|cmac` through the real stack: the command on `--reader` → pcsclite → pcscd →
 * vpcd → the virtual card. Results are checked against node:crypto with the key from the card's
 * state; the session suite (session.pcsc.test.ts) covers the library calls the same way.
 */
import { createDecipheriv, randomBytes } from 'node:crypto';
import { readFile, writeFile } from 'node:fs/promises';
import { join } from 'node:path';
import { afterAll, beforeAll, expect, it } from 'vitest';
import type { VirtualSmartCardHsm } from '../src/sim/index.js';
import type { VpcdConnection } from '../src/sim/vpcd.js';
import { toHex } from '../src/util/bytes.js';
import { cli as runCommand, tempDir } from './cli-helpers.js';
import { describePcsc, initializedCard, insertCard, removeCard, vpcdSlot } from './helpers/pcsc-env.js';

const PIN = '648219';
const { host, port, reader: READER } = vpcdSlot();

/** The command in-process on the reader, `PIN` in its environment, stdin empty. */
const cli = (argv: string[]) => runCommand([...argv, '--reader', READER], { env: { PIN }, stdin: '' });

describePcsc('aes commands through pcscd', () => {
  let card: VirtualSmartCardHsm;
  let link: VpcdConnection | undefined;
  let dir = '';
  let key: Buffer;

  beforeAll(async () => {
    dir = await tempDir();
    // prepared in-process (the session is left open: closing it would pull the card)
    const prepared = await initializedCard(PIN);
    card = prepared.card;
    const { hsm } = prepared;
    await hsm.generateKeyPair({ type: 'ec', curve: 'P-256', label: 'ec' });
    await hsm.generateAesKey({ bits: 256, label: 'vault' });
    key = Buffer.from(JSON.parse(card.serialize()).keys['2'].secret, 'hex');
    card.reset();
    link = await insertCard(card, { host, port });
  });

  afterAll(async () => {
    await removeCard(link, port);
  });

  it('encrypts (several APDUs) and decrypts a file, standard AES-CBC; CMAC; an EC key refused', async () => {
    const plain = new Uint8Array(randomBytes(3000));
    const input = join(dir, 'plain');
    await writeFile(input, plain);
    const enc = join(dir, 'enc');
    const e = await cli([
      'aes',
      'encrypt',
      '--key-ref',
      '2',
      '--in',
      input,
      '--out',
      enc,
      '--pin',
      'env:PIN',
    ]);
    expect(e.code, e.stderr).toBe(0);
    const file = await readFile(enc);
    const d = createDecipheriv('aes-256-cbc', key, file.subarray(0, 16));
    expect(toHex(Buffer.concat([d.update(file.subarray(16)), d.final()]))).toBe(toHex(plain));
    const back = join(dir, 'back');
    const r = await cli(['aes', 'decrypt', '--key-ref', '2', '--in', enc, '--out', back, '--pin', 'env:PIN']);
    expect(r.code, r.stderr).toBe(0);
    expect(toHex(await readFile(back))).toBe(toHex(plain));
    const m = await cli(['aes', 'cmac', '--key-ref', '2', '--in', enc, '--pin', 'env:PIN']);
    expect(m.code).toBe(2); // 3016 bytes: more than one card command
    const msg = join(dir, 'msg');
    await writeFile(msg, plain.subarray(0, 100));
    const ok = await cli(['aes', 'cmac', '--key-ref', '2', '--in', msg, '--pin', 'env:PIN']);
    expect(ok.code, ok.stderr).toBe(0);
    expect(ok.stdout.trim()).toMatch(/^[0-9a-f]{32}$/);
    const ec = await cli([
      'aes',
      'encrypt',
      '--key-ref',
      '1',
      '--in',
      msg,
      '--out',
      join(dir, 'x'),
      '--pin',
      'env:PIN',
    ]);
    expect(ec.code).toBe(2);
    expect(ec.stderr).toMatch(/EC key, not AES/);
  });
});
