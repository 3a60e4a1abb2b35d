/**
 * docs/cli.md against the command's own help: every command of the registry has a section
 * (`### \`NAME …\``) in the command reference, every option of a command is named in its
 * section, every global option (and --version) is named, every `--option` the document names
 * exists, and the version the CLI prints is package.json's. Also the top level of the command
 * line: --version/-V, no command, a mistyped command, `keys --pin`.
 */
import { readFileSync } from 'node:fs';
import { join } from 'node:path';
import { describe, expect, it } from 'vitest';
import { GLOBAL_OPTIONS } from '../src/cli/command.js';
import { editDistance, VERSION } from '../src/cli/main.js';
import { COMMANDS } from '../src/cli/registry.js';
import { cli, tempDir } from './cli-helpers.js';

const DOC = readFileSync(join(__dirname, '..', 'docs', 'cli.md'), 'utf8');

/** Options of other tools the document names beside ours (OpenSC's, for the equivalents). */
const FOREIGN = new Set([
  'list-slots',
  'initialize',
  'create-dkek-share',
  'import-dkek-share',
  'dump',
  'keypairgen',
  'delete-objects',
  'wrap-key',
  'unwrap-key',
  'login-type',
  'init-pin',
  'change-pin',
  'export-for-pub-key-auth',
  'public-key-auth',
  'required-pub-keys',
  'register-public-key',
  'public-key-auth-status',
  'write-object',
  'engine',
]);

/** The long options named in a text (`--key-ref`, not the `--` of a dash or an em dash). */
function optionsNamed(text: string): Set<string> {
  return new Set(
    [...text.matchAll(/(?<![\w-])--([a-z][a-z0-9]*(?:-[a-z0-9]+)*)(?![\w-])/g)].map((m) => m[1]!),
  );
}

/** The command reference's sections: command name → its text (up to the next heading). */
function sections(): Map<string, string> {
  const ref = DOC.slice(DOC.indexOf('\n## Command reference'));
  const out = new Map<string, string>();
  for (const part of ref.split(/\n(?=##+ )/)) {
    const m = /^### `([a-z-]+(?: [a-z-]+)?)[ `]/.exec(part);
    if (m) out.set(m[1]!, part);
  }
  return out;
}

describe('docs/cli.md and the help', () => {
  it('has a section for every command of the registry, and none for a command that does not exist', () => {
    const s = sections();
    expect(s.size).toBeGreaterThan(0);
    const names = COMMANDS.map((c) => c.name);
    expect(names.filter((n) => !s.has(n))).toEqual([]);
    expect([...s.keys()].filter((n) => !names.includes(n))).toEqual([]);
  });

  it("names every option of a command in that command's section, with its JSON document", () => {
    const s = sections();
    const missing: string[] = [];
    for (const c of COMMANDS) {
      const text = s.get(c.name) ?? '';
      const named = optionsNamed(text);
      for (const o of Object.keys(c.options ?? {})) if (!named.has(o)) missing.push(`${c.name}: --${o}`);
      if (!/^JSON[^:]*: `\{/m.test(text)) missing.push(`${c.name}: its JSON document`);
    }
    expect(missing).toEqual([]);
  });

  it('names every global option, and --version', () => {
    const named = optionsNamed(DOC);
    expect([...Object.keys(GLOBAL_OPTIONS), 'version'].filter((o) => !named.has(o))).toEqual([]);
  });

  it('names, in the section of a command that takes only some global options, exactly those', () => {
    const s = sections();
    const wrong: string[] = [];
    for (const c of COMMANDS) {
      const line = /Global options: only ([^(\n]*)/.exec(s.get(c.name) ?? '')?.[1];
      const documented = line === undefined ? undefined : [...optionsNamed(line)];
      const takes = c.globals === undefined ? undefined : [...c.globals];
      if (JSON.stringify(documented) !== JSON.stringify(takes))
        wrong.push(
          `${c.name}: docs ${documented?.join(' ') ?? 'all'}, metadata ${takes?.join(' ') ?? 'all'}`,
        );
    }
    expect(wrong).toEqual([]);
    expect(COMMANDS.filter((c) => c.globals).map((c) => c.name)).toEqual(
      expect.arrayContaining(['sim run', 'sim serve', 'doctor', 'demo']),
    );
  });

  it('names no option that does not exist', () => {
    const ours = new Set<string>([...Object.keys(GLOBAL_OPTIONS), 'version']);
    for (const c of COMMANDS) for (const o of Object.keys(c.options ?? {})) ours.add(o);
    const unknown = [...optionsNamed(DOC)].filter((o) => !ours.has(o) && !FOREIGN.has(o));
    expect(unknown).toEqual([]);
  });

  it("prints package.json's version (the two are kept equal here)", async () => {
    const pkg = JSON.parse(readFileSync(join(__dirname, '..', 'package.json'), 'utf8')) as {
      version: string;
    };
    expect(VERSION).toBe(pkg.version);
    for (const argv of [['--version'], ['-V'], ['--sim', 'x.json', '--version']]) {
      const r = await cli(argv);
      expect(r.code).toBe(0);
      expect(r.stdout).toBe(`sc-hsm-ts ${pkg.version}\n`);
    }
    for (const argv of [
      ['--version', '--json'],
      ['--json', '-V'],
    ]) {
      const r = await cli(argv);
      expect(r.code).toBe(0);
      expect(r.json()).toEqual({ name: 'sc-hsm-ts', version: pkg.version });
    }
  });
});

describe('the command line without a command, or with a mistyped one', () => {
  it('prints the usage on stderr and exits 2 without a command (the demo is `demo`)', async () => {
    for (const argv of [[], ['--yes']]) {
      const r = await cli(argv);
      expect(r.code).toBe(2);
      expect(r.stdout).toBe('');
      expect(r.stderr).toContain('Usage: sc-hsm-ts COMMAND');
      expect(r.stderr).toContain('sc-hsm-ts demo');
    }
    const j = await cli(['--json']);
    expect(j.code).toBe(2);
    expect(j.json().error).toMatchObject({ code: 'USAGE_ERROR', message: 'no command given' });
  });

  it('names the nearest command, also for two-word commands', async () => {
    const cases: [string[], string][] = [
      [['staus'], "unknown command 'staus'; did you mean 'status'?"],
      [['dumb'], "unknown command 'dumb'; did you mean 'dump'?"],
      [['kesy'], "unknown command 'kesy'; did you mean 'keys'?"],
      [['pin', 'verfy'], "unknown command 'pin verfy'; did you mean 'pin verify'?"],
      [['pn', 'verify'], "unknown command 'pn'; did you mean 'pin verify'?"],
      [['wraped', 'inspect'], "unknown command 'wraped'; did you mean 'wrapped inspect'?"],
      [['cert', 'selfsign'], "unknown command 'cert selfsign'; did you mean 'cert self-sign'?"],
      [['verify-devise'], "unknown command 'verify-devise'; did you mean 'verify-device'?"],
      [['frobnicate'], "unknown command 'frobnicate'"],
    ];
    for (const [argv, message] of cases) {
      const r = await cli([...argv, '--json']);
      expect(r.code, argv.join(' ')).toBe(2);
      expect(r.json().error.message, argv.join(' ')).toBe(message);
    }
    const group = await cli(['pin', '--json']);
    expect(group.json().error.message).toBe(
      "'pin' needs a subcommand: pin verify, pin change, pin unblock, pin status, pin session",
    );
    // what does not look like a command word is not repeated (it could be a secret)
    const odd = await cli(['s3cr3t!pin', '--json']);
    expect(odd.json().error.message).toBe("unknown command '…'");
  });

  it('measures edit distance with a swap of neighbours as one edit', () => {
    expect(editDistance('status', 'status')).toBe(0);
    expect(editDistance('staus', 'status')).toBe(1);
    expect(editDistance('kesy', 'keys')).toBe(1);
    expect(editDistance('', 'abc')).toBe(3);
    expect(editDistance('dkek', 'demo')).toBe(3);
  });
});

describe('keys --pin', () => {
  it('verifies the PIN before listing (the list is the same); a wrong PIN fails and costs a try', async () => {
    const dir = await tempDir();
    const f = join(dir, 'keys-pin.json');
    const init = await cli(
      ['init', '--sim', f, '--so-pin', 'env:SO', '--pin', 'env:PIN', '--label', 'T', '--yes'],
      { env: { SO: '3537363231383830', PIN: '648219' } },
    );
    expect(init.code, init.stderr).toBe(0);
    const gen = await cli(
      ['keygen', '--sim', f, '--type', 'ec:prime256v1', '--label', 'k', '--pin', 'env:PIN'],
      {
        env: { PIN: '648219' },
      },
    );
    expect(gen.code, gen.stderr).toBe(0);
    const plain = await cli(['keys', '--sim', f, '--json']);
    expect(plain.code, plain.stderr).toBe(0);
    const withPin = await cli(['keys', '--sim', f, '--json', '--pin', 'env:PIN'], { env: { PIN: '648219' } });
    expect(withPin.code, withPin.stderr).toBe(0);
    expect(withPin.json()).toEqual(plain.json());
    const wrong = await cli(['keys', '--sim', f, '--json', '--pin', 'env:PIN'], { env: { PIN: '111111' } });
    expect(wrong.code).toBe(3);
    expect(wrong.json().error).toMatchObject({ code: 'WRONG_PIN', triesLeft: 2 });
  });
});
