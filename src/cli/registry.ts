/**
 * Every command of `sc-hsm-ts`, in the order of `--help`: its metadata (src/cli/commands/meta.ts,
 * which loads nothing else) and how to load its implementation. `--help`, `COMMAND --help` and the
 * parsing of a command line read only the metadata; a command's module, and with it the library
 * and its dependencies, is imported only to run it (cold start: bench/startup.bench.ts).
 */
import type { Command, CommandSpec } from './command.js';
import {
  apduSpec,
  backupSpec,
  certExportSpec,
  certImportSpec,
  certSelfSignSpec,
  csrSpec,
  deleteKeySpec,
  demoSpec,
  dkekCreateSpec,
  dkekImportSpec,
  dkekInspectSpec,
  dkekResplitSpec,
  doctorSpec,
  dumpSpec,
  importKeySpec,
  initSpec,
  keygenSpec,
  keysSpec,
  pinChangeSpec,
  pinStatusSpec,
  pinUnblockSpec,
  pinVerifySpec,
  readersSpec,
  restoreSpec,
  simServeSpec,
  soPinChangeSpec,
  statusSpec,
  unwrapSpec,
  verifyDeviceSpec,
  wrappedExportSpec,
  wrappedInspectSpec,
  wrapSpec,
} from './commands/meta.js';

/** A command before its implementation is loaded. */
export interface CommandEntry extends CommandSpec {
  /** Imports the command's module. */
  load(): Promise<Command>;
}

export const COMMANDS: CommandEntry[] = [
  { ...readersSpec, load: async () => (await import('./commands/device/readers.js')).readers },
  { ...statusSpec, load: async () => (await import('./commands/device/status.js')).status },
  { ...initSpec, load: async () => (await import('./commands/device/init.js')).init },
  { ...dkekCreateSpec, load: async () => (await import('./commands/dkek/create.js')).dkekCreate },
  { ...dkekImportSpec, load: async () => (await import('./commands/dkek/import.js')).dkekImport },
  { ...dkekInspectSpec, load: async () => (await import('./commands/dkek/inspect.js')).dkekInspect },
  { ...dkekResplitSpec, load: async () => (await import('./commands/dkek/resplit.js')).dkekResplit },
  { ...keysSpec, load: async () => (await import('./commands/keys/list.js')).keys },
  { ...keygenSpec, load: async () => (await import('./commands/keys/keygen.js')).keygen },
  { ...deleteKeySpec, load: async () => (await import('./commands/keys/delete.js')).deleteKey },
  { ...wrapSpec, load: async () => (await import('./commands/backup/wrap.js')).wrap },
  { ...unwrapSpec, load: async () => (await import('./commands/backup/unwrap.js')).unwrap },
  { ...backupSpec, load: async () => (await import('./commands/backup/backup.js')).backup },
  { ...restoreSpec, load: async () => (await import('./commands/backup/restore.js')).restore },
  { ...importKeySpec, load: async () => (await import('./commands/backup/import-key.js')).importKey },
  {
    ...wrappedInspectSpec,
    load: async () => (await import('./commands/wrapped/inspect.js')).wrappedInspect,
  },
  { ...wrappedExportSpec, load: async () => (await import('./commands/wrapped/export.js')).wrappedExport },
  { ...pinVerifySpec, load: async () => (await import('./commands/pin/pin.js')).pinVerify },
  { ...pinChangeSpec, load: async () => (await import('./commands/pin/pin.js')).pinChange },
  { ...pinUnblockSpec, load: async () => (await import('./commands/pin/pin.js')).pinUnblock },
  { ...pinStatusSpec, load: async () => (await import('./commands/pin/pin.js')).pinStatus },
  { ...soPinChangeSpec, load: async () => (await import('./commands/pin/pin.js')).soPinChange },
  { ...dumpSpec, load: async () => (await import('./commands/device/dump.js')).dump },
  { ...verifyDeviceSpec, load: async () => (await import('./commands/verify-device.js')).verifyDevice },
  { ...csrSpec, load: async () => (await import('./commands/cert.js')).csr },
  { ...certSelfSignSpec, load: async () => (await import('./commands/cert.js')).certSelfSign },
  { ...certImportSpec, load: async () => (await import('./commands/cert.js')).certImport },
  { ...certExportSpec, load: async () => (await import('./commands/cert.js')).certExport },
  { ...simServeSpec, load: async () => (await import('./commands/sim/serve.js')).simServe },
  { ...doctorSpec, load: async () => (await import('./commands/device/doctor.js')).doctor },
  { ...demoSpec, load: async () => (await import('./commands/demo.js')).demo },
  { ...apduSpec, load: async () => (await import('./commands/device/apdu.js')).apdu },
];
