/**
 * Every `--option` the command suggests exists (issue #10 §9): a fix line that names an option the
 * command does not take sends the operator nowhere.
 *
 * - Every fix text errorInfo can give (each error code, each PIN kind and tries-left case) is
 *   produced for every command of the registry with that command's options, and each option it
 *   names must be one of them (or a global option), unless the text puts it after another
 *   `sc-hsm-ts COMMAND`, which must then take it.
 * - Every error text in the sources (`new …Error(…)`, `usage(…)`, `warn(…)`, `fix: …`, in src/**)
 *   that names an option is checked the same way: after `sc-hsm-ts COMMAND` against that command;
 *   otherwise, in a command's module, against the commands that module implements; in the CLI's
 *   shared modules against all commands; in the library (which has no options) only the global
 *   ones — a library text must name the command.
 * - Every example in the help parses.
 */
import { readdirSync, readFileSync, statSync } from 'node:fs';
import { join } from 'node:path';
import ts from 'typescript';
import { describe, expect, it } from 'vitest';
import { type CommandSpec, fixContext, GLOBAL_OPTIONS, parseCommandArgs } from '../src/cli/command.js';
import * as meta from '../src/cli/commands/meta.js';
import { CliError, type CliErrorCode, errorInfo, FIX, FIX_FOR } from '../src/cli/exit-codes.js';
import { COMMANDS } from '../src/cli/registry.js';
import { ERROR_CODES, ScHsmError, type ScHsmErrorCode } from '../src/errors.js';

/** Other programs whose options a text may name. */
const FOREIGN = [
  'sc-hsm-tool',
  'pkcs11-tool',
  'pkcs15-tool',
  'pkcs15-init',
  'opensc-tool',
  'openssl',
  'systemctl',
  'udevadm',
  'pcscd',
  'gpgconf',
  'npm',
  'node',
  'tsx',
];

const commandNames = COMMANDS.map((c) => c.name).sort((a, b) => b.length - a.length);

function takes(cmd: CommandSpec | undefined, option: string): boolean {
  return option in GLOBAL_OPTIONS || (cmd?.options !== undefined && option in cmd.options);
}

/**
 * The options a text names, each with the command it is written after (`sc-hsm-ts pin unblock
 * --so-pin …`), `foreign` after another program, or nothing. A context lasts until `;`, `)` or
 * closing backquote or the next program name.
 */
function optionsIn(text: string): { option: string; after?: CommandSpec | 'foreign' }[] {
  const out: { option: string; after?: CommandSpec | 'foreign' }[] = [];
  const re = /[(`'"]*(sc-hsm-ts)((?: [a-z][a-z-]*){1,2})|(\S+)|([;)])/g;
  let after: CommandSpec | 'foreign' | undefined;
  for (const m of text.matchAll(re)) {
    if (m[1]) {
      const words = m[2]!.trim();
      const name = commandNames.find((n) => words === n || words.startsWith(`${n} `));
      after = name ? COMMANDS.find((c) => c.name === name) : undefined;
      continue;
    }
    if (m[4]) {
      after = undefined;
      continue;
    }
    const word = m[3]!;
    const bare = word.replace(/^[`'"(]+/, '');
    if (word.startsWith('`')) {
      // `dkek import --shares`: a command named at the start of a quoted command line
      const rest = text.slice(m.index! + 1);
      const name = commandNames.find(
        (n) => rest === n || rest.startsWith(`${n} `) || rest.startsWith(`${n}\``),
      );
      if (name) after = COMMANDS.find((c) => c.name === name);
    }
    if (FOREIGN.some((f) => bare === f || bare.startsWith(`${f}/`))) {
      after = 'foreign';
      continue;
    }
    for (const o of word.matchAll(/(?:^|[^\w-])--([a-z][a-z0-9-]*)/g)) {
      const option = o[1]!;
      if (option === 'option') continue; // the placeholder of "written --option VALUE"
      out.push(after === undefined ? { option } : { option, after });
    }
    if (/[;)`]$/.test(word)) after = undefined;
  }
  return out;
}

/** What is wrong with the options a text names, if `own` are the commands it is about. */
function problems(text: string, own: CommandSpec[] | 'any' | 'none', where: string): string[] {
  const out: string[] = [];
  for (const { option, after } of optionsIn(text)) {
    if (after === 'foreign') continue;
    if (after) {
      if (!takes(after, option)) out.push(`${where}: sc-hsm-ts ${after.name} has no --${option}: "${text}"`);
    } else if (own === 'none') {
      if (!(option in GLOBAL_OPTIONS)) out.push(`${where}: --${option} without a command: "${text}"`);
    } else if (own === 'any') {
      if (!COMMANDS.some((c) => takes(c, option)))
        out.push(`${where}: no command has --${option}: "${text}"`);
    } else if (!own.some((c) => takes(c, option))) {
      out.push(`${where}: ${own.map((c) => c.name).join('/')} has no --${option}: "${text}"`);
    }
  }
  return out;
}

describe('the checker itself', () => {
  it('finds a wrong option and accepts a right one', () => {
    const keygen = COMMANDS.find((c) => c.name === 'keygen')!;
    expect(problems('choose a free --key-ref or replace the key with --force', [keygen], 't')).toHaveLength(
      1,
    );
    expect(problems('choose a free --key-ref, or run again with --last-try', [keygen], 't')).toEqual([]);
    expect(problems('sc-hsm-ts pin unblock --so-pin env:X; then --pin', [keygen], 't')).toEqual([]);
    expect(problems('sc-hsm-ts restore DIR --key-ref 3', 'any', 't')).toHaveLength(1);
    expect(problems('sc-hsm-tool --wrap-key', [keygen], 't')).toEqual([]);
  });
});

describe('fix lines name only options the command takes', () => {
  const codes = [
    ...new Set<CliErrorCode>([
      ...ERROR_CODES,
      ...(Object.keys(FIX) as CliErrorCode[]),
      ...(Object.keys(FIX_FOR) as CliErrorCode[]),
    ]),
  ];

  it('every code, PIN kind and tries-left case, for every command', () => {
    const found: string[] = [];
    let texts = 0;
    for (const cmd of COMMANDS) {
      for (const code of codes) {
        const errors: unknown[] = [new CliError(code, 'x')];
        if ((ERROR_CODES as readonly string[]).includes(code)) {
          for (const pin of [undefined, 'user-pin', 'so-pin'] as const) {
            for (const triesLeft of [undefined, 0, 1, 2, 14]) {
              const o: ConstructorParameters<typeof ScHsmError>[2] = {};
              if (pin) o.pin = pin;
              if (triesLeft !== undefined) o.triesLeft = triesLeft;
              errors.push(new ScHsmError(code as ScHsmErrorCode, 'x', o));
            }
          }
        }
        for (const e of errors) {
          const fix = errorInfo(e, fixContext(cmd)).fix;
          if (fix === undefined) continue;
          texts++;
          found.push(...problems(fix, [cmd], `${cmd.name} ${code}`));
        }
      }
    }
    expect(texts).toBeGreaterThan(500);
    expect([...new Set(found)]).toEqual([]);
  });
});

/** Every .ts file under `dir`. */
function sources(dir: string): string[] {
  return readdirSync(dir).flatMap((f) => {
    const p = join(dir, f);
    return statSync(p).isDirectory() ? sources(p) : p.endsWith('.ts') ? [p] : [];
  });
}

/**
 * The texts an operator sees when something fails: string and template literals (placeholders as
 * `\u0000`) inside `new …Error(…)`, `usage(…)`, `….warn(…)` and `fix: …` properties.
 */
function errorTexts(file: string): string[] {
  const sf = ts.createSourceFile(file, readFileSync(file, 'utf8'), ts.ScriptTarget.ES2022, true);
  const out: string[] = [];
  const isErrorText = (n: ts.Node): boolean =>
    (ts.isNewExpression(n) && /Error$/.test(n.expression.getText(sf))) ||
    (ts.isCallExpression(n) && /^(usage|.*\.warn)$/.test(n.expression.getText(sf))) ||
    (ts.isPropertyAssignment(n) && n.name.getText(sf) === 'fix');
  const find = (n: ts.Node): void => {
    if (isErrorText(n)) ts.forEachChild(n, visit);
    else ts.forEachChild(n, find);
  };
  const visit = (n: ts.Node): void => {
    if (ts.isStringLiteral(n) || ts.isNoSubstitutionTemplateLiteral(n)) out.push(n.text);
    else if (ts.isTemplateExpression(n)) {
      out.push([n.head.text, ...n.templateSpans.map((s) => s.literal.text)].join('\u0000'));
      for (const s of n.templateSpans) visit(s.expression);
      return;
    } else if (ts.isBinaryExpression(n) && n.operatorToken.kind === ts.SyntaxKind.PlusToken) {
      // 'a ' + 'b' across lines: one text
      const parts: string[] = [];
      const flat = (x: ts.Expression): boolean => {
        if (ts.isBinaryExpression(x) && x.operatorToken.kind === ts.SyntaxKind.PlusToken)
          return flat(x.left) && flat(x.right);
        if (ts.isStringLiteral(x) || ts.isNoSubstitutionTemplateLiteral(x)) {
          parts.push(x.text);
          return true;
        }
        return false;
      };
      if (flat(n)) {
        out.push(parts.join(''));
        return;
      }
    }
    ts.forEachChild(n, visit);
  };
  find(sf);
  return out;
}

/** The commands a module under src/cli/commands implements: the specs it imports from meta.ts. */
function commandsOf(file: string): CommandSpec[] {
  const text = readFileSync(file, 'utf8');
  const specs = meta as unknown as Record<string, CommandSpec>;
  return [...text.matchAll(/\b(\w+Spec)\b/g)].map((m) => specs[m[1]!]).filter((s): s is CommandSpec => !!s);
}

describe('error texts in the sources', () => {
  it('name options of the command they are written for', () => {
    const found: string[] = [];
    for (const file of sources('src')) {
      if (file.endsWith(join('commands', 'meta.ts'))) continue; // help texts: examples below
      const inCli = file.startsWith(join('src', 'cli'));
      const own: CommandSpec[] | 'any' | 'none' = !inCli
        ? 'none'
        : file.startsWith(join('src', 'cli', 'commands'))
          ? commandsOf(file)
          : 'any';
      for (const text of errorTexts(file)) {
        if (!text.includes('--')) continue;
        found.push(...problems(text, Array.isArray(own) && own.length === 0 ? 'any' : own, file));
      }
    }
    expect(found).toEqual([]);
  });

  it('the help examples parse', () => {
    const bad: string[] = [];
    for (const cmd of COMMANDS) {
      for (const ex of cmd.examples ?? []) {
        const line = ex.replace(/\s+(#|>).*$/, '');
        const words = [...line.matchAll(/"([^"]*)"|(\S+)/g)].map((m) => m[1] ?? m[2]!);
        expect(words.slice(0, 1 + cmd.name.split(' ').length).join(' ')).toBe(`sc-hsm-ts ${cmd.name}`);
        try {
          parseCommandArgs(cmd, words.slice(1 + cmd.name.split(' ').length));
        } catch (e) {
          bad.push(`${ex}: ${(e as Error).message}`);
        }
      }
    }
    expect(bad).toEqual([]);
  });
});
