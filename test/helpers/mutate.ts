/**
 * Mutations of valid samples for the property tests of the decoders: a byte set, inserted or
 * deleted, the input cut short, or a length field that announces far more than there is.
 */
import fc from 'fast-check';

type Mutation = { kind: 'set' | 'insert' | 'delete' | 'truncate' | 'bigLength'; at: number; value: number };

const mutation: fc.Arbitrary<Mutation> = fc.record({
  kind: fc.constantFrom('set', 'insert', 'delete', 'truncate', 'bigLength'),
  at: fc.nat(),
  value: fc.integer({ min: 0, max: 255 }),
});

function mutate(base: Uint8Array, ms: Mutation[]): Uint8Array {
  let b = Array.from(base);
  for (const m of ms) {
    if (b.length === 0) break;
    const at = m.at % b.length;
    if (m.kind === 'set') b[at] = m.value;
    else if (m.kind === 'insert') b.splice(at, 0, m.value);
    else if (m.kind === 'delete') b.splice(at, 1);
    else if (m.kind === 'truncate') b = b.slice(0, at);
    // a length field that announces far more than there is: 83 FF FF xx
    else b.splice(at, 1, 0x83, 0xff, 0xff, m.value);
  }
  return Uint8Array.from(b);
}

/** One of `samples` with 1–4 mutations (length bytes included). */
export function mutatedSample(samples: Uint8Array[]): fc.Arbitrary<Uint8Array> {
  return fc
    .tuple(fc.constantFrom(...samples), fc.array(mutation, { minLength: 1, maxLength: 4 }))
    .map(([s, ms]) => mutate(s, ms));
}
