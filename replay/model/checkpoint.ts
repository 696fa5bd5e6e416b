// Checkpoints: a model's parameters as dense float32 bytes, their SHA-256 digest, and a seeded initialisation.

import { createHash } from 'node:crypto';
import { assertGradientFitsModel, decodeDense, encodeDense, LITTLE_ENDIAN_HOST } from '../encoding/dense-f32.js';
import { createPrng } from './prng.js';
import { elementCount, type ModelSpec, type ParameterSet } from './model-spec.js';

/** A checkpoint is laid out exactly like a dense gradient: the parameters in model order, float32 little-endian. */
export function encodeCheckpoint(model: ModelSpec, parameters: ParameterSet): Uint8Array {
  return encodeDense(model, parameters);
}

/** Strict: wrong size or a non-finite value is refused (GradientDecodeError codes), as for gradients. */
export function decodeCheckpoint(model: ModelSpec, bytes: Uint8Array): ParameterSet {
  return decodeDense(model, bytes);
}

export function checkpointDigest(model: ModelSpec, parameters: ParameterSet): string {
  return denseDigest(model, parameters);
}

/**
 * sha256Hex(encodeDense(model, tensors)) without building the body: the same checks (shapes,
 * every value finite), then each tensor's memory goes into the hash as it is, which on a
 * little-endian host is exactly the body's bytes in order. A checkpoint's digest and a dense
 * gradient's digest are both this.
 */
export function denseDigest(model: ModelSpec, tensors: ParameterSet): string {
  if (!LITTLE_ENDIAN_HOST) return sha256Hex(encodeDense(model, tensors));
  assertGradientFitsModel(model, tensors);
  const hash = createHash('sha256');
  for (const values of tensors) hash.update(new Uint8Array(values.buffer, values.byteOffset, values.byteLength));
  return hash.digest('hex');
}

export function sha256Hex(bytes: Uint8Array): string {
  return createHash('sha256').update(bytes).digest('hex');
}

/**
 * Glorot-uniform weights and zero biases from a seed, so a run's initial checkpoint is
 * reproducible from (model, seed) alone. A tensor with one dimension is a bias.
 */
export function initialParameters(model: ModelSpec, seed: string): ParameterSet {
  const prng = createPrng(seed);
  return model.parameters.map((tensor) => {
    const values = new Float32Array(elementCount(tensor));
    if (tensor.dims.length === 1) return values;
    const [fanIn = 1, fanOut = 1] = tensor.dims;
    const limit = Math.sqrt(6 / (fanIn + fanOut));
    for (let i = 0; i < values.length; i += 1) values[i] = (prng.nextFloat() * 2 - 1) * limit;
    return values;
  });
}
