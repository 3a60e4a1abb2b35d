import { readFileSync } from 'node:fs';
import { fileURLToPath } from 'node:url';
import { describe, expect, it } from 'vitest';
import { parseCommand } from '../src/apdu/command.js';
import { isScHsmError } from '../src/errors.js';
import { decodeBitField, encodeBitField } from '../src/pkcs15/der.js';
import {
  decodeCertificateDescription,
  decodeDataObjectDescription,
  decodeKeyDescription,
  decodeTokenInfo,
  encodeCertificateDescription,
  encodeDataObjectDescription,
  encodeKeyDescription,
  encodeTokenInfo,
  KEY_ACCESS,
  KEY_USAGE,
  type KeyDescription,
  OBJECT_FLAGS,
  TOKEN_FLAGS,
} from '../src/pkcs15/index.js';
import { ascii, concat, fromHex, toHex } from '../src/util/bytes.js';
import { readTlv } from '../src/util/tlv.js';

const TRACES = fileURLToPath(new URL('../fixtures/opensc-traces', import.meta.url));

/** The data of every UPDATE BINARY (`00 D7`) to `fid` in a trace, assembled at its offsets. */
function writtenFile(trace: string, fid: number): Uint8Array {
  const lines = readFileSync(`${TRACES}/${trace}`, 'utf8').split('\n');
  const apdus = lines.filter((l) => l.startsWith('APDU: ')).map((l) => fromHex(l.slice(6)));
  let current = -1;
  const chunks: { off: number; data: Uint8Array }[] = [];
  for (const a of apdus) {
    const c = parseCommand(a);
    if (c.ins === 0xa4 && c.data.length === 2) current = (c.data[0]! << 8) | c.data[1]!;
    if (c.ins !== 0xd7) continue;
    const target = c.p1 === 0 && c.p2 === 0 ? current : (c.p1 << 8) | c.p2;
    if (target !== fid) continue;
    current = fid;
    const off = readTlv(c.data, 0);
    const data = readTlv(c.data, off.end);
    chunks.push({ off: (off.value[0]! << 8) | off.value[1]!, data: data.value });
  }
  if (chunks.length === 0) throw new Error(`no write to ${fid.toString(16)} in ${trace}`);
  const size = Math.max(...chunks.map((c) => c.off + c.data.length));
  const out = new Uint8Array(size);
  for (const c of chunks) out.set(c.data, c.off);
  return out;
}

function expectError(f: () => unknown, code: string): void {
  try {
    f();
  } catch (e) {
    expect(isScHsmError(e)).toBe(true);
    expect((e as { code: string }).code).toBe(code);
    return;
  }
  throw new Error('expected an ScHsmError');
}

const h = (s: string) => fromHex(s);
const str = (s: string) => toHex(ascii(s));

describe('bit fields (spec §6 general rules)', () => {
  it.each([
    [OBJECT_FLAGS.PRIVATE | OBJECT_FLAGS.MODIFIABLE, '030206c0'],
    [OBJECT_FLAGS.MODIFIABLE, '03020640'],
    [KEY_USAGE.SIGN | KEY_USAGE.SIGN_RECOVER | KEY_USAGE.DERIVE, '0303073080'],
    [KEY_USAGE.DECRYPT | KEY_USAGE.SIGN | KEY_USAGE.SIGN_RECOVER, '03020470'],
    [
      KEY_ACCESS.SENSITIVE | KEY_ACCESS.ALWAYS_SENSITIVE | KEY_ACCESS.NEVER_EXTRACTABLE | KEY_ACCESS.LOCAL,
      '030203b8',
    ],
    [TOKEN_FLAGS.PRN_GENERATION, '03020520'],
    [0, '030100'],
  ])('encodes 0x%s minimally', (value, hex) => {
    const enc = encodeBitField(value, 'x');
    expect(toHex(enc)).toBe(hex);
    expect(decodeBitField(enc.subarray(2), 'x')).toBe(value);
  });

  it('decodes the CardContact and scsh forms of any length', () => {
    expect(decodeBitField(h('062000'), 'x')).toBe(KEY_USAGE.SIGN);
    expect(decodeBitField(h('063080'), 'x')).toBe(0x10c);
    expect(decodeBitField(h('072080'), 'x')).toBe(KEY_USAGE.SIGN | KEY_USAGE.DERIVE);
    expect(decodeBitField(h('0274'), 'x')).toBe(0x2e);
    // unused bits are ignored (pico writes 07 C0 10)
    expect(decodeBitField(h('07c010'), 'x')).toBe(KEY_USAGE.ENCRYPT | KEY_USAGE.DECRYPT);
    expectError(() => decodeBitField(h('08ff'), 'x'), 'MALFORMED_DATA');
    expectError(() => decodeBitField(h(''), 'x'), 'MALFORMED_DATA');
  });
});

describe('key descriptions (spec §6.1–6.3)', () => {
  const rsaTrace: KeyDescription = {
    kind: 'rsa',
    label: 'cara-rsa-ca',
    objectFlags: 3,
    authId: h('01'),
    id: h('01'),
    usage: 0x0e,
    keyReference: 1,
    bits: 2048,
  };
  const ecTrace: KeyDescription = {
    kind: 'ec',
    label: 'cara-ec-ca',
    objectFlags: 3,
    authId: h('01'),
    id: h('02'),
    usage: 0x10c,
    keyReference: 2,
    bits: 256,
  };

  it('writes the RSA PRKD byte-exactly as OpenSC 0.23 did in trace 12', () => {
    const written = writtenFile('12-keygen-rsa.apdu.txt', 0xc401);
    expect(toHex(encodeKeyDescription(rsaTrace))).toBe(toHex(written));
    expect(decodeKeyDescription(written)).toEqual(rsaTrace);
  });

  it('writes the EC PRKD byte-exactly as OpenSC 0.23 did in trace 13', () => {
    const written = writtenFile('13-keygen-ec.apdu.txt', 0xc402);
    expect(toHex(written)).toBe(
      `a02e3013 0c0a${str('cara-ec-ca')} 030206c0 040101 300b 040102 0303073080 020102 a10a3008 30020400 02020100`.replace(
        / /g,
        '',
      ),
    );
    expect(toHex(encodeKeyDescription(ecTrace))).toBe(toHex(written));
    expect(decodeKeyDescription(written)).toEqual(ecTrace);
  });

  const id20ec = '7d5b13c87d41545d98266d2f97b800a06fe89fa1';
  it('matches the spec §6.1 and §6.2 examples', () => {
    const ec = h(
      `a03d300f0c06${str('eckey1')}030206c0040101301e0414${id20ec}0303073080020101a10a30083002040002020100`,
    );
    const d = decodeKeyDescription(ec);
    expect(d).toEqual({
      kind: 'ec',
      label: 'eckey1',
      objectFlags: 3,
      authId: h('01'),
      id: h(id20ec),
      usage: 0x10c,
      keyReference: 1,
      bits: 256,
    });
    expect(toHex(encodeKeyDescription(d))).toBe(toHex(ec));
    const rsa = h(
      `303d30100c07${str('rsakey1')}030206c0040101301d04147493e820c69594da22f227b8d0fe2cb8cb08b4fe03020470020102a10a30083002040002020800`,
    );
    const r = decodeKeyDescription(rsa);
    expect(r.kind).toBe('rsa');
    expect(r.bits).toBe(2048);
    expect(r.keyReference).toBe(2);
    expect(toHex(encodeKeyDescription(r))).toBe(toHex(rsa));
  });

  it('writes access flags and the subject name like the A0 56 example', () => {
    const name = h(`300f310d300b0603550403 0c04${str('test')}`.replace(/ /g, ''));
    const expected = h(
      `a056 300f0c06${str('eckey1')}030206c0040101 3022 0414${id20ec} 0303073080 030203b8 020101` +
        ` a013 3011 ${toHex(name)} a10a30083002040002020100`.replace(/ /g, ''),
    );
    const d: KeyDescription = {
      kind: 'ec',
      label: 'eckey1',
      objectFlags: 3,
      authId: h('01'),
      id: h(id20ec),
      usage: 0x10c,
      access: 0x1d,
      keyReference: 1,
      subjectName: name,
      bits: 256,
    };
    expect(toHex(encodeKeyDescription(d))).toBe(toHex(expected));
    expect(decodeKeyDescription(expected)).toEqual(d);
  });

  it("decodes pico's own C400 (no flags, no authId, no key reference)", () => {
    const c400 = h(
      `a038300d0c0b${str('ESPICOHSMTR')}301b0414${'00'.repeat(20)}0303072080a10a30083002040002020100`,
    );
    expect(decodeKeyDescription(c400)).toEqual({
      kind: 'ec',
      label: 'ESPICOHSMTR',
      objectFlags: 0,
      id: new Uint8Array(20),
      usage: KEY_USAGE.SIGN | KEY_USAGE.DERIVE,
      bits: 256,
    });
  });

  it('decodes sc-hsm-embedded and scsh variants', () => {
    // EMB: label optional, 03 03 06 xx yy usage, no key reference
    const emb = h(`30 18 3000 3008 040101 0303062000 a10a 3008 30020400 02020800`.replace(/ /g, ''));
    expect(decodeKeyDescription(emb)).toEqual({
      kind: 'rsa',
      objectFlags: 0,
      id: h('01'),
      usage: KEY_USAGE.SIGN,
      bits: 2048,
    });
    // scsh RSA: usage 03 02 02 74, no flags or authId
    const scsh = h(
      `30 1e 3004 0c02${str('k1')} 300a 040101 03020274 020101 a10a30083002040002020400`.replace(/ /g, ''),
    );
    const s = decodeKeyDescription(scsh);
    expect(s.usage).toBe(KEY_USAGE.DECRYPT | KEY_USAGE.SIGN | KEY_USAGE.SIGN_RECOVER | KEY_USAGE.UNWRAP);
    expect(s.bits).toBe(1024);
    expect(s.label).toBe('k1');
  });

  it('reads an EC field size of 528 as 521 (P-521)', () => {
    const d = encodeKeyDescription({ kind: 'ec', objectFlags: 3, id: h('05'), usage: 4, bits: 528 });
    expect(decodeKeyDescription(d).bits).toBe(521);
    const rsa = encodeKeyDescription({ kind: 'rsa', objectFlags: 3, id: h('05'), usage: 4, bits: 528 });
    expect(decodeKeyDescription(rsa).bits).toBe(528);
  });

  it('encodes and decodes AES secret key descriptions in all known forms', () => {
    const aes: KeyDescription = {
      kind: 'aes',
      label: 'aes1',
      objectFlags: 3,
      authId: h('01'),
      id: h('0a'),
      usage: KEY_USAGE.ENCRYPT | KEY_USAGE.DECRYPT,
      keyReference: 10,
      bits: 256,
    };
    const enc = encodeKeyDescription(aes);
    expect(toHex(enc)).toBe(
      `a82b 300d0c04${str('aes1')}030206c0040101 300a04010a030206c002010a a006300402020100 a106300430020400`.replace(
        / /g,
        '',
      ),
    );
    expect(decodeKeyDescription(enc)).toEqual(aes);
    // sc-hsm-embedded: A0 { 30 { 02 n } }, usage 03 03 06 C0 00
    const emb = h(
      `a8 1b 3006 0c04${str('aes2')} 3008 040101 030306c000 a007 3005 020300 0080`.replace(/ /g, ''),
    );
    expect(decodeKeyDescription(emb)).toMatchObject({ kind: 'aes', label: 'aes2', usage: 3, bits: 128 });
    // older: A0 { 02 n }
    const old = h(`a812 3000 3008 040101 030306c000 a004 020200c0`.replace(/ /g, ''));
    expect(decodeKeyDescription(old).bits).toBe(192);
    // pico: extra A1 and usage 03 03 07 C0 10
    const pico = h(`a8 1b 3000 3008 040101 030307c010 a005 3003 020180 a106 3004 30020400`.replace(/ /g, ''));
    expect(decodeKeyDescription(pico)).toMatchObject({ kind: 'aes', usage: 3, bits: 128 });
  });

  it('keeps native and access only when present', () => {
    const d: KeyDescription = {
      kind: 'rsa',
      objectFlags: 0,
      id: h('01'),
      usage: 2,
      native: false,
      access: 0,
      bits: 1024,
    };
    const enc = encodeKeyDescription(d);
    expect(toHex(enc)).toContain('0101000301 00'.replace(' ', ''));
    expect(decodeKeyDescription(enc)).toEqual(d);
    const plain = decodeKeyDescription(encodeKeyDescription({ ...d, native: undefined, access: undefined }));
    expect('native' in plain).toBe(false);
    expect('access' in plain).toBe(false);
  });

  it('refuses bad encoder input with INVALID_ARGUMENT', () => {
    const ok: KeyDescription = { kind: 'ec', objectFlags: 3, id: h('01'), usage: 4, bits: 256 };
    expectError(() => encodeKeyDescription({ ...ok, id: new Uint8Array(0) }), 'INVALID_ARGUMENT');
    expectError(() => encodeKeyDescription({ ...ok, bits: 0 }), 'INVALID_ARGUMENT');
    expectError(() => encodeKeyDescription({ ...ok, usage: -1 }), 'INVALID_ARGUMENT');
    expectError(() => encodeKeyDescription({ ...ok, kind: 'dsa' as 'ec' }), 'INVALID_ARGUMENT');
    expectError(() => encodeKeyDescription({ ...ok, keyReference: 1.5 }), 'INVALID_ARGUMENT');
    expectError(() => encodeKeyDescription({ ...ok, subjectName: h('0c0141') }), 'INVALID_ARGUMENT');
    expectError(
      () => encodeKeyDescription({ ...ok, kind: 'aes', subjectName: h('3000') }),
      'INVALID_ARGUMENT',
    );
  });

  it('refuses undecodable bytes with MALFORMED_DATA', () => {
    expectError(() => decodeKeyDescription(new Uint8Array(0)), 'MALFORMED_DATA');
    expectError(() => decodeKeyDescription(h('a1023000')), 'MALFORMED_DATA');
    expectError(() => decodeKeyDescription(h('a0043000')), 'MALFORMED_DATA');
    expectError(() => decodeKeyDescription(h('a00630003002 0301 00'.replace(/ /g, ''))), 'MALFORMED_DATA');
  });
});

describe('certificate and data object descriptions (spec §6.4, §6.5)', () => {
  it('matches the CD OpenSC wrote for CA00', () => {
    const cd = h(`301b300a0c04${str('myca')}03020640 3003040199 a108300630040402ca00`.replace(/ /g, ''));
    const d = decodeCertificateDescription(cd);
    expect(d).toEqual({ label: 'myca', objectFlags: OBJECT_FLAGS.MODIFIABLE, id: h('99'), path: h('ca00') });
    expect(toHex(encodeCertificateDescription(d))).toBe(toHex(cd));
    const auth = encodeCertificateDescription({ ...d, authority: true });
    expect(toHex(auth)).toContain('04019901 01ff'.replace(' ', ''));
    expect(decodeCertificateDescription(auth).authority).toBe(true);
  });

  it('matches the public and private DCODs OpenSC wrote', () => {
    const pub = h(
      `301f300c0c06${str('mydata')}03020640 30070c05${str('myapp')} a106 30040402cf00`.replace(/ /g, ''),
    );
    const d = decodeDataObjectDescription(pub);
    expect(d).toEqual({ label: 'mydata', objectFlags: 2, applicationName: 'myapp', path: h('cf00') });
    expect(toHex(encodeDataObjectDescription(d))).toBe(toHex(pub));
    const priv = h(
      `3027 3011 0c08${str('privdata')} 030206c0 040101 300a 0c08${str('privdata')} a106 30040402cd01`.replace(
        / /g,
        '',
      ),
    );
    const p = decodeDataObjectDescription(priv);
    expect(p).toEqual({
      label: 'privdata',
      objectFlags: 3,
      authId: h('01'),
      applicationName: 'privdata',
      path: h('cd01'),
    });
    expect(toHex(encodeDataObjectDescription(p))).toBe(toHex(priv));
  });

  it('round-trips an application OID', () => {
    const d = { objectFlags: 2, applicationOid: '1.3.6.1.4.1.24991.3.1', path: h('cf05') };
    const enc = encodeDataObjectDescription(d);
    expect(toHex(enc)).toContain(`060a${'2b0601040181c31f0301'}`);
    expect(decodeDataObjectDescription(enc)).toEqual(d);
    expectError(() => encodeDataObjectDescription({ ...d, applicationOid: '1.x' }), 'INVALID_ARGUMENT');
    expectError(() => encodeDataObjectDescription({ ...d, path: new Uint8Array(0) }), 'INVALID_ARGUMENT');
  });

  it('refuses descriptions without a path', () => {
    expectError(
      () => decodeCertificateDescription(h('3009 3000 3003040199 3000'.replace(/ /g, ''))),
      'MALFORMED_DATA',
    );
    expectError(() => decodeDataObjectDescription(h('30043000 3000')), 'MALFORMED_DATA');
  });
});

describe('EF.TokenInfo (spec §6.6)', () => {
  it('writes exactly what sc-hsm-tool wrote in trace 06', () => {
    const written = writtenFile('06-initialize.apdu.txt', 0x2f03);
    expect(toHex(written)).toBe(`3015020100800c${str('MTG-CARA-HSM')}03020520`);
    const t = { version: 0, label: 'MTG-CARA-HSM', flags: TOKEN_FLAGS.PRN_GENERATION };
    expect(toHex(encodeTokenInfo(t))).toBe(toHex(written));
    expect(decodeTokenInfo(written)).toEqual(t);
  });

  it("decodes pico's richer TokenInfo", () => {
    const serial = h('0011223344556677');
    const pico = concat(
      h('302f020105'),
      h('0408'),
      serial,
      h('0c0d'),
      ascii('Pol Henarejos'),
      h('800d'),
      ascii('SmartCard-HSM'),
      h('03020430'),
    );
    expect(decodeTokenInfo(pico)).toEqual({
      version: 5,
      serialNumber: serial,
      manufacturer: 'Pol Henarejos',
      label: 'SmartCard-HSM',
      flags: TOKEN_FLAGS.PRN_GENERATION | TOKEN_FLAGS.EID_COMPLIANT,
    });
    expect(toHex(encodeTokenInfo(decodeTokenInfo(pico)))).toBe(toHex(pico));
  });

  it('refuses a TokenInfo without version', () => {
    expectError(() => decodeTokenInfo(h('300403020520')), 'MALFORMED_DATA');
    expectError(() => encodeTokenInfo({ version: -1, flags: 0 }), 'INVALID_ARGUMENT');
  });
});
