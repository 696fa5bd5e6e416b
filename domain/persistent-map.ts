// An immutable string-keyed map with structural sharing (a hash array mapped trie): set and delete cost O(log32 n), not a copy.

/**
 * Why this exists: aggregate states are immutable values, and a run's state holds every open
 * reservation and every released reservation id. Copying a Map or Set on each BudgetReserved and
 * BudgetReleased made folding a run's stream O(n²) and each new event O(n); with shared structure
 * an event costs a path of at most seven small nodes, whatever the history.
 */

type Leaf<V> = Readonly<{ kind: 'leaf'; hash: number; key: string; value: V }>;
/** Keys whose 32-bit hashes are equal: kept side by side, compared by key. */
type Collision<V> = Readonly<{ kind: 'collision'; hash: number; leaves: readonly Leaf<V>[] }>;
/** A 32-way branch: `bitmap` says which of the 32 slots are present, `slots` holds them densely. */
type Branch<V> = Readonly<{ kind: 'branch'; bitmap: number; slots: readonly Slot<V>[] }>;
type Slot<V> = Leaf<V> | Collision<V> | Branch<V>;

const BITS_PER_LEVEL = 5;
const LEVEL_MASK = 0b11111;

export type HashFunction = (key: string) => number;

/** FNV-1a over UTF-16 code units: fast, deterministic, and spread well enough for ids. */
export function fnv1a32(key: string): number {
  let hash = 0x811c9dc5;
  for (let i = 0; i < key.length; i += 1) {
    hash ^= key.charCodeAt(i);
    hash = Math.imul(hash, 0x01000193);
  }
  return hash >>> 0;
}

export class PersistentMap<V> implements ReadonlyMap<string, V> {
  private constructor(
    private readonly root: Branch<V> | null,
    readonly size: number,
    private readonly hashOf: HashFunction,
  ) {}

  /** `hashOf` is for tests that need collisions; production code keeps the default. */
  static empty<V>(hashOf: HashFunction = fnv1a32): PersistentMap<V> {
    return new PersistentMap<V>(null, 0, hashOf);
  }

  static from<V>(entries: Iterable<readonly [string, V]>, hashOf: HashFunction = fnv1a32): PersistentMap<V> {
    let map = PersistentMap.empty<V>(hashOf);
    for (const [key, value] of entries) map = map.set(key, value);
    return map;
  }

  get(key: string): V | undefined {
    return this.findLeaf(key)?.value;
  }

  has(key: string): boolean {
    return this.findLeaf(key) !== undefined;
  }

  set(key: string, value: V): PersistentMap<V> {
    const leaf: Leaf<V> = { kind: 'leaf', hash: this.hashOf(key), key, value };
    const added = { count: 0 };
    const root = insert(this.root ?? EMPTY_BRANCH, leaf, 0, added) as Branch<V>;
    return new PersistentMap(root, this.size + added.count, this.hashOf);
  }

  delete(key: string): PersistentMap<V> {
    if (this.root === null) return this;
    const root = remove(this.root, this.hashOf(key), key, 0);
    if (root === this.root) return this;
    return new PersistentMap(root === null ? null : (root as Branch<V>), this.size - 1, this.hashOf);
  }

  *entries(): MapIterator<[string, V]> {
    if (this.root !== null) for (const leaf of leaves(this.root)) yield [leaf.key, leaf.value];
  }

  *keys(): MapIterator<string> {
    for (const [key] of this.entries()) yield key;
  }

  *values(): MapIterator<V> {
    for (const [, value] of this.entries()) yield value;
  }

  [Symbol.iterator](): MapIterator<[string, V]> {
    return this.entries();
  }

  forEach(callback: (value: V, key: string, map: ReadonlyMap<string, V>) => void): void {
    for (const [key, value] of this.entries()) callback(value, key, this);
  }

  /** Entries in iteration order: what a test compares, since two maps with the same entries may differ in shape. */
  toJSON(): Record<string, V> {
    return Object.fromEntries(this.entries());
  }

  private findLeaf(key: string): Leaf<V> | undefined {
    const hash = this.hashOf(key);
    let slot: Slot<V> | undefined = this.root ?? undefined;
    for (let shift = 0; slot !== undefined; shift += BITS_PER_LEVEL) {
      if (slot.kind === 'leaf') return slot.key === key ? slot : undefined;
      if (slot.kind === 'collision') return slot.hash === hash ? slot.leaves.find((l) => l.key === key) : undefined;
      slot = childAt(slot, hash, shift);
    }
    return undefined;
  }
}

const EMPTY_BRANCH: Branch<never> = Object.freeze({ kind: 'branch', bitmap: 0, slots: Object.freeze([]) });

function bitFor(hash: number, shift: number): number {
  return 1 << ((hash >>> shift) & LEVEL_MASK);
}

/** Number of set bits below `bit`: the dense index of that slot. */
function indexOf(bitmap: number, bit: number): number {
  let x = bitmap & (bit - 1);
  x -= (x >>> 1) & 0x55555555;
  x = (x & 0x33333333) + ((x >>> 2) & 0x33333333);
  x = (x + (x >>> 4)) & 0x0f0f0f0f;
  return Math.imul(x, 0x01010101) >>> 24;
}

function childAt<V>(branch: Branch<V>, hash: number, shift: number): Slot<V> | undefined {
  const bit = bitFor(hash, shift);
  return branch.bitmap & bit ? branch.slots[indexOf(branch.bitmap, bit)] : undefined;
}

function withSlot<V>(branch: Branch<V>, at: number, slot: Slot<V>): Branch<V> {
  const slots = branch.slots.slice();
  slots[at] = slot;
  return { kind: 'branch', bitmap: branch.bitmap, slots };
}

function insert<V>(slot: Slot<V>, leaf: Leaf<V>, shift: number, added: { count: number }): Slot<V> {
  if (slot.kind === 'branch') {
    const bit = bitFor(leaf.hash, shift);
    const at = indexOf(slot.bitmap, bit);
    if (!(slot.bitmap & bit)) {
      added.count = 1;
      const slots = slot.slots.slice();
      slots.splice(at, 0, leaf);
      return { kind: 'branch', bitmap: slot.bitmap | bit, slots };
    }
    return withSlot(slot, at, insert(slot.slots[at]!, leaf, shift + BITS_PER_LEVEL, added));
  }
  if (slot.kind === 'leaf') {
    if (slot.key === leaf.key) return leaf;
    added.count = 1;
    if (slot.hash === leaf.hash) return { kind: 'collision', hash: leaf.hash, leaves: [slot, leaf] };
    return split(slot, leaf, shift);
  }
  if (slot.hash === leaf.hash) {
    const at = slot.leaves.findIndex((l) => l.key === leaf.key);
    if (at >= 0) return { kind: 'collision', hash: slot.hash, leaves: slot.leaves.map((l, i) => (i === at ? leaf : l)) };
    added.count = 1;
    return { kind: 'collision', hash: slot.hash, leaves: [...slot.leaves, leaf] };
  }
  added.count = 1;
  return split(slot, leaf, shift);
}

/** A branch holding two slots whose hashes differ; they part ways at the first level where their 5 bits differ. */
function split<V>(a: Leaf<V> | Collision<V>, b: Leaf<V>, shift: number): Branch<V> {
  const bitA = bitFor(a.hash, shift);
  const bitB = bitFor(b.hash, shift);
  if (bitA === bitB) return { kind: 'branch', bitmap: bitA, slots: [split(a, b, shift + BITS_PER_LEVEL)] };
  // Slots are ordered by slot index; compare indices, not bits: 1 << 31 is negative.
  const aFirst = ((a.hash >>> shift) & LEVEL_MASK) < ((b.hash >>> shift) & LEVEL_MASK);
  return { kind: 'branch', bitmap: bitA | bitB, slots: aFirst ? [a, b] : [b, a] };
}

/** Returns the same slot when `key` is absent, null when the slot becomes empty. */
function remove<V>(slot: Slot<V>, hash: number, key: string, shift: number): Slot<V> | null {
  if (slot.kind === 'leaf') return slot.key === key ? null : slot;
  if (slot.kind === 'collision') {
    if (slot.hash !== hash) return slot;
    const kept = slot.leaves.filter((l) => l.key !== key);
    if (kept.length === slot.leaves.length) return slot;
    return kept.length === 1 ? kept[0]! : { kind: 'collision', hash, leaves: kept };
  }
  const bit = bitFor(hash, shift);
  if (!(slot.bitmap & bit)) return slot;
  const at = indexOf(slot.bitmap, bit);
  const child = slot.slots[at]!;
  const next = remove(child, hash, key, shift + BITS_PER_LEVEL);
  if (next === child) return slot;
  if (next !== null) return withSlot(slot, at, next);
  const bitmap = slot.bitmap & ~bit;
  if (bitmap === 0) return null;
  const slots = slot.slots.slice();
  slots.splice(at, 1);
  return { kind: 'branch', bitmap, slots };
}

function* leaves<V>(slot: Slot<V>): Generator<Leaf<V>> {
  if (slot.kind === 'leaf') yield slot;
  else if (slot.kind === 'collision') yield* slot.leaves;
  else for (const child of slot.slots) yield* leaves(child);
}
