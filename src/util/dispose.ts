/**
 * `Symbol.asyncDispose`, the key `await using` calls on leaving its block (TC39 explicit resource
 * management). Node 20.4 and later have it; on an earlier Node 20 it is defined here, once, as the
 * registered symbol TypeScript's and esbuild's downlevel helpers look up
 * (`Symbol.for('Symbol.asyncDispose')`). Every class of the library that can be disposed names
 * its method with this constant, so the definition runs before any such class is built.
 */
const symbols = Symbol as unknown as { asyncDispose?: symbol };
symbols.asyncDispose ??= Symbol.for('Symbol.asyncDispose');

export const asyncDispose: typeof Symbol.asyncDispose = symbols.asyncDispose as typeof Symbol.asyncDispose;
