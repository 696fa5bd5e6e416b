// Unit tests for the MNIST shards and the seeded PRNG their batches rest on: canonical order, pinned digests, seeded batches and input checks.

import { createHash } from 'node:crypto';
import { readFileSync } from 'node:fs';
import { createRequire } from 'node:module';
import { dirname, join } from 'node:path';
import fc from 'fast-check';
import { describe, expect, it, vi } from 'vitest';
import {
  MNIST_DIGIT_SAMPLE_COUNTS,
  MNIST_HELDOUT_SHARD_ID,
  MNIST_SAMPLE_COUNT,
  MNIST_SHARD_SIZE,
  mnistBatch,
  mnistShard,
  mnistShardDigests,
  mnistShardIds,
} from '../../replay/data/mnist.js';
import { MNIST_CLASSES, MNIST_INPUT_SIZE } from '../../replay/model/model-spec.js';
import { canonicalSeed, createPrng, deriveSeed, shuffle } from '../../replay/model/prng.js';
import { expectCode } from '../domain/fixtures.js';

const ALL_SHARD_IDS = [...mnistShardIds(), MNIST_HELDOUT_SHARD_ID];
/** Canonical order: the held-out block comes first, then the training shards. */
const CANONICAL_SHARD_IDS = [MNIST_HELDOUT_SHARD_ID, ...mnistShardIds()];
const MAX_U64 = '18446744073709551615';

/** Pinned by an independent Python re-implementation of the documented order and encoding. */
const PINNED_DIGESTS = {
  'mnist-00': '1a44a0fe4cdd4a8fc32371266e20d2d4413848da28b44713c6bc2fa64aec6d69',
  'mnist-heldout': '14dccbeabb1214e390024ac49861de8ba00b1a661f9302476b30f55f36dbb403',
};

function digitFileSample(digit: number, sample: number): Float32Array {
  const dir = dirname(createRequire(import.meta.url).resolve('mnist/package.json'));
  const { data } = JSON.parse(readFileSync(join(dir, 'src', 'digits', `${digit}.json`), 'utf8')) as { data: number[] };
  return Float32Array.from(data.slice(sample * MNIST_INPUT_SIZE, (sample + 1) * MNIST_INPUT_SIZE));
}

/** The documented canonical label sequence, rebuilt from the per-digit counts alone. */
function expectedLabels(): number[] {
  const left = [...MNIST_DIGIT_SAMPLE_COUNTS];
  const labels: number[] = [];
  while (labels.length < MNIST_SAMPLE_COUNT) {
    left.forEach((count, digit) => {
      if (count > 0) labels.push(digit);
      left[digit] = count - 1;
    });
  }
  return labels;
}

describe('seeded PRNG (replay/model/prng)', () => {
  it('matches the published SplitMix64 outputs for seed 0', () => {
    const prng = createPrng('0');
    expect([prng.nextUint32(), prng.nextUint32(), prng.nextUint32(), prng.nextUint32()]).toEqual([
      0xe220a839, 0x6e789e6a, 0x06c45d18, 0xf88bb8a8,
    ]);
  });

  it('accepts every u64 seed, ignores leading zeros and refuses anything else with INVALID_SEED', () => {
    expect(canonicalSeed(MAX_U64)).toBe(MAX_U64);
    expect(canonicalSeed('007')).toBe('7');
    expect(createPrng('007').nextUint32()).toBe(createPrng('7').nextUint32());
    for (const bad of ['', '-1', '1.5', ' 1', 'abc', '0x10', '18446744073709551616', '000000000000000000001']) {
      expectCode(() => createPrng(bad), 'INVALID_SEED');
    }
  });

  it('keeps nextInt and nextFloat in range, and refuses a bad nextInt bound', () => {
    fc.assert(
      fc.property(fc.bigInt({ min: 0n, max: 2n ** 64n - 1n }), fc.integer({ min: 1, max: 2 ** 32 }), (seed, bound) => {
        const prng = createPrng(seed.toString());
        const value = prng.nextInt(bound);
        const float = prng.nextFloat();
        return Number.isInteger(value) && value >= 0 && value < bound && float >= 0 && float < 1;
      }),
    );
    for (const bad of [0, -1, 1.5, 2 ** 32 + 1, Number.NaN]) expectCode(() => createPrng('1').nextInt(bad), 'INVALID_RANGE');
  });

  it('shuffles into a permutation without touching the input', () => {
    const items = Array.from({ length: 100 }, (_, i) => i);
    const shuffled = shuffle(items, createPrng('42'));
    expect(items).toEqual(Array.from({ length: 100 }, (_, i) => i));
    expect([...shuffled].sort((a, b) => a - b)).toEqual(items);
    expect(shuffled).not.toEqual(items);
    expect(shuffle(items, createPrng('42'))).toEqual(shuffled);
  });

  it('derives fixed, distinct u64 seeds per label', () => {
    expect(deriveSeed('42', 'epoch-0')).toBe('8932971185046416236');
    expect(deriveSeed('0042', 'epoch-0')).toBe(deriveSeed('42', 'epoch-0'));
    const derived = new Set(['a', 'b', 'epoch-0', 'epoch-1'].flatMap((label) => [deriveSeed('1', label), deriveSeed('2', label)]));
    expect(derived.size).toBe(8);
    for (const seed of derived) expect(canonicalSeed(seed)).toBe(seed);
    expectCode(() => deriveSeed('1', ''), 'INVALID_LABEL');
    expectCode(() => deriveSeed('x', 'a'), 'INVALID_SEED');
  });
});

describe('MNIST canonical order and shards', () => {
  it('has 19 training shards and one held-out shard of 500 samples that together hold every digit sample', () => {
    expect(MNIST_DIGIT_SAMPLE_COUNTS.reduce((sum, count) => sum + count, 0)).toBe(MNIST_SAMPLE_COUNT);
    expect(mnistShardIds()).toEqual(Array.from({ length: 19 }, (_, i) => `mnist-${String(i).padStart(2, '0')}`));
    const perDigit = new Array<number>(MNIST_CLASSES).fill(0);
    for (const id of ALL_SHARD_IDS) {
      const shard = mnistShard(id);
      expect(shard.sampleCount).toBe(MNIST_SHARD_SIZE);
      expect(shard.labels.length).toBe(MNIST_SHARD_SIZE);
      expect(shard.pixels.length).toBe(MNIST_SHARD_SIZE * MNIST_INPUT_SIZE);
      shard.labels.forEach((label) => perDigit[label]!++);
    }
    expect(perDigit).toEqual(MNIST_DIGIT_SAMPLE_COUNTS);
  });

  it('orders samples round-robin over digits, so the held-out shard and the early shards hold 50 of each digit', () => {
    const labels = CANONICAL_SHARD_IDS.flatMap((id) => [...mnistShard(id).labels]);
    expect(labels).toEqual(expectedLabels());
    for (const id of CANONICAL_SHARD_IDS.slice(0, 17)) {
      const perDigit = new Array<number>(MNIST_CLASSES).fill(0);
      mnistShard(id).labels.forEach((label) => perDigit[label]!++);
      expect(perDigit).toEqual(new Array(MNIST_CLASSES).fill(MNIST_SHARD_SIZE / MNIST_CLASSES));
    }
  });

  it('takes pixels from the digit files in file order', () => {
    const shard = mnistShard(MNIST_HELDOUT_SHARD_ID);
    const at = (position: number) => shard.pixels.subarray(position * MNIST_INPUT_SIZE, (position + 1) * MNIST_INPUT_SIZE);
    expect(at(0)).toEqual(digitFileSample(0, 0));
    expect(at(3)).toEqual(digitFileSample(3, 0));
    expect(at(13)).toEqual(digitFileSample(3, 1));
  });

  it('keeps every pixel in [0, 1]', () => {
    for (const id of ALL_SHARD_IDS) {
      const { pixels } = mnistShard(id);
      expect(pixels.every((value) => value >= 0 && value <= 1)).toBe(true);
    }
  });

  it('hands out copies, so a caller cannot change the shared data', () => {
    const first = mnistShard('mnist-01');
    first.pixels.fill(7);
    first.labels.fill(7);
    const again = mnistShard('mnist-01');
    expect(again.pixels.every((value) => value <= 1)).toBe(true);
    expect(again.digest).toBe(first.digest);
  });

  it('refuses an unknown shard id with UNKNOWN_SHARD', () => {
    for (const bad of ['mnist-19', 'mnist-0', 'mnist-000', 'MNIST-00', '', 'heldout']) expectCode(() => mnistShard(bad), 'UNKNOWN_SHARD');
  });
});

describe('MNIST shard digests', () => {
  it('follow the documented encoding and match the pinned values', () => {
    for (const id of ALL_SHARD_IDS) {
      const shard = mnistShard(id);
      const count = Buffer.alloc(4);
      count.writeUInt32LE(shard.sampleCount);
      const expected = createHash('sha256')
        .update(Buffer.concat([Buffer.from(`trainledger/mnist-shard/v1\0${id}\0`), count, Buffer.from(shard.pixels.buffer), Buffer.from(shard.labels)]))
        .digest('hex');
      expect(shard.digest).toBe(expected);
    }
    const byId = new Map(mnistShardDigests().map(({ shardId, digest }) => [shardId, digest]));
    for (const [id, digest] of Object.entries(PINNED_DIGESTS)) expect(byId.get(id)).toBe(digest);
  });

  it('are all distinct and listed for every shard, held-out last', () => {
    const digests = mnistShardDigests();
    expect(digests.map((entry) => entry.shardId)).toEqual(ALL_SHARD_IDS);
    expect(new Set(digests.map((entry) => entry.digest)).size).toBe(ALL_SHARD_IDS.length);
    for (const { digest } of digests) expect(digest).toMatch(/^[0-9a-f]{64}$/);
  });

  it('are the same after a fresh load of the module', async () => {
    const first = mnistShardDigests();
    vi.resetModules();
    const reloaded = await import('../../replay/data/mnist.js');
    expect(reloaded.mnistShardDigests).not.toBe(mnistShardDigests);
    expect(reloaded.mnistShardDigests()).toEqual(first);
  });
});

describe('MNIST seeded batches', () => {
  it('are the same for the same seed and differ between seeds', () => {
    const request = { shardId: 'mnist-03', batchIndex: 2, batchSize: 32, seed: '12345' };
    const first = mnistBatch(request);
    expect(mnistBatch(request)).toEqual(first);
    const other = mnistBatch({ ...request, seed: '12346' });
    expect(other.sampleIndices).not.toEqual(first.sampleIndices);
    expect(other.x).not.toEqual(first.x);
  });

  it('carry one-hot targets that match the labels and pixels of the chosen samples', () => {
    const shard = mnistShard('mnist-07');
    const batch = mnistBatch({ shardId: 'mnist-07', batchIndex: 0, batchSize: 64, seed: MAX_U64 });
    expect(batch.x.length).toBe(64 * MNIST_INPUT_SIZE);
    expect(batch.y.length).toBe(64 * MNIST_CLASSES);
    batch.sampleIndices.forEach((position, row) => {
      const targets = batch.y.subarray(row * MNIST_CLASSES, (row + 1) * MNIST_CLASSES);
      expect(targets.reduce((sum, value) => sum + value, 0)).toBe(1);
      expect(targets.indexOf(1)).toBe(batch.labels[row]);
      expect(batch.labels[row]).toBe(shard.labels[position]);
      expect(batch.x.subarray(row * MNIST_INPUT_SIZE, (row + 1) * MNIST_INPUT_SIZE)).toEqual(
        shard.pixels.subarray(position * MNIST_INPUT_SIZE, (position + 1) * MNIST_INPUT_SIZE),
      );
    });
  });

  it('cover distinct samples within one epoch of one seed', () => {
    fc.assert(
      fc.property(
        fc.bigInt({ min: 0n, max: 2n ** 64n - 1n }),
        fc.constantFrom(1, 7, 25, 50, 64, 100, 250, 500),
        fc.constantFrom(...ALL_SHARD_IDS),
        (seed, batchSize, shardId) => {
          const batches = Math.floor(MNIST_SHARD_SIZE / batchSize);
          const seen = Array.from({ length: batches }, (_, batchIndex) => mnistBatch({ shardId, batchIndex, batchSize, seed: seed.toString() }).sampleIndices).flat();
          expect(new Set(seen).size).toBe(batches * batchSize);
          expect(seen.every((position) => Number.isInteger(position) && position >= 0 && position < MNIST_SHARD_SIZE)).toBe(true);
        },
      ),
      { numRuns: 30 },
    );
  });

  it('refuses batches outside the shard with BATCH_OUT_OF_RANGE and bad seeds with INVALID_SEED', () => {
    const ok = { shardId: 'mnist-00', batchIndex: 0, batchSize: 50, seed: '1' };
    expect(mnistBatch({ ...ok, batchIndex: 9 }).sampleIndices).toHaveLength(50);
    expect(mnistBatch({ ...ok, batchSize: 500 }).sampleIndices).toHaveLength(500);
    const outOfRange = [{ batchIndex: 10 }, { batchIndex: -1 }, { batchIndex: 0.5 }, { batchSize: 0 }, { batchSize: 501 }, { batchSize: 2.5 }, { batchIndex: 2, batchSize: 200 }];
    for (const change of outOfRange) expectCode(() => mnistBatch({ ...ok, ...change }), 'BATCH_OUT_OF_RANGE');
    expectCode(() => mnistBatch({ ...ok, shardId: 'mnist-20' }), 'UNKNOWN_SHARD');
    expectCode(() => mnistBatch({ ...ok, seed: '18446744073709551616' }), 'INVALID_SEED');
    expectCode(() => mnistBatch({ ...ok, seed: 'seed' }), 'INVALID_SEED');
  });
});
