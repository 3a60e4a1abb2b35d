/**
 * Host files are read with a bound (src/util/host-files.ts HOST_FILE_MAX_BYTES): a device such as
 * /dev/zero, or a file larger than any share, wrap file, PEM or secret, is refused after reading
 * one byte more than the bound, with a USAGE error naming the file and the bound (before: read
 * whole, 0.6–1.25 GB of memory in seconds). A FIFO is read the same bounded way, not refused.
 */
import { execFileSync } from 'node:child_process';
import { writeFile } from 'node:fs/promises';
import { join } from 'node:path';
import { beforeAll, describe, expect, it } from 'vitest';
import { EXIT } from '../src/cli/exit-codes.js';
import { readHostFile as cliReadHostFile } from '../src/cli/files.js';
import { isScHsmError } from '../src/errors.js';
import { HOST_FILE_MAX_BYTES, readHostFile } from '../src/util/host-files.js';
import { cli, ENV, initializedState, tempDir } from './cli-helpers.js';

const FILE_MAX = HOST_FILE_MAX_BYTES.file;
const SECRET_MAX = HOST_FILE_MAX_BYTES.secret;

let dir: string;
let sim: string;
beforeAll(async () => {
  dir = await tempDir();
  sim = await initializedState(dir, 'bound');
});

describe('host files are read with a bound', () => {
  it('wrapped inspect /dev/zero: refused, naming the file and the bound', async () => {
    const r = await cli(['wrapped', 'inspect', '/dev/zero']);
    expect(r.code).toBe(EXIT.USAGE);
    expect(r.stderr).toContain('/dev/zero');
    expect(r.stderr).toContain(`more than ${FILE_MAX} bytes`);
  });

  it('dkek inspect /dev/zero: refused before any password is asked', async () => {
    const r = await cli(['dkek', 'inspect', '/dev/zero', '--password', 'env:PW'], { env: ENV });
    expect(r.code).toBe(EXIT.USAGE);
    expect(r.stderr).toContain(`DKEK share file /dev/zero holds more than ${FILE_MAX} bytes`);
  });

  it('import-key /dev/zero: refused, the device untouched', async () => {
    const share = join(dir, 's.pbe');
    expect((await cli(['dkek', 'create', share, '--password', 'env:PW'], { env: ENV })).code).toBe(0);
    const r = await cli(
      [
        'import-key',
        '/dev/zero',
        '--sim',
        sim,
        '--key-ref',
        '3',
        '--label',
        'k',
        '--dkek',
        share,
        '--pin',
        'env:PIN',
      ],
      { env: { ...ENV } },
    );
    expect(r.code).toBe(EXIT.USAGE);
    expect(r.stderr).toContain(`key file /dev/zero holds more than ${FILE_MAX} bytes`);
  });

  it('--pin file:/dev/zero: refused with the secret bound, no PIN try used', async () => {
    const before = await cli(['pin', 'status', '--sim', sim, '--json']);
    expect(before.code, before.stderr).toBe(0);
    const r = await cli(['pin', 'verify', '--sim', sim, '--pin', 'file:/dev/zero']);
    expect(r.code).toBe(EXIT.USAGE);
    expect(r.stderr).toContain(`--pin file:/dev/zero: the file holds more than ${SECRET_MAX} bytes`);
    const after = await cli(['pin', 'status', '--sim', sim, '--json']);
    expect(before.json().userPin.triesLeft).toBeGreaterThan(0);
    expect(after.json().userPin.triesLeft).toBe(before.json().userPin.triesLeft);
    // the state file's lock was given back: the next command runs
    expect((await cli(['pin', 'verify', '--sim', sim, '--pin', 'env:PIN'], { env: ENV })).code).toBe(0);
  });

  it('a regular file one byte over the bound is refused; one at the bound is read', async () => {
    const big = join(dir, 'big.bin');
    await writeFile(big, new Uint8Array(FILE_MAX + 1));
    await expect(cliReadHostFile(big, 'wrap file')).rejects.toMatchObject({ code: 'USAGE_ERROR' });
    await writeFile(big, new Uint8Array(FILE_MAX));
    expect((await cliReadHostFile(big, 'wrap file')).length).toBe(FILE_MAX);
    const e = await readHostFile('/dev/zero', 'backup file').catch((x: unknown) => x);
    expect(isScHsmError(e, 'INVALID_ARGUMENT')).toBe(true);
    expect(String((e as Error).message)).toContain(`more than ${FILE_MAX} bytes`);
  });

  it('a PIN from a FIFO is read (bounded, not refused)', async () => {
    const fifo = join(dir, 'pin.fifo');
    execFileSync('mkfifo', [fifo]);
    const writer = writeFile(fifo, `${ENV.PIN}\n`);
    const r = await cli(['pin', 'verify', '--sim', sim, '--pin', `file:${fifo}`]);
    await writer;
    expect(r.code, r.stderr).toBe(0);
  });
});
