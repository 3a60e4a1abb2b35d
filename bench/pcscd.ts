/**
 * The pcscd side the benchmarks share (model, opensc, startup): running a bench file's measuring
 * part again inside a private pcscd (scripts/with-pcscd.sh, root), and waiting until pcscd has
 * taken the virtual card behind vpcd. Not a benchmark itself (no `.bench.ts`).
 */
import { spawn } from 'node:child_process';
import { dirname, join } from 'node:path';
import { fileURLToPath } from 'node:url';
import type { PcscTransport } from '../src/apdu/pcsc.js';
import { openPcsc } from '../src/sc-hsm/open-pcsc.js';
import type { VpcdConnection } from '../src/sim/vpcd.js';

const ROOT = join(dirname(fileURLToPath(import.meta.url)), '..');

/**
 * Runs `node --import tsx FILE FLAG` (FILE relative to the project root) through
 * scripts/with-pcscd.sh with CI=true, its stderr passed through: its whole stdout, or a rejection
 * when it exits other than 0.
 */
export function inPrivatePcscd(file: string, flag: string): Promise<string> {
  return new Promise<string>((resolve, reject) => {
    const child = spawn('bash', ['scripts/with-pcscd.sh', process.execPath, '--import', 'tsx', file, flag], {
      cwd: ROOT,
      env: { ...process.env, CI: 'true' },
      stdio: ['ignore', 'pipe', 'inherit'],
    });
    const chunks: Buffer[] = [];
    child.stdout.on('data', (c: Buffer) => chunks.push(c));
    child.on('close', (code) => {
      const text = Buffer.concat(chunks).toString();
      if (code !== 0) reject(new Error(`the pcscd part exited ${code} (root needed for pcscd):\n${text}`));
      else resolve(text);
    });
  });
}

/**
 * Waits until pcscd lists the card behind `vpcd` in `reader`: vpcd connected and adopted, then a
 * PC/SC connection opened (tried every 100 ms, 60 times) and closed again, since the programs
 * measured take the reader exclusively for their sequences.
 */
export async function waitForCard(vpcd: VpcdConnection, reader: string): Promise<void> {
  await vpcd.connected;
  // vpcd takes this card at its next presence poll; before that the reader may list a stale card
  await vpcd.adopted;
  let transport: PcscTransport | undefined;
  for (let i = 0; i < 60 && !transport; i++) {
    try {
      transport = await openPcsc({ reader });
    } catch (e) {
      if (i === 59) throw e;
      await new Promise((r) => setTimeout(r, 100));
    }
  }
  await transport!.close();
}
