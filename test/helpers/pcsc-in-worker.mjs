/**
 * Worker body for test/pcsc-worker.test.ts: loads the library's TypeScript source through tsx (a
 * worker thread does not inherit the test runner's transform), calls the PC/SC entry point named
 * in `workerData.call` (`workerData.times` times, default once) and posts, for each call, what happened: the error's brand, code, message and fix.
 */
import { parentPort, workerData } from 'node:worker_threads';
import { register } from 'tsx/esm/api';

register();
const { ScHsmError } = await import('../../src/errors.ts');
const pcsc = await import('../../src/sc-hsm/open-pcsc.ts');
for (let i = 0; i < (workerData.times ?? 1); i++) {
  try {
    await pcsc[workerData.call]();
    parentPort.postMessage({ resolved: true });
  } catch (e) {
    parentPort.postMessage({
      branded: e instanceof ScHsmError,
      code: e?.code,
      message: String(e?.message),
      fix: e?.fix,
    });
  }
}
