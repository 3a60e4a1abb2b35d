/** Runs the CLI in-process with captured streams; the argument lists, devices and PKA steps the CLI tests share. */
import { copyFile, mkdtemp, readFile, rm, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { PassThrough } from 'node:stream';
import { setTimeout as sleep } from 'node:timers/promises';
import { afterAll, expect } from 'vitest';
import { exists } from '../src/cli/files.js';
import { runCli } from '../src/cli/main.js';
import { SmartCardHsm } from '../src/sc-hsm/session.js';
import { VirtualSmartCardHsm } from '../src/sim/index.js';
import { fromHex } from '../src/util/bytes.js';

export interface RunResult {
  code: number;
  stdout: string;
  stderr: string;
  // biome-ignore lint/suspicious/noExplicitAny: parsed JSON of the command under test
  json: () => any;
}

export async function cli(
  argv: string[],
  o: { env?: Record<string, string>; stdin?: string; isTTY?: boolean } = {},
): Promise<RunResult> {
  const stdout = new PassThrough();
  const stderr = new PassThrough();
  const stdin = new PassThrough();
  let out = '';
  let err = '';
  stdout.on('data', (d) => {
    out += d.toString();
  });
  stderr.on('data', (d) => {
    err += d.toString();
  });
  if (o.stdin !== undefined) stdin.end(o.stdin);
  const code = await runCli(argv, {
    stdout,
    stderr,
    stdin,
    env: { ...(o.env ?? {}) },
    isTTY: o.isTTY ?? false,
  });
  await new Promise((r) => setImmediate(r));
  return { code, stdout: out, stderr: err, json: () => JSON.parse(out) };
}

const tempDirs: string[] = [];
// removed when the importing test file ends (the hook lands on that file's suite)
afterAll(async () => {
  await Promise.all(tempDirs.splice(0).map((d) => rm(d, { recursive: true, force: true })));
});

/** A fresh temporary directory, removed with everything in it when the test file ends. */
export async function tempDir(): Promise<string> {
  const d = await mkdtemp(join(tmpdir(), 'sc-hsm-ts-cli-'));
  tempDirs.push(d);
  return d;
}

/**
 * A new, uninitialized virtual device in the state file `path` (only `init` and `sim serve` create
 * a missing --sim FILE; a device out of its box is made here).
 */
export async function blankDevice(path: string): Promise<string> {
  const card = await VirtualSmartCardHsm.open(path, { create: true });
  await card.save(path);
  await card.close();
  return path;
}

export async function copyState(from: string, dir: string, name = 'hsm.json'): Promise<string> {
  const to = join(dir, name);
  await copyFile(from, to);
  return to;
}

export async function fileText(path: string): Promise<string> {
  return readFile(path, 'utf8');
}

export const PIN = '648219';
export const SO_PIN = '3537363231383830';
export const PASSWORD = 'share-password-1';
export const ENV = { PIN, SO_PIN, PW: PASSWORD };

/** Secrets must not show up anywhere: as text, hex (both cases) or base64. */
export function secretForms(secret: string): string[] {
  const b = Buffer.from(secret);
  return [secret, b.toString('hex'), b.toString('hex').toUpperCase(), b.toString('base64')];
}

/**
 * `init --sim SIM --so-pin env:SO_PIN --pin env:PIN --label LABEL MORE…` (the secrets from `ENV`;
 * MORE usually ends in `--yes`).
 */
export function initArgs(sim: string, label: string, ...more: string[]): string[] {
  return ['init', '--sim', sim, '--so-pin', 'env:SO_PIN', '--pin', 'env:PIN', '--label', label, ...more];
}

/** `keygen --sim SIM --type TYPE --label LABEL MORE…`. */
export function keygenArgs(sim: string, type: string, label: string, ...more: string[]): string[] {
  return ['keygen', '--sim', sim, '--type', type, '--label', label, ...more];
}

/** `aes OP --sim SIM --key-ref REF MORE…` (MORE: `--in FILE`, `--out FILE`, …). */
export function aesArgs(
  op: 'encrypt' | 'decrypt' | 'cmac',
  sim: string,
  keyRef: string,
  ...more: string[]
): string[] {
  return ['aes', op, '--sim', sim, '--key-ref', keyRef, ...more];
}

/** Waits (at most 10 s) until `path` exists: the challenge file of a running `pka authenticate`. */
export async function waitForFile(path: string): Promise<void> {
  for (let i = 0; i < 400 && !(await exists(path)); i++) await sleep(25);
}

/**
 * `init --sim FILE --so-pin env:SO_PIN --pin env:PIN --yes EXTRA…` with `env` (the PKA tests' form:
 * `--pka`, `--required`, `--transport-pin`, `--label` in EXTRA).
 */
export function initYes(file: string, env: Record<string, string>, ...extra: string[]): Promise<RunResult> {
  return cli(['init', '--sim', file, '--so-pin', 'env:SO_PIN', '--pin', 'env:PIN', '--yes', ...extra], {
    env,
  });
}

/** A PKA custodian's device `DIR/NAME.json` with an EC key 1, and its `pka export` file `DIR/NAME.pka`. */
export async function pkaCustodian(
  dir: string,
  name: string,
  env: Record<string, string>,
): Promise<{ sim: string; file: string }> {
  const sim = join(dir, `${name}.json`);
  expect((await initYes(sim, env, '--label', name)).code).toBe(0);
  const k = await cli(keygenArgs(sim, 'ec:prime256v1', 'pka', '--pin', 'env:PIN'), { env });
  expect(k.code, k.stderr).toBe(0);
  const file = join(dir, `${name}.pka`);
  const e = await cli(['pka', 'export', '--sim', sim, '--key-ref', '1', '--out', file]);
  expect(e.code, e.stderr).toBe(0);
  return { sim, file };
}

/** `pka respond --sim SIM CHALLENGE --key-ref REF --out OUT --pin PIN`. */
export function respondArgs(
  sim: string,
  challenge: string,
  out: string,
  keyRef = '1',
  pin = 'env:PIN',
): string[] {
  return ['pka', 'respond', '--sim', sim, challenge, '--key-ref', keyRef, '--out', out, '--pin', pin];
}

/** `pka authenticate --sim SIM --challenge-out CHALLENGE --response R… MORE…`. */
export function pkaAuthArgs(
  sim: string,
  challenge: string,
  responses: string[],
  ...more: string[]
): string[] {
  return [
    'pka',
    'authenticate',
    '--sim',
    sim,
    '--challenge-out',
    challenge,
    ...responses.flatMap((r) => ['--response', r]),
    ...more,
  ];
}

/** A custodian answers CHALLENGE into OUT with its key 1 (`pka respond … --pin env:PIN`); it must succeed. */
export async function pkaRespond(
  sim: string,
  challenge: string,
  out: string,
  env: Record<string, string>,
): Promise<void> {
  const r = await cli(respondArgs(sim, challenge, out), { env });
  expect(r.code, r.stderr).toBe(0);
}

/** Writes a `pka authenticate` challenge file by hand (what a hostile or broken sender could send). */
export function writeChallenge(path: string, deviceChr: string, challenge: string): Promise<void> {
  return writeFile(
    path,
    JSON.stringify({ format: 'sc-hsm-ts/pka-challenge', version: 1, deviceChr, challenge }),
  );
}

/** The DKEK share of {@link dkekCard} (32 bytes). */
export const TEST_SHARE = fromHex('9b1964f9cbc623adbe4644244161d955a8729a691883b35643c9e6e9dc3f3c74');

/** A new virtual card initialized with `PIN`/`SO_PIN` and `label`, the DKEK of one share (TEST_SHARE) imported. */
export async function dkekCard(label: string): Promise<VirtualSmartCardHsm> {
  const card = new VirtualSmartCardHsm();
  const hsm = await SmartCardHsm.open(card);
  await hsm.initialize({ soPin: SO_PIN, userPin: PIN, label, dkekShares: 1 });
  await hsm.importDkekShare(TEST_SHARE);
  return card;
}

/** A session on `card`, the user PIN verified, with `keys` EC P-256 keys labelled k0, k1, … generated. */
export async function withEcKeys(card: VirtualSmartCardHsm, keys: number): Promise<SmartCardHsm> {
  const hsm = await SmartCardHsm.open(card);
  await hsm.verifyPin(PIN);
  for (let i = 0; i < keys; i++)
    await hsm.generateKeyPair({ type: 'ec', curve: 'prime256v1', label: `k${i}` });
  return hsm;
}

/** DIR/base.json initialized by `init … --label LABEL --yes` with the secrets of `ENV`: a test file's base device. */
export async function initializedState(dir: string, label: string): Promise<string> {
  const path = join(dir, 'base.json');
  const r = await cli(initArgs(path, label, '--yes'), { env: ENV });
  expect(r.code, r.stderr).toBe(0);
  return path;
}

/**
 * DIR/base.json initialized with one DKEK share (DIR/share.pbe, password `env:PW`) and that share
 * imported: a test file's base device for wrap, backup and restore.
 */
export async function dkekState(dir: string, label: string): Promise<string> {
  const share = join(dir, 'share.pbe');
  expect((await cli(['dkek', 'create', share, '--password', 'env:PW'], { env: ENV })).code).toBe(0);
  const path = join(dir, 'base.json');
  expect((await cli(initArgs(path, label, '--dkek-shares', '1', '--yes'), { env: ENV })).code).toBe(0);
  const r = await cli(['dkek', 'import', share, '--sim', path, '--password', 'env:PW'], { env: ENV });
  expect(r.code, r.stderr).toBe(0);
  return path;
}

/**
 * The PKA tests' environment (`PIN`, `SO_PIN` and `more`), their runs of `init`, the custodian setup
 * and `pka respond` with it, and waitForFile.
 */
export function pkaKit(more: Record<string, string>) {
  const env = { PIN, SO_PIN, ...more };
  return {
    env,
    init: (file: string, ...extra: string[]) => initYes(file, env, ...extra),
    custodian: (dir: string, name: string) => pkaCustodian(dir, name, env),
    respond: (sim: string, challenge: string, out: string) => pkaRespond(sim, challenge, out, env),
    waitFor: waitForFile,
  };
}
