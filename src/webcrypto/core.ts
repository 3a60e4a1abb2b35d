/**
 * webcrypto-core, loaded on first use. It costs ~50 ms to load (it pulls in its ASN.1 and JSON
 * schema libraries), so `import 'sc-hsm-ts'` must not load it: the WebCrypto classes extend
 * stand-ins ({@link lazyBase}) that load webcrypto-core the first time one of them is constructed
 * or a static member of webcrypto-core's class is used, and then put the real class into the
 * prototype chain. `instanceof` webcrypto-core's classes holds for every object, because every
 * object is constructed by the real constructor (and so after the load).
 *
 * The load is synchronous (constructors are), through `require`: webcrypto-core's CommonJS build.
 * In the CommonJS build of this package tsup's shim supplies `import.meta.url`.
 */
import { createRequire } from 'node:module';
import type * as WebcryptoCore from 'webcrypto-core';

export type Core = typeof WebcryptoCore;

let core: Core | undefined;
const onLoad: ((core: Core) => void)[] = [];

/** webcrypto-core, loaded now if it is not yet. */
export function loadCore(): Core {
  if (core === undefined) {
    const loaded = createRequire(import.meta.url)('webcrypto-core') as Core;
    core = loaded;
    for (const link of onLoad.splice(0)) link(loaded);
  }
  return core;
}

/** True once webcrypto-core is loaded (tests of the cold start). */
export function isCoreLoaded(): boolean {
  return core !== undefined;
}

/**
 * A class to extend in place of a webcrypto-core class (`pick(core)`), typed as that class.
 * Constructing a subclass loads webcrypto-core and runs the real constructor with the subclass as
 * `new.target`; a static member not found on the stand-in (e.g. `CryptoKey.create`) loads it too.
 * Once loaded, the stand-in and its prototype inherit from the real class and its prototype.
 */
export function lazyBase<C extends abstract new (...args: never[]) => object>(pick: (core: Core) => C): C {
  const standIn = class {};
  const link = (c: Core) => {
    const real = pick(c);
    Object.setPrototypeOf(standIn, real);
    Object.setPrototypeOf(standIn.prototype, real.prototype);
  };
  if (core) link(core);
  else onLoad.push(link);
  return new Proxy(standIn, {
    construct: (_target, args, newTarget) => Reflect.construct(pick(loadCore()), args, newTarget),
    get: (target, key, receiver) => {
      if (core === undefined && !Reflect.has(target, key)) loadCore();
      return Reflect.get(target, key, receiver);
    },
  }) as unknown as C;
}
