/**
 * `startPcscCard` refuses at once what it can tell without pcscd: no pcscd socket (also when a
 * `host` is given) and a `host` that does not resolve (vpcd would be retried for 30 s).
 */
import { createServer, type Server } from 'node:net';
import { join } from 'node:path';
import { afterAll, describe, expect, it } from 'vitest';
import { startPcscCard } from '../src/testing.js';
import { tempDir } from './cli-helpers.js';
import { rejection as refused } from './helpers/fixtures.js';

describe('startPcscCard: refused at once', () => {
  let server: Server | undefined;
  afterAll(() => new Promise<void>((r) => (server ? server.close(() => r()) : r())));

  it('no pcscd here, also with host given', async () => {
    const env = { PCSCLITE_CSOCK_NAME: '/nonexistent/pcscd.comm' };
    const e = await refused(startPcscCard({ initialized: false, host: '127.0.0.1', env }));
    expect(e.code).toBe('PCSC_UNAVAILABLE');
    expect(e.message).toContain('no pcscd here');
  });

  it('a host that does not resolve: INVALID_ARGUMENT naming it, no 30 s wait', async () => {
    // a socket where pcscd's would be: the pcscd check passes, the host is what is wrong
    const sock = join(await tempDir(), 'pcscd.comm');
    server = createServer();
    await new Promise<void>((r) => server!.listen(sock, r));
    const env = { PCSCLITE_CSOCK_NAME: sock };
    const e = await refused(startPcscCard({ initialized: false, host: 'nonexistent.invalid', env }));
    expect(e.code).toBe('INVALID_ARGUMENT');
    expect(e.message).toContain('host "nonexistent.invalid" does not resolve');
    expect(e.fix).toContain('VPCD_HOST');
  }, 10_000);
});
