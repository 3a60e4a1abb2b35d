/** The backup directory's manifest.json (docs/cli.md "Backup directory"). */
import { join } from 'node:path';
import { CliError } from '../../exit-codes.js';
import { readHostFile } from '../../files.js';

export const MANIFEST = 'manifest.json';
export const MANIFEST_FORMAT = 'sc-hsm-ts/backup';

export interface ManifestKey {
  keyRef: number;
  id: string;
  label?: string;
  type: string;
  bits: number;
  curve?: string;
  file: string;
  sha256: string;
  publicKeySha256?: string;
}

export interface Manifest {
  format: typeof MANIFEST_FORMAT;
  version: 1;
  created: string;
  device: { serial?: string; label?: string; kcv: string };
  keys: ManifestKey[];
}

export async function readManifest(dir: string): Promise<Manifest> {
  const path = join(dir, MANIFEST);
  const text = Buffer.from(await readHostFile(path, 'backup manifest')).toString('utf8');
  let m: Manifest;
  try {
    m = JSON.parse(text) as Manifest;
  } catch {
    throw new CliError('BACKUP_INVALID', `${path} is not JSON`);
  }
  if (
    m?.format !== MANIFEST_FORMAT ||
    m.version !== 1 ||
    !Array.isArray(m.keys) ||
    typeof m.device?.kcv !== 'string'
  ) {
    throw new CliError(
      'BACKUP_INVALID',
      `${path} is not an sc-hsm-ts backup manifest (format ${MANIFEST_FORMAT}, version 1)`,
    );
  }
  for (const k of m.keys) {
    if (
      !Number.isInteger(k.keyRef) ||
      k.keyRef < 1 ||
      k.keyRef > 255 ||
      typeof k.file !== 'string' ||
      !/^[0-9a-f]{64}$/.test(k.sha256)
    ) {
      throw new CliError('BACKUP_INVALID', `${path}: a key entry is malformed`);
    }
    if (k.file.includes('/') || k.file.includes('\\') || k.file.startsWith('.')) {
      throw new CliError(
        'BACKUP_INVALID',
        `${path}: key file names must be plain names in the backup directory`,
      );
    }
  }
  return m;
}
