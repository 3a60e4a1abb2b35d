/**
 * The host side of secure messaging after chip authentication (spec §3.19): ISO 7816-4 SM with
 * AES-128 as BSI TR-03110 / ICAO 9303-11 define it for id-CA-ECDH-AES-CBC-CMAC-128.
 *
 * Command: CLA | 0C; data as `87 L 01 ‖ AES-CBC(K_enc, IV, pad(data))` (`85 L` without the
 * padding indicator for an odd INS), Le as `97`, and `8E 08` = the first 8 bytes of
 * AES-CMAC(K_mac, pad(SSC ‖ pad(CLA INS P1 P2) ‖ DO87|85 ‖ DO97)); IV = AES(K_enc, SSC). The SSC
 * (16 bytes, from 0) is incremented before each command and before each response.
 * Response: `87` (data), `99 02 SW`, `8E 08` over pad(SSC ‖ DO87 ‖ DO99), outer SW 9000.
 *
 * Any fault of a response (no MAC, a wrong MAC, a replayed answer, a missing status object, a bad
 * padding) ends the channel: this and every later exchange fail with SECURE_MESSAGING and nothing
 * is re-sent. The keys live only in this object and are wiped when it ends.
 */
import { createCipheriv, createDecipheriv } from 'node:crypto';
import type { CommandApdu, ResponseApdu } from '../apdu/command.js';
import { aesCmac } from '../dkek/dkek.js';
import { ScHsmError } from '../errors.js';
import { bytesEqual, concat, wipe } from '../util/bytes.js';
import { readTlv, tlv } from '../util/tlv.js';

const BLOCK = 16;
/** How many recent response MACs are remembered to name a replay. */
const REPLAY_WINDOW = 64;

/** ISO/IEC 9797-1 padding method 2: `80` then zeros up to a whole block (always adds one byte). */
function padIso(data: Uint8Array): Uint8Array {
  const out = new Uint8Array((Math.floor(data.length / BLOCK) + 1) * BLOCK);
  out.set(data);
  out[data.length] = 0x80;
  return out;
}

/** Removes padding method 2; undefined when it is not there. */
function unpadIso(data: Uint8Array): Uint8Array | undefined {
  let i = data.length - 1;
  while (i >= 0 && data[i] === 0) i--;
  return i >= 0 && data[i] === 0x80 ? data.subarray(0, i) : undefined;
}

function ecb(key: Uint8Array, block: Uint8Array): Uint8Array {
  const c = createCipheriv('aes-128-ecb', key, null).setAutoPadding(false);
  return new Uint8Array(concat(c.update(block), c.final()));
}

function cbc(encrypt: boolean, key: Uint8Array, iv: Uint8Array, data: Uint8Array): Uint8Array {
  const c = encrypt
    ? createCipheriv('aes-128-cbc', key, iv).setAutoPadding(false)
    : createDecipheriv('aes-128-cbc', key, iv).setAutoPadding(false);
  return new Uint8Array(concat(c.update(data), c.final()));
}

/** The SM keys and the send sequence counter of one secure channel. */
export class SecureMessaging {
  private readonly kEnc: Uint8Array;
  private readonly kMac: Uint8Array;
  private readonly ssc = new Uint8Array(BLOCK);
  /**
   * MACs of the last responses accepted: an answer carrying one again is named a replay. (Any
   * replay fails the MAC check anyway, the SSC having moved on; this only names it. Bounded, so a
   * long-running session does not grow.)
   */
  private readonly seen: string[] = [];
  /** Why the channel ended, once it did. */
  private endedBy?: string;

  constructor(kEnc: Uint8Array, kMac: Uint8Array) {
    if (kEnc.length !== 16 || kMac.length !== 16)
      throw new ScHsmError('INVALID_ARGUMENT', 'secure messaging keys must be 16 bytes each (AES-128)');
    this.kEnc = kEnc.slice();
    this.kMac = kMac.slice();
  }

  /** True until the channel ended (a fault, a lost card, or `end()`). */
  get active(): boolean {
    return this.endedBy === undefined;
  }

  /** The send sequence counter as it is now (16 bytes, a copy); for tests and diagnostics. */
  get counter(): Uint8Array {
    return this.ssc.slice();
  }

  /** Ends the channel for good: the keys are wiped and every later exchange fails. */
  end(reason: string): void {
    if (this.endedBy !== undefined) return;
    this.endedBy = reason;
    wipe(this.kEnc);
    wipe(this.kMac);
  }

  /** The error of an ended channel (before anything is sent). */
  refusal(): ScHsmError {
    return new ScHsmError(
      'SECURE_MESSAGING',
      `the secure channel has ended (${this.endedBy}); nothing was sent. Open a new session and a new secure channel`,
    );
  }

  private fault(reason: string, command?: string): never {
    this.end(reason);
    throw new ScHsmError(
      'SECURE_MESSAGING',
      `secure messaging failed: ${reason}; the secure channel and the card's security state are gone, nothing was re-sent`,
      command !== undefined ? { command } : {},
    );
  }

  private increment(): void {
    for (let i = BLOCK - 1; i >= 0; i--) {
      this.ssc[i] = (this.ssc[i]! + 1) & 0xff;
      if (this.ssc[i] !== 0) break;
    }
  }

  private mac(data: Uint8Array): Uint8Array {
    return aesCmac(this.kMac, padIso(concat(this.ssc, data))).subarray(0, 8);
  }

  /**
   * The protected form of `cmd` (the SSC advances). Without `extendedLength` the outer Le asks for
   * 256 bytes: a longer protected answer then comes in parts (61xx, GET RESPONSE).
   */
  wrap(cmd: CommandApdu, extendedLength = true): CommandApdu {
    if (!this.active) throw this.refusal();
    if ((cmd.cla & 0x0c) !== 0)
      throw new ScHsmError(
        'INVALID_ARGUMENT',
        'a command sent in a secure channel must not be protected already',
      );
    this.increment();
    const cla = cmd.cla | 0x0c;
    const header = padIso(Uint8Array.of(cla, cmd.ins, cmd.p1, cmd.p2)).subarray(0, BLOCK);
    const parts: Uint8Array[] = [];
    const data = cmd.data ?? new Uint8Array(0);
    if (data.length > 0) {
      const iv = ecb(this.kEnc, this.ssc);
      const enc = cbc(true, this.kEnc, iv, padIso(data));
      parts.push((cmd.ins & 1) === 1 ? tlv(0x85, enc) : tlv(0x87, Uint8Array.of(0x01), enc));
    }
    if (cmd.ne !== undefined) {
      parts.push(
        cmd.ne <= 256
          ? tlv(0x97, Uint8Array.of(cmd.ne & 0xff))
          : tlv(0x97, Uint8Array.of((cmd.ne >> 8) & 0xff, cmd.ne & 0xff)),
      );
    }
    const dos = concat(...parts);
    const mac = this.mac(concat(header, dos));
    const body = concat(dos, tlv(0x8e, mac));
    // a long answer in one extended response where the reader takes them, else with 61xx (GET RESPONSE)
    const long = body.length > 255 || (extendedLength && (cmd.ne ?? 0) > 256);
    return { cla, ins: cmd.ins, p1: cmd.p1, p2: cmd.p2, data: body, ne: long ? 65536 : 256 };
  }

  /**
   * The plain response inside a protected one (the SSC advances). `name` is the command's name for
   * the error. A response that is not protected (the card ended SM: `69 87`, `69 88`), carries no
   * or a wrong MAC, or repeats an earlier one ends the channel with SECURE_MESSAGING.
   */
  unwrap(r: ResponseApdu, name: string): ResponseApdu {
    if (!this.active) throw this.refusal();
    this.increment();
    if (r.sw === 0x6987 || r.sw === 0x6988)
      this.fault(
        `the card refused the protected ${name} command (SW ${r.sw.toString(16).toUpperCase()}: secure messaging data objects missing or wrong) and closed its secure channel`,
        name,
      );
    let do87: Uint8Array | undefined;
    let do99: Uint8Array | undefined;
    let mac: Uint8Array | undefined;
    let macStart = r.data.length;
    try {
      let p = 0;
      while (p < r.data.length) {
        const t = readTlv(r.data, p);
        if (t.tag === 0x87) do87 = t.value;
        else if (t.tag === 0x99) do99 = t.value;
        else if (t.tag === 0x8e) {
          mac = t.value;
          macStart = p;
        } else
          this.fault(`the response to ${name} carries an unexpected data object ${t.tag.toString(16)}`, name);
        p = t.end;
        if (mac && p !== r.data.length) this.fault(`the response to ${name} has data after its MAC`, name);
      }
    } catch (e) {
      if (e instanceof ScHsmError && e.code === 'SECURE_MESSAGING') throw e;
      this.fault(
        `the response to ${name} is not a protected response (its data objects cannot be read)`,
        name,
      );
    }
    if (mac?.length !== 8)
      this.fault(`the response to ${name} (SW ${r.sw.toString(16).toUpperCase()}) carries no MAC`, name);
    const key = Buffer.from(mac).toString('hex');
    if (this.seen.includes(key))
      this.fault(`the response to ${name} is a replay of an earlier response`, name);
    if (!bytesEqual(this.mac(r.data.subarray(0, macStart)), mac))
      this.fault(`the MAC of the response to ${name} is wrong (altered, replayed or out of sequence)`, name);
    this.seen.push(key);
    if (this.seen.length > REPLAY_WINDOW) this.seen.shift();
    if (do99?.length !== 2) this.fault(`the response to ${name} carries no status word (99)`, name);
    const sw = (do99[0]! << 8) | do99[1]!;
    if (!do87) return { data: new Uint8Array(0), sw };
    if (do87[0] !== 0x01 || (do87.length - 1) % BLOCK !== 0)
      this.fault(`the encrypted data of the response to ${name} is malformed`, name);
    const plain = unpadIso(cbc(false, this.kEnc, ecb(this.kEnc, this.ssc), do87.subarray(1)));
    if (!plain) this.fault(`the decrypted data of the response to ${name} has no valid padding`, name);
    return { data: plain.slice(), sw };
  }
}
