// A Node app that signs through OpenSC's PKCS#11 module (opensc-pkcs11.so) on the virtual card
// and verifies the signature with node:crypto. Run under
//   SO_PIN=3537363231383830 INIT_PIN=648219 PIN=648219 \
//     sc-hsm-ts sim run --init --so-pin env:SO_PIN --pin env:INIT_PIN --label APP -- node sign.mjs
// (two variables for one PIN: sim run removes INIT_PIN, which its --pin names, from this
// process's environment; the app logs in with PIN)
// which puts an initialized card into pcscd and hands this process SC_HSM_PKCS11_MODULE.
//
// The PKCS#11 calls go through OpenSC's pkcs11-tool (C_GenerateKeyPair, C_Sign, C_GetAttributeValue)
// rather than a Node binding: pkcs11js and graphene-pk11 are native addons that are not in this
// repository's npm cache, so `npm ci --offline` could not install them in CI (README, examples).
import { execFileSync } from 'node:child_process';
import { createPublicKey, verify } from 'node:crypto';
import { mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';

const module = process.env.SC_HSM_PKCS11_MODULE;
const pin = process.env.PIN;
if (!module || !pin) throw new Error('run under sc-hsm-ts sim run (SC_HSM_PKCS11_MODULE) with PIN set');

const dir = mkdtempSync(join(tmpdir(), 'pkcs11-node-'));
// pkcs11-tool takes the PIN only on its command line; this is the CI test PIN
const p11 = (...args) => execFileSync('pkcs11-tool', ['--module', module, ...args], { encoding: 'utf8' });
try {
  p11('--login', '--pin', pin, '--keypairgen', '--key-type', 'EC:prime256v1', '--id', '01', '--label', 'app-key');
  const data = Buffer.from('invoice #4711, total 99.00 EUR');
  writeFileSync(join(dir, 'data'), data);
  p11('--login', '--pin', pin, '--sign', '--id', '01', '--mechanism', 'ECDSA-SHA256',
    '--input-file', join(dir, 'data'), '--output-file', join(dir, 'sig'));
  p11('--read-object', '--type', 'pubkey', '--id', '01', '--output-file', join(dir, 'pub.der'));
  const key = createPublicKey({ key: readFileSync(join(dir, 'pub.der')), format: 'der', type: 'spki' });
  // OpenSC returns ECDSA as r || s (PKCS#11), which node:crypto reads as ieee-p1363
  const ok = verify('sha256', data, { key, dsaEncoding: 'ieee-p1363' }, readFileSync(join(dir, 'sig')));
  if (!ok) throw new Error('the signature did not verify');
  console.log(`signed through ${module} on ${process.env.SC_HSM_READER}; node:crypto verified it`);
} finally {
  rmSync(dir, { recursive: true, force: true });
}
