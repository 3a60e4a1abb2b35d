/**
 * OpenSC 0.23's sc-hsm-tool against our virtual cards through pcscd for public key authentication
 * and the transport PIN (spec §3.6, §3.9, §3.18): --initialize --public-key-auth N
 * --required-pub-keys M, --export-for-pub-key-auth, --register-public-key, --public-key-auth-status
 * and bare status agree with sc-hsm-ts; export files cross both ways; the custodian's token on the
 * second reader authenticates the target through pcscd in one session.
 *
 * Run with: bash scripts/with-pcscd.sh npx vitest run --project pcsc test/interop-pka.pcsc.test.ts
 * Target on vpcd slot 0 (reader 0), custodian on slot 1 (reader 1); the steps build on each other.
 */
import { mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, beforeAll, expect, it } from 'vitest';
import type { PcscTransport } from '../src/apdu/pcsc.js';
import { decodeCvRequest, decodePkaFile } from '../src/pkcs15/index.js';
import { openPcsc } from '../src/sc-hsm/open-pcsc.js';
import { SmartCardHsm } from '../src/sc-hsm/session.js';
import { VirtualSmartCardHsm } from '../src/sim/index.js';
import type { VpcdConnection } from '../src/sim/vpcd.js';
import { cli as runCommand } from './cli-helpers.js';
import { argv, grab, ok, READER0, READER1, scHsmTool, show, waitForReader } from './helpers/opensc.js';
import { describePcsc, insertCard, vpcdEndpoint } from './helpers/pcsc-env.js';
import { type Custodian, custodian, PIN, SO } from './helpers/pka.js';

const withPins = { env: { SC_PIN: PIN, SC_SO_PIN: SO } };
const dir = mkdtempSync(join(tmpdir(), 'sc-hsm-ts-interop-pka-'));
const f = (name: string) => join(dir, name);

const links: VpcdConnection[] = [];
const transports: PcscTransport[] = [];
let target: VirtualSmartCardHsm;
let holder: VirtualSmartCardHsm;
/** The custodian whose token sits in reader 1 (key 1 generated in-process before insertion). */
let onReader1: { keyRef: number; chr: string };
/** A second custodian, in-process only: its file is made by sc-hsm-ts. */
let other: Custodian;

/** Inserts `card` on vpcd `port` (pcscd lists it, vpcd took it within 5 s); then OpenSC sees reader `index`. */
async function insert(card: VirtualSmartCardHsm, port: number, index: number): Promise<void> {
  links.push(await insertCard(card, { host: vpcdEndpoint().host, port }, 5000));
  await waitForReader(index, true, 8000);
}

/** Closes our PC/SC sessions (ours connect exclusively: one per reader at a time). */
async function closeSessions(): Promise<void> {
  for (const t of transports.splice(0)) await t.close().catch(() => undefined);
}

async function session(reader: string): Promise<SmartCardHsm> {
  const t = await openPcsc({ reader });
  transports.push(t);
  return SmartCardHsm.open(t);
}

/** Our command in-process against a reader of the private pcscd. */
const ourCli = (args: string[]) => runCommand(args, { env: {}, stdin: '' });

function pkaNumbers(r: { stdout: string; stderr: string }) {
  const n = (label: string) => Number(grab(r as never, new RegExp(`^${label}:\\s*(\\d+)`, 'm'), label)[1]);
  return {
    total: n('Number of public keys'),
    missing: n('Missing public keys'),
    required: n('Required pubkeys for auth'),
    authenticated: n('Authenticated public keys'),
  };
}

describePcsc('sc-hsm-tool and sc-hsm-ts: public key authentication and the transport PIN', () => {
  beforeAll(async () => {
    holder = new VirtualSmartCardHsm();
    const c = await custodian('ec', holder);
    onReader1 = { keyRef: c.keyRef, chr: c.chr };
    await c.hsm.close();
    other = await custodian();
    target = new VirtualSmartCardHsm();
    const { port } = vpcdEndpoint();
    await insert(target, port, 0);
    await insert(holder, port + 1, 1);
  }, 60_000);

  afterAll(async () => {
    for (const t of transports.splice(0)) await t.close().catch(() => undefined);
    for (const l of links.splice(0)) await l.close();
    rmSync(dir, { recursive: true, force: true });
  }, 60_000);

  it('sc-hsm-tool --initialize --public-key-auth 2 --required-pub-keys 1; bare status says PKA is active', async () => {
    ok(
      await scHsmTool(
        argv`-r 0 --initialize --so-pin env:SC_SO_PIN --pin env:SC_PIN --public-key-auth 2 --required-pub-keys 1`,
        withPins,
      ),
    );
    const st = ok(await scHsmTool(argv`-r 0`));
    expect(st.stdout, show(st)).toMatch(/^Public key authentication active\.$/m);
    const p = ok(await scHsmTool(argv`-r 0 --public-key-auth-status`));
    expect(pkaNumbers(p)).toEqual({ total: 2, missing: 2, required: 1, authenticated: 0 });
  });

  it('sc-hsm-tool --export-for-pub-key-auth writes the bytes sc-hsm-ts pka export writes', async () => {
    const r = await scHsmTool(argv`-r 1 --export-for-pub-key-auth ${f('opensc.pka')} -i ${onReader1.keyRef}`);
    ok(r);
    const theirs = new Uint8Array(readFileSync(f('opensc.pka')));
    // regenerates fixtures/pka/opensc-export.pka (see fixtures/pka/README.md)
    const keep = process.env.SC_HSM_WRITE_PKA_FIXTURE;
    if (keep) writeFileSync(keep, theirs);
    const hsm = await session(READER1);
    const ours = await hsm.pkaExport(onReader1.keyRef);
    expect(Buffer.from(ours).equals(Buffer.from(theirs))).toBe(true);
    expect(decodePkaFile(theirs).decoded.certificate.chr).toBe(onReader1.chr);
    await closeSessions();
  });

  it('the sc-hsm-tool file registers with sc-hsm-ts, ours with sc-hsm-tool --register-public-key; the two statuses agree', async () => {
    const hsm = await session(READER0);
    const r = await hsm.pkaRegister(new Uint8Array(readFileSync(f('opensc.pka'))));
    expect(r.status).toEqual({ total: 2, missing: 1, required: 1, authenticated: 0 });
    writeFileSync(f('ts.pka'), await other.hsm.pkaExport(other.keyRef));
    const reg = ok(await scHsmTool(argv`-r 0 --register-public-key ${f('ts.pka')}`));
    expect(pkaNumbers(reg)).toEqual({ total: 2, missing: 0, required: 1, authenticated: 0 });
    const theirs = pkaNumbers(ok(await scHsmTool(argv`-r 0 --public-key-auth-status`)));
    expect(await hsm.pkaStatus()).toEqual(theirs);
    await closeSessions();
    // the command prints the same four lines as sc-hsm-tool, and the same numbers in --json
    const cmd = await ourCli(['pka', 'status', '--reader', READER0]);
    expect(cmd.code, cmd.stderr).toBe(0);
    expect(pkaNumbers(cmd)).toEqual(theirs);
    const j = await ourCli(['pka', 'status', '--reader', READER0, '--json']);
    expect(JSON.parse(j.stdout)).toMatchObject(theirs);
    const again = await session(READER0);
    expect((await again.pkaSlots()).map((s) => s.chr)).toEqual([onReader1.chr, other.chr]);
    // a third registration is refused by sc-hsm-tool's card too (all slots taken)
    const full = await scHsmTool(argv`-r 0 --register-public-key ${f('opensc.pka')}`);
    expect(full.code, show(full)).not.toBe(0);
    await closeSessions();
  });

  it('the custodian token on reader 1 authenticates the target on reader 0, through pcscd, in one session', async () => {
    const t = await session(READER0);
    const c = await session(READER1);
    await c.verifyPin(PIN);
    const challenge = await t.pkaChallenge();
    const answer = await c.pkaRespond(onReader1.keyRef, challenge);
    expect(answer.chr).toBe(onReader1.chr);
    // a newer challenge makes the answer stale
    const newer = await t.pkaChallenge();
    await expect(t.pkaAuthenticate([answer])).rejects.toMatchObject({ code: 'PKA_AUTH_FAILED' });
    const st = await t.pkaAuthenticate([await c.pkaRespond(onReader1.keyRef, newer)]);
    expect(st.authenticated).toBe(1);
    const k = await t.generateKeyPair({ type: 'ec', curve: 'secp256r1', label: 'by-custodian' });
    expect(decodeCvRequest(k.request).certificate.chr.length).toBeGreaterThan(0);
    await closeSessions();
    const p = ok(await scHsmTool(argv`-r 0 --public-key-auth-status`));
    // sc-hsm-tool's own connection selects the applet: its session is not authenticated
    expect(pkaNumbers(p).authenticated).toBe(0);
  });

  it('transport PIN: sc-hsm-tool shows it as on a real device until sc-hsm-ts pin change', async () => {
    const hsm = await session(READER0);
    await hsm.initialize({ soPin: SO, userPin: PIN, transportPin: true, dkekShares: 1 });
    await closeSessions();
    const st = ok(await scHsmTool(argv`-r 0`));
    expect(st.stdout, show(st)).toMatch(/^ {2}Transport-PIN mode enabled$/m);
    expect(st.stdout, show(st)).toMatch(
      /^Transport-PIN active\. Please change to user selected PIN first\.$/m,
    );
    const again = await session(READER0);
    // the card does not report a transport PIN's tries: the change is forced (sure of the PIN)
    await again.changePin(PIN, '123456', { force: true });
    await closeSessions();
    const after = ok(await scHsmTool(argv`-r 0`));
    expect(after.stdout, show(after)).toMatch(/^User PIN tries left\s*:\s*3$/m);
    expect(after.stdout, show(after)).toMatch(/^ {2}Transport-PIN mode enabled$/m);
  });
});
