/**
 * Hostile new-user pass g16: `status --json` names the domain of its `dkek` as docs/cli.md says;
 * the top-level --help lists every global option and every secret option (made from the option
 * tables, not written by hand); an empty path option or argument is a usage error naming it.
 */
import { join } from 'node:path';
import { beforeAll, describe, expect, it } from 'vitest';
import { GLOBAL_OPTIONS } from '../src/cli/command.js';
import { cli, dkekState, tempDir } from './cli-helpers.js';

let base: string;

beforeAll(async () => {
  base = await dkekState(await tempDir(), 'Paths');
}, 60_000);

describe('status --json dkek', () => {
  it('carries domain 0 beside total, outstanding and kcv (as dump does)', async () => {
    const s = await cli(['status', '--sim', base, '--json']);
    expect(s.code, s.stderr).toBe(0);
    const d = await cli(['dump', '--sim', base, '--json']);
    expect(d.code, d.stderr).toBe(0);
    expect(s.json().dkek).toEqual({ domain: 0, total: 1, outstanding: 0, kcv: d.json().dkek.kcv });
    expect(Object.keys(s.json().dkek)).toEqual(Object.keys(d.json().dkek));
  });
});

describe('top-level --help', () => {
  it('lists every global option and every secret option', async () => {
    const r = await cli(['--help']);
    expect(r.code).toBe(0);
    const text = r.stdout.replace(/\n/g, ' ');
    const globals = text.slice(text.indexOf('Global options'), text.indexOf('Before the command only'));
    for (const k of Object.keys(GLOBAL_OPTIONS)) expect(globals).toMatch(new RegExp(`--${k}\\b`));
    for (const k of ['--profile NAME|FILE', '--secure', '--session-pin SECRET']) expect(globals).toContain(k);
    const secrets = text.slice(text.indexOf('Secrets ('), text.indexOf('Exit codes'));
    for (const k of [
      '--pin',
      '--so-pin',
      '--new-pin',
      '--new-so-pin',
      '--password',
      '--key-password',
      '--session-pin',
    ])
      expect(secrets).toMatch(new RegExp(`${k}[,)]`));
    const from = r.stdout.indexOf('Global options');
    for (const l of r.stdout.slice(from, r.stdout.indexOf('Exit codes')).split('\n'))
      expect(l.length).toBeLessThanOrEqual(100);
  });
});

describe('an empty path', () => {
  it('--sim= is a usage error naming --sim, not "not a virtual card state file"', async () => {
    for (const argv of [
      ['keys', '--sim='],
      ['keys', '--sim', ''],
    ]) {
      const r = await cli([...argv, '--json']);
      expect(r.code).toBe(2);
      expect(r.json().error.code).toBe('USAGE_ERROR');
      expect(r.json().error.message).toContain('--sim');
    }
  });

  it('--out, --trace and a path argument alike', async () => {
    const w = await cli(['wrap', '--sim', base, '--key-ref', '1', '--out', '', '--json']);
    expect(w.code).toBe(2);
    expect(w.json().error.message).toContain('--out');
    const t = await cli(['keys', '--sim', base, '--trace=', '--json']);
    expect(t.code).toBe(2);
    expect(t.json().error.message).toContain('--trace');
    const b = await cli(['backup', '', '--sim', join(base), '--json']);
    expect(b.code).toBe(2);
    expect(b.json().error.message).toContain('backup');
  });
});
