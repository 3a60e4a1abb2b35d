/**
 * `--profile` (global, with --sim; and on sim serve): a bad profile is refused before the state
 * file is touched, --profile without a virtual card is a usage error, and a profile's capacity
 * reaches the command as the card's 6A84.
 */
import { readFile, stat, writeFile } from 'node:fs/promises';
import { join } from 'node:path';
import { describe, expect, it } from 'vitest';
import { NITROKEY_HSM2, type TimingProfile } from '../src/sim/profile.js';
import { blankDevice, cli, ENV, tempDir } from './cli-helpers.js';

/** The built-in's shape with no waiting (tests are never timed) and the given capacity. */
function quickProfile(ecKeys: number): TimingProfile {
  const p = JSON.parse(JSON.stringify(NITROKEY_HSM2)) as TimingProfile;
  const zero = (o: Record<string, unknown>) => {
    for (const k of Object.keys(o)) {
      if (typeof o[k] === 'number') o[k] = 0;
      else zero(o[k] as Record<string, unknown>);
    }
  };
  zero(p.card as unknown as Record<string, unknown>);
  zero(p.transfer as unknown as Record<string, unknown>);
  p.name = 'quick';
  p.limits.capacity = { ecKeys, rsa2048Keys: 1 };
  return p;
}

async function initialized(dir: string): Promise<string> {
  const sim = await blankDevice(join(dir, 'hsm.json'));
  const r = await cli(
    ['init', '--sim', sim, '--so-pin', 'env:SO_PIN', '--pin', 'env:PIN', '--label', 'p', '--yes'],
    { env: ENV },
  );
  expect(r.code, r.stderr).toBe(0);
  return sim;
}

describe('--profile', () => {
  it('refuses a bad profile before the state file is opened (exit 2, the field named)', async () => {
    const dir = await tempDir();
    const sim = await initialized(dir);
    const before = await readFile(sim, 'utf8');
    const mtime = (await stat(sim)).mtimeMs;
    const negative = join(dir, 'negative.json');
    await writeFile(
      negative,
      JSON.stringify({ ...NITROKEY_HSM2, transfer: { ...NITROKEY_HSM2.transfer, fixedMs: -5 } }),
    );
    const unknown = join(dir, 'unknown.json');
    await writeFile(unknown, JSON.stringify({ ...NITROKEY_HSM2, turbo: true }));
    const notJson = join(dir, 'not.json');
    await writeFile(notJson, 'fixedMs = 24');
    const empty = join(dir, 'empty.json');
    await writeFile(empty, '{}');
    const small = join(dir, 'small-apdu.json');
    await writeFile(
      small,
      JSON.stringify({ ...NITROKEY_HSM2, limits: { ...NITROKEY_HSM2.limits, maxApdu: 261 } }),
    );
    for (const [profile, message] of [
      // the file named, whatever is wrong inside it
      [empty, new RegExp(`${empty.replace(/[.*+?^${}()|[\]\\]/g, '\\$&')}: "name" is missing`)],
      // a buffer the host's whole UNWRAP KEY / certificate APDUs would not fit: refused up front
      [small, /small-apdu\.json: limits\.maxApdu: must be a whole number from 1462/],
      [negative, /transfer\.fixedMs/],
      [unknown, /unknown key "turbo"/],
      [notJson, /is not JSON/],
      ['nitrokey', /neither a built-in profile/],
    ] as const) {
      const r = await cli(['status', '--sim', sim, '--profile', profile, '--json']);
      expect(r.code, profile).toBe(2);
      expect(r.json().error.message).toMatch(message);
    }
    const missing = await cli(['status', '--profile', join(dir, 'missing.json'), '--sim', sim]);
    expect(missing.code).toBe(5); // not found
    expect(await readFile(sim, 'utf8')).toBe(before);
    expect((await stat(sim)).mtimeMs).toBe(mtime);
  });

  it('sim serve refuses a bad profile before it creates or holds the state file', async () => {
    const dir = await tempDir();
    const state = join(dir, 'new.json');
    const r = await cli(['sim', 'serve', '--state', state, '--profile', join(dir, 'none.json')]);
    expect(r.code).toBe(5);
    const bad = await cli(['sim', 'serve', '--profile', 'fast', '--state', state]);
    expect(bad.code).toBe(2);
    await expect(stat(state)).rejects.toMatchObject({ code: 'ENOENT' });
  });

  it('is a usage error without a virtual card', async () => {
    const r = await cli(['status', '--profile', 'nitrokey-hsm2']);
    expect(r.code).toBe(2);
    expect(r.stderr).toMatch(/--profile models the virtual card/);
    const withReader = await cli(['status', '--reader', '0', '--profile', 'nitrokey-hsm2']);
    expect(withReader.code).toBe(2);
  });

  it("runs commands on the modelled card; a key beyond the profile's capacity is refused by the card", async () => {
    const dir = await tempDir();
    const sim = await initialized(dir);
    const profile = join(dir, 'quick.json');
    await writeFile(profile, JSON.stringify(quickProfile(1)));
    const keygen = (label: string) =>
      cli(
        [
          'keygen',
          '--sim',
          sim,
          '--type',
          'ec:prime256v1',
          '--label',
          label,
          '--pin',
          'env:PIN',
          '--json',
          '--profile',
          profile,
        ],
        { env: ENV },
      );
    const one = await keygen('one');
    expect(one.code, one.stderr).toBe(0);
    const two = await keygen('two');
    expect(two.code).not.toBe(0);
    expect(two.json().error.code).toBe('MEMORY_FULL');
    // without the profile the same card has room (the profile's limit is the model's, not the file's)
    const free = await cli(
      ['keygen', '--sim', sim, '--type', 'ec:prime256v1', '--label', 'two', '--pin', 'env:PIN'],
      { env: ENV },
    );
    expect(free.code, free.stderr).toBe(0);
    const keys = await cli(['keys', '--sim', sim, '--profile', profile, '--json']);
    expect(keys.code, keys.stderr).toBe(0);
  });
});
