import { mkdtemp, readdir, readFile, rm, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { describe, expect, it } from 'vitest';
import { decodeCvc, decodeDeviceCertificates, verifyCvcSignature } from '../src/pkcs15/index.js';
import { ATR_NITROKEY_HSM2 } from '../src/protocol/constants.js';
import {
  VIRTUAL_ISSUER_CHR,
  VIRTUAL_ROOT_CERTIFICATE,
  VIRTUAL_ROOT_CHR,
  VirtualSmartCardHsm,
} from '../src/sim/index.js';
import { fromHex, toHex } from '../src/util/bytes.js';
import { INIT_TRACE_06, ok, SELECT_AID, SHARE, SHARE_KCV, tx, VERIFY_648219 } from './sim-helpers.js';

describe('virtual card: selection and identity (spec §1, §5)', () => {
  it('answers 6D00 before the applet is selected and 6A82 to foreign AIDs', () => {
    const card = new VirtualSmartCardHsm();
    expect(toHex(card.atr)).toBe(toHex(ATR_NITROKEY_HSM2));
    ok(card, '00 20 00 88', '6D00');
    ok(card, '80 58 00 00 00 00 00', '6D00');
    ok(card, '00 A4 04 00 07 62 76 01 FF 00 00 00', '6A82');
    ok(card, '00 A4 04 00 06 A0 00 00 00 01 01', '6A82');
  });

  it('SELECT AID with P2 00/04 returns FCP tag 85 (options, type 00, firmware), 0C nothing', () => {
    const card = new VirtualSmartCardHsm({ firmware: [3, 5] });
    const fcp = ok(card, SELECT_AID);
    expect(toHex(fcp)).toMatch(/^62/);
    expect(toHex(fcp)).toContain('85050000000305');
    expect(toHex(ok(card, '00 A4 04 04 0B E8 2B 06 01 04 01 81 C3 1F 02 01 00'))).toContain('8505');
    expect(ok(card, '00 A4 04 0C 0B E8 2B 06 01 04 01 81 C3 1F 02 01')).toHaveLength(0);
  });

  it('replays trace 04 (uninitialized): SO query 6A88, DKEK status 6D00', () => {
    const card = new VirtualSmartCardHsm();
    ok(card, SELECT_AID);
    ok(card, '00 20 00 88', '6A88');
    ok(card, '00 20 00 81', '6A88');
    ok(card, '80 52 00 00 00', '6D00');
  });

  it('2F02 holds device CVC ‖ issuer CVC (< 1024 bytes), verifiable up to the virtual root', () => {
    const card = new VirtualSmartCardHsm({ deviceId: '7654321' });
    ok(card, SELECT_AID);
    ok(card, '00 A4 08 00 02 2F 00 00', '6A82');
    const fcp = ok(card, '00 A4 00 00 02 2F 02 00');
    const size = (fcp[4]! << 8) | fcp[5]!;
    expect(toHex(fcp.subarray(2, 4))).toBe('8002');
    expect(size).toBeLessThan(1024);
    // OpenSC reads in 256-byte chunks until an empty answer (trace 35)
    const parts: number[] = [];
    for (let off = 0; ; off += 256) {
      const r = tx(card, `00 B1 00 00 04 54 02 ${off.toString(16).padStart(4, '0')} 00`);
      parts.push(...r.data);
      if (off + 256 <= size) {
        expect(r.sw).toBe('9000');
        expect(r.data).toHaveLength(256);
      } else {
        expect(r.sw).toBe('6282');
        expect(r.data).toHaveLength(size - off);
        break;
      }
    }
    const end = size.toString(16).padStart(4, '0');
    expect(ok(card, `00 B1 00 00 04 54 02 ${end} 00`, '6282')).toHaveLength(0);
    ok(card, `00 B1 00 00 04 54 02 ${(size + 1).toString(16).padStart(4, '0')} 00`, '6B00');
    const ef = Uint8Array.from(parts);
    expect(ef).toHaveLength(size);
    const { device, issuer } = decodeDeviceCertificates(ef);
    expect(device.chr).toBe('UTVH765432100000');
    expect(card.deviceChr).toBe('UTVH765432100000');
    expect(device.car).toBe(issuer.chr);
    expect(issuer.chr).toBe(VIRTUAL_ISSUER_CHR);
    expect(issuer.car).toBe(VIRTUAL_ROOT_CHR);
    const root = decodeCvc(VIRTUAL_ROOT_CERTIFICATE);
    expect(root.chr).toBe('UTSCHSMTS00001');
    expect(verifyCvcSignature(root, root.publicKey)).toBe(true);
    expect(verifyCvcSignature(issuer, root.publicKey)).toBe(true);
    expect(verifyCvcSignature(device, issuer.publicKey)).toBe(true);
    expect(verifyCvcSignature(device, root.publicKey)).toBe(false);
  });

  it('ENUMERATE lists CC00 from the start', () => {
    const card = new VirtualSmartCardHsm();
    ok(card, SELECT_AID);
    expect(toHex(ok(card, '80 58 00 00 00 00 00'))).toBe('cc00');
  });

  it('malformed APDUs answer 6700, unknown INS 6D00, internal faults 6F00', () => {
    const card = new VirtualSmartCardHsm();
    ok(card, SELECT_AID);
    ok(card, '00 B1 00 00 05 54 02', '6700');
    ok(card, '80 AA 00 00', '6D00');
    ok(card, '00 82 00 00 02 01 02', '6D00');
    ok(card, INIT_TRACE_06);
    ok(card, VERIFY_648219);
    ok(card, `80 52 00 00 20 ${SHARE} 00`);
    // corrupt the device key behind the card's back: GAKP then fails inside node:crypto
    // biome-ignore lint/suspicious/noExplicitAny: reaching into private state on purpose
    (card as any).state.keys.get(0).pkcs8 = fromHex('3000');
    const gakp =
      '00 46 01 00 00 00 3A 5F 29 01 00 42 09 55 54 43 41 30 30 30 30 31 7F 49 15 06 0A 04 00 7F 00 07 02 02 02 01 02 82 03 01 00 01 02 02 04 00 5F 20 10 45 53 50 49 43 4F 48 53 4D 54 52 30 30 30 30 31 00 00';
    expect(() => card.process(fromHex(gakp))).not.toThrow();
    ok(card, gakp, '6F00');
  });

  it('power cycle and reset drop selection and PIN state', () => {
    const card = new VirtualSmartCardHsm();
    ok(card, SELECT_AID);
    ok(card, INIT_TRACE_06);
    ok(card, VERIFY_648219);
    ok(card, '00 20 00 81');
    card.reset();
    ok(card, '00 20 00 81', '6D00');
    ok(card, SELECT_AID);
    ok(card, '00 20 00 81', '63C3');
    ok(card, VERIFY_648219);
    card.powerOff();
    card.powerOn();
    ok(card, SELECT_AID);
    ok(card, '00 20 00 81', '63C3');
    ok(card, VERIFY_648219);
    ok(card, SELECT_AID);
    ok(card, '00 20 00 81', '63C3');
  });

  it('GET CHALLENGE returns Le random bytes', () => {
    const card = new VirtualSmartCardHsm();
    ok(card, SELECT_AID);
    const a = ok(card, '00 84 00 00 20');
    const b = ok(card, '00 84 00 00 20');
    expect(a).toHaveLength(32);
    expect(toHex(a)).not.toBe(toHex(b));
    ok(card, '00 84 00 00', '6700');
  });
});

describe('virtual card: state file', () => {
  it('serialize/deserialize keeps persistent state, drops volatile state', () => {
    const card = new VirtualSmartCardHsm();
    let changes = 0;
    card.onChange = () => changes++;
    ok(card, SELECT_AID);
    ok(card, INIT_TRACE_06);
    expect(changes).toBe(1);
    ok(card, '00 20 00 81 06 30 30 30 30 30 30', '63C2');
    expect(changes).toBe(2);
    ok(card, `80 52 00 00 20 ${SHARE} 00`);
    ok(card, VERIFY_648219);
    ok(card, '00 D7 CF 01 09 54 02 00 00 53 03 01 02 03');
    const copy = VirtualSmartCardHsm.deserialize(card.serialize());
    expect(copy.deviceChr).toBe(card.deviceChr);
    ok(copy, '00 20 00 81', '6D00');
    ok(copy, SELECT_AID);
    ok(copy, '00 20 00 81', '63C3');
    ok(copy, '00 20 00 88', '63CF');
    expect(toHex(ok(copy, '80 52 00 00 00'))).toBe(`0100${SHARE_KCV}`);
    expect(toHex(ok(copy, '00 B1 CF 01 04 54 02 00 00 00', '6282'))).toBe('010203');
    expect(copy.serialize()).toBe(card.serialize());
  });

  it('rejects bad state files with INVALID_STATE_FILE naming the field', () => {
    const card = new VirtualSmartCardHsm();
    const good = JSON.parse(card.serialize());
    const bad = (mutate: (o: Record<string, unknown>) => void, msg: RegExp) => {
      const o = structuredClone(good);
      mutate(o);
      expect(() => VirtualSmartCardHsm.deserialize(JSON.stringify(o))).toThrowError(msg);
      try {
        VirtualSmartCardHsm.deserialize(JSON.stringify(o));
      } catch (e) {
        expect((e as { code: string }).code).toBe('INVALID_STATE_FILE');
      }
    };
    expect(() => VirtualSmartCardHsm.deserialize('{')).toThrowError(/not JSON/);
    bad((o) => (o.version = 99), /version/);
    bad((o) => (o.soPinTries = 16), /soPinTries/);
    bad((o) => (o.userPin = 'zz'), /userPin/);
    bad((o) => ((o.files as Record<string, string>).CC01 = '00'), /key FID/);
    bad((o) => delete (o.keys as Record<string, unknown>)['0'], /device key/);
    bad((o) => ((o.keys as Record<string, { kind: string }>)['0']!.kind = 'dsa'), /keys\.0\.kind/);
  });

  it('save is atomic (no temp file left) and load restores the card', async () => {
    const dir = await mkdtemp(join(tmpdir(), 'sim-state-'));
    try {
      const card = new VirtualSmartCardHsm();
      const path = join(dir, 'card.json');
      await card.save(path);
      await card.save(path);
      expect(await readdir(dir)).toEqual(['card.json']);
      const loaded = await VirtualSmartCardHsm.load(path);
      expect(loaded.serialize()).toBe(await readFile(path, 'utf8'));
      await writeFile(path, '{"format":"x"}');
      await expect(VirtualSmartCardHsm.load(path)).rejects.toMatchObject({ code: 'INVALID_STATE_FILE' });
      await expect(VirtualSmartCardHsm.load(join(dir, 'missing.json'))).rejects.toMatchObject({
        code: 'IO_ERROR',
      });
    } finally {
      await rm(dir, { recursive: true, force: true });
    }
  });
});
