/**
 * Share-file key derivation (spec §7.1): our EVP_BytesToKey(AES-256-CBC, MD5, 10,000,000) against
 * OpenSSL's C EVP_BytesToKey on the §7.6 #2 vector. The C side is a small program written to a
 * temporary directory and compiled with `cc … -lcrypto`; it reports its own elapsed time. Both run
 * three times, alternating, and the medians are compared; both must derive the same key and IV.
 */
import { execFileSync } from 'node:child_process';
import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { deriveShareKeyIv, SHARE_KDF_ITERATIONS } from '../src/dkek/kdf.js';
import { ascii, fromHex, toHex } from '../src/util/bytes.js';
import { type BenchResult, median } from './types.js';

const PASSWORD = 'testpassword123';
const SALT = 'a1deef59d3d67f5f';
const RUNS = 3;
const TARGET = 0.4;

const C_SOURCE = `#include <openssl/evp.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
int main(int argc, char **argv) {
  unsigned char salt[8], key[32], iv[16];
  struct timespec t0, t1;
  if (argc != 4) return 2;
  for (int i = 0; i < 8; i++) sscanf(argv[2] + 2 * i, "%2hhx", &salt[i]);
  long count = atol(argv[3]);
  clock_gettime(CLOCK_MONOTONIC, &t0);
  if (!EVP_BytesToKey(EVP_aes_256_cbc(), EVP_md5(), salt, (const unsigned char *)argv[1],
                      (int)strlen(argv[1]), (int)count, key, iv)) return 1;
  clock_gettime(CLOCK_MONOTONIC, &t1);
  for (int i = 0; i < 32; i++) printf("%02x", key[i]);
  printf(" ");
  for (int i = 0; i < 16; i++) printf("%02x", iv[i]);
  printf(" %.3f\\n", (t1.tv_sec - t0.tv_sec) * 1e3 + (t1.tv_nsec - t0.tv_nsec) / 1e6);
  return 0;
}
`;

function buildReference(dir: string): string {
  const src = join(dir, 'evp_bytestokey.c');
  const exe = join(dir, 'evp_bytestokey');
  writeFileSync(src, C_SOURCE);
  try {
    execFileSync('cc', ['-O2', src, '-o', exe, '-lcrypto'], { stdio: ['ignore', 'pipe', 'pipe'] });
  } catch (e) {
    const err = e as NodeJS.ErrnoException & { stderr?: Buffer };
    if (err.code === 'ENOENT') {
      throw new Error(
        'no C compiler (`cc`) found: install one (e.g. apt-get install gcc libssl-dev) to run the KDF benchmark',
      );
    }
    throw new Error(
      `compiling the OpenSSL reference failed (are the OpenSSL headers installed? apt-get install libssl-dev):\n${err.stderr?.toString() ?? err.message}`,
    );
  }
  return exe;
}

function runReference(exe: string): { keyIv: string; ms: number } {
  const out = execFileSync(exe, [PASSWORD, SALT, String(SHARE_KDF_ITERATIONS)], { encoding: 'utf8' }).trim();
  const [key, iv, ms] = out.split(' ');
  return { keyIv: `${key}${iv}`, ms: Number(ms) };
}

async function runOurs(): Promise<{ keyIv: string; ms: number }> {
  const t0 = performance.now();
  const { key, iv } = await deriveShareKeyIv(ascii(PASSWORD), fromHex(SALT), SHARE_KDF_ITERATIONS);
  const ms = performance.now() - t0;
  return { keyIv: toHex(key) + toHex(iv), ms };
}

export default async function run(): Promise<BenchResult[]> {
  const dir = mkdtempSync(join(tmpdir(), 'sc-hsm-kdf-bench-'));
  try {
    const exe = buildReference(dir);
    const theirs: number[] = [];
    const ours: number[] = [];
    const outputs = new Set<string>();
    for (let i = 0; i < RUNS; i++) {
      const c = runReference(exe);
      const t = await runOurs();
      theirs.push(c.ms);
      ours.push(t.ms);
      outputs.add(c.keyIv).add(t.keyIv);
      console.log(`  run ${i + 1}: OpenSSL ${c.ms.toFixed(0)} ms, ours ${t.ms.toFixed(0)} ms`);
    }
    if (outputs.size !== 1)
      throw new Error(`key/iv differ between OpenSSL and ours: ${[...outputs].join(' vs ')}`);
    const o = median(ours);
    const r = median(theirs);
    return [
      {
        name: 'share-file KDF (EVP_BytesToKey MD5 x 10M)',
        ours: Math.round(o),
        theirs: Math.round(r),
        unit: 'ms',
        ratio: o / r,
        target: TARGET,
      },
    ];
  } finally {
    rmSync(dir, { recursive: true, force: true });
  }
}
