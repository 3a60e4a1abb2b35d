/**
 * Secret hygiene: the operator's guide run as a script of CLI commands (runCli in-process, the
 * virtual card through --sim, every command with --trace FILE and alternately --json), plus the
 * library driven through a RecordingTransport. Every output stream, every trace, every file the
 * run writes (the card's own state file aside, which is the card's EEPROM) is searched for the
 * PIN, SO-PIN, new PIN, a wrong PIN, the share file password and the DKEK share bytes: as text,
 * hex (upper and lower case, also spaced) and base64 (also base64url). None may appear.
 */
import { mkdtempSync, readdirSync, readFileSync, rmSync, statSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { PassThrough } from 'node:stream';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { RecordingTransport } from '../src/apdu/transcript.js';
import { runCli } from '../src/cli/main.js';
import { SmartCardHsm } from '../src/sc-hsm/session.js';
import { secretMask } from '../src/sc-hsm/transcript-mask.js';
import { VirtualSmartCardHsm } from '../src/sim/index.js';
import { ascii, fromHex, toHex } from '../src/util/bytes.js';

const SO_PIN = '3537363231383830';
const PIN = '648219';
const NEW_PIN = '73914258';
const WRONG_PIN = '999111';
const PASSWORD = 'cara-dkek-share-1-pw';
/** The single share of fixtures/dkek/dkek-share-1.pbe (= the DKEK). */
const SHARE = fromHex('6568b5f77e1127ca7ae8b86ad7a9306be5c9bc8ff358e2ab2ff982c3f323ae8f');

/** Every form in which a secret must not appear. */
function forms(name: string, bytes: Uint8Array, text?: string): [string, string][] {
  const hex = toHex(bytes);
  const b64 = Buffer.from(bytes).toString('base64').replace(/=+$/, '');
  const out: [string, string][] = [
    [`${name} hex`, hex.toLowerCase()],
    [`${name} HEX`, hex.toUpperCase()],
    [`${name} spaced hex`, hex.toLowerCase().replace(/(..)(?!$)/g, '$1 ')],
    [`${name} SPACED HEX`, hex.toUpperCase().replace(/(..)(?!$)/g, '$1 ')],
    [`${name} base64`, b64],
    [`${name} base64url`, Buffer.from(bytes).toString('base64url')],
  ];
  if (text !== undefined) out.push([`${name} text`, text]);
  return out;
}

const NEEDLES: [string, string][] = [
  ...forms('SO-PIN', fromHex(SO_PIN), SO_PIN),
  ...forms('PIN', ascii(PIN), PIN),
  ...forms('new PIN', ascii(NEW_PIN), NEW_PIN),
  ...forms('wrong PIN', ascii(WRONG_PIN), WRONG_PIN),
  ...forms('password', ascii(PASSWORD), PASSWORD),
  ...forms('share', SHARE),
  // base64 of a secret shifted by one or two bytes (as it would sit inside a longer blob)
  ...[1, 2].flatMap((s) => {
    const b = Buffer.concat([Buffer.alloc(s), Buffer.from(SHARE)]).toString('base64');
    return [[`share base64 +${s}`, b.slice(4, -4)] as [string, string]];
  }),
];

function leaks(where: string, haystack: string): string[] {
  const out: string[] = [];
  const lower = haystack.toLowerCase();
  for (const [what, needle] of NEEDLES) {
    if (needle.length < 6) continue;
    const hex = /^[0-9a-f ]+$/i.test(needle);
    if (hex ? lower.includes(needle.toLowerCase()) : haystack.includes(needle)) out.push(`${where}: ${what}`);
  }
  return out;
}

let dir: string;
const streams: { name: string; text: string }[] = [];
const exits: { argv: string; code: number }[] = [];

async function cli(argv: string[]): Promise<number> {
  const stdout = new PassThrough();
  const stderr = new PassThrough();
  const stdin = new PassThrough();
  stdin.end();
  const chunks: Record<'out' | 'err', Buffer[]> = { out: [], err: [] };
  stdout.on('data', (c: Buffer) => chunks.out.push(c));
  stderr.on('data', (c: Buffer) => chunks.err.push(c));
  const env = { SO: SO_PIN, PIN, NEWPIN: NEW_PIN, PW: PASSWORD, WRONG: WRONG_PIN, NO_COLOR: '1' };
  const code = await runCli(argv, { stdout, stderr, stdin, env, isTTY: false });
  streams.push({ name: `${argv.join(' ')} (stdout)`, text: Buffer.concat(chunks.out).toString('utf8') });
  streams.push({ name: `${argv.join(' ')} (stderr)`, text: Buffer.concat(chunks.err).toString('utf8') });
  exits.push({ argv: argv.join(' '), code });
  return code;
}

function allFiles(d: string): string[] {
  return readdirSync(d).flatMap((f) => {
    const p = join(d, f);
    return statSync(p).isDirectory() ? allFiles(p) : [p];
  });
}

beforeAll(async () => {
  dir = mkdtempSync(join(tmpdir(), 'sc-hsm-secrets-'));
  const pbe = fromHex(readFileSync('fixtures/dkek/dkek-share-1.pbe.hex', 'utf8').trim());
  writeFileSync(join(dir, 'share.pbe'), pbe);
  writeFileSync(join(dir, 'pin.txt'), `${PIN}\n`);
  const sim = join(dir, 'card.json');
  let n = 0;
  const g = (json: boolean) => [
    '--sim',
    sim,
    '--trace',
    join(dir, `trace-${++n}.apdu`),
    ...(json ? ['--json'] : []),
  ];
  const script: string[][] = [
    ['init', '--so-pin', 'env:SO', '--pin', 'env:PIN', '--label', 'guide', '--dkek-shares', '1', '--yes'],
    ['status'],
    ['dkek', 'import', join(dir, 'share.pbe'), '--password', 'env:PW'],
    ['keygen', '--type', 'ec:prime256v1', '--label', 'k1', '--pin', 'env:PIN'],
    ['keygen', '--type', 'rsa:1024', '--label', 'k2', '--pin', PIN],
    ['keys'],
    ['dump', '--pin', `file:${join(dir, 'pin.txt')}`],
    ['wrap', '--key-ref', '1', '--out', join(dir, 'k1.bin'), '--pin', 'env:PIN'],
    ['backup', join(dir, 'backup'), '--pin', 'env:PIN'],
    ['pin', 'verify', '--pin', 'env:WRONG'],
    ['pin', 'change', '--pin', 'env:PIN', '--new-pin', 'env:NEWPIN'],
    ['pin', 'verify', '--pin', NEW_PIN],
    ['pin', 'unblock', '--so-pin', SO_PIN, '--new-pin', 'env:PIN'],
    ['restore', join(dir, 'backup'), '--pin', 'env:PIN', '--yes'],
    ['pin', 'status'],
    ['init', '--so-pin', 'env:SO', '--pin', 'env:PIN', '--label', 'again', '--dkek-shares', '1', '--yes'],
  ];
  // Commands that change something run once (text or --json, alternately); the others both ways.
  const once = new Set(['dkek import', 'wrap', 'backup', 'pin verify', 'pin change', 'pin unblock']);
  for (const [i, argv] of script.entries()) {
    const name = argv[0] === 'dkek' || argv[0] === 'pin' ? `${argv[0]} ${argv[1]}` : argv[0]!;
    await cli([...argv, ...g(i % 2 === 1)]);
    if (!once.has(name)) await cli([...argv, ...g(i % 2 === 0)]);
  }
  // the library through a RecordingTransport, with its transcript sink
  const sink: string[] = [];
  const card = VirtualSmartCardHsm.deserialize(readFileSync(sim, 'utf8'));
  const rec = new RecordingTransport(card, (l) => sink.push(l), secretMask);
  const hsm = await SmartCardHsm.open(rec);
  await hsm.verifyPin(PIN);
  await hsm.changePin(PIN, NEW_PIN);
  await hsm.unblockPin({ soPin: SO_PIN, newPin: PIN });
  await hsm.verifyPin(WRONG_PIN).catch(() => undefined);
  await hsm.initialize({ soPin: SO_PIN, userPin: PIN, dkekShares: 1, label: 'lib' });
  await hsm.importDkekShare(SHARE);
  streams.push({ name: 'library transcript (sink)', text: sink.join('\n') });
  streams.push({ name: 'library transcript (lines)', text: rec.lines.join('\n') });
}, 120_000);

afterAll(() => {
  rmSync(dir, { recursive: true, force: true });
});

describe('no secret in any output', () => {
  it('the guide script ran: every command but the deliberate wrong PIN succeeded', () => {
    const failed = exits.filter((e) => e.code !== 0 && !e.argv.includes('env:WRONG'));
    expect(failed.map((e) => `${e.code} ${e.argv}`)).toEqual([]);
    expect(exits.filter((e) => e.argv.includes('env:WRONG')).every((e) => e.code === 3)).toBe(true);
  });

  it('the test finds a secret where there is one (the needles work)', () => {
    expect(leaks('probe', `x ${toHex(SHARE).toUpperCase()} y`)).not.toEqual([]);
    expect(leaks('probe', `x ${Buffer.from(ascii(PIN)).toString('base64')} y`)).not.toEqual([]);
    expect(leaks('probe', `x ${PASSWORD} y`)).not.toEqual([]);
  });

  it('stdout and stderr of every command, text and --json', () => {
    expect(streams.length).toBeGreaterThan(30);
    expect(streams.flatMap((s) => leaks(s.name, s.text))).toEqual([]);
  });

  it('every trace file and every file written (state file of the card excepted)', () => {
    const files = allFiles(dir).filter(
      (f) => !f.endsWith('card.json') && !f.endsWith('share.pbe') && !f.endsWith('pin.txt'),
    );
    expect(files.filter((f) => f.endsWith('.apdu')).length).toBeGreaterThan(15);
    const found: string[] = [];
    for (const f of files) {
      const bytes = readFileSync(f);
      found.push(...leaks(f, bytes.toString('utf8')), ...leaks(`${f} (as hex)`, bytes.toString('hex')));
    }
    expect(found).toEqual([]);
  });

  it('the traces still show the masked commands (masking, not omission)', () => {
    const traces = allFiles(dir)
      .filter((f) => f.endsWith('.apdu'))
      .map((f) => readFileSync(f, 'utf8'))
      .join('\n');
    expect(traces).toMatch(/0020008106\*\*/i);
    expect(traces).toMatch(/80520000 ?20\*\*/i);
  });
});
