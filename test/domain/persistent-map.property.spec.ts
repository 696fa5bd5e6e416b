// The persistent map behaves exactly like a Map under random sets and deletes, and no operation changes an older version.

import fc from 'fast-check';
import { describe, expect, it } from 'vitest';
import { fnv1a32, PersistentMap, type HashFunction } from '../../domain/persistent-map.js';

type Op = { kind: 'set'; key: string; value: number } | { kind: 'delete'; key: string };

// A small key space, so sets overwrite and deletes hit; a few long keys for the hash.
const key = fc.oneof(fc.constantFrom('a', 'b', 'c', 'rsv-1', 'rsv-2', ''), fc.string({ maxLength: 3 }), fc.integer({ min: 0, max: 400 }).map((n) => `rsv-a-${n}`));
const op: fc.Arbitrary<Op> = fc.oneof(
  { arbitrary: fc.record({ kind: fc.constant('set' as const), key, value: fc.integer() }), weight: 3 },
  { arbitrary: fc.record({ kind: fc.constant('delete' as const), key }), weight: 2 },
);

const HASHES: Record<string, HashFunction> = {
  fnv1a32,
  // Every key in one of three buckets: exercises collision nodes on every path.
  'three buckets': (k) => k.length % 3,
  // Hashes equal in their low 30 bits: leaves part only at the deepest level.
  'top bits only': (k) => (fnv1a32(k) & 0b11) << 30,
};

function expectSameAs(map: PersistentMap<number>, model: Map<string, number>, keys: readonly string[]): void {
  expect(map.size).toBe(model.size);
  for (const k of keys) {
    expect(map.has(k)).toBe(model.has(k));
    expect(map.get(k)).toBe(model.get(k));
  }
  expect(new Map(map.entries())).toEqual(model);
  expect([...map.keys()].length).toBe(model.size);
}

describe('PersistentMap', () => {
  for (const [name, hashOf] of Object.entries(HASHES)) {
    it(`matches a Map after every set and delete (${name})`, () => {
      fc.assert(
        fc.property(fc.array(op, { maxLength: 300 }), (ops) => {
          let map = PersistentMap.empty<number>(hashOf);
          const model = new Map<string, number>();
          const keys = [...new Set(ops.map((o) => o.key)), 'never-used'];
          for (const o of ops) {
            if (o.kind === 'set') {
              map = map.set(o.key, o.value);
              model.set(o.key, o.value);
            } else {
              map = map.delete(o.key);
              model.delete(o.key);
            }
          }
          expectSameAs(map, model, keys);
        }),
        { numRuns: 150 },
      );
    });

    it(`never changes an older version (${name})`, () => {
      fc.assert(
        fc.property(fc.array(op, { maxLength: 120 }), (ops) => {
          const versions: { map: PersistentMap<number>; model: Map<string, number> }[] = [{ map: PersistentMap.empty<number>(hashOf), model: new Map() }];
          for (const o of ops) {
            const { map, model } = versions[versions.length - 1]!;
            const nextModel = new Map(model);
            if (o.kind === 'set') nextModel.set(o.key, o.value);
            else nextModel.delete(o.key);
            versions.push({ map: o.kind === 'set' ? map.set(o.key, o.value) : map.delete(o.key), model: nextModel });
          }
          const keys = [...new Set(ops.map((o) => o.key))];
          for (const { map, model } of versions) expectSameAs(map, model, keys);
        }),
        { numRuns: 100 },
      );
    });
  }

  it('returns itself for a delete of an absent key, and stores undefined values as present', () => {
    const map = PersistentMap.empty<number | undefined>().set('x', 1);
    expect(map.delete('y')).toBe(map);
    const withUndefined = map.set('u', undefined);
    expect(withUndefined.has('u')).toBe(true);
    expect(withUndefined.size).toBe(2);
  });

  it('holds 100,000 keys and deletes them all', () => {
    let map = PersistentMap.empty<number>();
    for (let i = 0; i < 100_000; i += 1) map = map.set(`rsv-a-${i}`, i);
    expect(map.size).toBe(100_000);
    expect(map.get('rsv-a-99999')).toBe(99_999);
    for (let i = 0; i < 100_000; i += 1) map = map.delete(`rsv-a-${i}`);
    expect(map.size).toBe(0);
    expect([...map.entries()]).toEqual([]);
  });
});
