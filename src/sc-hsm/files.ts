/**
 * The card's flat file system (spec §3.1–3.5, §4): ENUMERATE OBJECTS, READ / UPDATE BINARY with
 * the FID in P1P2 and the offset in tag 54, DELETE FILE. One instance per session.
 */
import type { ApduChannel } from '../apdu/transport.js';
import { ScHsmError } from '../errors.js';
import { CLA_ISO, CLA_PROPRIETARY, INS } from '../protocol/constants.js';
import { concat, uintBE } from '../util/bytes.js';
import { tlv } from '../util/tlv.js';
import { checkBytes, checkFid } from './validate.js';

/** File id as four uppercase hex digits, e.g. `C401`. */
export function fidHex(fid: number): string {
  return fid.toString(16).toUpperCase().padStart(4, '0');
}

/** End of file reached before Le bytes: hosts accept it with the data (spec §3.2). */
const SW_EOF = 0x6282;

/** Bytes of file data per UPDATE BINARY: stays below the smallest card limit of spec §2 (1232) with headers. */
const WRITE_CHUNK = 1024;

/**
 * Bytes of file data per UPDATE BINARY under a card's largest command APDU (Transport.maxApdu):
 * at most WRITE_CHUNK, and `maxApdu` less the header (4), an extended Lc (3), the offset `54 02 xx xx`
 * (4) and the data tag `53 82 xx xx` (4).
 */
export function writeChunk(maxApdu: number | undefined): number {
  if (maxApdu === undefined) return WRITE_CHUNK;
  return Math.max(1, Math.min(WRITE_CHUNK, maxApdu - 15));
}

export class CardFiles {
  /**
   * Files read through readRemembered in this session, by FID, and those the session wrote whole
   * (deleted first, or known absent). This session's own UPDATE BINARY and DELETE FILE of a FID
   * drop it first, and forget() drops all (card reset, INITIALIZE), so it only ever holds what the
   * card holds while the session owns it.
   */
  private readonly remembered = new Map<number, Uint8Array>();
  /**
   * While {@link run} holds the card: every file read or written in it (`null`: absent), and the
   * values memoised with {@link runMemo}. Undefined outside a run.
   */
  private runFiles: Map<number, Uint8Array | null> | undefined;
  private runValues: Map<string, unknown> | undefined;

  constructor(
    private readonly channel: ApduChannel,
    private readonly extended: boolean,
  ) {}

  /**
   * Runs `fn` with the card held exclusively (PC/SC: one exclusive connection for all of it, so
   * no other application can change a file in between) and each file read once in it: a second
   * read of a file returns what the first read, or this session's own write, left there. For
   * multi-key sequences that change no DKEK or key domain (backupDevice, restoreDevice: a backup
   * read every key's description and certificate twice). A card reset in the run drops it all.
   */
  async run<T>(fn: () => Promise<T>): Promise<T> {
    return this.channel.exclusive(async () => {
      // inside exclusive(): a run already set is this async context's own (others queue)
      if (this.runFiles) return fn();
      this.runFiles = new Map();
      this.runValues = new Map();
      try {
        return await fn();
      } finally {
        this.runFiles = undefined;
        this.runValues = undefined;
      }
    });
  }

  /** `compute()` once per {@link run} for `key` (outside a run: every time). */
  async runMemo<T>(key: string, compute: () => Promise<T>): Promise<T> {
    if (!this.runValues) return compute();
    return this.channel.exclusive(async () => {
      if (this.runValues?.has(key)) return this.runValues.get(key) as T;
      const v = await compute();
      this.runValues?.set(key, v);
      return v;
    });
  }

  /**
   * read(), once per session for each FID: for files a multi-key operation consults for every key
   * (the key descriptions checkFreeId compares IDs with), so that restoring N keys reads each
   * description once instead of N times.
   */
  async readRemembered(fid: number): Promise<Uint8Array> {
    const known = this.remembered.get(fid);
    if (known) return known;
    const data = await this.read(fid);
    this.remembered.set(fid, data);
    return data;
  }

  /** Drops every remembered file (after a card reset or INITIALIZE), and what a run holds. */
  forget(): void {
    this.remembered.clear();
    this.runFiles?.clear();
    this.runValues?.clear();
  }

  /** ENUMERATE OBJECTS: every key and EF id on the card (spec §3.5). */
  async enumerate(): Promise<number[]> {
    const r = await this.channel.exchange(
      { cla: CLA_PROPRIETARY, ins: INS.ENUMERATE_OBJECTS, p1: 0, p2: 0, ne: this.extended ? 65536 : 256 },
      'ENUMERATE OBJECTS',
    );
    if (r.data.length % 2)
      throw new ScHsmError('MALFORMED_RESPONSE', 'ENUMERATE OBJECTS answered an odd number of bytes');
    const out: number[] = [];
    for (let i = 0; i < r.data.length; i += 2) out.push((r.data[i]! << 8) | r.data[i + 1]!);
    return out;
  }

  /**
   * Reads a whole EF (odd READ BINARY with the FID in P1P2, as sc-hsm-embedded does, spec §3.2).
   * With extended APDUs one exchange normally returns the whole file; otherwise it loops.
   */
  async read(fid: number, maxSize = 65535): Promise<Uint8Array> {
    checkFid(fid);
    if (!this.runFiles || maxSize !== 65535) return this.readCard(fid, maxSize);
    return this.channel.exclusive(async () => {
      const known = this.runFiles?.get(fid);
      if (known === null) throw new ScHsmError('FILE_NOT_FOUND', `file ${fidHex(fid)} not found`);
      if (known) return known.slice();
      try {
        const data = await this.readCard(fid, maxSize);
        this.runFiles?.set(fid, data.slice());
        return data;
      } catch (e) {
        if (e instanceof ScHsmError && e.code === 'FILE_NOT_FOUND') this.runFiles?.set(fid, null);
        throw e;
      }
    });
  }

  private async readCard(fid: number, maxSize: number): Promise<Uint8Array> {
    const parts: Uint8Array[] = [];
    let offset = 0;
    const ne = this.extended ? 65536 : 256;
    for (;;) {
      const r = await this.channel.exchange(
        {
          cla: CLA_ISO,
          ins: INS.READ_BINARY,
          p1: fid >> 8,
          p2: fid & 0xff,
          data: tlv(0x54, uintBE(offset, 2)),
          ne,
        },
        'READ BINARY',
        {
          accept: [SW_EOF],
          overrides: {
            0x6a82: ['FILE_NOT_FOUND', `file ${fidHex(fid)} not found`],
            0x6982: ['SECURITY_STATUS', `reading file ${fidHex(fid)} needs the user PIN`],
          },
        },
      );
      parts.push(r.data);
      offset += r.data.length;
      if (r.sw === SW_EOF || r.data.length === 0 || r.data.length < ne || offset >= maxSize) break;
      if (offset > 0xffff)
        throw new ScHsmError('MALFORMED_RESPONSE', `file ${fidHex(fid)} is larger than 64 KiB`);
    }
    return concat(...parts);
  }

  /** Reads a file, or returns undefined if it does not exist. */
  async readOptional(fid: number): Promise<Uint8Array | undefined> {
    try {
      return await this.read(fid);
    } catch (e) {
      if (e instanceof ScHsmError && e.code === 'FILE_NOT_FOUND') return undefined;
      throw e;
    }
  }

  /**
   * Writes `data` into an EF, creating it if needed (UPDATE BINARY with tag 53, spec §3.3). The
   * file is deleted first when it exists, so that a shorter new content never leaves old bytes
   * behind (OpenSC does the same for certificates). `absent`: the caller knows the file does not
   * exist (it enumerated the files, or deleted this one, in the same exclusive section), so no
   * DELETE FILE is sent. A file written whole (deleted first, or absent) is remembered as written.
   */
  async write(
    fid: number,
    data: Uint8Array,
    opts: { replace?: boolean; absent?: boolean } = {},
  ): Promise<void> {
    checkFid(fid);
    checkBytes(data, 'the file content', 0, 0xffff);
    this.remembered.delete(fid);
    this.runFiles?.delete(fid);
    const whole = opts.replace !== false || opts.absent === true;
    await this.channel.exclusive(async () => {
      if (opts.replace !== false && !opts.absent) await this.deleteIfExists(fid);
      if (data.length === 0) {
        await this.update(fid, 0, data);
        if (whole) this.runFiles?.set(fid, data.slice());
        return;
      }
      const chunk = writeChunk(this.channel.transport.maxApdu);
      for (let off = 0; off < data.length; off += chunk) {
        await this.update(fid, off, data.subarray(off, off + chunk));
      }
      // what the card now holds, as if read back: the ID check of the next key needs no READ BINARY
      if (whole) {
        this.remembered.set(fid, data.slice());
        this.runFiles?.set(fid, data.slice());
      }
    });
  }

  private async update(fid: number, offset: number, chunk: Uint8Array): Promise<void> {
    await this.channel.exchange(
      {
        cla: CLA_ISO,
        ins: INS.UPDATE_BINARY,
        p1: fid >> 8,
        p2: fid & 0xff,
        data: concat(tlv(0x54, uintBE(offset, 2)), tlv(0x53, chunk)),
      },
      'UPDATE BINARY',
      {
        overrides: {
          0x6982: ['SECURITY_STATUS', `writing file ${fidHex(fid)} needs the user PIN: verify it first`],
        },
      },
    );
  }

  /** DELETE FILE (spec §3.4). */
  async delete(fid: number): Promise<void> {
    checkFid(fid);
    this.remembered.delete(fid);
    this.runFiles?.delete(fid);
    await this.channel.exchange(
      { cla: CLA_ISO, ins: INS.DELETE_FILE, p1: 0x02, p2: 0x00, data: uintBE(fid, 2) },
      'DELETE FILE',
      {
        overrides: {
          0x6a82: ['FILE_NOT_FOUND', `file ${fidHex(fid)} not found`],
          0x6982: ['SECURITY_STATUS', `deleting ${fidHex(fid)} needs the user PIN: verify it first`],
        },
      },
    );
    this.runFiles?.set(fid, null);
  }

  async deleteIfExists(fid: number): Promise<boolean> {
    try {
      await this.delete(fid);
      return true;
    } catch (e) {
      if (e instanceof ScHsmError && e.code === 'FILE_NOT_FOUND') return false;
      throw e;
    }
  }
}
