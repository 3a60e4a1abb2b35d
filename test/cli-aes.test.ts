/**
 * `keygen --type aes:…` and `aes encrypt|decrypt|cmac` on a virtual device (--sim): results checked
 * against node:crypto with the key read from the state file; and what a hostile user tries.
 */
import { createCipheriv, createDecipheriv, randomBytes } from 'node:crypto';
import { open, readFile, stat, writeFile } from 'node:fs/promises';
import { join } from 'node:path';
import { beforeAll, describe, expect, it } from 'vitest';
import { SmartCardHsm } from '../src/sc-hsm/session.js';
import { VirtualSmartCardHsm } from '../src/sim/index.js';
import { toHex } from '../src/util/bytes.js';
import { aesArgs, cli, copyState, ENV, initializedState, keygenArgs, tempDir } from './cli-helpers.js';

let dir: string;
/** Initialized, an EC key at 1, AES-256 at 2, AES-128 at 3. */
let base: string;

beforeAll(async () => {
  dir = await tempDir();
  base = await initializedState(dir, 'Test');
  for (const type of ['ec:prime256v1', 'aes:256', 'aes:128']) {
    const k = await cli(keygenArgs(base, type, type, '--pin', 'env:PIN'), { env: ENV });
    expect(k.code, k.stderr).toBe(0);
  }
});

let n = 0;
async function fresh(): Promise<string> {
  return copyState(base, dir, `aes-${++n}.json`);
}

async function secretOf(state: string, keyRef: number): Promise<Buffer> {
  return Buffer.from(JSON.parse(await readFile(state, 'utf8')).keys[String(keyRef)].secret, 'hex');
}

async function file(name: string, data: Uint8Array): Promise<string> {
  const p = join(dir, `${n}-${name}`);
  await writeFile(p, data);
  return p;
}

const run = (args: string[]) => cli([...args, '--pin', 'env:PIN'], { env: ENV });
/** `aes OP --sim S --key-ref REF …MORE --pin env:PIN`. */
const aes = (op: 'encrypt' | 'decrypt' | 'cmac', s: string, ref: string, ...more: string[]) =>
  run(aesArgs(op, s, ref, ...more));

describe('keygen --type aes and keys', () => {
  it('makes AES-128/192/256 keys that keys --json lists as AES with their size', async () => {
    const s = await fresh();
    const k = await run(['keygen', '--sim', s, '--type', 'aes:192', '--label', 'vault', '--json']);
    expect(k.code, k.stderr).toBe(0);
    expect(k.json()).toMatchObject({ type: 'aes', bits: 192, label: 'vault' });
    const keys = (await cli(['keys', '--sim', s, '--json'])).json().keys;
    expect(
      keys.filter((x: { type: string }) => x.type === 'aes').map((x: { bits: number }) => x.bits),
    ).toEqual([256, 128, 192]);
    expect((await cli(['keys', '--sim', s])).stdout).toMatch(/AES 192/);
    const d = await cli(['dump', '--sim', s]);
    expect(d.code, d.stderr).toBe(0);
    expect(d.stdout).toContain('Secret AES Key [vault]');
    expect(d.stdout).toMatch(/Secret AES Key \[vault\][\s\S]*?Key length +: 192/);
    expect(d.stdout).toContain('Private EC Key [ec:prime256v1]');
  });
});

describe('aes encrypt / decrypt / cmac', () => {
  it('encrypts with a random IV written first, decrypts it back; standard AES-CBC (node:crypto)', async () => {
    const s = await fresh();
    const key = await secretOf(s, 2);
    const plain = new Uint8Array(randomBytes(5000));
    const input = await file('plain', plain);
    const enc = join(dir, `${n}-enc`);
    const e = await aes('encrypt', s, '2', '--in', input, '--out', enc, '--json');
    expect(e.code, e.stderr).toBe(0);
    const out = await readFile(enc);
    const iv = out.subarray(0, 16);
    expect(e.json()).toMatchObject({ keyRef: 2, iv: toHex(iv), ivInFile: true, bytes: 16 + 5008 });
    const d = createDecipheriv('aes-256-cbc', key, iv);
    expect(toHex(Buffer.concat([d.update(out.subarray(16)), d.final()]))).toBe(toHex(plain));
    expect((await stat(enc)).mode & 0o777).toBe(0o600);
    const back = join(dir, `${n}-back`);
    const r = await aes('decrypt', s, '2', '--in', enc, '--out', back);
    expect(r.code, r.stderr).toBe(0);
    expect(toHex(await readFile(back))).toBe(toHex(plain));
    // a second encryption of the same file takes another IV
    const enc2 = join(dir, `${n}-enc2`);
    expect((await aes('encrypt', s, '2', '--in', input, '--out', enc2)).code).toBe(0);
    expect(toHex((await readFile(enc2)).subarray(0, 16))).not.toBe(toHex(iv));
  });

  it('with --iv (options in any order) the file is the bare ciphertext; openssl-compatible both ways', async () => {
    const s = await fresh();
    const key = await secretOf(s, 3);
    const iv = '000102030405060708090a0b0c0d0e0f';
    const plain = new Uint8Array(randomBytes(33));
    const input = await file('p', plain);
    const enc = join(dir, `${n}-c`);
    const e = await run([
      'aes',
      'encrypt',
      '--iv',
      iv,
      '--out',
      enc,
      '--in',
      input,
      '--key-ref',
      '3',
      '--sim',
      s,
    ]);
    expect(e.code, e.stderr).toBe(0);
    const c = createCipheriv('aes-128-cbc', key, Buffer.from(iv, 'hex'));
    expect(toHex(await readFile(enc))).toBe(toHex(Buffer.concat([c.update(plain), c.final()])));
    const back = join(dir, `${n}-b`);
    const d = await aes('decrypt', s, '3', '--iv', iv.toUpperCase(), '--in', enc, '--out', back);
    expect(d.code, d.stderr).toBe(0);
    expect(toHex(await readFile(back))).toBe(toHex(plain));
  });

  it('encrypts an empty file (one padding block) and computes CMACs like node:crypto AES-ECB', async () => {
    const s = await fresh();
    const empty = await file('empty', new Uint8Array(0));
    const enc = join(dir, `${n}-e`);
    expect((await aes('encrypt', s, '2', '--in', empty, '--out', enc)).code).toBe(0);
    expect((await readFile(enc)).length).toBe(32);
    const back = join(dir, `${n}-eb`);
    expect((await aes('decrypt', s, '2', '--in', enc, '--out', back)).code).toBe(0);
    expect((await readFile(back)).length).toBe(0);
    // RFC 4493 example 2 shape: one full block; the reference from AES-ECB subkeys
    const key = await secretOf(s, 2);
    const msg = new Uint8Array(randomBytes(16));
    const ecb = (b: Uint8Array) => createCipheriv('aes-256-ecb', key, null).setAutoPadding(false).update(b);
    const l = ecb(new Uint8Array(16));
    const k1 = Buffer.alloc(16);
    for (let i = 0; i < 16; i++) k1[i] = ((l[i]! << 1) | (i < 15 ? l[i + 1]! >> 7 : 0)) & 0xff;
    if (l[0]! & 0x80) k1[15]! ^= 0x87;
    const expected = ecb(msg.map((b, i) => b ^ k1[i]!));
    const m = await aes('cmac', s, '2', '--in', await file('m', msg));
    expect(m.code, m.stderr).toBe(0);
    expect(m.stdout.trim()).toBe(toHex(expected));
    const j = await aes('cmac', s, '2', '--in', await file('m2', msg), '--json');
    expect(j.json()).toMatchObject({ keyRef: 2, cmac: toHex(expected), bytes: 16 });
  });
});

describe('AES keys wrapped and unwrapped by the command', () => {
  /** A device in a state file with the DKEK of one share imported (dkek import's KDF is slow). */
  async function withDkek(name: string): Promise<string> {
    const path = join(dir, name);
    const card = await VirtualSmartCardHsm.open(path, { create: true });
    const hsm = await SmartCardHsm.open(card);
    await hsm.initialize({ soPin: '3537363231383830', userPin: '648219', dkekShares: 1 });
    await hsm.importDkekShare(new Uint8Array(32).fill(0x5a));
    await hsm.close();
    return path;
  }

  it('wrap --key-ref → unwrap onto another device: the same key there (same CMAC, decrypts)', async () => {
    const a = await withDkek('wrap-a.json');
    const b = await withDkek('wrap-b.json');
    expect((await run(['keygen', '--sim', a, '--type', 'aes:128', '--label', 'moved'])).code).toBe(0);
    const bin = join(dir, 'moved.bin');
    expect((await run(['wrap', '--sim', a, '--key-ref', '1', '--out', bin])).code).toBe(0);
    const u = await run(['unwrap', bin, '--sim', b, '--key-ref', '7']);
    expect(u.code, u.stderr).toBe(0);
    const msg = await file('moved-msg', new Uint8Array(randomBytes(50)));
    const ma = await aes('cmac', a, '1', '--in', msg);
    const mb = await aes('cmac', b, '7', '--in', msg);
    expect(mb.stdout.trim()).toMatch(/^[0-9a-f]{32}$/);
    expect(mb.stdout).toBe(ma.stdout);
    const enc = join(dir, 'moved.enc');
    expect((await aes('encrypt', a, '1', '--in', msg, '--out', enc)).code).toBe(0);
    const back = join(dir, 'moved.back');
    expect((await aes('decrypt', b, '7', '--in', enc, '--out', back)).code).toBe(0);
    expect(toHex(await readFile(back))).toBe(toHex(await readFile(msg)));
    const keys = (await cli(['keys', '--sim', b, '--json'])).json().keys;
    expect(keys).toEqual([expect.objectContaining({ keyRef: 7, type: 'aes', bits: 128, label: 'moved' })]);
  });
});

describe('aes: what a hostile user tries', () => {
  it('an EC key is refused before the PIN is sent (no try spent)', async () => {
    const s = await fresh();
    const input = await file('x', new Uint8Array(5));
    const r = await cli(
      [...aesArgs('encrypt', s, '1', '--in', input, '--out', join(dir, `${n}-o`)), '--pin', '000000'],
      { env: ENV },
    );
    expect(r.code).toBe(2);
    expect(r.stderr).toMatch(/key 1 is an EC key, not AES/);
    expect(r.stderr).toMatch(/keygen --type aes:256/);
    const st = (await cli(['status', '--sim', s, '--json'])).json();
    expect(st.userPin.triesLeft).toBe(3);
    const c = await aes('cmac', s, '1', '--in', input);
    expect(c.code).toBe(2);
  });

  it('bad --iv (length, not hex), a missing key reference or input: usage errors, nothing written', async () => {
    const s = await fresh();
    const input = await file('y', new Uint8Array(5));
    const out = join(dir, `${n}-never`);
    for (const iv of ['00', '00'.repeat(17), 'zz'.repeat(16), '0'.repeat(31), '']) {
      const r = await aes('encrypt', s, '2', '--in', input, '--out', out, '--iv', iv);
      expect(r.code, iv).toBe(2);
      expect(r.stderr).toMatch(/--iv/);
    }
    expect((await aes('encrypt', s, '2', '--in', input)).code).toBe(2);
    expect((await run(['aes', 'encrypt', '--sim', s, '--in', input, '--out', out])).code).toBe(2);
    expect((await aes('encrypt', s, '2', '--in', join(dir, 'nope'), '--out', out)).code).toBe(5);
    expect((await run(['aes', 'frobnicate', '--sim', s])).code).toBe(2);
    for (const ref of ['0', '256', 'abc', '2x'])
      expect((await aes('cmac', s, ref, '--in', input)).code, ref).toBe(2);
    // a control character in a path, an option given twice
    expect((await aes('encrypt', s, '2', '--in', input, '--out', `${out}\x1b[2J`)).code).toBe(2);
    expect((await aes('cmac', s, '2', '--key-ref', '3', '--in', input)).code).toBe(2);
    expect((await aes('cmac', s, '2', '--in', input, '--in', input)).code).toBe(2);
    await expect(stat(out)).rejects.toThrow();
  });

  it('an existing output file is refused and kept; --out may not be the --in file, even with --force', async () => {
    const s = await fresh();
    const input = await file('z', new Uint8Array(20));
    const out = await file('exists', Uint8Array.of(1, 2, 3));
    const r = await aes('encrypt', s, '2', '--in', input, '--out', out);
    expect(r.code).toBe(7);
    expect(toHex(await readFile(out))).toBe('010203');
    const same = await aes('encrypt', s, '2', '--in', input, '--out', input, '--force');
    expect(same.code).toBe(2);
    expect((await readFile(input)).length).toBe(20);
    const f = await aes('encrypt', s, '2', '--in', input, '--out', out, '--force');
    expect(f.code, f.stderr).toBe(0);
    expect((await readFile(out)).length).toBe(48);
  });

  it('decrypting garbage: INCORRECT_DATA, one message, no output; a wrong shape is refused before the card', async () => {
    const s = await fresh();
    const out = join(dir, `${n}-plain`);
    const messages = new Set<string>();
    for (let i = 0; i < 4; i++) {
      const g = await file(`garbage${i}`, new Uint8Array(randomBytes(64)));
      const r = await aes('decrypt', s, '2', '--in', g, '--out', out, '--json');
      if (r.code === 0) continue; // 1 in ~256: random bytes with a valid padding
      expect(r.code).toBe(1);
      expect(r.json().error.code).toBe('INCORRECT_DATA');
      messages.add(r.json().error.message);
      await expect(stat(out)).rejects.toThrow();
    }
    expect(messages.size).toBe(1);
    for (const len of [0, 15, 16, 40]) {
      const g = await file(`short${len}`, new Uint8Array(len));
      const r = await aes('decrypt', s, '2', '--in', g, '--out', out);
      expect(r.code, String(len)).toBe(2);
    }
    const g = await file('iv-only', new Uint8Array(15));
    expect((await aes('decrypt', s, '2', '--iv', '00'.repeat(16), '--in', g, '--out', out)).code).toBe(2);
  });

  it('a huge input is refused from its size before it is read or anything is sent; CMAC takes 1024 bytes', async () => {
    const s = await fresh();
    const huge = join(dir, `${n}-huge`);
    const h = await open(huge, 'w');
    await h.truncate(16 * 1024 * 1024 + 1);
    await h.close();
    const r = await aes('encrypt', s, '2', '--in', huge, '--out', join(dir, `${n}-h`));
    expect(r.code).toBe(2);
    expect(r.stderr).toMatch(/at most 16777216/);
    const long = await file('long', new Uint8Array(1025));
    const c = await aes('cmac', s, '2', '--in', long);
    expect(c.code).toBe(2);
    expect(c.stderr).toMatch(/at most 1024/);
    // an endless device is read only up to the limit
    const zero = await aes('encrypt', s, '2', '--in', '/dev/zero', '--out', join(dir, `${n}-z`));
    expect(zero.code).toBe(2);
    expect(zero.stderr).toContain('--in /dev/zero gives more than 16777216 bytes, the most that are taken');
    expect(zero.stderr).not.toMatch(/more than that/);
    expect((await aes('cmac', s, '2', '--in', '/dev/zero')).code).toBe(2);
    expect((await aes('cmac', s, '2', '--in', dir)).code).toBe(2);
    const ok = await aes('cmac', s, '2', '--in', await file('ok', new Uint8Array(1024)));
    expect(ok.code, ok.stderr).toBe(0);
  });
});
