/**
 * Certificates for device keys: a PKCS#10 request or a self-signed certificate signed on the
 * device, a certificate stored beside its key as OpenSC stores it (CExx + PRKD with subject,
 * spec §6.2, §10.4), and the stored certificate exported as PEM. The work is done in src/x509/.
 */
import { ScHsmError } from '../../errors.js';
import { parseDistinguishedName } from '../../x509/dn.js';
import {
  createCsr,
  exportCertificate,
  importCertificate,
  type SigningOptions,
  selfSignCertificate,
} from '../../x509/index.js';
import type { Command } from '../command.js';
import { type Ctx, flag, reqInt, reqStr, str, type Values } from '../context.js';
import { CliError } from '../exit-codes.js';
import { type OutputTarget, prepareOutput, readHostFile, writeOutput } from '../files.js';
import { printable } from '../format.js';
import { certExportSpec, certImportSpec, certSelfSignSpec, csrSpec } from './meta.js';

/** --subject checked before the device is opened or a PIN sent: a usage error naming the bad part. */
function parseSubject(subject: string): void {
  try {
    parseDistinguishedName(subject);
  } catch (e) {
    if (e instanceof ScHsmError) throw new CliError('USAGE_ERROR', `--subject: ${e.message}`);
    throw e;
  }
}

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

/**
 * `--out`, checked before the card is used (prepareOutput: no symbolic link, directory or missing
 * directory; a device or FIFO written in place; FILE_EXISTS unless --force); undefined without
 * --out or with `--out -` (the PEM text on stdout).
 */
async function outputTarget(ctx: Ctx, v: Values, what: string): Promise<OutputTarget | undefined> {
  const out = str(v, 'out');
  if (out === undefined || out === '-') return undefined;
  return prepareOutput(ctx, out, { force: flag(v, 'force'), what });
}

/**
 * Writes `text` where {@link outputTarget} said, or to stdout (not under --json). Without --force
 * a file is created exclusively at the last step, so a file that appeared meanwhile is kept.
 */
async function output(ctx: Ctx, t: OutputTarget | undefined, text: string): Promise<string | undefined> {
  if (t === undefined) {
    if (!ctx.g.json) ctx.io.stdout.write(text);
    return undefined;
  }
  await writeOutput(ctx, t, text, 0o644);
  return t.path;
}

export const csr: Command = {
  ...csrSpec,
  async run(ctx, v) {
    const keyRef = reqInt(v, 'key-ref', 1, 255);
    const subject = reqStr(v, 'subject', 'e.g. "CN=Example CA"');
    parseSubject(subject);
    const opts = signingOptions(v);
    const target = await outputTarget(ctx, v, 'CSR file');
    const hsm = await ctx.hsm();
    const make = () => createCsr(hsm, { keyRef, subject, ...opts });
    // the key's existence and type (public files) before the PIN
    await ctx.login(hsm, v, make);
    const r = await make();
    const file = await output(ctx, target, r.pem);
    if (file)
      ctx.out.ok(
        `certificate request for key ${keyRef} (${printable(r.request.subject)}) written to ${file}`,
      );
    return { keyRef, subject: r.request.subject, file, pem: r.pem };
  },
};

export const certSelfSign: Command = {
  ...certSelfSignSpec,
  async run(ctx, v) {
    const keyRef = reqInt(v, 'key-ref', 1, 255);
    const subject = reqStr(v, 'subject', 'e.g. "CN=Example Root CA"');
    parseSubject(subject);
    const days = reqInt(v, 'days', 1, 36500);
    const serialNumber = str(v, 'serial');
    const opts = signingOptions(v);
    const target = await outputTarget(ctx, v, 'certificate file');
    const hsm = await ctx.hsm();
    const make = () =>
      selfSignCertificate(hsm, {
        keyRef,
        subject,
        days,
        ca: !flag(v, 'end-entity'),
        ...(serialNumber !== undefined ? { serialNumber } : {}),
        ...opts,
      });
    // the key's existence and type (public files) before the PIN
    await ctx.login(hsm, v, make);
    const r = await make();
    const file = await output(ctx, target, r.pem);
    if (file)
      ctx.out.ok(
        `self-signed certificate for key ${keyRef} (${printable(r.certificate.subject)}) written to ${file}`,
      );
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
  ...certImportSpec,
  async run(ctx, v, positionals) {
    const path = positionals[0]!;
    const keyRef = reqInt(v, 'key-ref', 1, 255);
    const data = await readHostFile(path, 'certificate file');
    const hsm = await ctx.hsm();
    const store = () => importCertificate(hsm, keyRef, data);
    // the key's type and public key (public files) compared with the certificate's before the PIN
    await ctx.login(hsm, v, store);
    const r = await store();
    // the subject comes from the certificate file
    ctx.out.ok(`certificate ${printable(r.subject)} stored for key ${keyRef}`);
    return { keyRef, subject: r.subject, serialNumber: r.certificate.serialNumber, stored: true };
  },
};

export const certExport: Command = {
  ...certExportSpec,
  async run(ctx, v) {
    const keyRef = reqInt(v, 'key-ref', 1, 255);
    const target = await outputTarget(ctx, v, 'certificate file');
    const hsm = await ctx.hsm();
    const pem = await exportCertificate(hsm, keyRef);
    const file = await output(ctx, target, pem);
    if (file) ctx.out.ok(`certificate of key ${keyRef} written to ${file}`);
    return { keyRef, file, pem };
  },
};

/** The commands of this file, for the command table. */
export const CERT_COMMANDS: Command[] = [csr, certSelfSign, certImport, certExport];
