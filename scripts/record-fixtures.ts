/**
 * Records the APDU transcripts in fixtures/transcripts/ from the virtual card (secrets masked).
 * Run after a deliberate change of what the session sends: `npx tsx scripts/record-fixtures.ts`.
 * test/replay.test.ts plays them back and fails on any divergence.
 */
import { writeFileSync } from 'node:fs';
import { RecordingTransport } from '../src/apdu/transcript.js';
import { SmartCardHsm } from '../src/sc-hsm/session.js';
import { secretMask } from '../src/sc-hsm/transcript-mask.js';
import { VirtualSmartCardHsm } from '../src/sim/index.js';

export const STEPS =
  'initialize → import DKEK share → verify PIN → generate EC P-256 and RSA-2048 → list keys';

const rec = new RecordingTransport(new VirtualSmartCardHsm(), undefined, secretMask);
rec.comment(`sc-hsm-ts session against the virtual card: ${STEPS}`);
rec.comment(
  'PINs, the SO-PIN and the DKEK share are masked (**); the replay accepts any value of the same length',
);
const hsm = await SmartCardHsm.open(rec);
rec.comment('initialize');
await hsm.initialize({ soPin: '3537363231383830', userPin: '648219', label: 'MTG-CARA-HSM', dkekShares: 1 });
rec.comment('import DKEK share');
await hsm.importDkekShare(new Uint8Array(32).fill(0x5a));
rec.comment('verify PIN');
await hsm.verifyPin('648219');
rec.comment('generate EC prime256v1');
await hsm.generateKeyPair({ type: 'ec', curve: 'prime256v1', label: 'cara-ec-ca', id: Uint8Array.of(2) });
rec.comment('generate RSA-2048');
await hsm.generateKeyPair({ type: 'rsa', bits: 2048, label: 'cara-rsa-ca', id: Uint8Array.of(1) });
rec.comment('list keys');
await hsm.listKeys();
writeFileSync(new URL('../fixtures/transcripts/init-and-keygen.apdu', import.meta.url), rec.text());
console.log(`wrote fixtures/transcripts/init-and-keygen.apdu (${rec.lines.length} lines)`);
