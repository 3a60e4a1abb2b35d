import { createPublicKey, verify } from 'node:crypto';
import { mkdtemp, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { Writable } from 'node:stream';
import { SmartCardHsm } from '../../sc-hsm/session.js';
import { VirtualSmartCardHsm } from '../../sim/index.js';
import { bytesEqual } from '../../util/bytes.js';
import type { Command } from '../command.js';
import { CliError } from '../exit-codes.js';
import { spkiFingerprint } from '../format.js';
import type { CliIo } from '../io.js';
import { demoSpec } from './meta.js';

type Runner = (argv: string[], io: CliIo) => Promise<number>;

let runner: Runner | undefined;
/** main.ts hands the demo its own entry point (the demo runs the real commands). */
export function setDemoRunner(r: Runner): void {
  runner = r;
}

const PIN = '648219';
const SO_PIN = '3537363231383830';
const DKEK_PASSWORD = 'demo-share-password';

export const demo: Command = {
  ...demoSpec,
  async run(ctx) {
    if (!runner) throw new CliError('INTERNAL_ERROR', 'demo runner not set');
    const run = runner;
    const dir = await mkdtemp(join(tmpdir(), 'sc-hsm-ts-demo-'));
    const o = ctx.out;
    const sink = new Writable({ write: (_c, _e, cb) => cb() });
    const stdout = ctx.g.json ? sink : ctx.io.stdout;
    // secrets from the environment, as an operator should give them (a literal one gets a warning)
    const env = { ...ctx.io.env, PIN, SO_PIN, DKEK_PASSWORD, WRONG_PIN: '111111' };
    const steps: { step: string; command: string; exitCode: number }[] = [];
    const hsmA = join(dir, 'hsm-a.json');
    const hsmB = join(dir, 'hsm-b.json');
    const share = join(dir, 'dkek-share-1.pbe');
    const backupDir = join(dir, 'backup');
    let n = 0;
    const say = (title: string) => {
      o.line('');
      o.line(o.paint('cyan', `== ${++n}. ${title}`));
    };
    const sh = async (title: string, args: string[], expect = 0) => {
      const shown = args
        .map((a) => (a.startsWith(dir) ? `$DEMO${a.slice(dir.length)}` : a))
        .map((a) => (/^[\w$./:=@%+,-]+$/.test(a) ? a : `'${a.replace(/'/g, "'\\''")}'`))
        .join(' ');
      o.line(o.paint('bold', `$ sc-hsm-ts ${shown}`));
      const code = await run(args, { stdout, stderr: stdout, stdin: ctx.io.stdin, env, isTTY: false });
      steps.push({ step: title, command: `sc-hsm-ts ${shown}`, exitCode: code });
      if (code !== expect)
        throw new CliError(
          'CARD_ERROR',
          `demo step "${title}" ended with exit code ${code} (expected ${expect})`,
        );
      if (expect !== 0) o.line(o.paint('dim', `(exit code ${code}, as expected)`));
    };
    const signAndVerify = async (state: string, keyRef: number, spki: Uint8Array) => {
      const card = await VirtualSmartCardHsm.load(state);
      const hsm = await SmartCardHsm.open(card);
      await hsm.verifyPin(PIN);
      const msg = new TextEncoder().encode('sc-hsm-ts demo message');
      const sig = await hsm.sign(keyRef, 'ECDSA-SHA256', msg);
      const ok = verify(
        'sha256',
        msg,
        createPublicKey({ key: Buffer.from(spki), format: 'der', type: 'spki' }),
        sig,
      );
      await card.save(state);
      return ok;
    };
    const keyOf = async (state: string, keyRef: number) => {
      const hsm = await SmartCardHsm.open(await VirtualSmartCardHsm.load(state));
      return (await hsm.keyInfo(keyRef)).publicKey!;
    };
    try {
      o.heading('sc-hsm-ts demo: the SmartCard-HSM operator guide on virtual devices');
      o.line(`Working directory: ${dir} (shown as $DEMO). Secrets come from the environment:`);
      o.line(`  export PIN=${PIN} SO_PIN=${SO_PIN} DKEK_PASSWORD=${DKEK_PASSWORD}`);
      say('A new device is uninitialized');
      // the virtual device out of its box: a blank state file (only init and sim serve make one)
      const blank = await VirtualSmartCardHsm.open(hsmA, { create: true });
      await blank.save(hsmA);
      await blank.close();
      await sh('status', ['status', '--sim', hsmA]);
      say('Create a DKEK share file (keep it and its password apart and safe)');
      await sh('dkek create', ['dkek', 'create', share, '--password', 'env:DKEK_PASSWORD', '--progress']);
      say('Initialize with one DKEK share (this erases the device)');
      await sh('init', [
        'init',
        '--sim',
        hsmA,
        '--so-pin',
        'env:SO_PIN',
        '--pin',
        'env:PIN',
        '--label',
        'Demo CA',
        '--dkek-shares',
        '1',
        '--yes',
      ]);
      say('Import the DKEK share');
      await sh('dkek import', [
        'dkek',
        'import',
        share,
        '--sim',
        hsmA,
        '--password',
        'env:DKEK_PASSWORD',
        '--progress',
      ]);
      say('Status: the DKEK key check value');
      await sh('status', ['status', '--sim', hsmA]);
      say('Generate an RSA-2048 and an EC P-256 key');
      await sh('keygen rsa', [
        'keygen',
        '--sim',
        hsmA,
        '--type',
        'rsa:2048',
        '--label',
        'demo-rsa',
        '--pin',
        'env:PIN',
      ]);
      await sh('keygen ec', [
        'keygen',
        '--sim',
        hsmA,
        '--type',
        'ec:prime256v1',
        '--label',
        'demo-ec',
        '--pin',
        'env:PIN',
      ]);
      say('List the keys: key reference (what --key-ref takes) vs PKCS#15 ID');
      await sh('keys', ['keys', '--sim', hsmA]);
      say('Sign with the EC key on the device, verify with node:crypto');
      const spkiA = await keyOf(hsmA, 2);
      const okA = await signAndVerify(hsmA, 2, spkiA);
      o.line(`ECDSA-SHA256 signature by key ref 2 verifies with its public key: ${okA ? 'yes' : 'NO'}`);
      o.line(`public key SHA-256 ${spkiFingerprint(spkiA)}`);
      say('Back up every key (wrapped under the DKEK) and verify the backup');
      await sh('backup', ['backup', backupDir, '--sim', hsmA, '--pin', 'env:PIN']);
      say('Replacement device: initialize it and import the SAME share');
      await sh('init B', [
        'init',
        '--sim',
        hsmB,
        '--so-pin',
        'env:SO_PIN',
        '--pin',
        'env:PIN',
        '--label',
        'Demo CA (replacement)',
        '--dkek-shares',
        '1',
        '--yes',
      ]);
      await sh('dkek import B', [
        'dkek',
        'import',
        share,
        '--sim',
        hsmB,
        '--password',
        'env:DKEK_PASSWORD',
        '--progress',
      ]);
      say('Restore the backup onto the replacement device (KCV checked first)');
      await sh('restore', ['restore', backupDir, '--sim', hsmB, '--pin', 'env:PIN']);
      await sh('restore again', ['restore', backupDir, '--sim', hsmB, '--pin', 'env:PIN']);
      say('Sign on the replacement device: same public key');
      const spkiB = await keyOf(hsmB, 2);
      const okB = await signAndVerify(hsmB, 2, spkiA);
      o.line(`same public key on both devices: ${bytesEqual(spkiA, spkiB) ? 'yes' : 'NO'}`);
      o.line(
        `signature made on the replacement verifies with the original public key: ${okB ? 'yes' : 'NO'}`,
      );
      say('Three wrong PINs (the tool refuses to burn the last try unless told)');
      await sh('wrong PIN 1', ['pin', 'verify', '--sim', hsmB, '--pin', 'env:WRONG_PIN'], 3);
      await sh('wrong PIN 2', ['pin', 'verify', '--sim', hsmB, '--pin', 'env:WRONG_PIN'], 3);
      await sh('wrong PIN 3 refused', ['pin', 'verify', '--sim', hsmB, '--pin', 'env:WRONG_PIN'], 7);
      await sh('wrong PIN 3', ['pin', 'verify', '--sim', hsmB, '--pin', 'env:WRONG_PIN', '--last-try'], 3);
      say('Unblock the user PIN with the SO-PIN');
      await sh('unblock', [
        'pin',
        'unblock',
        '--sim',
        hsmB,
        '--so-pin',
        'env:SO_PIN',
        '--new-pin',
        'env:PIN',
      ]);
      await sh('verify', ['pin', 'verify', '--sim', hsmB, '--pin', 'env:PIN']);
      say('Final status');
      await sh('status', ['status', '--sim', hsmB]);
      if (!okA || !okB || !bytesEqual(spkiA, spkiB))
        throw new CliError('CARD_ERROR', 'the demo signatures did not verify');
      o.line('');
      o.ok('demo complete');
      return { ok: true, steps, signatureVerified: okA && okB, samePublicKey: bytesEqual(spkiA, spkiB) };
    } finally {
      await rm(dir, { recursive: true, force: true });
    }
  },
};
