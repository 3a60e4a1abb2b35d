/**
 * The vpcd bridge against a scripted vpcd (no pcscd needed, so this always runs): stream framing,
 * control bytes, no empty frame, reconnection (spec/pcsc-stack.md §2).
 */
import net from 'node:net';
import { afterEach, describe, expect, it } from 'vitest';
import { connectToVpcd, type VpcdCard, type VpcdConnection } from '../src/sim/vpcd.js';

const ATR = Uint8Array.of(0x3b, 0x80, 0x80, 0x01, 0x01);

function stub(answer: (apdu: Uint8Array) => Uint8Array = () => Uint8Array.of(0x90, 0x00)) {
  const calls: string[] = [];
  const card: VpcdCard = {
    atr: ATR,
    process: (a) => {
      calls.push(`apdu ${Buffer.from(a).toString('hex')}`);
      return answer(a);
    },
    powerOn: () => calls.push('on'),
    powerOff: () => calls.push('off'),
    reset: () => calls.push('reset'),
  };
  return { card, calls };
}

/** A fake vpcd: accepts one card at a time and collects the frames it sends back. */
async function fakeVpcd(port = 0) {
  const server = net.createServer();
  const sockets: net.Socket[] = [];
  let received = Buffer.alloc(0);
  let onData: () => void = () => undefined;
  server.on('connection', (s) => {
    sockets.push(s);
    s.on('data', (d) => {
      received = Buffer.concat([received, d]);
      onData();
    });
    s.on('error', () => undefined);
  });
  await new Promise<void>((r) => server.listen(port, '127.0.0.1', r));
  const addr = server.address() as net.AddressInfo;
  return {
    port: addr.port,
    sockets,
    /** Waits (bounded) until `n` answer frames arrived; returns their payloads as hex. */
    async frames(n: number): Promise<string[]> {
      const end = Date.now() + 2000;
      for (;;) {
        const out: string[] = [];
        let p = 0;
        while (received.length - p >= 2) {
          const len = received.readUInt16BE(p);
          if (received.length - p - 2 < len) break;
          out.push(received.subarray(p + 2, p + 2 + len).toString('hex'));
          p += 2 + len;
        }
        if (out.length >= n) return out;
        if (Date.now() > end) throw new Error(`only ${out.length} of ${n} frames arrived`);
        await new Promise<void>((r) => {
          onData = r;
          setTimeout(r, 50);
        });
      }
    },
    async close() {
      for (const s of sockets) s.destroy();
      await new Promise<void>((r) => server.close(() => r()));
    },
  };
}

const frame = (hex: string) => {
  const p = Buffer.from(hex, 'hex');
  const h = Buffer.alloc(2);
  h.writeUInt16BE(p.length);
  return Buffer.concat([h, p]);
};

describe('vpcd bridge (scripted vpcd)', () => {
  let conn: VpcdConnection | undefined;
  let server: Awaited<ReturnType<typeof fakeVpcd>> | undefined;
  afterEach(async () => {
    await conn?.close();
    await server?.close();
    conn = undefined;
    server = undefined;
  });

  it('parses a byte stream: split headers, several frames per chunk; control bytes get no answer', async () => {
    server = await fakeVpcd();
    const { card, calls } = stub((a) => Uint8Array.of(a[1]!, 0x90, 0x00));
    conn = connectToVpcd(card, { port: server.port });
    await conn.connected;
    await new Promise((r) => setTimeout(r, 50));
    const s = server.sockets[0]!;
    // header and payload apart (vpcd 0.8's two send() calls), then 4 frames in one write
    const atrReq = frame('04');
    s.write(atrReq.subarray(0, 2));
    await new Promise((r) => setTimeout(r, 20));
    s.write(atrReq.subarray(2));
    s.write(Buffer.concat([frame('01'), frame('00a4040000'), frame('02'), frame('00'), frame('04')]));
    const frames = await server.frames(3);
    expect(frames).toEqual([Buffer.from(ATR).toString('hex'), 'a49000', Buffer.from(ATR).toString('hex')]);
    expect(calls).toEqual(['on', 'apdu 00a4040000', 'reset', 'off']);
  });

  it('never sends an empty frame: a card that throws or answers nothing gets 6F00', async () => {
    server = await fakeVpcd();
    let n = 0;
    const { card } = stub(() => {
      n++;
      if (n === 1) throw new Error('boom');
      return new Uint8Array(0);
    });
    conn = connectToVpcd(card, { port: server.port });
    await conn.connected;
    await new Promise((r) => setTimeout(r, 50));
    server.sockets[0]!.write(Buffer.concat([frame('80010000'), frame('80020000')]));
    expect(await server.frames(2)).toEqual(['6f00', '6f00']);
  });

  it('reconnects when vpcd goes away and comes back; close() stops it', async () => {
    server = await fakeVpcd();
    const port = server.port;
    const { card } = stub();
    conn = connectToVpcd(card, { port });
    let connects = 0;
    let disconnects = 0;
    conn.on('connect', () => connects++);
    conn.on('disconnect', () => disconnects++);
    await conn.connected;
    await new Promise((r) => setTimeout(r, 50));
    expect([connects, disconnects]).toEqual([1, 0]);
    await server.close();
    server = await fakeVpcd(port);
    const end = Date.now() + 3000;
    while (connects < 2 && Date.now() < end) await new Promise((r) => setTimeout(r, 50));
    expect([connects, disconnects]).toEqual([2, 1]);
    server.sockets[0]!.write(frame('04'));
    expect(await server.frames(1)).toEqual([Buffer.from(ATR).toString('hex')]);
    await conn.close();
    await server.close();
    server = await fakeVpcd(port);
    await new Promise((r) => setTimeout(r, 800));
    expect(server.sockets.length).toBe(0);
    expect(connects).toBe(2);
  });

  it('`adopted` waits for vpcd to take the card (its first GET ATR), not for the TCP connection', async () => {
    server = await fakeVpcd();
    const { card } = stub();
    conn = connectToVpcd(card, { port: server.port });
    let adopted = false;
    void conn.adopted.then(() => {
      adopted = true;
    });
    await conn.connected;
    // connected, and even an APDU answered: not adopted yet; only vpcd's GET ATR counts
    server.sockets[0]!.write(frame('80010000'));
    expect(await server.frames(1)).toEqual(['9000']);
    await new Promise((r) => setTimeout(r, 50));
    expect(adopted).toBe(false);
    server.sockets[0]!.write(frame('04'));
    await server.frames(2);
    await conn.adopted;
    expect(adopted).toBe(true);
  });

  it('with reconnect: false, `connected` rejects when nobody listens', async () => {
    const probe = await fakeVpcd();
    const port = probe.port;
    await probe.close();
    conn = connectToVpcd(stub().card, { port, reconnect: false });
    await expect(conn.connected).rejects.toThrow(/ECONNREFUSED/);
  });
});
