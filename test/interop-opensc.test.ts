/**
 * OpenSC's own tools (sc-hsm-tool, pkcs11-tool, pkcs15-tool, opensc-tool: independent peers nobody
 * here wrote) against our virtual SmartCard-HSM, through the real pcscd and vpcd, following the
 * Nitrokey HSM 2 guide in order (spec/opensc-traces/README.md); then files crossing between OpenSC
 * and our codecs/session both ways; then a fault (card pulled mid-session).
 *
 * Run with: bash scripts/with-pcscd.sh npx vitest run test/interop
 * Two virtual cards: device 1 on vpcd slot 0 ("Virtual PCD 00 00", opensc-tool reader 0), device 2
 * on slot 1 ("Virtual PCD 00 01", reader 1). The tests of this file build on each other and run in
 * order. Every tool run is bounded (test/helpers/opensc.ts), and every failed parse shows the whole
 * tool output.
 *
 * Note on timing: sc-hsm-tool derives the share-file key with 10,000,000 MD5 rounds (spec §7.1),
 * about 20 s per run on a small CI machine; the guide needs three such runs (create, import on device
 * 1, import on device 2). Device 2 is prepared in the background while device 1 imports its share.
 */
import { createPublicKey, verify as cryptoVerify } from 'node:crypto';
import { mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, beforeAll, expect, it } from 'vitest';
import type { PcscTransport } from '../src/apdu/pcsc.js';
import {
  decodeWrapFile,
  decryptDkekShare,
  encryptDkekShare,
  inspectKeyBlob,
  keyCheckValue,
} from '../src/dkek/index.js';
import { isScHsmError } from '../src/errors.js';
import { decodeKeyDescription } from '../src/pkcs15/index.js';
import { openPcsc } from '../src/sc-hsm/open-pcsc.js';
import { SmartCardHsm } from '../src/sc-hsm/session.js';
import { VirtualSmartCardHsm } from '../src/sim/index.js';
import { connectToVpcd, type VpcdConnection } from '../src/sim/vpcd.js';
import { toHex } from '../src/util/bytes.js';
import {
  argv,
  grab,
  grabAll,
  ok,
  openscTool,
  openssl,
  pkcs11Tool,
  pkcs15Tool,
  READER0,
  READER1,
  scHsmTool,
  show,
  type ToolResult,
  waitForReader,
} from './helpers/opensc.js';
import { describePcsc, vpcdEndpoint, waitAdopted } from './helpers/pcsc-env.js';

const SO_PIN = '3537363231383830';
const PIN = '648219';
const NEW_PIN = '654321';
const WRONG_PIN = '000000';
const SHARE_PASSWORD = 'cara-dkek-share-1-pw';
/** Password of the share file that OUR encryptDkekShare writes (same share, re-encrypted). */
const TS_SHARE_PASSWORD = 'ts-made-share-pw-2';
const LABEL = 'MTG-CARA-HSM';

/** PINs reach the tools as `env:NAME`, never on the command line. */
const PIN_ENV = { SC_PIN: PIN, SC_SO_PIN: SO_PIN, SC_NEW_PIN: NEW_PIN, SC_WRONG_PIN: WRONG_PIN };
const withPins = { env: PIN_ENV };

/** The key-derivation-heavy sc-hsm-tool runs (10 M MD5 rounds) get a generous bound. */
const KDF_TIMEOUT = 100_000;

interface Device {
  card: VirtualSmartCardHsm;
  vpcd: VpcdConnection;
  reader: string;
  /** opensc-tool / sc-hsm-tool / pkcs15-tool reader number */
  index: number;
}

const dir = mkdtempSync(join(tmpdir(), 'sc-hsm-ts-interop-'));
const f = (name: string) => join(dir, name);
const DATA = f('data.txt');

let dev1: Device | undefined;
let dev2: Device | undefined;
const openTransports: PcscTransport[] = [];

async function insert(port: number, reader: string, index: number): Promise<Device> {
  const card = new VirtualSmartCardHsm();
  const vpcd = connectToVpcd(card, { host: vpcdEndpoint().host, port });
  await vpcd.connected;
  try {
    await waitAdopted(vpcd, port);
    await waitForReader(index, true, 8000);
  } catch (e) {
    await vpcd.close();
    throw e;
  }
  return { card, vpcd, reader, index };
}

function need(d: Device | undefined, what: string): Device {
  if (!d) throw new Error(`${what} is not inserted (an earlier step failed)`);
  return d;
}

/** Our own session over PC/SC on a device's reader; closed in afterAll if a test fails midway. */
async function ourSession(d: Device): Promise<{ hsm: SmartCardHsm; transport: PcscTransport }> {
  const transport = await openPcsc({ reader: d.reader });
  openTransports.push(transport);
  return { hsm: await SmartCardHsm.open(transport), transport };
}

async function closeTransport(t: PcscTransport): Promise<void> {
  const i = openTransports.indexOf(t);
  if (i >= 0) openTransports.splice(i, 1);
  await t.close();
}

/** `pkcs11-tool --slot-index N` for a reader, from `pkcs11-tool -L` ("Slot N (0x…): <reader>"). */
async function slotIndexOf(reader: string): Promise<string> {
  const r = ok(await pkcs11Tool(argv`--list-slots`));
  const m = grab(
    r,
    new RegExp(`^Slot (\\d+) \\(0x[0-9a-f]+\\): ${reader}\\s*$`, 'm'),
    `the slot of ${reader}`,
  );
  return m[1]!;
}

/** The private keys of `pkcs15-tool --dump`: label → { keyRef, id }. */
function privateKeysOf(r: ToolResult): Map<string, { keyRef: number; id: string; type: string }> {
  const out = new Map<string, { keyRef: number; id: string; type: string }>();
  const blocks = r.stdout.split(/\n(?=\S)/);
  for (const b of blocks) {
    const head = b.match(/^Private (RSA|EC) Key \[(.*)\]/);
    if (!head) continue;
    const ref = b.match(/^\s*Key ref\s*:\s*(\d+) \(0x[0-9a-f]+\)/m);
    const id = b.match(/^\s*ID\s*:\s*([0-9a-f]+)/m);
    if (!ref || !id) throw new Error(`private key block without "Key ref" or "ID":\n${b}${show(r)}`);
    out.set(head[2]!, { keyRef: Number(ref[1]), id: id[1]!, type: head[1]! });
  }
  return out;
}

/** Fields of bare `sc-hsm-tool`, each parse failing with the whole output. */
function scHsmStatus(r: ToolResult) {
  return {
    so: Number(grab(r, /^SO-PIN tries left\s*:\s*(\d+)/m, 'SO-PIN tries left')[1]),
    user: /^User PIN locked/m.test(r.stdout)
      ? 0
      : Number(grab(r, /^User PIN tries left\s*:\s*(\d+)/m, 'User PIN tries left')[1]),
    shares: Number(grab(r, /^DKEK shares\s*:\s*(\d+)/m, 'DKEK shares')[1]),
    kcv: grab(r, /^DKEK key check value\s*:\s*([0-9A-F]{16})/m, 'DKEK key check value')[1]!,
  };
}

async function opensslVerify(pubDer: string, sig: string, data: string): Promise<ToolResult> {
  return openssl(['dgst', '-sha256', '-verify', pubDer, '-keyform', 'DER', '-signature', sig, data], {
    timeoutMs: 10_000,
  });
}

function spkiDer(spkiOrDer: Uint8Array | Buffer): string {
  return toHex(
    new Uint8Array(
      createPublicKey({ key: Buffer.from(spkiOrDer), format: 'der', type: 'spki' }).export({
        format: 'der',
        type: 'spki',
      }),
    ),
  );
}

// State handed from step to step (the guide is one sequence).
const s: {
  sharePlain?: Uint8Array;
  ourKcv?: string;
  reportedKcv?: string;
  dev2Ready?: Promise<{ importOut: ToolResult; initOut: ToolResult }>;
  slot1?: string;
  slot2?: string;
  pin: string;
} = { pin: PIN };

describePcsc('OpenSC 0.23 tools against the virtual SmartCard-HSM (Nitrokey HSM 2 guide)', () => {
  beforeAll(async () => {
    writeFileSync(DATA, 'MTG CARA: data signed by the HSM through OpenSC\n');
    const { port } = vpcdEndpoint();
    dev1 = await insert(port, READER0, 0);
    dev2 = await insert(port + 1, READER1, 1);
  }, 30_000);

  afterAll(async () => {
    // a background step still running must not outlive the file
    await s.dev2Ready?.catch(() => undefined);
    for (const t of openTransports.splice(0)) await t.close().catch(() => undefined);
    await dev1?.vpcd.close();
    await dev2?.vpcd.close();
    rmSync(dir, { recursive: true, force: true });
  }, 120_000);

  it('opensc-tool sees the Nitrokey HSM 2 ATR and binds the SmartCard-HSM driver', async () => {
    const r = ok(await openscTool(argv`-r 0 --atr --name`));
    expect(r.stdout, show(r)).toMatch(
      /3b:de:18:ff:81:91:fe:1f:c3:80:31:81:54:48:53:4d:31:73:80:21:40:81:07:1c/i,
    );
    // card-sc-hsm.c names the card from FCP tag 85: applet type 00 = "SmartCard-HSM Applet for JCOP"
    expect(r.stdout, show(r)).toMatch(/^SmartCard-HSM Applet for JCOP version 3\.5$/m);
  });

  it('pkcs11-tool --list-slots shows the token of an uninitialized SmartCard-HSM', async () => {
    const d = need(dev1, 'device 1');
    const r = ok(await pkcs11Tool(argv`--list-slots`));
    // OpenSC 0.23's emulator (pkcs15-sc-hsm.c) always adds the UserPIN object and, without
    // EF.TokenInfo (written only by --initialize), falls back to the label "SmartCard-HSM":
    // that default label is how an uninitialized device shows in PKCS#11.
    const block = grab(
      r,
      /^Slot 0 \(0x[0-9a-f]+\): Virtual PCD 00 00\n((?:\s{2}.*\n?)*)/m,
      'the slot 0 block',
    )[1]!;
    expect(block, show(r)).toMatch(/token label\s*: SmartCard-HSM \(UserPIN\)\s*$/m);
    expect(block, show(r)).toMatch(/token manufacturer\s*: www\.CardContact\.de/);
    expect(block, show(r)).toMatch(/token model\s*: PKCS#15 emulated/);
    expect(block, show(r)).toMatch(/firmware version\s*: 3\.5/);
    expect(block, show(r)).toMatch(/pin min\/max\s*: 6\/15/);
    expect(block, show(r)).toContain(`serial num         : ${d.card.deviceChr.slice(0, -5)}`);
    expect(block, show(r)).not.toMatch(/PIN (count low|final try|locked)/);
    const st = ok(await scHsmTool(argv`-r 0`));
    expect(st.stdout, show(st)).toMatch(/SmartCard-HSM has never been initialized/);
  });

  it('sc-hsm-tool --create-dkek-share writes a 64-byte OpenSSL-format share file', async () => {
    // sc-hsm-tool 0.23 cannot take the password from a pipe (util_getpass needs a terminal on
    // stdout and crashes without one), so it goes on the command line, as in the guide.
    const r = ok(
      await scHsmTool(argv`-r 0 --create-dkek-share ${f('dkek-share-1.pbe')} --password ${SHARE_PASSWORD}`, {
        timeoutMs: KDF_TIMEOUT,
      }),
    );
    expect(r.stdout, show(r)).toMatch(/DKEK share created and saved to/);
    const file = readFileSync(f('dkek-share-1.pbe'));
    expect(file.length).toBe(64);
    expect(file.subarray(0, 8).toString('latin1')).toBe('Salted__');
  }, 120_000);

  it('sc-hsm-tool --initialize --so-pin … --pin … --label MTG-CARA-HSM --dkek-shares 1', async () => {
    const r = ok(
      await scHsmTool(
        argv`-r 0 --initialize --so-pin env:SC_SO_PIN --pin env:SC_PIN --label ${LABEL} --dkek-shares 1`,
        withPins,
      ),
    );
    const st = ok(await scHsmTool(argv`-r 0`));
    expect(st.stdout, show(st)).toMatch(/^DKEK import pending, 1 share\(s\) still missing/m);
    expect(r.code).toBe(0);
  });

  it('sc-hsm-tool --import-dkek-share: the KCV it reports is the one OUR code computes from the share file', async () => {
    const d2 = need(dev2, 'device 2');
    // Ours runs while sc-hsm-tool derives its key: our decryptDkekShare of the OpenSC-made file,
    // then (in the background, for device 2 later) our encryptDkekShare of the same share under
    // another password, imported there by sc-hsm-tool.
    const ours = decryptDkekShare(new Uint8Array(readFileSync(f('dkek-share-1.pbe'))), SHARE_PASSWORD);
    s.dev2Ready = (async () => {
      const share = await ours;
      writeFileSync(f('dkek-share-ts.pbe'), await encryptDkekShare(share, TS_SHARE_PASSWORD));
      const initOut = ok(
        await scHsmTool(
          argv`-r ${String(d2.index)} --initialize --so-pin env:SC_SO_PIN --pin env:SC_PIN --label ${LABEL} --dkek-shares 1`,
          withPins,
        ),
      );
      const importOut = await scHsmTool(
        argv`-r ${String(d2.index)} --import-dkek-share ${f('dkek-share-ts.pbe')} --password ${TS_SHARE_PASSWORD}`,
        { timeoutMs: KDF_TIMEOUT },
      );
      return { initOut, importOut };
    })();
    s.dev2Ready.catch(() => undefined);
    const r = ok(
      await scHsmTool(argv`-r 0 --import-dkek-share ${f('dkek-share-1.pbe')} --password ${SHARE_PASSWORD}`, {
        timeoutMs: KDF_TIMEOUT,
      }),
    );
    s.sharePlain = await ours;
    s.ourKcv = toHex(keyCheckValue(s.sharePlain)).toUpperCase();
    expect(r.stdout, show(r)).toMatch(/^DKEK share imported/m);
    s.reportedKcv = grab(r, /^DKEK key check value\s*:\s*([0-9A-F]{16})/m, 'the KCV')[1]!;
    expect(s.reportedKcv, show(r)).toBe(s.ourKcv);
  }, 120_000);

  it('bare sc-hsm-tool: SO-PIN tries 15, user PIN tries 3, DKEK shares 1, our KCV', async () => {
    const r = ok(await scHsmTool(argv`-r 0`));
    const st = scHsmStatus(r);
    expect(st, show(r)).toEqual({ so: 15, user: 3, shares: 1, kcv: s.ourKcv });
    expect(r.stdout, show(r)).toMatch(/User PIN reset with SO-PIN enabled/);
    const l = ok(await pkcs11Tool(argv`--list-slots`));
    expect(l.stdout, show(l)).toMatch(/token label\s*: MTG-CARA-HSM \(UserPIN\)/);
  });

  it('pkcs11-tool --keypairgen: rsa:2048 "cara-rsa-ca" id 01 and EC:prime256v1 "cara-ec-ca" id 02', async () => {
    s.slot1 = await slotIndexOf(READER0);
    const rsa = ok(
      await pkcs11Tool(
        argv`--slot-index ${s.slot1} --login --pin env:SC_PIN --keypairgen --key-type rsa:2048 --label cara-rsa-ca --id 01`,
        withPins,
      ),
    );
    expect(rsa.stdout, show(rsa)).toMatch(
      /Public Key Object; RSA 2048 bits\s+label:\s+cara-rsa-ca\s+ID:\s+01/,
    );
    const ec = ok(
      await pkcs11Tool(
        argv`--slot-index ${s.slot1} --login --pin env:SC_PIN --keypairgen --key-type EC:prime256v1 --label cara-ec-ca --id 02`,
        withPins,
      ),
    );
    expect(ec.stdout, show(ec)).toMatch(/EC_PARAMS:\s+06082a8648ce3d030107\s+label:\s+cara-ec-ca\s+ID:\s+02/);
  });

  it('pkcs15-tool --dump shows both keys with their key references and labels', async () => {
    const r = ok(await pkcs15Tool(argv`-r 0 --dump`));
    const keys = privateKeysOf(r);
    expect(Object.fromEntries(keys), show(r)).toEqual({
      'cara-rsa-ca': { keyRef: 1, id: '01', type: 'RSA' },
      'cara-ec-ca': { keyRef: 2, id: '02', type: 'EC' },
    });
    expect(r.stdout, show(r)).toMatch(/^PKCS#15 Card \[MTG-CARA-HSM\]:/m);
    expect(r.stdout, show(r)).toMatch(/^Public RSA Key \[cara-rsa-ca\]/m);
    expect(r.stdout, show(r)).toMatch(/^Public EC Key \[cara-ec-ca\]/m);
  });

  it('pkcs11-tool --sign (SHA256-RSA-PKCS, ECDSA-SHA256) verifies with openssl against the public keys it reads', async () => {
    const slot = s.slot1!;
    for (const [id, name] of [
      ['01', 'rsa'],
      ['02', 'ec'],
    ] as const) {
      ok(
        await pkcs11Tool(
          argv`--slot-index ${slot} --read-object --type pubkey --id ${id} --output-file ${f(`pub-${name}.der`)}`,
        ),
      );
    }
    ok(
      await pkcs11Tool(
        argv`--slot-index ${slot} --login --pin env:SC_PIN --sign --id 01 --mechanism SHA256-RSA-PKCS --input-file ${DATA} --output-file ${f('sig-rsa.bin')}`,
        withPins,
      ),
    );
    ok(
      await pkcs11Tool(
        argv`--slot-index ${slot} --login --pin env:SC_PIN --sign --id 02 --mechanism ECDSA-SHA256 --signature-format openssl --input-file ${DATA} --output-file ${f('sig-ec.der')}`,
        withPins,
      ),
    );
    const v1 = await opensslVerify(f('pub-rsa.der'), f('sig-rsa.bin'), DATA);
    expect(v1.stdout, show(v1)).toMatch(/^Verified OK/m);
    const v2 = await opensslVerify(f('pub-ec.der'), f('sig-ec.der'), DATA);
    expect(v2.stdout, show(v2)).toMatch(/^Verified OK/m);
    expect(readFileSync(f('sig-rsa.bin')).length).toBe(256);
  });

  it('our session (SmartCardHsm over openPcsc) sees what OpenSC made: keys, labels, IDs, refs, PIN and DKEK status', async () => {
    const st = scHsmStatus(ok(await scHsmTool(argv`-r 0`)));
    const { hsm, transport } = await ourSession(need(dev1, 'device 1'));
    try {
      const keys = await hsm.listKeys();
      const view = keys.map((k) => ({
        keyRef: k.keyRef,
        id: toHex(k.id),
        label: k.label,
        type: k.type,
        bits: k.bits,
      }));
      expect(view).toEqual([
        { keyRef: 1, id: '01', label: 'cara-rsa-ca', type: 'rsa', bits: 2048 },
        { keyRef: 2, id: '02', label: 'cara-ec-ca', type: 'ec', bits: 256 },
      ]);
      expect(spkiDer(keys[0]!.publicKey!)).toBe(spkiDer(readFileSync(f('pub-rsa.der'))));
      expect(spkiDer(keys[1]!.publicKey!)).toBe(spkiDer(readFileSync(f('pub-ec.der'))));
      const status = await hsm.status();
      expect({
        so: status.soPin.triesLeft,
        user: status.userPin.triesLeft,
        shares: status.dkek?.total,
        kcv: status.dkek ? toHex(status.dkek.kcv).toUpperCase() : undefined,
      }).toEqual(st);
      expect(status.dkek?.outstanding).toBe(0);
      expect(status.label).toBe(LABEL);
      expect(status.initialized).toBe(true);
    } finally {
      await closeTransport(transport);
    }
  });

  it('sc-hsm-tool --wrap-key key1.bin / key2.bin: blobs under the device DKEK, with label and ID', async () => {
    for (const ref of [1, 2]) {
      ok(
        await scHsmTool(
          argv`-r 0 --wrap-key ${f(`key${ref}.bin`)} --key-reference ${String(ref)} --pin env:SC_PIN`,
          withPins,
        ),
      );
    }
    const expected = {
      1: { label: 'cara-rsa-ca', id: '01', type: ['rsa', 'rsa-crt'] },
      2: { label: 'cara-ec-ca', id: '02', type: ['ec'] },
    } as const;
    for (const ref of [1, 2] as const) {
      const bin = new Uint8Array(readFileSync(f(`key${ref}.bin`)));
      const w = decodeWrapFile(bin);
      expect(toHex(inspectKeyBlob(w.blob).kcv).toUpperCase()).toBe(s.ourKcv);
      expect(expected[ref].type).toContain(inspectKeyBlob(w.blob).keyType);
      const desc = decodeKeyDescription(w.prkd!);
      expect({ label: desc.label, id: toHex(desc.id) }).toEqual({
        label: expected[ref].label,
        id: expected[ref].id,
      });
      expect(w.certificate?.[0]).toBe(0x67);
    }
  });

  it('a second device with the same share (imported by sc-hsm-tool from OUR share file) takes the keys with --unwrap-key', async () => {
    const d2 = need(dev2, 'device 2');
    const { importOut } = await s.dev2Ready!;
    ok(importOut);
    expect(
      grab(importOut, /^DKEK key check value\s*:\s*([0-9A-F]{16})/m, 'the KCV')[1],
      show(importOut),
    ).toBe(s.ourKcv);
    for (const ref of [1, 2]) {
      const r = ok(
        await scHsmTool(
          argv`-r ${String(d2.index)} --unwrap-key ${f(`key${ref}.bin`)} --key-reference ${String(ref)} --pin env:SC_PIN --force`,
          withPins,
        ),
      );
      expect(r.stdout + r.stderr, show(r)).not.toMatch(/does not match|failed/i);
    }
    const dump = ok(await pkcs15Tool(argv`-r ${String(d2.index)} --dump`));
    expect(Object.fromEntries(privateKeysOf(dump)), show(dump)).toEqual({
      'cara-rsa-ca': { keyRef: 1, id: '01', type: 'RSA' },
      'cara-ec-ca': { keyRef: 2, id: '02', type: 'EC' },
    });
  }, 120_000);

  it('signing on the second device verifies with the original public keys', async () => {
    s.slot2 = await slotIndexOf(READER1);
    ok(
      await pkcs11Tool(
        argv`--slot-index ${s.slot2} --login --pin env:SC_PIN --sign --id 01 --mechanism SHA256-RSA-PKCS --input-file ${DATA} --output-file ${f('sig-rsa-2.bin')}`,
        withPins,
      ),
    );
    ok(
      await pkcs11Tool(
        argv`--slot-index ${s.slot2} --login --pin env:SC_PIN --sign --id 02 --mechanism ECDSA-SHA256 --signature-format openssl --input-file ${DATA} --output-file ${f('sig-ec-2.der')}`,
        withPins,
      ),
    );
    const v1 = await opensslVerify(f('pub-rsa.der'), f('sig-rsa-2.bin'), DATA);
    expect(v1.stdout, show(v1)).toMatch(/^Verified OK/m);
    const v2 = await opensslVerify(f('pub-ec.der'), f('sig-ec-2.der'), DATA);
    expect(v2.stdout, show(v2)).toMatch(/^Verified OK/m);
  });

  it('three wrong user PINs lock it; the correct PIN is then refused', async () => {
    const slot = s.slot1!;
    const tries: number[] = [];
    for (let i = 1; i <= 3; i++) {
      const r = await pkcs11Tool(argv`--slot-index ${slot} --login --pin env:SC_WRONG_PIN -O`, withPins);
      expect(r.code, show(r)).not.toBe(0);
      expect(r.stderr, show(r)).toMatch(/C_Login failed: rv = CKR_PIN_(INCORRECT|LOCKED)/);
      const st = ok(await scHsmTool(argv`-r 0`));
      tries.push(scHsmStatus(st).user);
      if (i === 3) expect(st.stdout, show(st)).toMatch(/^User PIN locked/m);
    }
    expect(tries).toEqual([2, 1, 0]);
    // our session reads the same numbers
    const { hsm, transport } = await ourSession(need(dev1, 'device 1'));
    try {
      const st = await hsm.status();
      expect(st.userPin.blocked).toBe(true);
      expect(st.soPin.triesLeft).toBe(15);
    } finally {
      await closeTransport(transport);
    }
    const r = await pkcs11Tool(argv`--slot-index ${slot} --login --pin env:SC_PIN -O`, withPins);
    expect(r.code, show(r)).not.toBe(0);
    expect(r.stderr, show(r)).toMatch(/CKR_PIN_LOCKED/);
  });

  it('pkcs11-tool --login-type so --init-pin --new-pin 654321 unblocks it; the new PIN works', async () => {
    const slot = s.slot1!;
    ok(
      await pkcs11Tool(
        argv`--slot-index ${slot} --login --login-type so --so-pin env:SC_SO_PIN --init-pin --new-pin env:SC_NEW_PIN`,
        withPins,
      ),
    );
    const st = scHsmStatus(ok(await scHsmTool(argv`-r 0`)));
    expect(st.user).toBe(3);
    expect(st.so).toBe(15);
    const r = ok(await pkcs11Tool(argv`--slot-index ${slot} --login --pin env:SC_NEW_PIN -O`, withPins));
    expect(r.stdout, show(r)).toMatch(/Private Key Object; EC\s+label:\s+cara-ec-ca/);
    ok(
      await pkcs11Tool(
        argv`--slot-index ${slot} --login --pin env:SC_NEW_PIN --sign --id 02 --mechanism ECDSA-SHA256 --signature-format openssl --input-file ${DATA} --output-file ${f('sig-ec-3.der')}`,
        withPins,
      ),
    );
    const v = await opensslVerify(f('pub-ec.der'), f('sig-ec-3.der'), DATA);
    expect(v.stdout, show(v)).toMatch(/^Verified OK/m);
    // the guide then changes the PIN back
    ok(
      await pkcs11Tool(
        argv`--slot-index ${slot} --login --pin env:SC_NEW_PIN --change-pin --new-pin env:SC_PIN`,
        withPins,
      ),
    );
    const again = scHsmStatus(ok(await scHsmTool(argv`-r 0`)));
    expect(again.user).toBe(3);
  });

  // ------------------------------------------------------------ files crossing both ways

  it('OpenSC share file → our decryptDkekShare gives the KCV sc-hsm-tool reported after importing it', () => {
    expect(s.reportedKcv).toBeDefined();
    expect(s.ourKcv).toBe(s.reportedKcv);
  });

  it('our encryptDkekShare file → sc-hsm-tool --import-dkek-share accepts it and reports the KCV we compute', async () => {
    const { importOut } = await s.dev2Ready!;
    ok(importOut);
    expect(importOut.stdout, show(importOut)).toMatch(/^DKEK share imported/m);
    const kcv = grab(importOut, /^DKEK key check value\s*:\s*([0-9A-F]{16})/m, 'the KCV')[1];
    expect(kcv, show(importOut)).toBe(toHex(keyCheckValue(s.sharePlain!)).toUpperCase());
    const file = readFileSync(f('dkek-share-ts.pbe'));
    expect(file.subarray(0, 8).toString('latin1')).toBe('Salted__');
  });

  it('sc-hsm-tool .bin → decodeWrapFile gives label and id (docs/contracts.md WrapFile) and the device KCV', () => {
    const decoded = [1, 2].map((ref) => decodeWrapFile(new Uint8Array(readFileSync(f(`key${ref}.bin`)))));
    for (const w of decoded) expect(toHex(inspectKeyBlob(w.blob).kcv).toUpperCase()).toBe(s.ourKcv);
    // The documented WrapFile (docs/contracts.md: `keyDescription?`, `label?`, `id?`) carries the
    // label and id decoded from the embedded PRKD.
    expect(
      decoded.map((w) => ({ label: w.label, id: w.id && toHex(w.id), kind: w.keyDescription?.kind })),
    ).toEqual([
      { label: 'cara-rsa-ca', id: '01', kind: 'rsa' },
      { label: 'cara-ec-ca', id: '02', kind: 'ec' },
    ]);
  });

  it('sc-hsm-tool .bin → our restoreKey onto another device: labels, IDs, and signatures under the original keys', async () => {
    const d2 = need(dev2, 'device 2');
    const bins = [new Uint8Array(readFileSync(f('key1.bin'))), new Uint8Array(readFileSync(f('key2.bin')))];
    const { hsm, transport } = await ourSession(d2);
    try {
      await hsm.verifyPin(PIN);
      // one ID, one key: the same keys unwrapped there by sc-hsm-tool (IDs 01 and 02) are refused
      // at other references, so those copies go first
      await expect(hsm.restoreKey(bins[0]!, 3)).rejects.toMatchObject({
        code: 'KEY_ID_IN_USE',
        existingKeyRef: 1,
      });
      await hsm.deleteKey(1);
      await hsm.deleteKey(2);
      await hsm.restoreKey(bins[0]!, 3);
      await hsm.restoreKey(bins[1]!, 4);
      const keys = await hsm.listKeys();
      const restored = keys.filter((k) => k.keyRef === 3 || k.keyRef === 4);
      expect(restored.map((k) => ({ keyRef: k.keyRef, label: k.label, id: toHex(k.id) }))).toEqual([
        { keyRef: 3, label: 'cara-rsa-ca', id: '01' },
        { keyRef: 4, label: 'cara-ec-ca', id: '02' },
      ]);
      const data = readFileSync(DATA);
      const sigRsa = await hsm.sign(3, 'RSA-PKCS1-SHA256', data);
      const sigEc = await hsm.sign(4, 'ECDSA-SHA256', data);
      const pubRsa = createPublicKey({ key: readFileSync(f('pub-rsa.der')), format: 'der', type: 'spki' });
      const pubEc = createPublicKey({ key: readFileSync(f('pub-ec.der')), format: 'der', type: 'spki' });
      expect(cryptoVerify('sha256', data, pubRsa, sigRsa)).toBe(true);
      expect(cryptoVerify('sha256', data, pubEc, sigEc)).toBe(true);
    } finally {
      await closeTransport(transport);
    }
    // and OpenSC sees the restored keys with their references
    const dump = ok(await pkcs15Tool(argv`-r ${String(d2.index)} --dump`));
    const refs = grabAll(dump, /^\s*Key ref\s*:\s*(\d+) \(0x[0-9a-f]+\)/gm).map((m) => Number(m[1]));
    expect(refs, show(dump)).toEqual(expect.arrayContaining([3, 4]));
  });

  it('our hsm.backupKey .bin → sc-hsm-tool --unwrap-key on another device; the key signs there with the same public key', async () => {
    const d1 = need(dev1, 'device 1');
    const d2 = need(dev2, 'device 2');
    let publicKey: Uint8Array;
    {
      const { hsm, transport } = await ourSession(d2);
      try {
        await hsm.verifyPin(PIN);
        const g = await hsm.generateKeyPair({
          type: 'ec',
          curve: 'prime256v1',
          label: 'ts-made-ec',
          id: Uint8Array.of(0x10),
        });
        publicKey = g.publicKey;
        writeFileSync(f('ts-key.bin'), await hsm.backupKey(g.keyRef));
      } finally {
        await closeTransport(transport);
      }
    }
    writeFileSync(f('ts-pub.der'), publicKey);
    const r = ok(
      await scHsmTool(
        argv`-r ${String(d1.index)} --unwrap-key ${f('ts-key.bin')} --key-reference 16 --pin env:SC_PIN`,
        withPins,
      ),
    );
    expect(r.stdout + r.stderr, show(r)).not.toMatch(/does not match|failed/i);
    const dump = ok(await pkcs15Tool(argv`-r ${String(d1.index)} --dump`));
    expect(privateKeysOf(dump).get('ts-made-ec'), show(dump)).toEqual({ keyRef: 16, id: '10', type: 'EC' });
    ok(
      await pkcs11Tool(
        argv`--slot-index ${s.slot1!} --login --pin env:SC_PIN --sign --id 10 --mechanism ECDSA-SHA256 --signature-format openssl --input-file ${DATA} --output-file ${f('sig-ts.der')}`,
        withPins,
      ),
    );
    const v = await opensslVerify(f('ts-pub.der'), f('sig-ts.der'), DATA);
    expect(v.stdout, show(v)).toMatch(/^Verified OK/m);
  });

  // ------------------------------------------------------------ faults

  it('pulling the virtual card mid-session (vpcd connection closed) gives CARD_REMOVED on the next APDU', async () => {
    const d2 = need(dev2, 'device 2');
    const { hsm, transport } = await ourSession(d2);
    try {
      await hsm.status();
      await d2.vpcd.close();
      dev2 = undefined;
      // pcscd notices at its next presence poll (≤ ~0.5 s)
      await waitForReader(1, false, 5000);
      const started = Date.now();
      const err = await hsm.getChallenge(8).then(
        () => undefined,
        (e: unknown) => e,
      );
      expect(isScHsmError(err) ? err.code : err).toBe('CARD_REMOVED');
      expect(Date.now() - started).toBeLessThan(5000);
    } finally {
      await closeTransport(transport).catch(() => undefined);
    }
  });
});
