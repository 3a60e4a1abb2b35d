/**
 * The floors of src/ (README, Design), enforced: every import of every file under src/ (static,
 * type-only, `export … from` and dynamic `import('…')`) points to a lower floor, or stays in its
 * own folder, or goes sideways only where SIDEWAYS below says why. A failure names the file, the
 * line and the import.
 *
 *   floor 0  errors.ts, util/, protocol/   the error type, byte and TLV helpers, the card's facts
 *   floor 1  apdu/, pkcs15/, dkek/         ISO 7816 and PC/SC; the pure codecs
 *   floor 2  sc-hsm/, sim/                 the session (and the reader choice); the virtual card
 *   floor 3  webcrypto/, x509/             host-side work over a session
 *   floor 4  cli/                          the sc-hsm-ts command
 *   floor 5  index.ts, testing.ts          the package's entries (tsup.config.ts; sim/, webcrypto/ and
 *                                          x509/ are entries too, through their index.ts): may import
 *                                          anything, imported by nothing
 *
 * So nothing under apdu/, dkek/, pkcs15/ or sim/ imports from sc-hsm/, and the virtual card never
 * imports the session. A new folder or top-level file under src/ must be given a floor here.
 *
 * Outside src/: harness/ is what test/ and bench/ share; bench/ and harness/ import nothing from
 * test/ (whose helpers may load vitest), and harness/ nothing from bench/.
 */
import { readdirSync, readFileSync } from 'node:fs';
import { dirname, join, relative, resolve } from 'node:path';
import { fileURLToPath } from 'node:url';
import ts from 'typescript';
import { describe, expect, it } from 'vitest';

const ROOT = join(dirname(fileURLToPath(import.meta.url)), '..');
const SRC = join(ROOT, 'src');

/** The floor of each folder (and each top-level file) of src/. */
const FLOORS: Record<string, number> = {
  'errors.ts': 0,
  util: 0,
  protocol: 0,
  apdu: 1,
  pkcs15: 1,
  dkek: 1,
  'sc-hsm': 2,
  sim: 2,
  webcrypto: 3,
  x509: 3,
  cli: 4,
  'index.ts': 5,
  'testing.ts': 5,
};

/** The only imports allowed between two places on the same floor, each with its reason. */
const SIDEWAYS: Record<string, string> = {
  'util → errors.ts': 'a malformed TLV or an unknown curve is an ScHsmError like any other',
  'protocol → util': 'the facts are written with fromHex',
  'dkek → pkcs15': 'a wrap file (.bin) carries a PKCS#15 key description',
  'x509 → webcrypto': 'a certificate or CSR is signed with the HSM key through its WebCrypto face',
};

/** Imports the floors would allow but the design does not, each with its reason. */
const FORBIDDEN: Record<string, string> = {
  'apdu → protocol':
    'src/apdu/ is ISO 7816 and PC/SC only; what makes a card a SmartCard-HSM (AID, ATRs) is decided in src/sc-hsm/',
};

/** The folder of a path under src/, or the file itself for a top-level file. */
function placeOf(srcRelative: string): string {
  return srcRelative.split(/[\\/]/)[0]!;
}

/** Why an import from place `from` to place `to` is not allowed, or undefined when it is. */
function verdict(from: string, to: string): string | undefined {
  if (from === to) return undefined;
  const a = FLOORS[from];
  const b = FLOORS[to];
  if (a === undefined) return `src/${from} has no floor: give it one in test/layers.test.ts`;
  if (b === undefined) return `src/${to} has no floor: give it one in test/layers.test.ts`;
  const arrow = `${from} → ${to}`;
  if (FORBIDDEN[arrow]) return `${arrow} is forbidden: ${FORBIDDEN[arrow]}`;
  if (b > a) return `${arrow} points up (floor ${a} → floor ${b})`;
  if (b === a && !SIDEWAYS[arrow]) return `${arrow} points sideways on floor ${a}, which is not allowed`;
  return undefined;
}

function tsFiles(dir: string): string[] {
  return (readdirSync(dir, { recursive: true }) as string[])
    .filter((f) => f.endsWith('.ts'))
    .map((f) => join(dir, f))
    .sort();
}

interface Import {
  /** The importing file, relative to the repository. */
  file: string;
  line: number;
  specifier: string;
  /** The imported file, relative to the repository (relative specifiers only). */
  target: string;
}

/** Every relative import of `file`: static, type-only, `export … from`, `import('…')`. */
function importsOf(file: string): Import[] {
  const text = readFileSync(file, 'utf8');
  const { importedFiles } = ts.preProcessFile(text, true, true);
  return importedFiles
    .filter((f) => f.fileName.startsWith('.'))
    .map((f) => ({
      file: relative(ROOT, file),
      line: text.slice(0, f.pos).split('\n').length,
      specifier: f.fileName,
      target: relative(ROOT, resolve(dirname(file), f.fileName.replace(/\.js$/, '.ts'))),
    }));
}

/** The violations in `files`, one line each: file:line, the import, and why. */
function srcViolations(files: string[]): string[] {
  const out: string[] = [];
  for (const file of files) {
    for (const imp of importsOf(file)) {
      const from = placeOf(relative(SRC, file));
      const inSrc = !relative(SRC, join(ROOT, imp.target)).startsWith('..');
      const why = inSrc
        ? verdict(from, placeOf(relative(SRC, join(ROOT, imp.target))))
        : `it leaves src/ (${imp.target})`;
      if (why) out.push(`${imp.file}:${imp.line} imports '${imp.specifier}': ${why}`);
    }
  }
  return out;
}

describe('the floors of src/', () => {
  it('the rule itself: down is allowed, up and unlisted sideways are not', () => {
    expect(verdict('sc-hsm', 'apdu')).toBeUndefined();
    expect(verdict('cli', 'util')).toBeUndefined();
    expect(verdict('index.ts', 'cli')).toBeUndefined();
    expect(verdict('x509', 'webcrypto')).toBeUndefined();
    expect(verdict('util', 'sc-hsm')).toMatch(/util → sc-hsm points up/);
    expect(verdict('sim', 'sc-hsm')).toMatch(/sideways/);
    expect(verdict('sc-hsm', 'sim')).toMatch(/sideways/);
    expect(verdict('pkcs15', 'dkek')).toMatch(/sideways/);
    expect(verdict('webcrypto', 'x509')).toMatch(/sideways/);
    expect(verdict('cli', 'index.ts')).toMatch(/points up/);
    expect(verdict('errors.ts', 'util')).toMatch(/sideways/);
    expect(verdict('apdu', 'protocol')).toMatch(/forbidden/);
    expect(verdict('newfolder', 'util')).toMatch(/has no floor/);
  });

  it('every folder and top-level file of src/ has a floor', () => {
    const places = [...new Set(tsFiles(SRC).map((f) => placeOf(relative(SRC, f))))].sort();
    expect(places.filter((p) => FLOORS[p] === undefined)).toEqual([]);
  });

  it('no import in src/ points up, or sideways where not allowed', () => {
    const files = tsFiles(SRC);
    const all = files.flatMap(importsOf);
    // the scanner sees every kind of import (else an empty list of violations would prove nothing)
    expect(all.length).toBeGreaterThan(300);
    expect(
      all.some((i) => i.file === join('src', 'cli', 'registry.ts') && i.specifier.includes('commands/')),
    ).toBe(true);
    expect(all.some((i) => i.file === join('src', 'index.ts') && i.specifier.startsWith('./sc-hsm/'))).toBe(
      true,
    );
    expect(srcViolations(files)).toEqual([]);
  });
});

describe('test/, bench/ and harness/', () => {
  it('bench/ and harness/ import nothing from test/, harness/ nothing from bench/', () => {
    const out: string[] = [];
    for (const [dir, banned] of [
      ['bench', ['test']],
      ['harness', ['test', 'bench']],
    ] as const) {
      for (const imp of tsFiles(join(ROOT, dir)).flatMap(importsOf)) {
        const top = imp.target.split(/[\\/]/)[0]!;
        if ((banned as readonly string[]).includes(top)) {
          out.push(`${imp.file}:${imp.line} imports '${imp.specifier}': ${dir}/ may not import from ${top}/`);
        }
      }
    }
    expect(out).toEqual([]);
  });

  it('harness/ loads no test runner', () => {
    const out = tsFiles(join(ROOT, 'harness')).filter((f) =>
      /from ['"]vitest['"]/.test(readFileSync(f, 'utf8')),
    );
    expect(out.map((f) => relative(ROOT, f))).toEqual([]);
  });
});
