// Property test of canonicalJson: byte for byte the straightforward definition (sorted keys, no whitespace, undefined fields left out), on any JSON-like value.

import fc from 'fast-check';
import { describe, expect, it } from 'vitest';
import { canonicalJson } from '../../domain/codec.js';

const NUM_RUNS = Number(process.env.PROPERTY_RUNS ?? 300);

/** The definition every stored hash was taken over, written the obvious way: the fast version must never drift from it. */
function referenceCanonicalJson(value: unknown): string {
  if (value === null || typeof value !== 'object') {
    if (typeof value === 'bigint') return JSON.stringify(value.toString());
    return JSON.stringify(value);
  }
  if (Array.isArray(value)) return `[${value.map(referenceCanonicalJson).join(',')}]`;
  const record = value as Record<string, unknown>;
  const keys = Object.keys(record).filter((k) => record[k] !== undefined).sort();
  return `{${keys.map((k) => `${JSON.stringify(k)}:${referenceCanonicalJson(record[k])}`).join(',')}}`;
}

/** JSON values with bigints, undefined fields and array holes mixed in, and keys that need escaping or sort by code unit. */
const valueArb = fc.letrec((tie) => ({
  value: fc.oneof(
    { depthSize: 'small' },
    fc.string({ unit: 'binary' }),
    fc.double({ noNaN: true, noDefaultInfinity: true }),
    fc.integer(),
    fc.boolean(),
    fc.constant(null),
    fc.bigInt(),
    fc.array(fc.option(tie('value'), { nil: undefined }), { maxLength: 5 }),
    fc.dictionary(fc.oneof(fc.string({ unit: 'binary', maxLength: 6 }), fc.constantFrom('a', 'B', 'é', '"', '\\', '\u2028', '10', '9')), fc.option(tie('value'), { nil: undefined }), { maxKeys: 6 }),
  ),
})).value;

describe('property: canonicalJson', () => {
  it('equals the reference definition on every generated value', () => {
    fc.assert(
      fc.property(valueArb, (value) => {
        expect(canonicalJson(value)).toBe(referenceCanonicalJson(value));
      }),
      { numRuns: NUM_RUNS },
    );
  });

  it('is the same text whatever order the keys were inserted in, and refuses non-finite numbers', () => {
    fc.assert(
      fc.property(fc.dictionary(fc.string({ maxLength: 4 }), fc.integer(), { maxKeys: 8 }), (record) => {
        const reversed = Object.fromEntries(Object.entries(record).reverse());
        expect(canonicalJson(reversed)).toBe(canonicalJson(record));
      }),
      { numRuns: NUM_RUNS },
    );
    expect(() => canonicalJson({ a: [1, Number.POSITIVE_INFINITY] })).toThrow(/non-finite/);
  });
});
