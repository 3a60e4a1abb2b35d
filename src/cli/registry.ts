/**
 * Every command of `sc-hsm-ts`, in the order of `--help`: its metadata (src/cli/commands/meta.ts,
 * which loads nothing else) and how to load its implementation. `--help`, `COMMAND --help` and the
 * parsing of a command line read only the metadata; a command's module, and with it the library
 * and its dependencies, is imported only to run it (cold start: bench/startup.bench.ts).
 *
 * Each `load` imports the command's own module. The command is one CommonJS bundle (dist/cli.cjs,
 * tsup.config.ts) in which a module costs its parse only until it is imported: then it and what it
 * imports are initialized, and nothing else: `dump` does not initialize the backup code, `status`
 * not the PKCS#15 parser, no command but `doctor` loads node:child_process. commands/core.ts
 * gathers commands that are loaded together (one import initializes them all).
 */
import type { Command, CommandSpec } from './command.js';
import {
  aesCmacSpec,
  aesDecryptSpec,
  aesEncryptSpec,
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
  domainCreateSpec,
  domainDeleteSpec,
  domainImportSpec,
  domainStatusSpec,
  dumpSpec,
  importKeySpec,
  initSpec,
  keygenSpec,
  keysSpec,
  pinChangeSpec,
  pinSessionSpec,
  pinStatusSpec,
  pinUnblockSpec,
  pinVerifySpec,
  pkaAuthenticateSpec,
  pkaExportSpec,
  pkaRegisterSpec,
  pkaRespondSpec,
  pkaStatusSpec,
  readersSpec,
  restoreSpec,
  simRunSpec,
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

/**
 * commands/core.ts, for a command exported there: `load: async () => (await core()).name`
 * (it initializes every command of core.ts; its own module is cheaper, see above).
 */
// biome-ignore lint/correctness/noUnusedVariables: the way to load a command exported by core.ts
const core = () => import('./commands/core.js');

export const COMMANDS: CommandEntry[] = [
  { ...readersSpec, load: async () => (await import('./commands/device/readers.js')).readers },
  { ...statusSpec, load: async () => (await import('./commands/device/status.js')).status },
  { ...initSpec, load: async () => (await import('./commands/device/init.js')).init },
  { ...dkekCreateSpec, load: async () => (await import('./commands/dkek/create.js')).dkekCreate },
  { ...dkekImportSpec, load: async () => (await import('./commands/dkek/import.js')).dkekImport },
  { ...dkekInspectSpec, load: async () => (await import('./commands/dkek/inspect.js')).dkekInspect },
  { ...dkekResplitSpec, load: async () => (await import('./commands/dkek/resplit.js')).dkekResplit },
  { ...domainCreateSpec, load: async () => (await import('./commands/domain/domain.js')).domainCreate },
  { ...domainImportSpec, load: async () => (await import('./commands/domain/domain.js')).domainImport },
  { ...domainStatusSpec, load: async () => (await import('./commands/domain/domain.js')).domainStatus },
  { ...domainDeleteSpec, load: async () => (await import('./commands/domain/domain.js')).domainDelete },
  { ...keysSpec, load: async () => (await import('./commands/keys/list.js')).keys },
  { ...keygenSpec, load: async () => (await import('./commands/keys/keygen.js')).keygen },
  { ...deleteKeySpec, load: async () => (await import('./commands/keys/delete.js')).deleteKey },
  { ...aesEncryptSpec, load: async () => (await import('./commands/keys/aes.js')).aesEncrypt },
  { ...aesDecryptSpec, load: async () => (await import('./commands/keys/aes.js')).aesDecrypt },
  { ...aesCmacSpec, load: async () => (await import('./commands/keys/aes.js')).aesCmac },
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
  { ...pinSessionSpec, load: async () => (await import('./commands/pin/pin.js')).pinSession },
  { ...soPinChangeSpec, load: async () => (await import('./commands/pin/pin.js')).soPinChange },
  { ...pkaStatusSpec, load: async () => (await import('./commands/pka/pka.js')).pkaStatus },
  { ...pkaRegisterSpec, load: async () => (await import('./commands/pka/pka.js')).pkaRegister },
  { ...pkaExportSpec, load: async () => (await import('./commands/pka/pka.js')).pkaExport },
  { ...pkaRespondSpec, load: async () => (await import('./commands/pka/pka.js')).pkaRespond },
  { ...pkaAuthenticateSpec, load: async () => (await import('./commands/pka/pka.js')).pkaAuthenticate },
  { ...dumpSpec, load: async () => (await import('./commands/device/dump.js')).dump },
  { ...verifyDeviceSpec, load: async () => (await import('./commands/verify-device.js')).verifyDevice },
  { ...csrSpec, load: async () => (await import('./commands/cert.js')).csr },
  { ...certSelfSignSpec, load: async () => (await import('./commands/cert.js')).certSelfSign },
  { ...certImportSpec, load: async () => (await import('./commands/cert.js')).certImport },
  { ...certExportSpec, load: async () => (await import('./commands/cert.js')).certExport },
  { ...simServeSpec, load: async () => (await import('./commands/sim/serve.js')).simServe },
  { ...simRunSpec, load: async () => (await import('./commands/sim/run.js')).simRun },
  { ...doctorSpec, load: async () => (await import('./commands/device/doctor.js')).doctor },
  { ...demoSpec, load: async () => (await import('./commands/demo.js')).demo },
  { ...apduSpec, load: async () => (await import('./commands/device/apdu.js')).apdu },
];
