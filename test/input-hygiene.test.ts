/**
 * Wrong results accepted silently (issue #10 §8): a key ID another key already has, an RSA size the
 * card does not support brought in by import, a subject that is no distinguished name, and labels
 * with control characters — refused on input (library and command, before anything is sent), and
 * escaped when they come from a card or a file anyway.
 */
import { generateKeyPairSync } from 'node:crypto';
import { readFile, writeFile } from 'node:fs/promises';
import { join } from 'node:path';
import { beforeAll, describe, expect, it } from 'vitest';
import { printable } from '../src/cli/format.js';
import {
  encodeKeyDescription,
  encodeTokenInfo,
  importPrivateKey,
  readPrivateKey,
  SmartCardHsm,
} from '../src/index.js';
import { checkLabel } from '../src/sc-hsm/validate.js';
import { VirtualSmartCardHsm } from '../src/sim/index.js';
import { fromHex } from '../src/util/bytes.js';
import { parseDistinguishedName } from '../src/x509/dn.js';
import { cli, PIN, SO_PIN, tempDir } from './cli-helpers.js';
import { rejection } from './helpers/fixtures.js';

const SHARE = fromHex('9b1964f9cbc623adbe4644244161d955a8729a691883b35643c9e6e9dc3f3c74');
/** ESC [2J (clear screen), BEL, newline, RIGHT-TO-LEFT OVERRIDE, a C1 control (CSI). */
const HOSTILE = ['ca\x1b[2Jkey', 'bell\x07', 'two\nlines', 'abc\u202Etxt.exe', 'c1\u009b31m'];
const RAW_CONTROL = /[\u0000-\u0008\u000b-\u001f\u007f-\u009f\u202a-\u202e\u2066-\u2069]/;

async function ready(): Promise<{ card: VirtualSmartCardHsm; hsm: SmartCardHsm }> {
  const card = new VirtualSmartCardHsm();
  const hsm = await SmartCardHsm.open(card);
  await hsm.initialize({ soPin: SO_PIN, userPin: PIN, label: 'hygiene', dkekShares: 1 });
  await hsm.importDkekShare(SHARE);
  await hsm.verifyPin(PIN);
  return { card, hsm };
}

describe('labels: printable text only, 1 to 32 bytes of UTF-8', () => {
  it('refuses control and text-direction characters, names the character by its code only', () => {
    for (const l of HOSTILE) {
      expect(() => checkLabel(l, 'key label')).toThrowError(/control or text-direction character \(U\+/);
    }
    expect(() => checkLabel('lone \ud800', 'key label')).toThrowError(/U\+D800/);
    for (const l of ['CA-1', 'Café ✓', 'ключ', '🔑 root', 'a'.repeat(32)])
      expect(() => checkLabel(l)).not.toThrow();
    // the limit is in bytes, and the message says so
    expect(() => checkLabel('é'.repeat(17))).toThrowError(/1 to 32 bytes of UTF-8.*it has 34 bytes/);
  });

  it('library: initialize, key generation and data objects refuse them before anything is sent', async () => {
    const card = new VirtualSmartCardHsm();
    const hsm = await SmartCardHsm.open(card);
    const before = hsm.apduCount;
    const e = await rejection(hsm.initialize({ soPin: SO_PIN, userPin: PIN, label: HOSTILE[0]! }));
    expect(e.code).toBe('INVALID_ARGUMENT');
    expect(hsm.apduCount).toBe(before);
    const { hsm: h } = await ready();
    const n = h.apduCount;
    for (const label of HOSTILE) {
      expect((await rejection(h.generateKeyPair({ type: 'ec', curve: 'prime256v1', label }))).code).toBe(
        'INVALID_ARGUMENT',
      );
      expect((await rejection(h.generateAesKey({ bits: 256, label }))).code).toBe('INVALID_ARGUMENT');
      expect((await rejection(h.writeDataObject({ label, data: Uint8Array.of(1) }))).code).toBe(
        'INVALID_ARGUMENT',
      );
    }
    expect(h.apduCount).toBe(n);
  });

  it('command: every text option is checked before the device is opened', async () => {
    const dir = await tempDir();
    const sim = join(dir, 'new.json');
    for (const label of HOSTILE) {
      const r = await cli([
        'init',
        '--sim',
        sim,
        '--so-pin',
        SO_PIN,
        '--pin',
        PIN,
        '--label',
        label,
        '--dkek-shares',
        '1',
        '--yes',
        '--json',
      ]);
      expect(r.code).toBe(2);
      expect(r.json().error.message).toMatch(/--label contains a control or text-direction character/);
      expect(r.stdout + r.stderr).not.toMatch(RAW_CONTROL);
    }
    await expect(readFile(sim)).rejects.toMatchObject({ code: 'ENOENT' });
  });

  it('printable escapes what a terminal would act on and leaves the rest', () => {
    expect(printable('ca\x1b[2Jkey')).toBe('ca\\x1b[2Jkey');
    expect(printable('two\nlines\u202E')).toBe('two\\x0alines\\u{202e}');
    expect(printable('Café ✓ 🔑')).toBe('Café ✓ 🔑');
    expect(printable(undefined)).toBe('');
  });
});

describe('labels from a hostile card or file are printed escaped', () => {
  let dir: string;
  let sim: string;
  beforeAll(async () => {
    dir = await tempDir();
    sim = join(dir, 'hostile.json');
    const { card, hsm } = await ready();
    const k = await hsm.generateKeyPair({ type: 'ec', curve: 'prime256v1', label: 'fine' });
    // another tool (or a tampered card) wrote these: the codecs write what they are given
    await hsm.writeFile(
      0xc400 | k.keyRef,
      encodeKeyDescription({
        kind: 'ec',
        label: HOSTILE[0]!,
        objectFlags: 3,
        authId: Uint8Array.of(1),
        id: k.id,
        usage: 0x10c,
        keyReference: k.keyRef,
        bits: 256,
      }),
    );
    await hsm.writeFile(0x2f03, encodeTokenInfo({ version: 0, label: HOSTILE[2]!, flags: 4 }));
    await hsm.writeDataObject({ label: 'ok', data: Uint8Array.of(1) });
    await card.save(sim);
  });

  it('status, keys and dump escape them; --json carries them JSON-escaped', async () => {
    for (const argv of [['status'], ['keys'], ['dump'], ['delete-key', '--key-ref', '1', '--pin', PIN]]) {
      const r = await cli([...argv, '--sim', sim]);
      expect(r.stdout + r.stderr, argv.join(' ')).not.toMatch(RAW_CONTROL);
    }
    // re-initialization asks first, quoting the card's label: escaped (newline included)
    const init = await cli(['init', '--sim', sim, '--so-pin', SO_PIN, '--pin', PIN, '--label', 'new']);
    expect(init.code).toBe(7);
    expect(init.stderr).toContain('(label "two\\x0alines")');
    expect((await cli(['keys', '--sim', sim])).stdout).toContain('ca\\x1b[2Jkey');
    expect((await cli(['status', '--sim', sim])).stdout).toContain('two\\x0alines');
    const j = await cli(['keys', '--sim', sim, '--json']);
    expect(j.stdout).toContain('ca\\u001b[2Jkey');
    expect(j.json().keys[0].label).toBe(HOSTILE[0]);
  });

  it('restore prints the labels of a hostile manifest escaped', async () => {
    const spare = join(dir, 'spare.json');
    const backup = join(dir, 'backup');
    const src = join(dir, 'src.json');
    {
      const { card, hsm } = await ready();
      await hsm.generateKeyPair({ type: 'ec', curve: 'prime256v1', label: 'plain' });
      await card.save(src);
      const spareCard = new VirtualSmartCardHsm();
      const s = await SmartCardHsm.open(spareCard);
      await s.initialize({ soPin: SO_PIN, userPin: PIN, dkekShares: 1 });
      await s.importDkekShare(SHARE);
      await spareCard.save(spare);
    }
    expect((await cli(['backup', backup, '--sim', src, '--pin', PIN])).code).toBe(0);
    const m = JSON.parse(await readFile(join(backup, 'manifest.json'), 'utf8'));
    m.keys[0].label = HOSTILE[0];
    await writeFile(join(backup, 'manifest.json'), JSON.stringify(m));
    const r = await cli(['restore', backup, '--sim', spare, '--pin', PIN]);
    expect(r.stdout + r.stderr).not.toMatch(RAW_CONTROL);
    expect(r.code, r.stderr).toBe(0);
    expect(r.stdout).toContain('"ca\\x1b[2Jkey"');
  });
});

describe('key IDs: one key per ID', () => {
  it('library: generateKeyPair, generateAesKey and importPrivateKey refuse an ID in use before creating anything', async () => {
    const { hsm } = await ready();
    const first = await hsm.generateKeyPair({
      type: 'ec',
      curve: 'prime256v1',
      label: 'a',
      id: Uint8Array.of(7),
    });
    expect((await hsm.listKeys()).length).toBe(1);
    const e = await rejection(
      hsm.generateKeyPair({ type: 'ec', curve: 'prime256v1', label: 'b', id: Uint8Array.of(7) }),
    );
    expect(e.code).toBe('KEY_ID_IN_USE');
    expect(e.message).toMatch(/07 is already the ID of key reference 1/);
    expect((await rejection(hsm.generateAesKey({ bits: 128, label: 'c', id: Uint8Array.of(7) }))).code).toBe(
      'KEY_ID_IN_USE',
    );
    // the AES default ID is 16 random bytes (no longer the key reference): another key's ID 03 is
    // no obstacle to an AES key at key reference 3
    await hsm.generateKeyPair({ type: 'ec', curve: 'prime256v1', label: 'd', id: Uint8Array.of(3) });
    const aes = await hsm.generateAesKey({ bits: 128, label: 'e', keyRef: 3 });
    expect(aes.id.length).toBe(16);
    await hsm.deleteKey(3);
    const { privateKey } = generateKeyPairSync('ec', { namedCurve: 'P-256' });
    const imp = await rejection(
      importPrivateKey(hsm, { key: privateKey, keyRef: 9, label: 'f', id: first.id, dkekShares: [SHARE] }),
    );
    expect(imp.code).toBe('KEY_ID_IN_USE');
    expect((await hsm.listKeys()).map((k) => k.keyRef)).toEqual([1, 2]);
  });

  it('command: keygen --id of an existing key is refused (exit 7) and creates nothing', async () => {
    const dir = await tempDir();
    const sim = join(dir, 'ids.json');
    const { card } = await ready();
    await card.save(sim);
    const gen = (id: string) =>
      cli([
        'keygen',
        '--sim',
        sim,
        '--type',
        'ec:prime256v1',
        '--label',
        'k',
        '--id',
        id,
        '--pin',
        PIN,
        '--json',
      ]);
    expect((await gen('a1b2')).code).toBe(0);
    const again = await gen('A1:B2');
    expect(again.code).toBe(7);
    expect(again.json().error.code).toBe('KEY_ID_IN_USE');
    expect(again.json().error.fix).toMatch(/another --id/);
    expect((await cli(['keys', '--sim', sim, '--json'])).json().keys).toHaveLength(1);
  });
});

describe('RSA sizes: one set of limits for generation and import', () => {
  it('an RSA-1000 key is refused by import as by key generation', async () => {
    const { privateKey } = generateKeyPairSync('rsa', { modulusLength: 1000 });
    expect(() => readPrivateKey(privateKey)).toThrowError(
      /1000 bits is not supported.*1024, 1536, 2048, 3072, 4096/,
    );
    const { hsm } = await ready();
    const n = hsm.apduCount;
    const e = await rejection(
      importPrivateKey(hsm, { key: privateKey, keyRef: 4, label: 'r', dkekShares: [SHARE] }),
    );
    expect(e.code).toBe('INVALID_ARGUMENT');
    expect(hsm.apduCount).toBe(n);
    expect((await rejection(hsm.generateKeyPair({ type: 'rsa', bits: 1000, label: 'r' }))).message).toMatch(
      /1000 bits is not supported/,
    );

    const dir = await tempDir();
    const pem = join(dir, 'rsa1000.pem');
    await writeFile(pem, privateKey.export({ format: 'pem', type: 'pkcs8' }));
    const r = await cli([
      'import-key',
      pem,
      '--sim',
      join(dir, 'absent.json'),
      '--key-ref',
      '4',
      '--label',
      'r',
      '--dkek',
      join(dir, 'absent.pbe'),
      '--json',
    ]);
    expect(r.code).toBe(2);
    expect(r.json().error.message).toMatch(/1000 bits is not supported/);
    const k = await cli([
      'keygen',
      '--sim',
      join(dir, 'absent.json'),
      '--type',
      'rsa:1000',
      '--label',
      'r',
      '--json',
    ]);
    expect(k.code).toBe(2);
  });
});

describe('subjects: strict distinguished names', () => {
  it('parses RFC 4514 names with escapes, in the order written', () => {
    expect(parseDistinguishedName('CN=Example CA, O=Example, C=DE').map((r) => r[0]!.type)).toEqual([
      'CN',
      'O',
      'C',
    ]);
    expect(parseDistinguishedName('CN=Doe\\, John')[0]![0]!.value).toBe('Doe, John');
    expect(parseDistinguishedName('cn=caf\\C3\\A9')[0]![0]).toMatchObject({
      type: 'CN',
      value: 'café',
      encoding: 'utf8String',
    });
    expect(parseDistinguishedName('CN=a+OU=b')[0]).toHaveLength(2);
    expect(parseDistinguishedName('2.5.4.3=x')[0]![0]!.oid).toBe('2.5.4.3');
    expect(parseDistinguishedName('E=ca@example.org')[0]![0]!.encoding).toBe('ia5String');
  });

  it('refuses what is not one, naming the bad part', () => {
    const cases: [string, RegExp][] = [
      ['nonsense', /"nonsense" is not TYPE=value/],
      ['CN=x, FOO=y', /"FOO=y" has an unknown attribute name "FOO"/],
      ['CN=', /"CN=" has an empty value/],
      ['CN=x,,O=y', /empty part between commas/],
      ['C=Germany', /two-letter country code/],
      ['CN=a"b', /unescaped "/],
      ['CN=a\\qb', /backslash that escapes nothing/],
      ['CN=x\x1b[31m', /control or text-direction character/],
      ['', /the subject is empty/],
      [`CN=${'x'.repeat(65)}`, /65 characters \(at most 64\)/],
    ];
    for (const [s, re] of cases) expect(() => parseDistinguishedName(s), s).toThrowError(re);
  });

  it('command: csr and cert self-sign refuse a bad --subject before a PIN is sent', async () => {
    const dir = await tempDir();
    const sim = join(dir, 'x509.json');
    const { card, hsm } = await ready();
    await hsm.generateKeyPair({ type: 'ec', curve: 'prime256v1', label: 'k' });
    await card.save(sim);
    // a wrong PIN: had it been sent, a try would be gone
    for (const argv of [
      ['csr', '--key-ref', '1', '--subject', 'nonsense', '--pin', '000000'],
      ['cert', 'self-sign', '--key-ref', '1', '--subject', 'nonsense', '--days', '30', '--pin', '000000'],
    ]) {
      const r = await cli([...argv, '--sim', sim, '--json']);
      expect(r.code).toBe(2);
      expect(r.json().error.message).toMatch(/--subject: the subject part "nonsense" is not TYPE=value/);
    }
    expect((await cli(['pin', 'status', '--sim', sim, '--json'])).json().userPin.triesLeft).toBe(3);
    const ok = await cli([
      'cert',
      'self-sign',
      '--key-ref',
      '1',
      '--subject',
      'CN=Root\\, Example, C=DE',
      '--days',
      '30',
      '--pin',
      PIN,
      '--sim',
      sim,
      '--json',
    ]);
    expect(ok.code, ok.stderr).toBe(0);
    expect(ok.json().subject).toBe('CN=Root\\, Example, C=DE');
  });
});
