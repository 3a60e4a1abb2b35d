/** `dump` shows each key's key domain (text row `Key domain`, JSON `domain`), as `keys` does. */
import { join } from 'node:path';
import { expect, it } from 'vitest';
import { cli, ENV, initArgs, keygenArgs, tempDir } from './cli-helpers.js';

async function ok(args: string[]) {
  const r = await cli(args, { env: ENV });
  expect(r.code, `${args.join(' ')}\n${r.stdout}${r.stderr}`).toBe(0);
  return r;
}

it('a key in domain 1 and one in domain 0: dump text and JSON name their domains as keys does', async () => {
  const dir = await tempDir();
  const [s0, s1, sim] = ['s0.pbe', 's1.pbe', 'd.json'].map((f) => join(dir, f)) as [string, string, string];
  for (const f of [s0, s1]) await ok(['dkek', 'create', f, '--password', 'env:PW']);
  await ok(initArgs(sim, 'Dump', '--dkek-shares', '1', '--key-domains', '2', '--yes'));
  await ok(['dkek', 'import', s0, '--sim', sim, '--password', 'env:PW']);
  await ok(['domain', 'create', '--domain', '1', '--shares', '1', '--sim', sim, '--pin', 'env:PIN']);
  await ok([
    'domain',
    'import',
    s1,
    '--domain',
    '1',
    '--sim',
    sim,
    '--password',
    'env:PW',
    '--pin',
    'env:PIN',
  ]);
  await ok(keygenArgs(sim, 'ec:prime256v1', 'in1', '--domain', '1', '--key-ref', '1', '--pin', 'env:PIN'));
  await ok(keygenArgs(sim, 'ec:prime256v1', 'in0', '--key-ref', '2', '--pin', 'env:PIN'));
  const keys = (await ok(['keys', '--sim', sim, '--json'])).json().keys as {
    keyRef: number;
    domain: number | null;
  }[];
  const dump = (await ok(['dump', '--sim', sim, '--json'])).json().keys as {
    keyRef: number;
    domain: number | null;
  }[];
  const byRef = (l: { keyRef: number; domain: number | null }[]) => l.map((k) => [k.keyRef, k.domain]);
  expect(byRef(dump)).toEqual(byRef(keys));
  expect(dump.find((k) => k.keyRef === 1)?.domain).toBe(1);
  const text = (await ok(['dump', '--sim', sim])).stdout;
  expect(text).toMatch(/Key domain\s+:?\s*1/);
});
