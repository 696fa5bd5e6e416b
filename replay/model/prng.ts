// Seeded PRNG for replayable training: SplitMix64 streams, unbiased integers, Fisher–Yates shuffles and derived seeds.

// Algorithm, so anyone can re-implement it bit for bit:
// - A seed is an unsigned 64-bit integer written in decimal (1 to 20 ASCII digits, value < 2^64).
//   Leading zeros are allowed and ignored: "007" and "7" are the same seed.
// - SplitMix64 (Steele, Lea & Flood 2014), all arithmetic mod 2^64: the state starts at the seed;
//   each draw does state += 0x9E3779B97F4A7C15; z = state;
//   z = (z ^ (z >> 30)) * 0xBF58476D1CE4E5B9; z = (z ^ (z >> 27)) * 0x94D049BB133111EB; z ^= z >> 31;
//   and outputs z. Seed 0 gives 0xE220A8397B1DCDAF, 0x6E789E6AA1B965F4, 0x06C45D188009454F, ...
// - nextUint32: one draw, its upper 32 bits.
// - nextFloat: one draw, its upper 53 bits divided by 2^53, so a value in [0, 1).
// - nextInt(n), n a whole number in [1, 2^32]: rejection sampling over nextUint32; with
//   limit = floor(2^32 / n) * n, draw x = nextUint32() until x < limit, then return x mod n.
// - shuffle (Durstenfeld's Fisher–Yates): for i = length-1 down to 1, j = nextInt(i + 1), swap items i and j.
// - deriveSeed(seed, label): SHA-256 over UTF-8("trainledger/prng-derive/v1") ‖ 0x00 ‖
//   UTF-8(seed as canonical decimal, no leading zeros) ‖ 0x00 ‖ UTF-8(label); the first 8 bytes of
//   the hash, read big-endian, as canonical decimal. The NUL separators keep (seed, label) pairs unambiguous.

import { createHash } from 'node:crypto';
import { DomainError } from '../../domain/errors.js';

const UINT64_MASK = (1n << 64n) - 1n;
const GOLDEN_GAMMA = 0x9e3779b97f4a7c15n;
const MIX_MULTIPLIER_1 = 0xbf58476d1ce4e5b9n;
const MIX_MULTIPLIER_2 = 0x94d049bb133111ebn;

/** 2^64 - 1 has 20 decimal digits; the cap also bounds how much text a seed check reads. */
const MAX_SEED_DIGITS = 20;
const SEED_PATTERN = /^[0-9]+$/;
const UINT32_RANGE = 2 ** 32;
const FLOAT_MANTISSA_BITS = 53;
const MAX_LABEL_CHARS = 256;
const DERIVE_DOMAIN = 'trainledger/prng-derive/v1';

export type Prng = {
  /** A uniform whole number in [0, 2^32). */
  nextUint32(): number;
  /** A uniform float in [0, 1) with 53 random bits. */
  nextFloat(): number;
  /** A uniform whole number in [0, maxExclusive), without modulo bias; maxExclusive in [1, 2^32]. */
  nextInt(maxExclusive: number): number;
};

/** Validates a decimal u64 seed and returns its canonical spelling (no leading zeros). */
export function canonicalSeed(seed: string): string {
  return parseSeed(seed).toString();
}

function parseSeed(seed: unknown): bigint {
  if (typeof seed === 'string' && seed.length <= MAX_SEED_DIGITS && SEED_PATTERN.test(seed)) {
    const value = BigInt(seed);
    if (value <= UINT64_MASK) return value;
  }
  throw new DomainError('INVALID_SEED', `a seed must be an unsigned 64-bit integer written as 1 to ${MAX_SEED_DIGITS} decimal digits; got ${describe(seed)}`, {
    field: 'seed',
  });
}

function describe(value: unknown): string {
  return typeof value === 'string' ? JSON.stringify(value.slice(0, 40)) : typeof value;
}

export function createPrng(seed: string): Prng {
  let state = parseSeed(seed);
  const nextUint64 = (): bigint => {
    state = (state + GOLDEN_GAMMA) & UINT64_MASK;
    let z = state;
    z = ((z ^ (z >> 30n)) * MIX_MULTIPLIER_1) & UINT64_MASK;
    z = ((z ^ (z >> 27n)) * MIX_MULTIPLIER_2) & UINT64_MASK;
    return z ^ (z >> 31n);
  };
  const nextUint32 = (): number => Number(nextUint64() >> 32n);
  return {
    nextUint32,
    nextFloat: () => Number(nextUint64() >> BigInt(64 - FLOAT_MANTISSA_BITS)) / 2 ** FLOAT_MANTISSA_BITS,
    nextInt(maxExclusive: number): number {
      if (!Number.isSafeInteger(maxExclusive) || maxExclusive < 1 || maxExclusive > UINT32_RANGE) {
        throw new DomainError('INVALID_RANGE', `nextInt needs a whole number from 1 to 2^32; got ${String(maxExclusive)}`, { field: 'maxExclusive' });
      }
      // Values at or past the last whole multiple of maxExclusive would favour small results.
      const limit = Math.floor(UINT32_RANGE / maxExclusive) * maxExclusive;
      for (;;) {
        const x = nextUint32();
        if (x < limit) return x % maxExclusive;
      }
    },
  };
}

/** A shuffled copy of `items` (Durstenfeld's Fisher–Yates, high index first); the input is left as it was. */
export function shuffle<T>(items: readonly T[], prng: Prng): T[] {
  const result = items.slice();
  for (let i = result.length - 1; i > 0; i--) {
    const j = prng.nextInt(i + 1);
    const held = result[i] as T;
    result[i] = result[j] as T;
    result[j] = held;
  }
  return result;
}

/** An independent seed for the stream named `label` (e.g. "epoch-3/mnist-07"), derived by hashing. */
export function deriveSeed(seed: string, label: string): string {
  const canonical = canonicalSeed(seed);
  if (typeof label !== 'string' || label.length === 0 || label.length > MAX_LABEL_CHARS) {
    throw new DomainError('INVALID_LABEL', `a seed label must be text of 1 to ${MAX_LABEL_CHARS} characters`, { field: 'label' });
  }
  const hash = createHash('sha256').update(DERIVE_DOMAIN).update('\0').update(canonical).update('\0').update(label, 'utf8').digest();
  return hash.readBigUInt64BE(0).toString();
}
