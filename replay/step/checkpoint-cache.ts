// Decoded checkpoints by content digest, per blob store: read, hashed and decoded once, then shared read-only by every step that starts from them.

import { decodeCheckpoint, sha256Hex } from '../model/checkpoint.js';
import type { ParameterSet } from '../model/model-spec.js';
import type { BlobStore } from '../ports/blob-store.js';
import type { StepDefinition } from '../graphs/reference-steps.js';
import { ReplayError } from '../replay-error.js';

/** Checkpoints kept per blob store, least recently used evicted first: 16 MLP checkpoints are 3.3 MB. */
export const MAX_CACHED_CHECKPOINTS = 16;

/**
 * Why caching is sound: a blob is named by the SHA-256 of its bytes, so the bytes under a digest
 * never change, and the decoded parameters are a pure function of (model, bytes). On first load
 * the bytes are hashed here against the digest asked for (whatever the store already checked),
 * decoded strictly (size, every value finite), and only then cached under (model, digest). A
 * digest that failed either check is never cached: the next load reads and checks again.
 *
 * The cache is per store, not per process: a store that never held a digest still answers
 * RECIPE_CHECKPOINT_MISSING for it, whatever another store holds.
 */
const caches = new WeakMap<BlobStore, Map<string, Promise<ParameterSet>>>();

/**
 * The checkpoint's parameters, shared by every caller: read-only (onnxruntime reads its inputs and
 * never writes them; nothing here writes them either). Copy before changing one.
 */
export async function loadCheckpoint(recipe: Readonly<{ checkpointDigest: string }>, step: StepDefinition, blobs: BlobStore): Promise<ParameterSet> {
  let cache = caches.get(blobs);
  if (!cache) {
    cache = new Map();
    caches.set(blobs, cache);
  }
  const key = `${step.model.name}:${recipe.checkpointDigest}`;
  const cached = cache.get(key);
  if (cached) {
    // Most recently used moves to the back of the Map's order.
    cache.delete(key);
    cache.set(key, cached);
    return cached;
  }
  const loading = readVerified(recipe.checkpointDigest, step, blobs);
  cache.set(key, loading);
  if (cache.size > MAX_CACHED_CHECKPOINTS) cache.delete(cache.keys().next().value!);
  // A failed load is not remembered: a checkpoint published later, or a store repaired, is read again.
  loading.catch(() => {
    if (cache.get(key) === loading) cache.delete(key);
  });
  return loading;
}

async function readVerified(digest: string, step: StepDefinition, blobs: BlobStore): Promise<ParameterSet> {
  const bytes = await blobs.get(digest);
  if (!bytes) throw new ReplayError('RECIPE_CHECKPOINT_MISSING', `checkpoint ${digest} is not in the blob store; publish its bytes first`);
  if (sha256Hex(bytes) !== digest) throw new ReplayError('RECIPE_CHECKPOINT_INVALID', `checkpoint ${digest}: the blob store returned bytes that do not hash to it`);
  try {
    return decodeCheckpoint(step.model, bytes);
  } catch (error) {
    throw new ReplayError('RECIPE_CHECKPOINT_INVALID', `checkpoint ${digest} is not a ${step.model.name} checkpoint: ${error instanceof Error ? error.message : String(error)}`);
  }
}
