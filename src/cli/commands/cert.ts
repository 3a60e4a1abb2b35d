/**
 * Certificates for device keys: a PKCS#10 request or a self-signed certificate signed on the
 * device, a certificate stored beside its key as OpenSC stores it (CExx + PRKD with subject,
 * spec §6.2, §10.4), and the stored certificate exported as PEM. The work is done in src/x509/.
 */
import {
  createCsr,
  exportCertificate,
  importCertificate,
  type SigningOptions,
  selfSignCertificate,
} from '../../x509/index.js';
import { type Command, SECRET_HELP } from '../command.js';
import { type Ctx, flag, reqInt, reqStr, str, type Values } from '../context.js';
import { CliError } from '../exit-codes.js';
import { readHostFile, refuseOverwrite, writeAtomic } from '../files.js';

const PIN = { type: 'string', arg: 'SECRET', help: `user PIN (${SECRET_HELP})` } as const;
const KEY_REF = {
  type: 'string',
  arg: 'N',
  help: 'key reference of the key pair (see `sc-hsm-ts keys`)',
} as const;
const SUBJECT = {
  type: 'string',
  arg: 'DN',
  help: 'subject, e.g. "CN=Example Root CA, O=Example, C=DE"',
} as const;
const HASH = {
  type: 'string',
  arg: 'HASH',
  help: 'signature hash: sha256 (default), sha384, sha512, sha1',
} as const;
const PSS = {
  type: 'boolean',
  help: 'RSA keys: sign with RSA-PSS (salt length = hash length) instead of PKCS#1 v1.5',
} as const;
const FORCE = { type: 'boolean', help: 'replace an existing output file' } as const;

function signingOptions(v: Values): SigningOptions {
  const o: SigningOptions = {};
  const h = str(v, 'hash');
  if (h !== undefined) {
    const map: Record<string, SigningOptions['hash']> = {
      sha1: 'SHA-1',
      sha256: 'SHA-256',
      sha384: 'SHA-384',
      sha512: 'SHA-512',
    };
    const hash = map[h.toLowerCase().replace('-', '')];
    if (!hash) throw new CliError('USAGE_ERROR', `--hash takes sha256, sha384, sha512 or sha1; got '${h}'`);
    o.hash = hash;
  }
  if (flag(v, 'pss')) o.rsaPadding = 'pss';
  return o;
}

/** Writes `text` to `--out` atomically (refusing to replace a file without --force) or to stdout. */
async function output(ctx: Ctx, v: Values, text: string, what: string): Promise<string | undefined> {
  const out = str(v, 'out');
  if (out === undefined) {
    if (!ctx.g.json) ctx.io.stdout.write(text);
    return undefined;
  }
  await refuseOverwrite(out, flag(v, 'force'), what);
  await writeAtomic(out, text);
  return out;
}

export const csr: Command = {
  name: 'csr',
  summary: 'Create a PKCS#10 certificate request (CSR) for a device key, signed on the device.',
  description: 'The request is written as PEM to --out (atomically) or to stdout.',
  options: {
    'key-ref': KEY_REF,
    subject: SUBJECT,
    out: { type: 'string', arg: 'FILE', help: 'PEM output file' },
    hash: HASH,
    pss: PSS,
    force: FORCE,
    pin: PIN,
  },
  examples: [
    'sc-hsm-ts csr --key-ref 1 --subject "CN=Example Issuing CA, O=Example" --out ca.csr --pin env:PIN',
  ],
  async run(ctx, v) {
    const keyRef = reqInt(v, 'key-ref', 1, 255);
    const subject = reqStr(v, 'subject', 'e.g. "CN=Example CA"');
    const opts = signingOptions(v);
    const hsm = await ctx.hsm();
    await ctx.login(hsm, v);
    const r = await createCsr(hsm, { keyRef, subject, ...opts });
    const file = await output(ctx, v, r.pem, 'CSR file');
    if (file) ctx.out.ok(`certificate request for key ${keyRef} (${r.request.subject}) written to ${file}`);
    return { keyRef, subject: r.request.subject, file, pem: r.pem };
  },
};

export const certSelfSign: Command = {
  name: 'cert self-sign',
  summary: 'Create a self-signed certificate (a root CA by default) for a device key, signed on the device.',
  description:
    'The certificate is written as PEM to --out (atomically) or to stdout. With --store it is also\n' +
    'stored beside the key (as `cert import` does). --end-entity makes a non-CA certificate.',
  options: {
    'key-ref': KEY_REF,
    subject: SUBJECT,
    days: { type: 'string', arg: 'D', help: 'validity in days (1-36500)' },
    out: { type: 'string', arg: 'FILE', help: 'PEM output file' },
    serial: { type: 'string', arg: 'HEX', help: 'serial number (default: 16 random bytes)' },
    'end-entity': { type: 'boolean', help: 'no CA basic constraints; key usage for signatures' },
    store: { type: 'boolean', help: 'also store the certificate on the device for the key' },
    hash: HASH,
    pss: PSS,
    force: FORCE,
    pin: PIN,
  },
  examples: [
    'sc-hsm-ts cert self-sign --key-ref 1 --subject "CN=Example Root CA" --days 3650 --out root.pem --store',
  ],
  async run(ctx, v) {
    const keyRef = reqInt(v, 'key-ref', 1, 255);
    const subject = reqStr(v, 'subject', 'e.g. "CN=Example Root CA"');
    const days = reqInt(v, 'days', 1, 36500);
    const serialNumber = str(v, 'serial');
    const opts = signingOptions(v);
    const hsm = await ctx.hsm();
    await ctx.login(hsm, v);
    const r = await selfSignCertificate(hsm, {
      keyRef,
      subject,
      days,
      ca: !flag(v, 'end-entity'),
      ...(serialNumber !== undefined ? { serialNumber } : {}),
      ...opts,
    });
    const file = await output(ctx, v, r.pem, 'certificate file');
    if (file)
      ctx.out.ok(`self-signed certificate for key ${keyRef} (${r.certificate.subject}) written to ${file}`);
    const stored = flag(v, 'store');
    if (stored) {
      await importCertificate(hsm, keyRef, r.der);
      ctx.out.ok(`certificate stored on the device for key ${keyRef}`);
    }
    return {
      keyRef,
      subject: r.certificate.subject,
      serialNumber: r.certificate.serialNumber,
      notBefore: r.certificate.notBefore.toISOString(),
      notAfter: r.certificate.notAfter.toISOString(),
      file,
      stored,
      pem: r.pem,
    };
  },
};

export const certImport: Command = {
  name: 'cert import',
  args: 'FILE',
  positionals: [1, 1],
  summary:
    'Store a certificate (PEM or DER) for a device key, as OpenSC does, so PKCS#11 applications find it.',
  description:
    "The certificate must carry the key's public key. It goes to CExx and the key description\n" +
    '(C4xx) is rewritten with the subject name and access flags (spec §6.2). An earlier\n' +
    'certificate of the key is replaced.',
  options: { 'key-ref': KEY_REF, pin: PIN },
  examples: ['sc-hsm-ts cert import ca.pem --key-ref 1 --pin env:PIN'],
  async run(ctx, v, positionals) {
    const path = positionals[0]!;
    const keyRef = reqInt(v, 'key-ref', 1, 255);
    const data = await readHostFile(path, 'certificate file');
    const hsm = await ctx.hsm();
    await ctx.login(hsm, v);
    const r = await importCertificate(hsm, keyRef, data);
    ctx.out.ok(`certificate ${r.subject} stored for key ${keyRef}`);
    return { keyRef, subject: r.subject, serialNumber: r.certificate.serialNumber, stored: true };
  },
};

export const certExport: Command = {
  name: 'cert export',
  summary: 'Print (or write with --out) the certificate stored for a device key, as PEM. Needs no PIN.',
  options: {
    'key-ref': KEY_REF,
    out: { type: 'string', arg: 'FILE', help: 'PEM output file' },
    force: FORCE,
  },
  examples: ['sc-hsm-ts cert export --key-ref 1 > ca.pem'],
  async run(ctx, v) {
    const keyRef = reqInt(v, 'key-ref', 1, 255);
    const hsm = await ctx.hsm();
    const pem = await exportCertificate(hsm, keyRef);
    const file = await output(ctx, v, pem, 'certificate file');
    if (file) ctx.out.ok(`certificate of key ${keyRef} written to ${file}`);
    return { keyRef, file, pem };
  },
};

/** The commands of this file, for the command table. */
export const CERT_COMMANDS: Command[] = [csr, certSelfSign, certImport, certExport];
