/**
 * Key domains as a hostile pass used them: a share file of one domain imported into another (the
 * two then have one DKEK: the import says so, text and JSON), and `dump` showing each key's domain
 * as `keys` does. The tests build on each other in order: domain 2 shares domain 0's DKEK, domain 1
 * gets its own, then keys go into domains 1 and 0.
 */
import { generateKeyPairSync } from 'node:crypto';
import { writeFile } from 'node:fs/promises';
import { join } from 'node:path';
import { beforeAll, expect, it } from 'vitest';
import { cli, ENV, initArgs, keygenArgs, tempDir } from './cli-helpers.js';

let share0: string;
let shareOwn: string;
let sim: string;

async function ok(args: string[]) {
  const r = await cli(args, { env: ENV });
  expect(r.code, `${args.join(' ')}\n${r.stdout}${r.stderr}`).toBe(0);
  return r;
}

const create = (domain: string) =>
  ok(['domain', 'create', '--domain', domain, '--shares', '1', '--sim', sim, '--pin', 'env:PIN']);
const importInto = (share: string, domain: string) =>
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
    '--json',
  ]);

beforeAll(async () => {
  const dir = await tempDir();
  share0 = join(dir, 'share0.pbe');
  shareOwn = join(dir, 'own.pbe');
  for (const f of [share0, shareOwn]) await ok(['dkek', 'create', f, '--password', 'env:PW']);
  sim = join(dir, 'd.json');
  await ok(initArgs(sim, 'Domains', '--dkek-shares', '1', '--key-domains', '3', '--yes'));
  await ok(['dkek', 'import', share0, '--sim', sim, '--password', 'env:PW']);
});

it("domain 0's share imported into domain 2: a warning names domain 0, the JSON lists it", async () => {
  await create('2');
  const r = await importInto(share0, '2');
  expect(r.json().sameDkekAs).toEqual([0]);
  expect(r.stderr).toContain('is the same as that of key domain 0');
  expect(r.stderr).toContain('domain delete --domain 2 --dkek-only');
});

it('a share of its own: no warning, no sameDkekAs', async () => {
  await create('1');
  const r = await importInto(shareOwn, '1');
  expect(r.json().sameDkekAs).toBeUndefined();
  expect(r.stderr).not.toContain('is the same as');
});

it('a key in domain 1 and one in domain 0: dump text and JSON name their domains as keys does', async () => {
  await ok(keygenArgs(sim, 'ec:prime256v1', 'in1', '--domain', '1', '--key-ref', '1', '--pin', 'env:PIN'));
  await ok(keygenArgs(sim, 'ec:prime256v1', 'in0', '--key-ref', '2', '--pin', 'env:PIN'));
  type Listed = { keyRef: number; domain: number | null };
  const byRef = (l: Listed[]) => l.map((k) => [k.keyRef, k.domain]);
  const keys = (await ok(['keys', '--sim', sim, '--json'])).json().keys as Listed[];
  const dump = (await ok(['dump', '--sim', sim, '--json'])).json().keys as Listed[];
  expect(byRef(dump)).toEqual(byRef(keys));
  expect(dump.find((k) => k.keyRef === 1)?.domain).toBe(1);
  expect((await ok(['dump', '--sim', sim])).stdout).toMatch(/Key domain\s+:?\s*1/);
});

it("import-key with domain 1's shares but no --domain: KCV_MISMATCH whose fix says --domain 1; nothing imported", async () => {
  const pem = join(await tempDir(), 'k.pem');
  const { privateKey } = generateKeyPairSync('ec', { namedCurve: 'prime256v1' });
  await writeFile(pem, privateKey.export({ format: 'pem', type: 'pkcs8' }));
  const args = ['import-key', pem, '--sim', sim, '--key-ref', '9', '--label', 'imp', '--dkek', shareOwn];
  const r = await cli([...args, '--password', 'env:PW', '--pin', 'env:PIN', '--json'], { env: ENV });
  expect(r.json().error.code).toBe('KCV_MISMATCH');
  expect(r.json().error.message).toContain('it is the DKEK of key domain 1');
  expect(r.json().error.fix).toContain('--domain 1');
  const keys = (await ok(['keys', '--sim', sim, '--json'])).json().keys as { keyRef: number }[];
  expect(keys.map((k) => k.keyRef)).not.toContain(9);
});
