/**
 * What a key made by DERIVE EC KEY (`80 76`, spec §3.15) inherits from its source on the virtual
 * card (DERIVE_INHERITS in src/sim/uncertain.ts): key domain, algorithm list, uses left. Closes the
 * escape "derive a child of a locked key, wrap the child, subtract the tweak". The host reads what
 * the card made and warns (DERIVED_KEY_LESS_RESTRICTED) when a card leaves the child less restricted.
 */
import { randomBytes } from 'node:crypto';
import { mkdtemp, readFile, rm, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { PassThrough } from 'node:stream';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import type { Transport } from '../src/apdu/transport.js';
import { runDerive } from '../src/cli/commands/keys/restrictions.js';
import { Ctx } from '../src/cli/context.js';
import { keyCheckValue } from '../src/dkek/index.js';
import { KEY_USAGE } from '../src/pkcs15/index.js';
import { backupDevice, checkBackup } from '../src/sc-hsm/backup.js';
import { lostRestrictions } from '../src/sc-hsm/derive.js';
import { algorithmBytes, algorithmNames, SmartCardHsm } from '../src/sc-hsm/session.js';
import { VirtualSmartCardHsm } from '../src/sim/index.js';
import { concat, toHex } from '../src/util/bytes.js';
import { readAll, readTlv, tlv } from '../src/util/tlv.js';
import { cli, ENV, PIN } from './cli-helpers.js';

/** The command in-process, secrets from the environment (no warning about --pin on the command line). */
const run = (args: string[]) => cli(args, { env: ENV });

import { rejection } from './helpers/fixtures.js';

const SO_PIN = '3537363231383830';
const S0 = randomBytes(32);
const S1 = randomBytes(32);
const TWEAK = Uint8Array.of(1);
let root: string;

beforeAll(async () => {
  root = await mkdtemp(join(tmpdir(), 'sc-hsm-ts-derive-inherit-'));
});
afterAll(async () => {
  await rm(root, { recursive: true, force: true });
});

/**
 * A card that reports its own FCP restrictions template (A5) for key `keyRef` as `a5` gives it
 * (undefined: none): what a firmware that makes a less restricted child would show the host.
 */
class ChildReport implements Transport {
  readonly extendedLength = true;
  constructor(
    readonly card: VirtualSmartCardHsm,
    readonly keyRef: number,
    readonly a5: (old: Uint8Array | undefined) => Uint8Array | undefined,
  ) {}
  close(): Promise<void> {
    return this.card.close();
  }
  async transmit(apdu: Uint8Array): Promise<Uint8Array> {
    const r = await this.card.transmit(apdu);
    const select = apdu[1] === 0xa4 && apdu[3] === 0x04 && apdu[5] === 0xcc && apdu[6] === this.keyRef;
    if (!select || r[r.length - 2] !== 0x90) return r;
    const fcp = readAll(readTlv(r.subarray(0, r.length - 2)).value);
    const old = fcp.find((t) => t.tag === 0xa5)?.value;
    const rest = fcp.filter((t) => t.tag !== 0xa5).map((t) => tlv(t.tag, t.value));
    const mine = this.a5(old);
    return concat(tlv(0x62, ...rest, ...(mine ? [tlv(0xa5, mine)] : [])), Uint8Array.of(0x90, 0x00));
  }
}

/** An initialized card with 2 key domains (0 from S0; 1 from S1 when `domain1`), PIN verified. */
async function device(opts: { domain1?: boolean; transport?: (c: VirtualSmartCardHsm) => Transport } = {}) {
  const card = new VirtualSmartCardHsm();
  const hsm = await SmartCardHsm.open(opts.transport ? opts.transport(card) : card);
  await hsm.initialize({ soPin: SO_PIN, userPin: PIN, dkekShares: 1, keyDomains: 2 });
  await hsm.importDkekShare(S0);
  await hsm.verifyPin(PIN);
  if (opts.domain1) {
    await hsm.createKeyDomain(1, 1);
    await hsm.importDkekShare(S1, { domain: 1 });
  }
  return { card, hsm };
}

/** Counts the APDUs the card gets. */
function counting(card: VirtualSmartCardHsm): { n: number; sent: Uint8Array[] } {
  const c = { n: 0, sent: [] as Uint8Array[] };
  const orig = card.transmit.bind(card);
  card.transmit = async (apdu: Uint8Array) => {
    c.n++;
    c.sent.push(apdu);
    return orig(apdu);
  };
  return c;
}

describe('DERIVE EC KEY: the derived key inherits (virtual card)', () => {
  it('the repro: a child of an ECDSA,DERIVE key cannot be wrapped, so the locked key stays locked', async () => {
    const { hsm } = await device();
    const algorithms = algorithmBytes(['ECDSA', 'DERIVE']);
    await hsm.generateKeyPair({ type: 'ec', curve: 'prime256v1', label: 'locked', keyRef: 1, algorithms });
    expect((await rejection(hsm.wrapKey(1))).code).toBe('ALGORITHM_NOT_ALLOWED');
    const d = await hsm.deriveEcKey(1, 2, TWEAK, { label: 'kid' });
    expect(d.warning).toBeUndefined();
    expect(algorithmNames(d.restrictions.algorithms!)).toEqual(['ECDSA', 'DERIVE']);
    expect(d.restrictions.domain).toBe(0);
    expect((await rejection(hsm.wrapKey(2))).code).toBe('ALGORITHM_NOT_ALLOWED');
    // the check signature was made with ECDSA (hash on the host), the list's only signature
    const info = await hsm.keyInfo(2);
    expect(algorithmNames(info.algorithms!)).toEqual(['ECDSA', 'DERIVE']);
    // the description offers only what the list permits (as for a generated key)
    expect(info.usage).toBe(KEY_USAGE.SIGN | KEY_USAGE.SIGN_RECOVER | KEY_USAGE.DERIVE);
    // and a grandchild inherits the same list
    const g = await hsm.deriveEcKey(2, 3, TWEAK, { label: 'grandkid' });
    expect(algorithmNames(g.restrictions.algorithms!)).toEqual(['ECDSA', 'DERIVE']);
    expect((await rejection(hsm.wrapKey(3))).code).toBe('ALGORITHM_NOT_ALLOWED');
  });

  it('the check signature with plain ECDSA (hash on the host) on short and long curves', async () => {
    const { hsm } = await device();
    const algorithms = algorithmBytes(['ECDSA', 'DERIVE']);
    let ref = 1;
    for (const curve of ['prime192v1', 'secp521r1', 'secp256k1', 'brainpoolP192r1'] as const) {
      await hsm.generateKeyPair({ type: 'ec', curve, label: curve, keyRef: ref, algorithms });
      const d = await hsm.deriveEcKey(ref, ref + 1, Uint8Array.of(7, 7), { label: `${curve}-kid` });
      expect(d.warning, curve).toBeUndefined();
      expect((await hsm.keyInfo(ref + 1)).curve, curve).toBe(curve);
      ref += 2;
    }
  });

  it('the use counter: the child starts at what the source has left after the derive; the check takes one', async () => {
    const { hsm } = await device();
    const algorithms = algorithmBytes(['ECDSA-SHA256', 'DERIVE']);
    await hsm.generateKeyPair({
      type: 'ec',
      curve: 'prime256v1',
      label: 's',
      keyRef: 1,
      algorithms,
      useCounter: 5,
    });
    const d = await hsm.deriveEcKey(1, 2, TWEAK, { label: 'kid' });
    expect(d.restrictions.useCounter).toBe(4);
    expect(d.warning).toBeUndefined();
    expect((await hsm.keyInfo(1)).useCounter).toBe(4);
    expect((await hsm.keyInfo(2)).useCounter).toBe(3);
    // an unlimited source gives an unlimited child
    await hsm.generateKeyPair({ type: 'ec', curve: 'prime256v1', label: 'free', keyRef: 5 });
    const f = await hsm.deriveEcKey(5, 6, TWEAK, { label: 'free-kid' });
    expect(f.restrictions).toEqual({ domain: 0 });
    expect((await hsm.keyInfo(6)).useCounter).toBeUndefined();
  });

  it('refused before anything is sent: a source with 1 use left, a list without any ECDSA signature', async () => {
    const { card, hsm } = await device();
    await hsm.generateKeyPair({
      type: 'ec',
      curve: 'prime256v1',
      label: 'one-left',
      keyRef: 1,
      algorithms: algorithmBytes(['ECDSA', 'DERIVE']),
      useCounter: 1,
    });
    await hsm.generateKeyPair({
      type: 'ec',
      curve: 'prime256v1',
      label: 'ecdh-only',
      keyRef: 2,
      algorithms: algorithmBytes(['ECDH', 'DERIVE']),
    });
    const before = card.serialize();
    const c = counting(card);
    const e1 = await rejection(hsm.deriveEcKey(1, 7, TWEAK, { label: 'x' }));
    expect(e1.code).toBe('USE_COUNTER_EXHAUSTED');
    expect(e1.message).toMatch(/1 use left.*inherits the 0 uses left.*Nothing was sent/);
    const e2 = await rejection(hsm.deriveEcKey(2, 7, TWEAK, { label: 'x' }));
    expect(e2.code).toBe('ALGORITHM_NOT_ALLOWED');
    expect(e2.message).toMatch(/inherits its algorithm list \(ECDH,DERIVE\).*Nothing was sent/);
    expect(e2.fix).toMatch(/ECDSA or ECDSA-SHA256/);
    // the same refusal again: still nothing sent that changes the card
    expect((await rejection(hsm.deriveEcKey(1, 7, TWEAK, { label: 'x' }))).code).toBe(
      'USE_COUNTER_EXHAUSTED',
    );
    expect(c.sent.some((a) => a[1] === 0x76 || a[1] === 0x68)).toBe(false);
    expect(card.serialize()).toBe(before);
  });

  it('a child of a domain-1 key is in domain 1: listed there, wrapped and backed up under domain 1’s KCV', async () => {
    const { card, hsm } = await device({ domain1: true });
    await hsm.generateKeyPair({ type: 'ec', curve: 'prime256v1', label: 'd1', keyRef: 1, domain: 1 });
    const d = await hsm.deriveEcKey(1, 2, TWEAK, { label: 'kid' });
    expect(d.restrictions.domain).toBe(1);
    expect(d.warning).toBeUndefined();
    const keys = await hsm.listKeys();
    expect(keys.map((k) => [k.label, k.domain])).toEqual([
      ['d1', 1],
      ['kid', 1],
    ]);
    const blob = await hsm.wrapKey(2);
    expect(toHex(blob.subarray(0, 8))).toBe(toHex(keyCheckValue(S1)));
    const dir = join(root, 'b1');
    await backupDevice(hsm, dir);
    const m = JSON.parse(await readFile(join(dir, 'manifest.json'), 'utf8'));
    expect(m.keys.map((k: { label: string; domain?: number }) => [k.label, k.domain])).toEqual([
      ['d1', 1],
      ['kid', 1],
    ]);
    expect(m.device.domains).toEqual({ 1: toHex(keyCheckValue(S1)) });
    // every blob's KCV matches its manifest domain's
    await checkBackup(dir);

    // the command: keys and dump show the child's domain
    const sim = join(root, 'd1.json');
    await writeFile(sim, card.serialize(), { mode: 0o600 });
    const k = await run(['keys', '--sim', sim, '--json']);
    expect(k.code, k.stderr).toBe(0);
    const list = Array.isArray(k.json()) ? k.json() : k.json().keys;
    expect(list.map((x: { label: string; domain: number }) => [x.label, x.domain])).toEqual([
      ['d1', 1],
      ['kid', 1],
    ]);
    const dump = await run(['dump', '--sim', sim, '--json']);
    expect(dump.code, dump.stderr).toBe(0);
    expect(JSON.stringify(dump.json())).toMatch(/"label":"kid"[^}]*"domain":1|"domain":1[^}]*"label":"kid"/);
    // a derive through the command reports the domain it got and no warning
    const g = await run([
      'keygen',
      '--sim',
      sim,
      '--pin',
      'env:PIN',
      '--derive-from',
      '2',
      '--tweak',
      '02',
      '--key-ref',
      '3',
      '--label',
      'grandkid',
      '--json',
    ]);
    expect(g.code, g.stderr).toBe(0);
    expect(g.json()).toMatchObject({ keyRef: 3, derivedFrom: 2, domain: 1, algorithms: null, warning: null });
    expect(g.stderr).not.toMatch(/warning/);
  });

  it('a domain whose DKEK awaits its shares again: DKEK_INCOMPLETE before anything is sent (the card: 6985)', async () => {
    const { card, hsm } = await device({ domain1: true });
    await hsm.generateKeyPair({ type: 'ec', curve: 'prime256v1', label: 'd1', keyRef: 1, domain: 1 });
    await hsm.deleteKeyDomain(1, { dkekOnly: true });
    const c = counting(card);
    const e = await rejection(hsm.deriveEcKey(1, 2, TWEAK, { label: 'kid' }));
    expect(e.code).toBe('DKEK_INCOMPLETE');
    expect(e.fix).toMatch(/domain import FILE\.pbe --domain 1/);
    expect(c.sent.some((a) => a[1] === 0x76)).toBe(false);
    // the card refuses it as well (raw APDU)
    const r = await hsm.channel.exchange(
      { cla: 0x80, ins: 0x76, p1: 1, p2: 2, data: Uint8Array.of(0x98, 1) },
      'DERIVE',
      { accept: [0x6985] },
    );
    expect(r.sw).toBe(0x6985);
    // domain 0 is complete: a domain-0 source still derives
    await hsm.generateKeyPair({ type: 'ec', curve: 'prime256v1', label: 'd0', keyRef: 5 });
    expect((await hsm.deriveEcKey(5, 6, TWEAK, { label: 'kid0' })).restrictions.domain).toBe(0);
  });
});

describe('the host warns when the card makes a less restricted child', () => {
  it('a card that reports no restrictions for the child: algorithms, counter and domain named lost, with the fix', async () => {
    const { hsm } = await device({ domain1: true, transport: (c) => new ChildReport(c, 2, () => undefined) });
    const algorithms = algorithmBytes(['ECDSA-SHA256', 'DERIVE']);
    await hsm.generateKeyPair({
      type: 'ec',
      curve: 'prime256v1',
      label: 's',
      keyRef: 1,
      algorithms,
      useCounter: 4,
      domain: 1,
    });
    const d = await hsm.deriveEcKey(1, 2, TWEAK, { label: 'kid' });
    expect(d.warning).toMatchObject({
      code: 'DERIVED_KEY_LESS_RESTRICTED',
      lost: ['algorithms', 'useCounter', 'domain'],
    });
    expect(d.warning!.message).toMatch(/derived key 2 less restricted than its source key 1/);
    expect(d.warning!.message).toMatch(/no algorithm list \(the source allows only ECDSA-SHA256,DERIVE\)/);
    expect(d.warning!.message).toMatch(/no use counter \(the source has 3 uses left\)/);
    expect(d.warning!.message).toMatch(/in no reported key domain \(the source in 1\)/);
    expect(d.warning!.fix).toBe('delete the derived key: sc-hsm-ts delete-key --key-ref 2');
  });

  it('a card that adds WRAP to the child’s list: algorithms lost, the rest kept', async () => {
    const addWrap = (old: Uint8Array | undefined) => {
      const t = readAll(old!);
      return concat(
        ...t.map((x) => (x.tag === 0x91 ? tlv(0x91, x.value, Uint8Array.of(0x92)) : tlv(x.tag, x.value))),
      );
    };
    const { hsm } = await device({ transport: (c) => new ChildReport(c, 2, addWrap) });
    const algorithms = algorithmBytes(['ECDSA', 'DERIVE']);
    await hsm.generateKeyPair({
      type: 'ec',
      curve: 'prime256v1',
      label: 's',
      keyRef: 1,
      algorithms,
      useCounter: 9,
    });
    const d = await hsm.deriveEcKey(1, 2, TWEAK, { label: 'kid' });
    expect(d.warning?.lost).toEqual(['algorithms']);
    expect(d.warning!.message).toMatch(/also allows WRAP \(the source only ECDSA,DERIVE\)/);
  });

  it('the command: a warning line naming what was lost and the delete-key fix; `warning` in the result', async () => {
    const { hsm } = await device({ domain1: true, transport: (c) => new ChildReport(c, 2, () => undefined) });
    await hsm.generateKeyPair({
      type: 'ec',
      curve: 'prime256v1',
      label: 's',
      keyRef: 1,
      algorithms: algorithmBytes(['ECDSA-SHA256', 'DERIVE']),
      domain: 1,
    });
    const stdout = new PassThrough();
    const stderr = new PassThrough();
    let out = '';
    let err = '';
    stdout.on('data', (d) => {
      out += d.toString();
    });
    stderr.on('data', (d) => {
      err += d.toString();
    });
    const ctx = new Ctx(
      { stdout, stderr, stdin: new PassThrough(), env: { PIN }, isTTY: false },
      { json: false, yes: false, progress: false, lastTry: false },
      async () => ({ hsm, reader: 'virtual:test', virtual: true }),
    );
    const v = { 'derive-from': '1', tweak: '01', 'key-ref': '2', label: 'kid', pin: 'env:PIN' };
    const r = (await runDerive(ctx, v)) as {
      warning: { lost: string[] };
      algorithms: unknown;
      domain: unknown;
    };
    await new Promise((done) => setImmediate(done));
    expect(r.warning.lost).toEqual(['algorithms', 'domain']);
    // what the card reports for the child, not what it should have inherited
    expect([r.algorithms, r.domain]).toEqual([null, null]);
    expect(err).toMatch(
      /warning: the card made the derived key 2 less restricted than its source key 1: .*no algorithm list.*in no reported key domain \(the source in 1\).*; fix: delete the derived key: sc-hsm-ts delete-key --key-ref 2/,
    );
    expect(out).toMatch(/derived EC key "kid"/);
    expect(out).not.toMatch(/Restrictions/);
  });

  it('lostRestrictions: what the card does not report of the source is not claimed; domain 0 unreported is no loss', () => {
    expect(lostRestrictions(1, 2, {}, {})).toBeUndefined();
    expect(lostRestrictions(1, 2, { domain: 0 }, {})).toBeUndefined();
    expect(lostRestrictions(1, 2, { useCounter: 3 }, { useCounter: 2 })).toBeUndefined();
    expect(lostRestrictions(1, 2, { useCounter: 3 }, { useCounter: 3 })?.lost).toEqual(['useCounter']);
    expect(lostRestrictions(1, 2, { domain: 1 }, { domain: 0 })?.message).toMatch(
      /in key domain 0 \(the source in 1\)/,
    );
    const list = algorithmBytes(['ECDSA', 'DERIVE']);
    expect(
      lostRestrictions(1, 2, { algorithms: list }, { algorithms: algorithmBytes(['ECDSA']) }),
    ).toBeUndefined();
  });
});

describe('keygen --derive-from (command, virtual card)', () => {
  let dir: string;
  beforeAll(async () => {
    dir = await mkdtemp(join(tmpdir(), 'sc-hsm-ts-derive-inherit-cli-'));
  });
  afterAll(async () => {
    await rm(dir, { recursive: true, force: true });
  });
  /** A state file with a DKEK and key 1 `locked` (ECDSA,DERIVE and the `more` options). */
  async function locked(name: string, ...more: string[]): Promise<string> {
    const { card } = await device();
    const sim = join(dir, `${name}.json`);
    await writeFile(sim, card.serialize(), { mode: 0o600 });
    const g = await run([
      'keygen',
      ...['--sim', sim, '--pin', 'env:PIN', '--type', 'ec:prime256v1', '--label', 'locked', '--key-ref', '1'],
      ...['--algorithms', 'ECDSA,DERIVE', ...more],
    ]);
    expect(g.code, g.stderr).toBe(0);
    return sim;
  }
  const derive = (sim: string, ref: string, ...more: string[]) =>
    run([
      'keygen',
      ...[
        '--sim',
        sim,
        '--pin',
        'env:PIN',
        '--derive-from',
        '1',
        '--tweak',
        // a tweak per destination: the same tweak twice is the same key (refused as such)
        Number(ref).toString(16).padStart(2, '0'),
        '--key-ref',
        ref,
        '--label',
        'kid',
      ],
      ...more,
    ]);
  const wrap = (sim: string, ref: string) =>
    run([
      'wrap',
      '--sim',
      sim,
      '--key-ref',
      ref,
      '--out',
      join(dir, `w${ref}-${Math.random()}.bin`),
      '--pin',
      'env:PIN',
    ]);

  it('the repro with 3 uses: the child inherits list and uses; wrap --key-ref 2 is refused (ALGORITHM_NOT_ALLOWED)', async () => {
    const sim = await locked('three', '--use-counter', '3');
    expect((await wrap(sim, '1')).stderr).toMatch(/key 1 may not be wrapped: its algorithm list.*lacks WRAP/);
    const d = await derive(sim, '2', '--json');
    expect(d.code, d.stderr).toBe(0);
    expect(d.json()).toMatchObject({
      keyRef: 2,
      algorithms: ['ECDSA', 'DERIVE'],
      useCounter: 1,
      warning: null,
    });
    // key 1 has 2 uses left: a child would inherit 1, spent by its check, and keep 0: refused
    // before anything is sent (hostile pass: it exited 0 with a 0-use child and a use of key 1 gone)
    const beforeSecond = await readFile(sim, 'utf8');
    const second = await derive(sim, '3', '--json');
    expect(second.code).toBe(7);
    expect(second.json().error).toMatchObject({ code: 'USE_COUNTER_EXHAUSTED' });
    expect(second.json().error.message).toMatch(/2 uses left.*inherits the 1 use left.*no use at all/);
    expect(await readFile(sim, 'utf8')).toBe(beforeSecond);
    const keys = (await run(['keys', '--sim', sim, '--json'])).json().keys;
    expect(keys.find((k: { keyRef: number }) => k.keyRef === 1).useCounter).toBe(2);
    expect(keys.some((k: { keyRef: number }) => k.keyRef === 3)).toBe(false);
    const w = await wrap(sim, '2');
    // ALGORITHM_NOT_ALLOWED: exit 7
    expect(w.code).toBe(7);
    expect(w.stderr).toMatch(/key 2 may not be wrapped: its algorithm list.*lacks WRAP/);
  });

  it('the repro with 1 use: the derive is refused before anything is sent (exit 7), the state file unchanged', async () => {
    const sim = await locked('one', '--use-counter', '1');
    const before = await readFile(sim, 'utf8');
    const d = await derive(sim, '2');
    expect(d.code).toBe(7);
    expect(d.stderr).toMatch(/1 use left/);
    expect(await readFile(sim, 'utf8')).toBe(before);
    expect((await run(['keys', '--sim', sim, '--json'])).json().keys.length).toBe(1);
  });

  it('human output: the restrictions the child has; --domain/--algorithms refused with what the child inherits', async () => {
    const sim = await locked('text');
    const d = await derive(sim, '2');
    expect(d.code, d.stderr).toBe(0);
    expect(d.stdout).toMatch(/Restrictions\s+: algorithms ECDSA, DERIVE\n/);
    expect(d.stderr).not.toMatch(/warning/);
    for (const o of [
      ['--domain', '1'],
      ['--algorithms', 'ECDSA'],
      ['--use-counter', '2'],
    ]) {
      const r = await derive(sim, '4', ...o);
      expect(r.code).toBe(2);
      expect(r.stderr).toMatch(/takes over the source's key domain, algorithm list and uses left/);
    }
  });
});
