/**
 * ISO 7816-4 command and response APDUs: value types, short and extended encoding, parsing.
 * Knows nothing about the SmartCard-HSM.
 */
import { ScHsmError } from '../errors.js';

export interface CommandApdu {
  cla: number;
  ins: number;
  p1: number;
  p2: number;
  /** Command data (Nc = data.length). */
  data?: Uint8Array;
  /** Expected response length Ne: absent = no Le field; 1..65536 (256 = short `00`, 65536 = extended `00 00`). */
  ne?: number;
  /** Force extended length fields even when the sizes would fit short ones (OpenSC does this for GAKP, SIGN…). */
  extended?: boolean;
}

export interface ResponseApdu {
  data: Uint8Array;
  sw: number;
}

export const SW_OK = 0x9000;

/** Whether a command needs extended length fields. */
export function needsExtended(c: CommandApdu): boolean {
  return (c.data?.length ?? 0) > 255 || (c.ne ?? 0) > 256;
}

/** Encodes a command, choosing short or extended form (spec §2: the card accepts both). */
export function encodeCommand(c: CommandApdu, allowExtended = true): Uint8Array {
  const nc = c.data?.length ?? 0;
  const ext = c.extended === true || needsExtended(c);
  if (ext && !allowExtended) {
    throw new ScHsmError(
      'WRONG_LENGTH',
      `command needs extended length (${nc} data bytes, Ne ${c.ne ?? 0}) but the reader only takes short APDUs`,
    );
  }
  for (const f of ['cla', 'ins', 'p1', 'p2'] as const) {
    // a value that does not fit its byte would be sent truncated: 0x12F02 as P1P2 reads 2F02
    const b = c[f];
    if (typeof b !== 'number' || !Number.isInteger(b) || b < 0 || b > 0xff)
      throw new ScHsmError(
        'INVALID_ARGUMENT',
        `command header byte ${f.toUpperCase()} must be 0..255; got ${b}`,
      );
  }
  if (nc > 65535) throw new ScHsmError('INVALID_ARGUMENT', `command data too long (${nc} bytes, max 65535)`);
  if (c.ne !== undefined && (c.ne < 1 || c.ne > 65536))
    throw new ScHsmError('INVALID_ARGUMENT', `bad Ne ${c.ne}`);
  const out: number[] = [c.cla & 0xff, c.ins & 0xff, c.p1 & 0xff, c.p2 & 0xff];
  if (!ext) {
    if (nc > 0) out.push(nc, ...c.data!);
    if (c.ne !== undefined) out.push(c.ne === 256 ? 0 : c.ne);
  } else {
    if (nc > 0) out.push(0, nc >> 8, nc & 0xff, ...c.data!);
    if (c.ne !== undefined) {
      const le = c.ne === 65536 ? 0 : c.ne;
      if (nc === 0) out.push(0);
      out.push(le >> 8, le & 0xff);
    }
  }
  return Uint8Array.from(out);
}

export interface ParsedCommand extends CommandApdu {
  data: Uint8Array;
  extended: boolean;
}

/** Parses a command APDU (cases 1–4, short and extended). Used by the virtual card. */
export function parseCommand(apdu: Uint8Array): ParsedCommand {
  if (apdu.length < 4) throw new ScHsmError('WRONG_LENGTH', 'APDU shorter than its header');
  const [cla, ins, p1, p2] = apdu as unknown as [number, number, number, number];
  const base = { cla, ins, p1, p2 };
  const body = apdu.subarray(4);
  if (body.length === 0) return { ...base, data: new Uint8Array(0), extended: false };
  if (body.length === 1) return { ...base, data: new Uint8Array(0), ne: body[0] || 256, extended: false };
  if (body[0] !== 0) {
    const lc = body[0]!;
    if (body.length === 1 + lc) return { ...base, data: body.subarray(1), extended: false };
    if (body.length === 2 + lc)
      return { ...base, data: body.subarray(1, 1 + lc), ne: body[1 + lc] || 256, extended: false };
    throw new ScHsmError('WRONG_LENGTH', 'Lc does not match the APDU length');
  }
  // extended
  if (body.length === 3) {
    const le = (body[1]! << 8) | body[2]!;
    return { ...base, data: new Uint8Array(0), ne: le || 65536, extended: true };
  }
  if (body.length < 3) throw new ScHsmError('WRONG_LENGTH', 'truncated extended length');
  const lc = (body[1]! << 8) | body[2]!;
  if (lc === 0) throw new ScHsmError('WRONG_LENGTH', 'extended Lc of zero');
  if (body.length === 3 + lc) return { ...base, data: body.subarray(3), extended: true };
  if (body.length === 5 + lc) {
    const le = (body[3 + lc]! << 8) | body[4 + lc]!;
    return { ...base, data: body.subarray(3, 3 + lc), ne: le || 65536, extended: true };
  }
  throw new ScHsmError('WRONG_LENGTH', 'extended Lc does not match the APDU length');
}

export function parseResponse(bytes: Uint8Array): ResponseApdu {
  if (bytes.length < 2) {
    throw new ScHsmError('MALFORMED_RESPONSE', `response of ${bytes.length} bytes has no status word`);
  }
  return {
    data: bytes.subarray(0, bytes.length - 2),
    sw: (bytes[bytes.length - 2]! << 8) | bytes[bytes.length - 1]!,
  };
}

export function encodeResponse(r: ResponseApdu): Uint8Array {
  const out = new Uint8Array(r.data.length + 2);
  out.set(r.data);
  out[r.data.length] = r.sw >> 8;
  out[r.data.length + 1] = r.sw & 0xff;
  return out;
}
