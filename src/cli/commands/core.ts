/** The commands that run on the library core, in one module: see registry.ts. */

export { backup } from './backup/backup.js';
export { importKey } from './backup/import-key.js';
export { restore } from './backup/restore.js';
export { unwrap } from './backup/unwrap.js';
export { wrap } from './backup/wrap.js';
export { apdu } from './device/apdu.js';
export { doctor } from './device/doctor.js';
export { dump } from './device/dump.js';
export { init } from './device/init.js';
export { readers } from './device/readers.js';
export { status } from './device/status.js';
export { dkekCreate } from './dkek/create.js';
export { dkekImport } from './dkek/import.js';
export { dkekInspect } from './dkek/inspect.js';
export { dkekResplit } from './dkek/resplit.js';
export { domainCreate, domainDelete, domainImport, domainStatus } from './domain/domain.js';
export { aesCmac, aesDecrypt, aesEncrypt } from './keys/aes.js';
export { deleteKey } from './keys/delete.js';
export { keygen } from './keys/keygen.js';
export { keys } from './keys/list.js';
export { pinChange, pinStatus, pinUnblock, pinVerify, soPinChange } from './pin/pin.js';
export { pkaAuthenticate, pkaExport, pkaRegister, pkaRespond, pkaStatus } from './pka/pka.js';
export { wrappedExport } from './wrapped/export.js';
export { wrappedInspect } from './wrapped/inspect.js';
