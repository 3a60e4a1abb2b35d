/**
 * A share file of one key domain imported into another: the two domains then have one DKEK, and
 * keys of either unwrap into the other. The import says so (text and JSON), naming the domain.
 */
import { join } from 'node:path';
import { beforeAll, expect, it } from 'vitest';
import { cli, ENV, initArgs, tempDir } from './cli-helpers.js';

let dir: string;
let share0: string;
let shareOwn: string;
let base: string;

async function ok(args: string[]) {
  const r = await cli(args, { env: ENV });
  expect(r.code, `${args.join(' ')}\n${r.stdout}${r.stderr}`).toBe(0);
  return r;
}

const create = (sim: string, domain: string) =>
  ok(['domain', 'create', '--domain', domain, '--shares', '1', '--sim', sim, '--pin', 'env:PIN']);
const importInto = (sim: string, share: string, domain: string, ...more: string[]) =>
  ok([
    'domain',
    'import',
    share,
    '--domain',
    domain,
    '--sim',
    sim,
    '--password',
    'env:PW',
    '--pin',
    'env:PIN',
    ...more,
  ]);

beforeAll(async () => {
  dir = await tempDir();
  share0 = join(dir, 'share0.pbe');
  shareOwn = join(dir, 'own.pbe');
  for (const f of [share0, shareOwn]) await ok(['dkek', 'create', f, '--password', 'env:PW']);
  base = join(dir, 'base.json');
  await ok(initArgs(base, 'Same', '--dkek-shares', '1', '--key-domains', '3', '--yes'));
  await ok(['dkek', 'import', share0, '--sim', base, '--password', 'env:PW']);
});

it("domain 0's share imported into domain 2: a warning names domain 0, the JSON lists it", async () => {
  await create(base, '2');
  const r = await importInto(base, share0, '2', '--json');
  expect(r.json().sameDkekAs).toEqual([0]);
  expect(r.stderr).toContain('is the same as that of key domain 0');
  expect(r.stderr).toContain('domain delete --domain 2 --dkek-only');
});

it('a share of its own: no warning, no sameDkekAs', async () => {
  await create(base, '1');
  const r = await importInto(base, shareOwn, '1', '--json');
  expect(r.json().sameDkekAs).toBeUndefined();
  expect(r.stderr).not.toContain('is the same as');
});
