import { existsSync, readFileSync } from 'node:fs';
import { join } from 'node:path';
import { describe, expect, it } from 'vitest';
import { cli, tempDir } from './cli-helpers.js';

/** The example block of README.md if the lead copied it there, else docs/cli.md. */
function exampleBlock(): string[] {
  const root = join(__dirname, '..');
  for (const f of ['README.md', 'docs/cli.md']) {
    const p = join(root, f);
    if (!existsSync(p)) continue;
    const m = /```sh sc-hsm-ts-example\n([\s\S]*?)```/.exec(readFileSync(p, 'utf8'));
    if (m) return m[1]!.split('\n').filter((l) => l.trim() && !l.trim().startsWith('#'));
  }
  throw new Error('no ```sh sc-hsm-ts-example block in README.md or docs/cli.md');
}

describe('documented examples', () => {
  it('every example command exits 0 on a virtual card', async () => {
    const dir = await tempDir();
    const cwd = process.cwd();
    process.chdir(dir);
    const env: Record<string, string> = {};
    try {
      for (const line of exampleBlock()) {
        const words = line.trim().split(/\s+/);
        if (words[0] === 'export') {
          for (const a of words.slice(1)) {
            const [k, ...v] = a.split('=');
            env[k!] = v.join('=');
          }
          continue;
        }
        expect(words[0]).toBe('sc-hsm-ts');
        const r = await cli(words.slice(1), { env });
        expect(r.code, `${line}\n${r.stdout}${r.stderr}`).toBe(0);
      }
    } finally {
      process.chdir(cwd);
    }
  });

  it('demo runs the whole guide and verifies the signatures', async () => {
    const r = await cli(['demo', '--json']);
    expect(r.code, r.stdout).toBe(0);
    const j = r.json();
    expect(j).toMatchObject({ ok: true, signatureVerified: true, samePublicKey: true });
    expect(j.steps.find((s: { step: string }) => s.step === 'wrong PIN 3 refused').exitCode).toBe(7);
  });
});
