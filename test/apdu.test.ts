import { describe, expect, it } from 'vitest';
import { encodeCommand, parseCommand, parseResponse } from '../src/apdu/command.js';
import { errorForStatus } from '../src/apdu/status.js';
import { isoSecretMask, maskedHex, RecordingTransport, ReplayTransport } from '../src/apdu/transcript.js';
import { ApduChannel, type Transport } from '../src/apdu/transport.js';
import { ScHsmError } from '../src/errors.js';
import { maskedCommandHex, secretMask } from '../src/sc-hsm/transcript-mask.js';
import { fromHex, toHex } from '../src/util/bytes.js';
import { readTlv, tlv } from '../src/util/tlv.js';

const h = (s: string) => fromHex(s);

describe('command encoding (ISO 7816-4 cases)', () => {
  it('encodes short cases 1-4 as OpenSC sends them', () => {
    expect(toHex(encodeCommand({ cla: 0, ins: 0x20, p1: 0, p2: 0x81 }))).toBe('00200081');
    expect(toHex(encodeCommand({ cla: 0x80, ins: 0x52, p1: 0, p2: 0, ne: 256 }))).toBe('8052000000');
    expect(toHex(encodeCommand({ cla: 0, ins: 0x20, p1: 0, p2: 0x81, data: h('363438323139') }))).toBe(
      '0020008106363438323139',
    );
    expect(
      toHex(encodeCommand({ cla: 0, ins: 0xa4, p1: 4, p2: 0, data: h('E82B0601040181C31F0201'), ne: 256 })),
    ).toBe('00a404000be82b0601040181c31f020100');
  });

  it('encodes extended forms: forced, by data size and by Ne', () => {
    // ENUMERATE as OpenSC: 80 58 00 00 00 00 00
    expect(toHex(encodeCommand({ cla: 0x80, ins: 0x58, p1: 0, p2: 0, ne: 65536 }))).toBe('80580000000000');
    // SIGN as OpenSC: extended Lc even for short data, Le 02 00
    expect(
      toHex(
        encodeCommand({ cla: 0x80, ins: 0x68, p1: 1, p2: 0x73, data: h('aabb'), ne: 512, extended: true }),
      ),
    ).toBe('806801730000' + '02aabb0200');
    const big = encodeCommand({ cla: 0x80, ins: 0x74, p1: 5, p2: 0x93, data: new Uint8Array(331) });
    expect(toHex(big.subarray(0, 7))).toBe('8074059300014b');
    expect(big.length).toBe(7 + 331);
  });

  it('refuses extended encoding when the reader only takes short APDUs', () => {
    expect(() => encodeCommand({ cla: 0, ins: 0, p1: 0, p2: 0, data: new Uint8Array(300) }, false)).toThrow(
      ScHsmError,
    );
  });

  it('parses what it encodes, for every case', () => {
    const cases = [
      { cla: 0, ins: 0x20, p1: 0, p2: 0x81 },
      { cla: 0x80, ins: 0x52, p1: 0, p2: 0, ne: 256 },
      { cla: 0, ins: 0x84, p1: 0, p2: 0, ne: 8 },
      { cla: 0, ins: 0x20, p1: 0, p2: 0x81, data: h('31323334353637') },
      { cla: 0, ins: 0xa4, p1: 4, p2: 0, data: h('E82B0601040181C31F0201'), ne: 256 },
      { cla: 0x80, ins: 0x58, p1: 0, p2: 0, ne: 65536 },
      { cla: 0x80, ins: 0x68, p1: 1, p2: 0x20, data: new Uint8Array(256).fill(7), ne: 512 },
      { cla: 0x80, ins: 0x74, p1: 1, p2: 0x93, data: new Uint8Array(600).fill(1) },
    ];
    for (const c of cases) {
      const p = parseCommand(encodeCommand(c));
      expect([p.cla, p.ins, p.p1, p.p2]).toEqual([c.cla, c.ins, c.p1, c.p2]);
      expect(toHex(p.data)).toBe(toHex(c.data ?? new Uint8Array(0)));
      expect(p.ne).toBe(c.ne);
    }
  });

  it('rejects inconsistent lengths with a typed error', () => {
    expect(() => parseCommand(h('002000'))).toThrow(ScHsmError);
    expect(() => parseCommand(h('0020008106313233'))).toThrow(/Lc/);
    expect(() => parseResponse(h('90'))).toThrow(ScHsmError);
  });
});

describe('status words', () => {
  it('maps 63Cx to WRONG_PIN with tries left, 63C0 and 6983 to PIN_BLOCKED', () => {
    const e = errorForStatus(0x63c2, 'VERIFY');
    expect(e.code).toBe('WRONG_PIN');
    expect(e.triesLeft).toBe(2);
    expect(e.message).toMatch(/2 tries left/);
    expect(e.swHex).toBe('63C2');
    expect(errorForStatus(0x63c0, 'VERIFY').code).toBe('PIN_BLOCKED');
    expect(errorForStatus(0x6983, 'VERIFY').code).toBe('PIN_BLOCKED');
  });

  it('names the command and the status word, and honours per-command meanings', () => {
    const e = errorForStatus(0x6a82, 'SIGN', { 0x6a82: ['KEY_NOT_FOUND', 'no key 3'] });
    expect(e.code).toBe('KEY_NOT_FOUND');
    expect(e.command).toBe('SIGN');
    expect(e.message).toContain('6A82');
    for (const [sw, code] of [
      [0x6982, 'SECURITY_STATUS'],
      [0x6700, 'WRONG_LENGTH'],
      [0x6985, 'CONDITIONS_NOT_SATISFIED'],
      [0x6d00, 'NOT_SUPPORTED'],
      [0x6a88, 'DATA_NOT_FOUND'],
      [0x6f00, 'CARD_ERROR'],
      [0x1234, 'CARD_ERROR'],
    ] as const) {
      expect(errorForStatus(sw, 'X').code).toBe(code);
    }
  });
});

/** A scripted card: answers each APDU from a function and records what it got. */
function scripted(answer: (apdu: Uint8Array, n: number) => string): Transport & { got: string[] } {
  const got: string[] = [];
  return {
    got,
    async transmit(apdu) {
      got.push(toHex(apdu));
      return fromHex(answer(apdu, got.length));
    },
    async close() {},
  };
}

describe('ApduChannel', () => {
  it('follows 61xx with GET RESPONSE and joins the data', async () => {
    const t = scripted((a) =>
      a[1] === 0xc0 ? (a[4] === 0x04 ? '0102030461 02'.replace(' ', '') : '05069000') : 'aabb6104',
    );
    const ch = new ApduChannel(t);
    const r = await ch.exchange({ cla: 0, ins: 0xb0, p1: 0, p2: 0, ne: 256 }, 'READ');
    expect(toHex(r.data)).toBe('aabb0102030405 06'.replace(' ', ''));
    expect(t.got).toEqual(['00b0000000', '00c0000004', '00c0000002']);
    expect(ch.apduCount).toBe(3);
  });

  it('re-issues with the right Le on 6Cxx', async () => {
    const t = scripted((a) => (a[4] === 0x02 ? 'cafe9000' : '6c02'));
    const r = await new ApduChannel(t).exchange({ cla: 0, ins: 0x84, p1: 0, p2: 0, ne: 8 }, 'GET CHALLENGE');
    expect(toHex(r.data)).toBe('cafe');
    expect(t.got).toEqual(['0084000008', '0084000002']);
  });

  it('throws the typed error for a failing status, accepts listed ones', async () => {
    const t = scripted(() => '6282');
    const ch = new ApduChannel(t);
    await expect(ch.exchange({ cla: 0, ins: 0xb1, p1: 0, p2: 0 }, 'READ BINARY')).rejects.toMatchObject({
      sw: 0x6282,
    });
    await expect(
      ch.exchange({ cla: 0, ins: 0xb1, p1: 0, p2: 0 }, 'READ BINARY', { accept: [0x6282] }),
    ).resolves.toBeTruthy();
  });

  it('never interleaves an exclusive sequence with other exchanges', async () => {
    const order: string[] = [];
    const t: Transport = {
      async transmit(apdu) {
        order.push(toHex(apdu.subarray(1, 2)));
        await new Promise((r) => setTimeout(r, 1));
        return fromHex('9000');
      },
      async close() {},
    };
    const ch = new ApduChannel(t);
    const seq = ch.exclusive(async () => {
      await ch.send({ cla: 0, ins: 0x01, p1: 0, p2: 0 });
      await ch.send({ cla: 0, ins: 0x02, p1: 0, p2: 0 });
      await ch.exclusive(() => ch.send({ cla: 0, ins: 0x03, p1: 0, p2: 0 }));
    });
    const other = ch.send({ cla: 0, ins: 0x09, p1: 0, p2: 0 });
    await Promise.all([seq, other]);
    expect(order).toEqual(['01', '02', '03', '09']);
  });

  it('keeps working after a failed sequence', async () => {
    const ch = new ApduChannel(scripted(() => '9000'));
    await expect(ch.exclusive(async () => Promise.reject(new Error('boom')))).rejects.toThrow('boom');
    await expect(ch.send({ cla: 0, ins: 0, p1: 0, p2: 0 })).resolves.toMatchObject({ sw: 0x9000 });
  });
});

describe('transcripts', () => {
  it('the SmartCard-HSM mask: VERIFY, CHANGE REFERENCE DATA, RESET RETRY COUNTER, IMPORT DKEK SHARE data and INITIALIZE tags 81/82', () => {
    expect(maskedCommandHex(h('0020008106363438323139'))).toBe('0020008106************');
    expect(maskedCommandHex(h('00200081'))).toBe('00200081');
    expect(maskedCommandHex(h('002C0081020102'))).toBe('002c008102****');
    expect(maskedCommandHex(h('0024008802aabb'))).toBe('0024008802****');
    expect(maskedCommandHex(h('8052000002aabb00'))).toBe('8052000002****00');
    expect(maskedCommandHex(h('8052000000'))).toBe('8052000000');
    // the exact bytes of sc-hsm-tool --initialize (spec §3.9)
    const init = h(
      '80 50 00 00 1C 80 02 00 01 81 06 36 34 38 32 31 39 82 08 35 37 36 32 31 38 38 30 91 01 03 92 01 01',
    );
    const m = maskedCommandHex(init);
    expect(m).toBe('805000001c800200018106************8208****************910103920101');
    // unreadable TLVs: everything after the header is masked
    expect(maskedCommandHex(h('805000000481063634'))).toBe('8050000004********');
    // an inconsistent Lc never reveals bytes past it
    expect(maskedCommandHex(h('00200081023132333435'))).toBe('0020008102**********');
    expect(m).not.toContain('363438323139');
    expect(m).not.toContain('3537363231383830');
  });

  it('the ISO mask of the APDU layer knows no application: PIN commands, and every proprietary data field whole', () => {
    expect(maskedHex(h('0020008106363438323139'))).toBe('0020008106************');
    expect(maskedHex(h('00a4000002c40100'))).toBe('00a4000002c40100');
    // INITIALIZE: without the SmartCard-HSM's mask the whole field, not only tags 81/82
    expect(maskedHex(h('805000000a800200018106363438323139'))).toBe(`805000000a${'**'.repeat(12)}`);
    // GENERATE ASYMMETRIC KEY PAIR data is masked by the ISO default, readable with the card's mask
    const gakp = h('8046010003aabbcc');
    expect(maskedHex(gakp)).toBe('8046010003******');
    expect(maskedHex(gakp, secretMask)).toBe('8046010003aabbcc');
    expect(isoSecretMask(h('00200081'))).toEqual([false, false, false, false]);
  });

  it('recording and replay transports refuse a wrong argument shape with INVALID_ARGUMENT, not a TypeError at the first APDU', () => {
    const card = scripted(() => '9000');
    const sinkObject = { sink: () => undefined } as unknown as (line: string) => void;
    expect(() => new RecordingTransport(card, sinkObject)).toThrow(
      expect.objectContaining({ code: 'INVALID_ARGUMENT', message: expect.stringMatching(/^sink /) }),
    );
    expect(() => new RecordingTransport({} as never)).toThrow(
      expect.objectContaining({ code: 'INVALID_ARGUMENT' }),
    );
    expect(() => new ReplayTransport(42 as never)).toThrow(
      expect.objectContaining({ code: 'INVALID_ARGUMENT' }),
    );
    expect(() => new RecordingTransport(card, undefined, 'mask' as never)).toThrow(
      expect.objectContaining({ code: 'INVALID_ARGUMENT' }),
    );
  });

  it('records and replays; a divergence, a missing and a leftover APDU all fail', async () => {
    const card = scripted((a) => (a[1] === 0x20 ? '9000' : '6a82'));
    const rec = new RecordingTransport(card);
    rec.comment('verify then select');
    await rec.transmit(h('0020008106363438323139'));
    await rec.transmit(h('00a4000002c40100'));
    const text = rec.text();
    expect(text).toBe(
      '# verify then select\n=> 0020008106************\n<= 9000\n=> 00a4000002c40100\n<= 6a82\n',
    );
    const replay = new ReplayTransport(text);
    expect(toHex(await replay.transmit(h('0020008106313131313131')))).toBe('9000'); // masked bytes match anything
    await expect(replay.close()).rejects.toMatchObject({ code: 'REPLAY_MISMATCH' });
    expect(toHex(await replay.transmit(h('00a4000002c40100')))).toBe('6a82');
    await expect(replay.transmit(h('00'))).rejects.toMatchObject({ code: 'REPLAY_MISMATCH' });
    await expect(replay.close()).resolves.toBeUndefined();
    const wrong = new ReplayTransport(text);
    await expect(wrong.transmit(h('0020008206313131313131'))).rejects.toThrow(/differs/);
    expect(() => new ReplayTransport('=> 00\n')).toThrow(ScHsmError);
    expect(() => new ReplayTransport('<= 9000\n')).toThrow(ScHsmError);
  });
});

describe('TLV', () => {
  it('reads multi-byte tags and long lengths, and writes them back', () => {
    const v = new Uint8Array(300).fill(9);
    const enc = tlv(0x7f49, v);
    expect(toHex(enc.subarray(0, 5))).toBe('7f4982012c');
    const t = readTlv(enc);
    expect(t.tag).toBe(0x7f49);
    expect(t.value.length).toBe(300);
    expect(t.constructed).toBe(true);
  });

  it('never trusts a length beyond the input', () => {
    expect(() => readTlv(h('5f2982ffff00'))).toThrow(/runs past the end/);
    expect(() => readTlv(h('30'))).toThrow(ScHsmError);
    expect(() => readTlv(h('3080'))).toThrow(/indefinite/);
    expect(() => readTlv(h('1fffffffff01'))).toThrow(ScHsmError);
  });
});
