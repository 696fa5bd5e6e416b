// One entry point for untrusted gradient bodies: model-derived size limits, strict decoding by encoding, and the gradient norm.

import type { GradientEncoding } from '../../domain/assignment/assignment.state.js';
import type { ModelSpec, ParameterSet } from '../model/model-spec.js';
import { decodeDense, denseSizeBytes } from './dense-f32.js';
import { GradientDecodeError } from './gradient-decode-error.js';
import { decodeSparseLoco, maxSparseLocoSizeBytes } from './sparseloco.js';

export { GRADIENT_DECODE_CODES, type GradientDecodeCode, GradientDecodeError, isGradientDecodeCode } from './gradient-decode-error.js';

/** The domain's GRADIENT_ENCODINGS, so a new encoding there fails to compile here until it is decodable. */
export type { GradientEncoding };

/**
 * Largest body worth reading for this model and encoding: dense is exactly parameterCount x 4;
 * sparseloco is its headers plus the worst case topK = chunkSize. Check it before buffering a body.
 */
export function maxEncodedSizeBytes(model: ModelSpec, encoding: GradientEncoding): number {
  switch (encoding) {
    case 'dense-f32':
      return denseSizeBytes(model);
    case 'sparseloco':
      return maxSparseLocoSizeBytes(model);
    default:
      throw unknownEncoding(encoding);
  }
}

/** Decodes or throws GradientDecodeError; any input bytes, no other exception, no read past the body. */
export function decodeGradient(model: ModelSpec, encoding: GradientEncoding, bytes: Uint8Array): ParameterSet {
  switch (encoding) {
    case 'dense-f32':
      return decodeDense(model, bytes);
    case 'sparseloco':
      return decodeSparseLoco(model, bytes);
    default:
      throw unknownEncoding(encoding);
  }
}

/** The encoding name usually arrives from the wire too, so a bad one is a refusal, not a crash. */
function unknownEncoding(encoding: never): GradientDecodeError {
  return new GradientDecodeError('GRADIENT_UNKNOWN_ENCODING', `unknown gradient encoding ${JSON.stringify(String(encoding))}`);
}

/** Euclidean norm over all tensors, summed in float64 so large models do not lose precision. */
export function gradientL2Norm(grads: ParameterSet): number {
  let sumOfSquares = 0;
  for (const values of grads) {
    for (const value of values) sumOfSquares += value * value;
  }
  return Math.sqrt(sumOfSquares);
}
