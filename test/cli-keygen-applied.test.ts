/** `keygen` reports the restrictions the device applied (as `keys` shows them), not only those asked for. */
import { join } from 'node:path';
import { expect, it } from 'vitest';
import { cli, ENV, initArgs, keygenArgs, tempDir } from './cli-helpers.js';

async function ok(args: string[]) {
  const r = await cli(args, { env: ENV });
  expect(r.code, `${args.join(' ')}\n${r.stdout}${r.stderr}`).toBe(0);
  return r;
}

it('an AES key without --algorithms: keygen --json and its text show the default list keys reports', async () => {
  const sim = join(await tempDir(), 'k.json');
  await ok(initArgs(sim, 'Applied', '--yes'));
  const g = (
    await ok(keygenArgs(sim, 'aes:128', 'a', '--key-ref', '1', '--pin', 'env:PIN', '--json'))
  ).json();
  const listed = (await ok(['keys', '--sim', sim, '--json'])).json().keys[0];
  expect(g.algorithms).toEqual(listed.algorithms);
  expect(g.algorithms).toContain('WRAP');
  const text = (await ok(keygenArgs(sim, 'aes:128', 'b', '--key-ref', '2', '--pin', 'env:PIN'))).stdout;
  expect(text).toContain('Restrictions');
  expect(text).toContain('AES-CBC-ENCRYPT');
  // an EC key without restrictions still says none
  expect(
    (await ok(keygenArgs(sim, 'ec:prime256v1', 'e', '--key-ref', '3', '--pin', 'env:PIN', '--json'))).json()
      .algorithms,
  ).toBeNull();
});
