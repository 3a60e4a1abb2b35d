/**
 * A directory the command writes into (backup DIR, restore DIR where it notes
 * restore-progress.json, --save-replaced DIR) never holds the --sim state file or its lock, temp
 * and record files (hostile pass g16): a state named key-001.bin or manifest.json would be
 * replaced by a backup file or taken for a manifest, and restore-progress.json removed.
 */
import { copyFileSync, existsSync, mkdirSync, readFileSync, symlinkSync } from 'node:fs';
import { join } from 'node:path';
import { beforeAll, describe, expect, it } from 'vitest';
import { cli, dkekState, ENV, tempDir } from './cli-helpers.js';

let dir: string;
let base: string;

beforeAll(async () => {
  dir = await tempDir();
  base = await dkekState(dir, 'InDir');
  const k = await cli(
    ['keygen', '--sim', base, '--type', 'ec:prime256v1', '--label', 'k', '--pin', 'env:PIN'],
    {
      env: ENV,
    },
  );
  expect(k.code, k.stderr).toBe(0);
}, 120_000);

/** A copy of the base device at DIR/NAME (DIR made). */
function stateAt(d: string, name: string): string {
  mkdirSync(d, { recursive: true });
  const f = join(d, name);
  copyFileSync(base, f);
  return f;
}

function expectRefused(r: Awaited<ReturnType<typeof cli>>, state: string, dirArg: string): void {
  expect(r.code, r.stderr).toBe(2);
  const e = r.json().error;
  expect(e.code).toBe('USAGE_ERROR');
  expect(e.message).toContain(state);
  expect(e.message).toContain(dirArg);
  expect(e.message).toContain('Nothing was sent');
}

describe('backup DIR holding the --sim state', () => {
  it('state named like a wrap file (key-001.bin): refused, the state kept', async () => {
    const d = join(dir, 'bk-keyfile');
    const s = stateAt(d, 'key-001.bin');
    const before = readFileSync(s);
    const r = await cli(['backup', d, '--sim', s, '--pin', 'env:PIN', '--json'], { env: ENV });
    expectRefused(r, s, d);
    expect(readFileSync(s)).toEqual(before);
    expect(existsSync(join(d, 'manifest.json'))).toBe(false);
  });

  it('state named manifest.json, also with --force: refused, the state kept', async () => {
    const d = join(dir, 'bk-manifest');
    const s = stateAt(d, 'manifest.json');
    const before = readFileSync(s);
    for (const extra of [[], ['--force']]) {
      const r = await cli(['backup', d, '--sim', s, '--pin', 'env:PIN', '--json', ...extra], { env: ENV });
      expectRefused(r, s, d);
      expect(readFileSync(s)).toEqual(before);
    }
  });

  it('the directory or the state named through a symlink, or the state in a subdirectory: refused', async () => {
    const real = join(dir, 'bk-real');
    const s = stateAt(real, 'hsm.json');
    const link = join(dir, 'bk-link');
    symlinkSync(real, link);
    const before = readFileSync(s);
    const r = await cli(['backup', link, '--sim', s, '--pin', 'env:PIN', '--json'], { env: ENV });
    expectRefused(r, s, link);
    // the state named through the link, the directory by its real path
    const r2 = await cli(['backup', real, '--sim', join(link, 'hsm.json'), '--pin', 'env:PIN', '--json'], {
      env: ENV,
    });
    expect(r2.code).toBe(2);
    // a state file in a subdirectory of DIR is inside it too
    const sub = stateAt(join(real, 'sub'), 'hsm.json');
    const r3 = await cli(['backup', real, '--sim', sub, '--pin', 'env:PIN', '--json'], { env: ENV });
    expect(r3.code).toBe(2);
    expect(readFileSync(s)).toEqual(before);
    expect(existsSync(join(real, 'manifest.json'))).toBe(false);
  });

  it('a state file beside (not inside) DIR is no clash: the backup is written', async () => {
    const s = stateAt(join(dir, 'beside'), 'hsm.json');
    const d = join(dir, 'beside', 'bk');
    const r = await cli(['backup', d, '--sim', s, '--pin', 'env:PIN', '--json'], { env: ENV });
    expect(r.code, r.stderr).toBe(0);
    expect(existsSync(join(d, 'manifest.json'))).toBe(true);
  });
});

describe('restore DIR holding the --sim state', () => {
  it('state named restore-progress.json: refused, the state neither written nor removed', async () => {
    const src = stateAt(join(dir, 'rs'), 'src.json');
    const bk = join(dir, 'rs', 'bk2');
    const b = await cli(['backup', bk, '--sim', src, '--pin', 'env:PIN', '--json'], { env: ENV });
    expect(b.code, b.stderr).toBe(0);
    const s = join(bk, 'restore-progress.json');
    copyFileSync(base, s);
    const before = readFileSync(s);
    for (const extra of [[], ['--force', '--i-understand-the-old-key-is-lost', '--yes']]) {
      const r = await cli(['restore', bk, '--sim', s, '--pin', 'env:PIN', '--json', ...extra], { env: ENV });
      expectRefused(r, s, bk);
      expect(readFileSync(s)).toEqual(before);
    }
  });

  it('--save-replaced DIR holding the state: refused', async () => {
    const src = stateAt(join(dir, 'sr'), 'src.json');
    const bk = join(dir, 'sr', 'bk');
    expect((await cli(['backup', bk, '--sim', src, '--pin', 'env:PIN'], { env: ENV })).code).toBe(0);
    const s = stateAt(join(dir, 'sr', 'saved'), 'hsm.json');
    const r = await cli(
      [
        'restore',
        bk,
        '--sim',
        s,
        '--force',
        '--save-replaced',
        join(dir, 'sr', 'saved'),
        '--pin',
        'env:PIN',
        '--json',
      ],
      { env: ENV },
    );
    expectRefused(r, s, join(dir, 'sr', 'saved'));
  });
});
