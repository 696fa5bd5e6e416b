// Property tests of gradient decoding: any bytes decode to finite, model-shaped tensors or a listed GradientDecodeError.

import fc from 'fast-check';
import { describe, expect, it } from 'vitest';
import { GRADIENT_ENCODINGS, type GradientEncoding } from '../../domain/assignment/assignment.state.js';
import {
  decodeGradient,
  type GradientDecodeCode,
  GradientDecodeError,
  isGradientDecodeCode,
  maxEncodedSizeBytes,
} from '../../replay/encoding/decode-gradient.js';
import { encodeDense } from '../../replay/encoding/dense-f32.js';
import { encodeSparseLoco, keptElementCount, type SparseLocoOptions, sparseLocoSizeBytes } from '../../replay/encoding/sparseloco.js';
import { elementCount, MLP, type ModelSpec, type ParameterSet, SOFTMAX_REGRESSION } from '../../replay/model/model-spec.js';
import { mulberry32 } from '../support/mulberry32.js';

const NUM_RUNS = Number(process.env.PROPERTY_RUNS ?? 150);


function seededGradient(model: ModelSpec, seed: number): Float32Array[] {
  const next = mulberry32(seed);
  return model.parameters.map((tensor) =>
    Float32Array.from({ length: elementCount(tensor) }, () => (next() < 0.2 ? Math.round(next() * 4 - 2) : (next() * 2 - 1) * 10 ** (next() * 8 - 4))),
  );
}

type Outcome = 'ok' | GradientDecodeCode;

/** Decodes; success must give finite, model-shaped tensors, failure must be a listed GradientDecodeError. */
function decodeOutcome(model: ModelSpec, encoding: GradientEncoding, bytes: Uint8Array): Outcome {
  let decoded: ParameterSet;
  try {
    decoded = decodeGradient(model, encoding, bytes);
  } catch (error) {
    if (!(error instanceof GradientDecodeError)) throw error;
    if (!isGradientDecodeCode(error.code)) throw new Error(`unlisted code ${String(error.code)}`);
    return error.code;
  }
  expect(decoded.length).toBe(model.parameters.length);
  model.parameters.forEach((tensor, i) => {
    const values = decoded[i]!;
    expect(values).toBeInstanceOf(Float32Array);
    expect(values.length).toBe(elementCount(tensor));
    expect(values.every(Number.isFinite)).toBe(true);
  });
  return 'ok';
}

type CorpusEntry = Readonly<{ label: string; model: ModelSpec; encoding: GradientEncoding; bytes: Uint8Array }>;

const SPARSE_OPTIONS: readonly SparseLocoOptions[] = [
  { chunkSize: 4096, topK: 32 },
  { chunkSize: 1000, topK: 17 },
  { chunkSize: 7, topK: 3 },
  { chunkSize: 1, topK: 1 },
  { chunkSize: 4096, topK: 4096 },
  { chunkSize: 333, topK: 0 },
];

/** Valid bodies to truncate and corrupt, built once: encoding the MLP is the slow part. */
const CORPUS: readonly CorpusEntry[] = [SOFTMAX_REGRESSION, MLP].flatMap((model, m) => {
  const grads = seededGradient(model, 1000 + m);
  return [
    { label: `${model.name} dense`, model, encoding: 'dense-f32' as const, bytes: encodeDense(model, grads) },
    ...SPARSE_OPTIONS.map((options) => ({
      label: `${model.name} sparseloco ${options.chunkSize}/${options.topK}`,
      model,
      encoding: 'sparseloco' as const,
      bytes: encodeSparseLoco(model, grads, options),
    })),
  ];
});

const corpusArb = fc.constantFrom(...CORPUS);
const modelArb = fc.constantFrom(SOFTMAX_REGRESSION, MLP);
const encodingArb = fc.constantFrom(...GRADIENT_ENCODINGS);
const optionsArb: fc.Arbitrary<SparseLocoOptions> = fc
  .oneof(fc.constantFrom(1, 2, 3, 7, 64, 4095, 4096), fc.integer({ min: 1, max: 4096 }))
  .chain((chunkSize) => fc.oneof(fc.integer({ min: 0, max: Math.min(chunkSize, 8) }), fc.integer({ min: 0, max: chunkSize })).map((topK) => ({ chunkSize, topK })));

/** A body whose headers are right for the model but whose payloads are random: reaches the index and code checks. */
const plausibleSparseArb = fc
  .tuple(optionsArb, fc.integer({ min: -2, max: 2 }), fc.integer())
  .map(([options, sizeDeltaBytes, seed]) => {
    const model = SOFTMAX_REGRESSION;
    const next = mulberry32(seed);
    const bytes = new Uint8Array(Math.max(1, sparseLocoSizeBytes(model, options) + sizeDeltaBytes));
    bytes.forEach((_, i) => (bytes[i] = Math.floor(next() * 256)));
    const view = new DataView(bytes.buffer);
    bytes.set([0x54, 0x4c, 0x53, 0x4c, 1, model.parameters.length, 0].slice(0, bytes.length));
    let at = 7;
    for (const tensor of model.parameters) {
      if (at + 28 > bytes.length) break;
      view.setUint32(at, elementCount(tensor), true);
      view.setUint16(at + 4, options.chunkSize, true);
      view.setUint16(at + 6, options.topK, true);
      for (let level = 0; level < 5; level++) view.setFloat32(at + 8 + 4 * level, next() * 2 - 1, true);
      const kept = keptElementCount(elementCount(tensor), options.chunkSize, options.topK);
      at += 28 + Math.ceil(kept / 2) * 3 + Math.ceil(kept / 4);
    }
    return bytes;
  });

describe('property: strict gradient decoding', () => {
  it('random bytes decode or are refused with a listed code, nothing else', () => {
    fc.assert(
      fc.property(modelArb, encodingArb, fc.uint8Array({ maxLength: 600 }), (model, encoding, bytes) => {
        decodeOutcome(model, encoding, bytes);
      }),
      { numRuns: NUM_RUNS },
    );
  });

  it('random payloads behind well-formed sparseloco headers decode or are refused with a listed code', () => {
    const seen = new Set<Outcome>();
    fc.assert(
      fc.property(plausibleSparseArb, (bytes) => {
        seen.add(decodeOutcome(SOFTMAX_REGRESSION, 'sparseloco', bytes));
      }),
      { numRuns: NUM_RUNS * 2 },
    );
    expect(seen.size).toBeGreaterThan(2);
  });

  it('every strict prefix of a valid body is refused as empty or truncated', () => {
    fc.assert(
      fc.property(corpusArb, fc.nat(), ({ model, encoding, bytes }, cut) => {
        const lengthBytes = cut % bytes.length;
        expect(decodeOutcome(model, encoding, bytes.subarray(0, lengthBytes))).toBe(lengthBytes === 0 ? 'GRADIENT_EMPTY' : 'GRADIENT_TRUNCATED');
      }),
      { numRuns: NUM_RUNS },
    );
  });

  it('a valid body with bytes appended is refused as trailing or too large', () => {
    fc.assert(
      fc.property(corpusArb, fc.uint8Array({ minLength: 1, maxLength: 16 }), ({ model, encoding, bytes }, extra) => {
        const extended = new Uint8Array(bytes.length + extra.length);
        extended.set(bytes);
        extended.set(extra, bytes.length);
        const expected = extended.length > maxEncodedSizeBytes(model, encoding) ? 'GRADIENT_TOO_LARGE' : 'GRADIENT_TRAILING_BYTES';
        expect(decodeOutcome(model, encoding, extended)).toBe(expected);
      }),
      { numRuns: NUM_RUNS },
    );
  });

  it('a single corrupted byte of a valid body decodes or is refused with a listed code', () => {
    fc.assert(
      fc.property(corpusArb, fc.nat(), fc.integer({ min: 1, max: 255 }), ({ model, encoding, bytes }, position, mask) => {
        const corrupt = bytes.slice();
        const at = position % corrupt.length;
        corrupt[at]! ^= mask;
        decodeOutcome(model, encoding, corrupt);
      }),
      { numRuns: NUM_RUNS * 2 },
    );
  });

  it('a corrupted byte in the early header fields gets the matching code', () => {
    const sparse = CORPUS.filter((entry) => entry.encoding === 'sparseloco');
    fc.assert(
      fc.property(fc.constantFrom(...sparse), fc.integer({ min: 0, max: 6 }), fc.integer({ min: 1, max: 255 }), ({ model, bytes }, at, mask) => {
        const corrupt = bytes.slice();
        corrupt[at]! ^= mask;
        const expected = at < 4 ? 'GRADIENT_BAD_MAGIC' : at === 4 ? 'GRADIENT_BAD_VERSION' : 'GRADIENT_SHAPE_MISMATCH';
        expect(decodeOutcome(model, 'sparseloco', corrupt)).toBe(expected);
      }),
      { numRuns: NUM_RUNS },
    );
  });
});

describe('property: round trips', () => {
  /** Any finite float32 (including -0, subnormals and ±max) at random positions of a zero gradient. */
  const gradientArb = fc
    .array(fc.tuple(fc.nat(), fc.nat(), fc.float({ noNaN: true, noDefaultInfinity: true })), { maxLength: 64 })
    .chain((writes) => fc.integer().map((seed) => ({ writes, seed })))
    .map(({ writes, seed }) => {
      const grads = seed % 2 === 0 ? seededGradient(SOFTMAX_REGRESSION, seed) : SOFTMAX_REGRESSION.parameters.map((t) => new Float32Array(elementCount(t)));
      for (const [tensor, position, value] of writes) {
        const values = grads[tensor % grads.length]!;
        values[position % values.length] = value;
      }
      return grads;
    });

  it('dense-f32 is bit-exact for any finite float32 values', () => {
    fc.assert(
      fc.property(gradientArb, (grads) => {
        const decoded = decodeGradient(SOFTMAX_REGRESSION, 'dense-f32', encodeDense(SOFTMAX_REGRESSION, grads));
        decoded.forEach((values, i) => {
          const bits = (v: Float32Array): Buffer => Buffer.from(v.buffer, v.byteOffset, v.byteLength);
          expect(bits(values).equals(bits(grads[i]!))).toBe(true);
        });
      }),
      { numRuns: NUM_RUNS },
    );
  });

  it('sparseloco decodes any finite gradient to finite values within the kept range, at the layout size', () => {
    fc.assert(
      fc.property(gradientArb, optionsArb, (grads, options) => {
        const bytes = encodeSparseLoco(SOFTMAX_REGRESSION, grads, options);
        expect(bytes.length).toBe(sparseLocoSizeBytes(SOFTMAX_REGRESSION, options));
        expect(bytes.length).toBeLessThanOrEqual(maxEncodedSizeBytes(SOFTMAX_REGRESSION, 'sparseloco'));
        expect(decodeOutcome(SOFTMAX_REGRESSION, 'sparseloco', bytes)).toBe('ok');
        const decoded = decodeGradient(SOFTMAX_REGRESSION, 'sparseloco', bytes);
        decoded.forEach((values, i) => {
          const maxMagnitude = grads[i]!.reduce((max, value) => Math.max(max, Math.abs(value)), 0);
          const nonZero = values.reduce((count, value) => count + (value === 0 ? 0 : 1), 0);
          expect(values.every((value) => Math.abs(value) <= maxMagnitude * (1 + 2 ** -20))).toBe(true);
          expect(nonZero).toBeLessThanOrEqual(keptElementCount(values.length, options.chunkSize, options.topK));
        });
      }),
      { numRuns: NUM_RUNS },
    );
  });
});
