/**
 * Commands that take only some global options (CommandSpec.globals: sim run, sim serve, doctor,
 * demo): their --help lists just those, and any other global option, before or after the command,
 * long or short, is a usage error (exit 2) naming it, before anything starts; it used to be
 * ignored (`sim run --secure`, `--yes`, `--last-try`) or refused only later.
 */
import { describe, expect, it } from 'vitest';
import { GLOBAL_OPTIONS, globalOptionsOf } from '../src/cli/command.js';
import { COMMANDS } from '../src/cli/registry.js';
import { cli } from './cli-helpers.js';

/** An environment in which nothing could start: a refusal here comes from the parse. */
const NOTHING = { env: { PATH: '/nonexistent' } };

/** The global options `--help` lists, in order. */
function helpGlobals(help: string): string[] {
  const part = help.slice(help.indexOf('\nGlobal options:\n'), help.indexOf('\nExit codes:'));
  return [...part.matchAll(/^ {2}(?:-\w, | {4})--([a-z-]+)/gm)].map((m) => m[1]!);
}

const ARGS: Record<string, string[]> = {
  reader: ['--reader', '0'],
  sim: ['--sim', 'x.json'],
  profile: ['--profile', 'nitrokey-hsm2'],
  trace: ['--trace', '-'],
  'session-pin': ['--session-pin', 'env:X'],
};
const given = (o: string) => ARGS[o] ?? [`--${o}`];

/** Each command with its own arguments that would otherwise get past the parse. */
const TAIL: Record<string, string[]> = {
  'sim run': ['--', 'true'],
  'sim serve': ['--state', 'x.json'],
  doctor: [],
  demo: [],
};

describe('a command that takes only some global options', () => {
  it('every command naming its globals names real ones, and refuses at least one', () => {
    for (const c of COMMANDS.filter((x) => x.globals)) {
      expect(
        c.globals!.filter((g) => !(g in GLOBAL_OPTIONS)),
        c.name,
      ).toEqual([]);
      expect(Object.keys(globalOptionsOf(c)).length).toBeLessThan(Object.keys(GLOBAL_OPTIONS).length);
      for (const k of Object.keys(c.globalsInstead ?? {}))
        expect(c.globals, `${c.name}: ${k}`).not.toContain(k);
    }
    expect(Object.keys(TAIL).sort()).toEqual(
      COMMANDS.filter((x) => x.globals)
        .map((x) => x.name)
        .sort(),
    );
  });

  for (const [name, want] of [
    ['sim run', ['profile', 'json', 'progress', 'help']],
    ['sim serve', ['profile', 'json', 'trace', 'trace-overwrite', 'help']],
    ['doctor', ['json', 'help']],
    ['demo', ['json', 'help']],
  ] as const) {
    it(`${name} --help lists only the global options it takes`, async () => {
      const r = await cli([...name.split(' '), '--help']);
      expect(r.code).toBe(0);
      expect(helpGlobals(r.stdout)).toEqual(want);
    });
  }

  it('a command without such a list still lists every global option', async () => {
    const r = await cli(['status', '--help']);
    expect(helpGlobals(r.stdout)).toEqual(Object.keys(GLOBAL_OPTIONS));
  });

  it("--profile's help names sim run", async () => {
    const r = await cli(['sim', 'run', '--help']);
    expect(r.stdout).toMatch(/--profile NAME\|FILE +with --sim, sim serve or sim run:/);
  });

  for (const c of COMMANDS.filter((x) => x.globals)) {
    const refused = Object.keys(GLOBAL_OPTIONS).filter((o) => !(o in globalOptionsOf(c)));
    for (const o of refused) {
      it(`${c.name} --${o}: usage error naming it, exit 2`, async () => {
        const r = await cli([...c.name.split(' '), ...given(o), ...TAIL[c.name]!], NOTHING);
        expect(r.code, r.stderr).toBe(2);
        expect(r.stderr).toContain(`error: ${c.name} takes no --${o}: of the global options it takes only`);
        expect(r.stderr).toContain(`fix: leave --${o} out`);
        expect(r.stdout).toBe('');
      });
    }
  }

  it('before the command, and in the short form, the same', async () => {
    for (const argv of [
      ['--yes', 'sim', 'run', '--', 'true'],
      ['--reader', '0', 'sim', 'run', '--', 'true'],
      ['sim', 'run', '-y', '--', 'true'],
      ['-y', 'demo'],
    ]) {
      const r = await cli(argv, NOTHING);
      expect(r.code, argv.join(' ')).toBe(2);
      expect(r.stderr).toMatch(/takes no --(yes|reader):/);
    }
  });

  it('sim run --sim, --reader, --trace: the fix says what to use instead', async () => {
    const sim = await cli(['sim', 'run', '--sim', 'x.json', '--', 'true'], NOTHING);
    expect(sim.stderr).toContain('fix: leave --sim out; the cards are given with --state FILE');
    const reader = await cli(['sim', 'run', '--reader', '0', '--', 'true'], NOTHING);
    expect(reader.stderr).toContain('SC_HSM_READER_0/1');
    const trace = await cli(['sim', 'run', '--trace', 'x.apdu', '--', 'true'], NOTHING);
    expect(trace.stderr).toContain('fix: leave --trace out; sim serve --trace writes a card-side transcript');
    const serve = await cli(['sim', 'serve', '--sim', 'x.json', '--state', 'y.json'], NOTHING);
    expect(serve.stderr).toContain('fix: leave --sim out; the virtual card is the one of --state FILE');
  });

  it('--json: the error document', async () => {
    const r = await cli(['sim', 'run', '--json', '--secure', '--', 'true'], NOTHING);
    expect(r.code).toBe(2);
    expect(r.json().error).toMatchObject({
      code: 'USAGE_ERROR',
      message: expect.stringContaining('takes no --secure'),
    });
  });

  it("after -- it is COMMAND's option, not sim run's", async () => {
    const r = await cli(['sim', 'run', '--', 'sh', '--yes', '--secure', '--reader', '0'], NOTHING);
    expect(r.stderr).not.toContain('takes no');
  });

  it('--help wins over a refused option (it shows what the command takes)', async () => {
    const r = await cli(['sim', 'run', '--yes', '--help']);
    expect(r.code).toBe(0);
    expect(helpGlobals(r.stdout)).not.toContain('yes');
  });

  it('the global options a command takes still work: doctor --json, sim run --profile checked', async () => {
    const d = await cli(['doctor', '--json'], NOTHING);
    expect(d.stderr).not.toContain('takes no');
    expect(() => d.json()).not.toThrow();
    const p = await cli(['sim', 'run', '--profile', '/nonexistent/p.json', '--', 'true'], NOTHING);
    expect(p.stderr).not.toContain('takes no');
  });
});
