/**
 * The pka commands and the transport PIN through the real stack: `--reader` → pcsclite → pcscd →
 * vpcd → two virtual cards, the target on slot 0 and a custodian's token on slot 1 (both attached
 * to this host). Failures included: a chain that does not end at the device's root, a forged
 * answer; then the transport PIN's first change in one session.
 */
import { readFile, writeFile } from 'node:fs/promises';
import { join } from 'node:path';
import { afterAll, beforeAll, expect, it } from 'vitest';
import { decodePkaFile } from '../src/pkcs15/index.js';
import { SmartCardHsm } from '../src/sc-hsm/session.js';
import { VirtualSmartCardHsm } from '../src/sim/index.js';
import type { VpcdConnection } from '../src/sim/vpcd.js';
import { tlv } from '../src/util/tlv.js';
import { cli as runCommand, tempDir, waitForFile } from './cli-helpers.js';
import { describePcsc, insertCard, vpcdSlot, waitForCard } from './helpers/pcsc-env.js';
import { custodian, PIN, rogueIssuer, SO } from './helpers/pka.js';

const { host, port, reader: TARGET } = vpcdSlot();
const TOKEN = vpcdSlot(1).reader;
const env = { PIN, SO_PIN: SO, NEW_PIN: '123456' };

/** The command in-process (readers named in `argv`), the PINs in its environment, stdin empty. */
const cli = (argv: string[]) => runCommand(argv, { env, stdin: '' });

/**
 * `pka authenticate --reader TARGET OPTIONS… --challenge-out CHALLENGE --response RESPONSE --wait 60`
 * (then `-- COMMAND…` when given); the command waits up to 60 s for the response file.
 */
function authenticate(challenge: string, response: string, options: string[] = [], command: string[] = []) {
  const then = command.length > 0 ? ['--', ...command] : [];
  return cli([
    'pka',
    'authenticate',
    '--reader',
    TARGET,
    ...options,
    '--challenge-out',
    challenge,
    '--response',
    response,
    '--wait',
    '60',
    ...then,
  ]);
}

/** `pka respond --reader TOKEN CHALLENGE --key-ref 1 --out OUT --pin env:PIN`: the token's key 1 answers. */
const respond = (challenge: string, out: string) =>
  cli(['pka', 'respond', '--reader', TOKEN, challenge, '--key-ref', '1', '--out', out, '--pin', 'env:PIN']);

describePcsc('pka commands and the transport PIN through pcscd (two readers)', () => {
  const links: VpcdConnection[] = [];
  let dir = '';

  beforeAll(async () => {
    dir = await tempDir();
    const token = new VirtualSmartCardHsm();
    await custodian('ec', token);
    token.reset();
    const target = new VirtualSmartCardHsm();
    const hsm = await SmartCardHsm.open(target);
    await hsm.initialize({ soPin: SO, userPin: PIN, publicKeyAuth: { total: 1, required: 1 } });
    target.reset();
    links.push(await insertCard(target, { host, port }));
    links.push(await insertCard(token, { host, port: port + 1 }));
  });

  afterAll(async () => {
    for (const l of links.splice(0)) await l.close();
    await waitForCard(TARGET, false);
    await waitForCard(TOKEN, false);
  });

  it('export from the token, a foreign chain refused, register, status', async () => {
    const file = join(dir, 'token.pka');
    const e = await cli(['pka', 'export', '--reader', TOKEN, '--key-ref', '1', '--out', file]);
    expect(e.code, e.stderr).toBe(0);
    const again = await cli(['pka', 'export', '--reader', TOKEN, '--key-ref', '1', '--out', file]);
    expect(again.code).toBe(7);
    // the issuer certificate replaced by one under an unknown root: the device refuses the chain
    const f = decodePkaFile(new Uint8Array(await readFile(file)));
    const foreign = join(dir, 'foreign.pka');
    await writeFile(foreign, tlv(0x30, f.request, f.device.raw, rogueIssuer(f.issuer.chr)));
    const bad = await cli(['pka', 'register', '--reader', TARGET, foreign]);
    expect(bad.code).toBe(7);
    expect(bad.stderr).toContain("does not end at this device's root");
    // a file that is no export at all: refused on the host
    await writeFile(foreign, tlv(0x30, f.request, f.issuer.raw, f.issuer.raw));
    expect((await cli(['pka', 'register', '--reader', TARGET, foreign])).code).toBe(2);
    const r = await cli(['pka', 'register', '--reader', TARGET, file]);
    expect(r.code, r.stderr).toBe(0);
    const st = await cli(['pka', 'status', '--reader', TARGET, '--json']);
    expect(JSON.parse(st.stdout)).toMatchObject({ total: 1, missing: 0, required: 1, authenticated: 0 });
  });

  it('a forged answer is refused by the device; the token answers and the step runs in the session', async () => {
    const c1 = join(dir, 'c1.json');
    const r1 = join(dir, 'r1.json');
    const forged = authenticate(c1, r1);
    await waitForFile(c1);
    const src = join(dir, 'r1.src.json');
    const a = await respond(c1, src);
    expect(a.code, a.stderr).toBe(0);
    const doc = JSON.parse(await readFile(src, 'utf8'));
    doc.signature = `${doc.signature.slice(0, -4)}0000`;
    await writeFile(r1, JSON.stringify(doc));
    const f1 = await forged;
    expect(f1.code).toBe(3);
    expect(f1.stderr).toContain('refused');

    const c2 = join(dir, 'c2.json');
    const r2 = join(dir, 'r2.json');
    const auth = authenticate(
      c2,
      r2,
      ['--json'],
      ['keygen', '--type', 'ec:prime256v1', '--label', 'via-pcscd'],
    );
    await waitForFile(c2);
    const b = await respond(c2, r2);
    expect(b.code, b.stderr).toBe(0);
    const done = await auth;
    expect(done.code, done.stderr).toBe(0);
    expect(JSON.parse(done.stdout)).toMatchObject({ authenticated: 1, step: 'keygen' });
  });

  it('transport PIN: init --transport-pin, status, pin change in one session (no second SELECT)', async () => {
    const i = await cli([
      'init',
      '--reader',
      TARGET,
      '--so-pin',
      'env:SO_PIN',
      '--pin',
      'env:PIN',
      '--transport-pin',
      '--yes',
    ]);
    expect(i.code, i.stderr).toBe(0);
    const st = await cli(['status', '--reader', TARGET]);
    expect(st.stdout).toContain('transport PIN active — set your own PIN with `pin change`');
    const trace = join(dir, 'change.apdu');
    const c = await cli([
      'pin',
      'change',
      '--reader',
      TARGET,
      '--last-try',
      '--pin',
      'env:PIN',
      '--new-pin',
      'env:NEW_PIN',
      '--trace',
      trace,
    ]);
    expect(c.code, c.stderr).toBe(0);
    const sent = (await readFile(trace, 'utf8')).split('\n').filter((l) => l.startsWith('=>'));
    expect(sent.filter((l) => l.startsWith('=> 00a40400'))).toHaveLength(1);
    expect(sent.slice(-2).map((l) => l.slice(0, 11))).toEqual(['=> 00200081', '=> 00240081']);
    const v = await cli(['pin', 'verify', '--reader', TARGET, '--pin', 'env:NEW_PIN']);
    expect(v.code, v.stderr).toBe(0);
  });
});
