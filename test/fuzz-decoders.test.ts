/**
 * Hostile input for every decoder: TLV, the applet FCP, status words and responses, the PKCS#15
 * objects, CV certificates and requests, DKEK share files, key blobs, .bin wrap files and the
 * virtual card's state file. 10,000 cases each, random bytes and mutated valid samples; the only
 * outcomes allowed are a value or an ScHsmError. Also: a 100-byte input announcing a huge length
 * never makes a decoder allocate more than 1 MB (every Uint8Array/ArrayBuffer/Buffer allocation is
 * watched), and the heap stays bounded over the whole run.
 */
import { generateKeyPairSync } from 'node:crypto';
import fc from 'fast-check';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { parseResponse } from '../src/apdu/command.js';
import { errorForStatus } from '../src/apdu/status.js';
import {
  decodeWrapFile,
  decryptKeyBlob,
  encodeWrapFile,
  encryptKeyBlob,
  inspectKeyBlob,
} from '../src/dkek/index.js';
import { decryptDkekShareWithIterations, encryptDkekShareWithIterations } from '../src/dkek/share-file.js';
import { ScHsmError } from '../src/errors.js';
import {
  decodeCertificateDescription,
  decodeCvc,
  decodeCvRequest,
  decodeDataObjectDescription,
  decodeDeviceCertificates,
  decodeKeyDescription,
  decodeTokenInfo,
  encodeCertificateDescription,
  encodeDataObjectDescription,
  encodeKeyDescription,
  encodeTokenInfo,
} from '../src/pkcs15/index.js';
import { SmartCardHsm } from '../src/sc-hsm/session.js';
import { VirtualSmartCardHsm } from '../src/sim/index.js';
import { ascii, concat, fromHex } from '../src/util/bytes.js';
import { readAll, readTlv, tlv } from '../src/util/tlv.js';
import { mutatedSample } from './helpers/mutate.js';

const RUNS = 10_000;
const SHARE = fromHex('9b1964f9cbc623adbe4644244161d955a8729a691883b35643c9e6e9dc3f3c74');

function inputs(samples: Uint8Array[]): fc.Arbitrary<Uint8Array> {
  return fc.oneof(
    { weight: 1, arbitrary: fc.uint8Array({ maxLength: 300 }) },
    {
      weight: 3,
      arbitrary: mutatedSample(samples),
    },
  );
}

/** Runs `decode` over 10,000 hostile inputs: a value or an ScHsmError, nothing else. */
function fuzz(name: string, decode: (b: Uint8Array) => unknown, samples: () => Uint8Array[]): void {
  it(`${name}: a value or an ScHsmError for ${RUNS} hostile inputs`, () => {
    const s = samples();
    for (const x of s) decode(x);
    let errors = 0;
    fc.assert(
      fc.property(inputs(s), (bytes) => {
        try {
          decode(bytes);
        } catch (e) {
          if (!(e instanceof ScHsmError)) throw e;
          errors++;
        }
      }),
      { numRuns: RUNS },
    );
    expect(errors).toBeGreaterThan(0);
  });
}

function fuzzAsync(
  name: string,
  decode: (b: Uint8Array) => Promise<unknown>,
  samples: () => Uint8Array[],
): void {
  it(`${name}: a value or an ScHsmError for ${RUNS} hostile inputs`, async () => {
    const s = samples();
    for (const x of s) await decode(x);
    let errors = 0;
    await fc.assert(
      fc.asyncProperty(inputs(s), async (bytes) => {
        try {
          await decode(bytes);
        } catch (e) {
          if (!(e instanceof ScHsmError)) throw e;
          errors++;
        }
      }),
      { numRuns: RUNS },
    );
    expect(errors).toBeGreaterThan(0);
  });
}

// ---------------------------------------------------------------- samples

const S: Record<string, Uint8Array[]> = {};
let stateJson = '';
let heapBefore = 0;

function gc(): void {
  (globalThis as { gc?: () => void }).gc?.();
}

beforeAll(async () => {
  gc();
  heapBefore = process.memoryUsage().heapUsed;
  const card = new VirtualSmartCardHsm({ deviceId: '9990001' });
  const hsm = await SmartCardHsm.open(card);
  S.fcp = [hsm.info.fcp];
  await hsm.initialize({ soPin: '3537363231383830', userPin: '648219', dkekShares: 1, label: 'fuzz' });
  await hsm.importDkekShare(SHARE);
  await hsm.verifyPin('648219');
  const ec = await hsm.generateKeyPair({ type: 'ec', curve: 'secp256r1', label: 'fuzz ec' });
  S.request = [ec.request];
  const dev = await hsm.deviceCertificates();
  S.devcerts = [dev.raw];
  S.cvc = [dev.device.raw, dev.issuer.raw];
  const blob = await hsm.wrapKey(ec.keyRef);
  const rsaKey = generateKeyPairSync('rsa', { modulusLength: 1024 }).privateKey;
  const rsaBlob = encryptKeyBlob(
    { pkcs8: new Uint8Array(rsaKey.export({ type: 'pkcs8', format: 'der' })) },
    SHARE,
  );
  S.blob = [blob, rsaBlob, encryptKeyBlob({ aes: new Uint8Array(32).fill(3) }, SHARE)];
  const bin = await hsm.backupKey(ec.keyRef);
  S.bin = [bin, encodeWrapFile({ blob })];
  S.prkd = [
    (await hsm.readFile(0xc401)).slice(),
    encodeKeyDescription({
      kind: 'rsa',
      label: 'r',
      objectFlags: 3,
      authId: fromHex('01'),
      id: fromHex('0102'),
      usage: 0x0e,
      keyReference: 2,
      bits: 2048,
    }),
    encodeKeyDescription({
      kind: 'aes',
      label: 'a',
      objectFlags: 3,
      id: fromHex('03'),
      usage: 0x103,
      keyReference: 3,
      bits: 256,
      access: 0x1d,
    }),
  ];
  S.cd = [
    encodeCertificateDescription({
      label: 'c',
      objectFlags: 2,
      id: fromHex('01'),
      path: fromHex('ca00'),
      authority: true,
    }),
  ];
  S.dcod = [
    encodeDataObjectDescription({
      label: 'd',
      objectFlags: 3,
      authId: fromHex('01'),
      applicationName: 'app',
      path: fromHex('cd01'),
    }),
  ];
  S.tokeninfo = [encodeTokenInfo({ version: 0, label: 'fuzz', flags: 4, serialNumber: ascii('DENK01') })];
  S.share = [
    await encryptDkekShareWithIterations(SHARE, 'password', 1, { salt: fromHex('0102030405060708') }),
  ];
  S.response = [concat(fromHex('0102'), fromHex('9000')), fromHex('63c2'), fromHex('6a82')];
  S.tlv = [tlv(0x30, tlv(0x04, new Uint8Array(200)), tlv(0x7f21, tlv(0x5f29, Uint8Array.of(0)))), ...S.cvc];
  stateJson = card.serialize();
});

afterAll(() => {
  gc();
  const grown = process.memoryUsage().heapUsed - heapBefore;
  // bounded over the whole run (10,000s of inputs)
  expect(grown).toBeLessThan(200 * 1024 * 1024);
});

// ---------------------------------------------------------------- the decoders

describe('decoders under hostile input', () => {
  fuzz(
    'TLV readTlv/readAll',
    (b) => [readTlv(b), readAll(b)],
    () => S.tlv!,
  );
  fuzz(
    'applet FCP (SmartCardHsm.parseFcp)',
    (b) => SmartCardHsm.parseFcp(b),
    () => S.fcp!,
  );
  fuzz(
    'response APDU and status word',
    (b) => {
      const r = parseResponse(b);
      const e = errorForStatus(r.sw, 'FUZZ');
      if (!(e instanceof ScHsmError)) throw new TypeError('not an ScHsmError');
      return r;
    },
    () => S.response!,
  );
  fuzz('PrKD/SKD (decodeKeyDescription)', decodeKeyDescription, () => S.prkd!);
  fuzz('CD (decodeCertificateDescription)', decodeCertificateDescription, () => S.cd!);
  fuzz('DCOD (decodeDataObjectDescription)', decodeDataObjectDescription, () => S.dcod!);
  fuzz('TokenInfo (decodeTokenInfo)', decodeTokenInfo, () => S.tokeninfo!);
  fuzz('CV certificate (decodeCvc)', decodeCvc, () => S.cvc!);
  fuzz('CV request (decodeCvRequest)', decodeCvRequest, () => S.request!);
  fuzz('EF 2F02 (decodeDeviceCertificates)', decodeDeviceCertificates, () => S.devcerts!);
  fuzz('key blob header (inspectKeyBlob)', inspectKeyBlob, () => S.blob!);
  fuzz(
    'key blob (decryptKeyBlob)',
    (b) => decryptKeyBlob(b, SHARE),
    () => S.blob!,
  );
  fuzz('.bin wrap file (decodeWrapFile)', decodeWrapFile, () => S.bin!);
  fuzzAsync(
    'DKEK share file (1 KDF iteration)',
    (b) => decryptDkekShareWithIterations(b, 'password', 1),
    () => S.share!,
  );

  it(`virtual card state file (VirtualSmartCardHsm.deserialize): a card or INVALID_STATE_FILE for ${RUNS} hostile files`, () => {
    const base = JSON.parse(stateJson) as Record<string, unknown>;
    const paths = [...jsonPaths(base)];
    const hostileValue = fc.oneof(
      fc.constant(null),
      fc.boolean(),
      fc.integer(),
      fc.double(),
      fc.constant(1e308),
      fc.constant(-1),
      fc.constant(0x7fffffff),
      fc.string({ maxLength: 20 }),
      fc.constant('zz'),
      fc.constant('ff'.repeat(3)),
      fc.array(fc.integer(), { maxLength: 3 }),
      fc.dictionary(fc.string({ maxLength: 4 }), fc.integer(), { maxKeys: 2 }),
    );
    const edits = fc.array(fc.tuple(fc.constantFrom(...paths), hostileValue, fc.boolean()), {
      minLength: 1,
      maxLength: 3,
    });
    const texts = fc.oneof(
      { weight: 4, arbitrary: edits.map((es) => JSON.stringify(applyEdits(base, es))) },
      { weight: 1, arbitrary: fc.string({ maxLength: 200 }) },
      {
        weight: 1,
        arbitrary: fc.tuple(fc.nat(), fc.nat()).map(([a, b]) => {
          const s = stateJson;
          const i = a % s.length;
          return s.slice(0, i) + s.slice(i + (b % 10));
        }),
      },
    );
    let errors = 0;
    fc.assert(
      fc.property(texts, (text) => {
        try {
          VirtualSmartCardHsm.deserialize(text);
        } catch (e) {
          if (!(e instanceof ScHsmError)) throw e;
          expect(e.code).toBe('INVALID_STATE_FILE');
          errors++;
        }
      }),
      { numRuns: RUNS },
    );
    expect(errors).toBeGreaterThan(0);
  });
});

function* jsonPaths(v: unknown, prefix: string[] = []): Generator<string> {
  if (prefix.length) yield JSON.stringify(prefix);
  if (v && typeof v === 'object') {
    for (const [k, x] of Object.entries(v as Record<string, unknown>)) yield* jsonPaths(x, [...prefix, k]);
  }
}

function applyEdits(base: Record<string, unknown>, edits: [string, unknown, boolean][]): unknown {
  const copy = structuredClone(base);
  for (const [p, value, remove] of edits) {
    const path = JSON.parse(p) as string[];
    let o = copy as Record<string, unknown>;
    for (const k of path.slice(0, -1)) {
      const next = o[k];
      if (!next || typeof next !== 'object') return copy;
      o = next as Record<string, unknown>;
    }
    const last = path[path.length - 1]!;
    if (remove) delete o[last];
    else o[last] = value;
  }
  return copy;
}

// ---------------------------------------------------------------- allocation from length fields

/** Watches every typed-array and buffer allocation while `fn` runs; returns the largest in bytes. */
function largestAllocation(fn: () => void): number {
  let max = 0;
  const g = globalThis as unknown as Record<string, unknown>;
  const originals = { Uint8Array, ArrayBuffer, alloc: Buffer.alloc, allocUnsafe: Buffer.allocUnsafe };
  const note = (n: unknown) => {
    if (typeof n === 'number' && n > max) max = n;
  };
  const watch = <T extends abstract new (...a: never[]) => unknown>(C: T) =>
    new Proxy(C, {
      construct(target, args, newTarget) {
        note(args[0]);
        if (Array.isArray(args[0])) note(args[0].length);
        return Reflect.construct(
          target,
          args,
          newTarget === watched.get(target) ? target : newTarget,
        ) as object;
      },
    });
  const watched = new Map<unknown, unknown>();
  const u8 = watch(Uint8Array);
  const ab = watch(ArrayBuffer);
  watched.set(Uint8Array, u8);
  watched.set(ArrayBuffer, ab);
  g.Uint8Array = u8;
  g.ArrayBuffer = ab;
  Buffer.alloc = ((n: number, ...rest: never[]) => {
    note(n);
    return originals.alloc(n, ...rest);
  }) as typeof Buffer.alloc;
  Buffer.allocUnsafe = ((n: number) => {
    note(n);
    return originals.allocUnsafe(n);
  }) as typeof Buffer.allocUnsafe;
  try {
    fn();
  } catch (e) {
    if (!(e instanceof ScHsmError)) throw e;
  } finally {
    g.Uint8Array = originals.Uint8Array;
    g.ArrayBuffer = originals.ArrayBuffer;
    Buffer.alloc = originals.alloc;
    Buffer.allocUnsafe = originals.allocUnsafe;
  }
  return max;
}

describe('a 100-byte input announcing a huge length', () => {
  /** 100 bytes: `tag 83 FF FF FF` (16 MiB announced) or `tag 84 7F FF FF FF`, then filler. */
  function huge(tag: number[], form: number[]): Uint8Array {
    const head = [...tag, ...form];
    return Uint8Array.from([...head, ...new Array<number>(100 - head.length).fill(0x41)]);
  }
  const forms = [
    [0x83, 0xff, 0xff, 0xff],
    [0x84, 0x7f, 0xff, 0xff, 0xff],
    [0x82, 0xff, 0xff],
  ];
  const decoders: [string, (b: Uint8Array) => unknown, number[][]][] = [
    ['readTlv', (b) => readTlv(b), [[0x30], [0x7f, 0x21]]],
    ['parseFcp', (b) => SmartCardHsm.parseFcp(b), [[0x62]]],
    ['decodeKeyDescription', decodeKeyDescription, [[0x30], [0xa0], [0xa8]]],
    ['decodeCertificateDescription', decodeCertificateDescription, [[0x30]]],
    ['decodeDataObjectDescription', decodeDataObjectDescription, [[0x30]]],
    ['decodeTokenInfo', decodeTokenInfo, [[0x30]]],
    ['decodeCvc', decodeCvc, [[0x7f, 0x21]]],
    ['decodeCvRequest', decodeCvRequest, [[0x67], [0x7f, 0x21]]],
    ['decodeDeviceCertificates', decodeDeviceCertificates, [[0x7f, 0x21]]],
    ['decodeWrapFile', decodeWrapFile, [[0x30]]],
    ['inspectKeyBlob', inspectKeyBlob, [[0x00]]],
    ['decryptKeyBlob', (b) => decryptKeyBlob(b, SHARE), [[0x00]]],
  ];
  for (const [name, decode, tags] of decoders) {
    it(`${name} allocates no more than 1 MB for it`, () => {
      for (const t of tags) {
        for (const f of forms) {
          const input = huge(t, f);
          expect(largestAllocation(() => decode(input))).toBeLessThan(1024 * 1024);
          // nested: a valid outer TLV holding the lying inner one
          const nested = concat(Uint8Array.of(0x30, 0x60), input.subarray(0, 0x60));
          expect(largestAllocation(() => decode(nested))).toBeLessThan(1024 * 1024);
        }
      }
    });
  }

  it('key blob with lying inner length fields (2-byte lengths up to 65535) allocates no more than 1 MB', () => {
    const b = S.blob![0]!.slice(0, 100);
    for (let at = 8; at < 40; at++) {
      const x = b.slice();
      x[at] = 0xff;
      x[at + 1] = 0xff;
      expect(largestAllocation(() => inspectKeyBlob(x))).toBeLessThan(1024 * 1024);
      expect(largestAllocation(() => decryptKeyBlob(x, SHARE))).toBeLessThan(1024 * 1024);
    }
  });

  it('the watch itself sees a large allocation', () => {
    expect(largestAllocation(() => new Uint8Array(5_000_000))).toBe(5_000_000);
  });
});
