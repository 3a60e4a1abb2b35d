/**
 * Every command of `sc-hsm-ts`, in the order of `--help`: its metadata (src/cli/commands/meta.ts,
 * which loads nothing else) and how to load its implementation. `--help`, `COMMAND --help` and the
 * parsing of a command line read only the metadata; a command's module, and with it the library
 * and its dependencies, is imported only to run it (cold start: bench/startup.bench.ts).
 *
 * The commands that need only the library core live together in commands/core.ts, so running one
 * loads a handful of ES modules instead of a couple of dozen small chunks (Node's ESM loader pays
 * per module: `dump` through pcscd went from about 25 to 17 modules and 30–40 ms faster). Commands
 * with heavy dependencies of their own (the simulator, X.509) keep their own module.
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
  dumpSpec,
  importKeySpec,
  initSpec,
  keygenSpec,
  keysSpec,
  pinChangeSpec,
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

/** The core commands' module (see above). */
const core = () => import('./commands/core.js');

export const COMMANDS: CommandEntry[] = [
  { ...readersSpec, load: async () => (await core()).readers },
  { ...statusSpec, load: async () => (await core()).status },
  { ...initSpec, load: async () => (await core()).init },
  { ...dkekCreateSpec, load: async () => (await core()).dkekCreate },
  { ...dkekImportSpec, load: async () => (await core()).dkekImport },
  { ...dkekInspectSpec, load: async () => (await core()).dkekInspect },
  { ...dkekResplitSpec, load: async () => (await core()).dkekResplit },
  { ...keysSpec, load: async () => (await core()).keys },
  { ...keygenSpec, load: async () => (await core()).keygen },
  { ...deleteKeySpec, load: async () => (await core()).deleteKey },
  { ...aesEncryptSpec, load: async () => (await core()).aesEncrypt },
  { ...aesDecryptSpec, load: async () => (await core()).aesDecrypt },
  { ...aesCmacSpec, load: async () => (await core()).aesCmac },
  { ...wrapSpec, load: async () => (await core()).wrap },
  { ...unwrapSpec, load: async () => (await core()).unwrap },
  { ...backupSpec, load: async () => (await core()).backup },
  { ...restoreSpec, load: async () => (await core()).restore },
  { ...importKeySpec, load: async () => (await core()).importKey },
  {
    ...wrappedInspectSpec,
    load: async () => (await core()).wrappedInspect,
  },
  { ...wrappedExportSpec, load: async () => (await core()).wrappedExport },
  { ...pinVerifySpec, load: async () => (await core()).pinVerify },
  { ...pinChangeSpec, load: async () => (await core()).pinChange },
  { ...pinUnblockSpec, load: async () => (await core()).pinUnblock },
  { ...pinStatusSpec, load: async () => (await core()).pinStatus },
  { ...soPinChangeSpec, load: async () => (await core()).soPinChange },
  { ...pkaStatusSpec, load: async () => (await core()).pkaStatus },
  { ...pkaRegisterSpec, load: async () => (await core()).pkaRegister },
  { ...pkaExportSpec, load: async () => (await core()).pkaExport },
  { ...pkaRespondSpec, load: async () => (await core()).pkaRespond },
  { ...pkaAuthenticateSpec, load: async () => (await core()).pkaAuthenticate },
  { ...dumpSpec, load: async () => (await core()).dump },
  { ...verifyDeviceSpec, load: async () => (await import('./commands/verify-device.js')).verifyDevice },
  { ...csrSpec, load: async () => (await import('./commands/cert.js')).csr },
  { ...certSelfSignSpec, load: async () => (await import('./commands/cert.js')).certSelfSign },
  { ...certImportSpec, load: async () => (await import('./commands/cert.js')).certImport },
  { ...certExportSpec, load: async () => (await import('./commands/cert.js')).certExport },
  { ...simServeSpec, load: async () => (await import('./commands/sim/serve.js')).simServe },
  { ...simRunSpec, load: async () => (await import('./commands/sim/run.js')).simRun },
  { ...doctorSpec, load: async () => (await core()).doctor },
  { ...demoSpec, load: async () => (await import('./commands/demo.js')).demo },
  { ...apduSpec, load: async () => (await core()).apdu },
];
