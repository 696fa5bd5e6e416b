// Unit tests of the gradient encodings: bit-exact dense, SparseLoCo layout and top-k, and every decode refusal code.

import { describe, expect, it } from 'vitest';
import { InvariantViolation } from '../../domain/errors.js';
import { type GradientEncoding, GRADIENT_ENCODINGS } from '../../domain/assignment/assignment.state.js';
import {
  decodeGradient,
  GRADIENT_DECODE_CODES,
  type GradientDecodeCode,
  GradientDecodeError,
  gradientL2Norm,
  maxEncodedSizeBytes,
} from '../../replay/encoding/decode-gradient.js';
import { decodeDense, encodeDense } from '../../replay/encoding/dense-f32.js';
import { decodeSparseLoco, encodeSparseLoco, sparseLocoSizeBytes } from '../../replay/encoding/sparseloco.js';
import { elementCount, MLP, type ModelSpec, type ParameterSet, parameterCount, SOFTMAX_REGRESSION } from '../../replay/model/model-spec.js';
import { mulberry32 } from '../support/mulberry32.js';

const FLOAT32_MAX = 3.4028234663852886e38;
const SMALLEST_SUBNORMAL = 2 ** -149;
const LARGEST_SUBNORMAL = 2 ** -126 - 2 ** -149;

// ---------------------------------------------------------------- helpers


/** A gradient with spread magnitudes, exact zeros and repeated magnitudes, so ties get exercised. */
function randomGradient(model: ModelSpec, seed: number): Float32Array[] {
  const next = mulberry32(seed);
  return model.parameters.map((tensor) =>
    Float32Array.from({ length: elementCount(tensor) }, () => {
      const pick = next();
      if (pick < 0.1) return 0;
      if (pick < 0.3) return Math.round(next() * 8 - 4) * 0.25;
      return (next() * 2 - 1) * 10 ** (next() * 4 - 3);
    }),
  );
}

function expectDecodeError(decode: () => unknown, code: GradientDecodeCode): GradientDecodeError {
  try {
    decode();
  } catch (error) {
    expect(error).toBeInstanceOf(GradientDecodeError);
    const decodeError = error as GradientDecodeError;
    expect(decodeError.code, decodeError.detail).toBe(code);
    expect(decodeError.detail.length).toBeGreaterThan(0);
    return decodeError;
  }
  throw new Error(`expected ${code}, decode succeeded`);
}

/** Bit-for-bit equality (tells -0 from 0); one assertion, because per-element expects are slow on 50k values. */
function expectSameBits(actual: Float32Array, expected: Float32Array): void {
  const bits = (values: Float32Array): Buffer => Buffer.from(values.buffer, values.byteOffset, values.byteLength);
  expect(actual.length).toBe(expected.length);
  expect(bits(actual).equals(bits(expected))).toBe(true);
}

function withByte(bytes: Uint8Array, extra: number): Uint8Array {
  const out = new Uint8Array(bytes.length + 1);
  out.set(bytes);
  out[bytes.length] = extra;
  return out;
}

/** Independent top-k: the k-th largest magnitude is the threshold; ties at it go to the lowest indices. */
function expectedKeptLocals(chunk: Float32Array, topK: number): number[] {
  const keep = Math.min(topK, chunk.length);
  if (keep === 0) return [];
  const magnitudes = Array.from(chunk, Math.abs).sort((a, b) => b - a);
  const threshold = magnitudes[keep - 1]!;
  const above = [...chunk.keys()].filter((i) => Math.abs(chunk[i]!) > threshold);
  const atThreshold = [...chunk.keys()].filter((i) => Math.abs(chunk[i]!) === threshold);
  return [...above, ...atThreshold.slice(0, keep - above.length)].sort((a, b) => a - b);
}

type HandTensor = {
  elements: number;
  chunkSize: number;
  topK: number;
  shift: number;
  lookup: readonly number[];
  /** Chunk-relative indices, chunk after chunk, exactly as they go on the wire. */
  indices: readonly number[];
  codes: readonly number[];
  indexPadding?: number;
  codePadding?: number;
};

type HandBody = { magic?: string; version?: number; tensorCount?: number; tensors: HandTensor[] };

/** Writes the documented layout by hand, independently of the encoder. */
function handMadeBody(body: HandBody): Uint8Array {
  const bytes: number[] = [...Buffer.from(body.magic ?? 'TLSL', 'latin1'), body.version ?? 1];
  const u16 = (value: number): void => void bytes.push(value & 0xff, value >> 8);
  const u32 = (value: number): void => void bytes.push(...new Uint8Array(Uint32Array.of(value).buffer));
  const f32 = (value: number): void => void bytes.push(...new Uint8Array(Float32Array.of(value).buffer));
  u16(body.tensorCount ?? body.tensors.length);
  for (const tensor of body.tensors) {
    u32(tensor.elements);
    u16(tensor.chunkSize);
    u16(tensor.topK);
    f32(tensor.shift);
    tensor.lookup.forEach(f32);
    const indices = [...tensor.indices];
    if (indices.length % 2 === 1) indices.push(tensor.indexPadding ?? 0);
    for (let i = 0; i < indices.length; i += 2) {
      const pair = indices[i]! | (indices[i + 1]! << 12);
      bytes.push(pair & 0xff, (pair >> 8) & 0xff, (pair >> 16) & 0xff);
    }
    const codeBytes = new Array<number>(Math.ceil(tensor.codes.length / 4)).fill(0);
    tensor.codes.forEach((code, i) => (codeBytes[i >> 2]! |= code << ((i % 4) * 2)));
    if (tensor.codes.length % 4 !== 0) codeBytes[codeBytes.length - 1]! |= (tensor.codePadding ?? 0) << ((tensor.codes.length % 4) * 2);
    bytes.push(...codeBytes);
  }
  return Uint8Array.from(bytes);
}

type ParsedTensor = { chunkSize: number; topK: number; shift: number; lookup: number[]; indices: number[]; codes: number[] };

/** Reads the documented layout by hand, independently of the decoder. */
function parseBody(model: ModelSpec, bytes: Uint8Array): ParsedTensor[] {
  const view = new DataView(bytes.buffer, bytes.byteOffset, bytes.byteLength);
  expect(Buffer.from(bytes.subarray(0, 4)).toString('latin1')).toBe('TLSL');
  expect(view.getUint8(4)).toBe(1);
  expect(view.getUint16(5, true)).toBe(model.parameters.length);
  let at = 7;
  const parsed = model.parameters.map((tensor) => {
    const elements = view.getUint32(at, true);
    expect(elements).toBe(elementCount(tensor));
    const chunkSize = view.getUint16(at + 4, true);
    const topK = view.getUint16(at + 6, true);
    const shift = view.getFloat32(at + 8, true);
    const lookup = [0, 1, 2, 3].map((i) => view.getFloat32(at + 12 + 4 * i, true));
    at += 28;
    let kept = 0;
    for (let start = 0; start < elements; start += chunkSize) kept += Math.min(topK, elements - start);
    const indices = Array.from({ length: kept }, (_, i) => {
      const pair = bytes[at + 3 * (i >> 1)]! | (bytes[at + 3 * (i >> 1) + 1]! << 8) | (bytes[at + 3 * (i >> 1) + 2]! << 16);
      return i % 2 === 0 ? pair & 0xfff : pair >> 12;
    });
    at += Math.ceil(kept / 2) * 3;
    const codes = Array.from({ length: kept }, (_, i) => (bytes[at + (i >> 2)]! >> ((i % 4) * 2)) & 3);
    at += Math.ceil(kept / 4);
    return { chunkSize, topK, shift, lookup, indices, codes };
  });
  expect(at).toBe(bytes.length);
  return parsed;
}

/** Body size from the documented layout alone. */
function layoutSizeBytes(model: ModelSpec, chunkSize: number, topK: number): number {
  return model.parameters.reduce((sum, tensor) => {
    const elements = elementCount(tensor);
    let kept = 0;
    for (let start = 0; start < elements; start += chunkSize) kept += Math.min(topK, elements - start);
    return sum + 28 + Math.ceil(kept / 2) * 3 + Math.ceil(kept / 4);
  }, 7);
}

/** A correct one-tensor-pair body for softmax regression; tests break one field at a time. */
function softmaxBody(overrides: { W?: Partial<HandTensor>; b?: Partial<HandTensor> } & Omit<HandBody, 'tensors'> = {}): Uint8Array {
  const { W, b, ...rest } = overrides;
  const lookup = [-1, -0.5, 0.5, 1];
  return handMadeBody({
    ...rest,
    tensors: [
      { elements: 7840, chunkSize: 4096, topK: 2, shift: 0, lookup, indices: [5, 4095, 0, 3743], codes: [0, 1, 2, 3], ...W },
      { elements: 10, chunkSize: 4096, topK: 3, shift: 0.25, lookup, indices: [1, 2, 9], codes: [3, 0, 2], ...b },
    ],
  });
}

// ---------------------------------------------------------------- dense-f32

describe('dense-f32', () => {
  it('round-trips bit-exactly, including -0, subnormals and the float32 extremes', () => {
    const grads = randomGradient(SOFTMAX_REGRESSION, 1);
    const specials = [-0, 0, SMALLEST_SUBNORMAL, -SMALLEST_SUBNORMAL, LARGEST_SUBNORMAL, 2 ** -126, FLOAT32_MAX, -FLOAT32_MAX, 1, -1];
    grads[0]!.set(specials, 0);
    grads[1]!.set(specials.slice(0, 10), 0);
    const decoded = decodeDense(SOFTMAX_REGRESSION, encodeDense(SOFTMAX_REGRESSION, grads));
    decoded.forEach((values, i) => expectSameBits(values, grads[i]!));
    expect(Object.is(decoded[0]![0], -0)).toBe(true);
    expect(decoded[0]![2]).toBe(SMALLEST_SUBNORMAL);
  });

  it('is the float32 values in model order, little-endian, nothing else', () => {
    const grads = SOFTMAX_REGRESSION.parameters.map((tensor) => new Float32Array(elementCount(tensor)));
    grads[0]![0] = 1;
    grads[1]![9] = -2;
    const bytes = encodeDense(SOFTMAX_REGRESSION, grads);
    expect(bytes.length).toBe(parameterCount(SOFTMAX_REGRESSION) * 4);
    expect([...bytes.subarray(0, 4)]).toStrictEqual([0x00, 0x00, 0x80, 0x3f]);
    expect([...bytes.subarray(bytes.length - 4)]).toStrictEqual([0x00, 0x00, 0x00, 0xc0]);
  });

  it('decodes a body that is a view into a larger buffer', () => {
    const bytes = encodeDense(MLP, randomGradient(MLP, 2));
    const padded = new Uint8Array(bytes.length + 7);
    padded.set(bytes, 3);
    const decoded = decodeDense(MLP, padded.subarray(3, 3 + bytes.length));
    expect(Buffer.from(encodeDense(MLP, decoded)).equals(bytes)).toBe(true);
  });

  it.each([Number.NaN, Number.POSITIVE_INFINITY, Number.NEGATIVE_INFINITY])('refuses %s at the first, a middle and the last position of every tensor', (bad) => {
    const bytes = encodeDense(MLP, randomGradient(MLP, 3));
    const tensorStarts = [0, 784 * 64, 784 * 64 + 64, 784 * 64 + 64 + 640, parameterCount(MLP)];
    const positions = tensorStarts.slice(0, -1).flatMap((start, i) => [start, start + 1, tensorStarts[i + 1]! - 1]);
    for (const position of positions) {
      const corrupt = bytes.slice();
      new DataView(corrupt.buffer).setFloat32(position * 4, bad, true);
      expectDecodeError(() => decodeDense(MLP, corrupt), 'GRADIENT_NON_FINITE');
    }
  });

  it('refuses any length but parameterCount x 4: empty, one byte short, one byte over', () => {
    const bytes = encodeDense(SOFTMAX_REGRESSION, randomGradient(SOFTMAX_REGRESSION, 4));
    expectDecodeError(() => decodeDense(SOFTMAX_REGRESSION, new Uint8Array(0)), 'GRADIENT_EMPTY');
    expectDecodeError(() => decodeDense(SOFTMAX_REGRESSION, bytes.subarray(0, bytes.length - 1)), 'GRADIENT_TRUNCATED');
    expectDecodeError(() => decodeDense(SOFTMAX_REGRESSION, bytes.subarray(0, bytes.length - 4)), 'GRADIENT_TRUNCATED');
    expectDecodeError(() => decodeDense(SOFTMAX_REGRESSION, withByte(bytes, 0)), 'GRADIENT_TOO_LARGE');
    expectDecodeError(() => decodeDense(SOFTMAX_REGRESSION, encodeDense(MLP, randomGradient(MLP, 4))), 'GRADIENT_TOO_LARGE');
  });

  it('refuses, as a bug, to encode a gradient that does not fit the model or is not finite', () => {
    expect(() => encodeDense(MLP, randomGradient(SOFTMAX_REGRESSION, 5))).toThrow(InvariantViolation);
    const grads = randomGradient(SOFTMAX_REGRESSION, 5);
    grads[1]![3] = Number.NaN;
    expect(() => encodeDense(SOFTMAX_REGRESSION, grads)).toThrow(InvariantViolation);
  });
});

// ---------------------------------------------------------------- sparseloco

function expectTopKAndNearestLevels(model: ModelSpec, grads: ParameterSet, chunkSize: number, topK: number): void {
  const bytes = encodeSparseLoco(model, grads, { chunkSize, topK });
  expect(bytes.length).toBe(layoutSizeBytes(model, chunkSize, topK));
  expect(bytes.length).toBe(sparseLocoSizeBytes(model, { chunkSize, topK }));
  const parsed = parseBody(model, bytes);
  const decoded = decodeSparseLoco(model, bytes);
  grads.forEach((values, t) => {
    const { indices, codes, shift, lookup } = parsed[t]!;
    expect([parsed[t]!.chunkSize, parsed[t]!.topK]).toStrictEqual([chunkSize, topK]);
    const levels = lookup.map((offset) => Math.fround(shift + offset));
    const expectedIndices: number[] = [];
    const expected = new Float32Array(values.length);
    const notNearest: number[] = [];
    for (let start = 0; start < values.length; start += chunkSize) {
      const chunk = values.subarray(start, Math.min(start + chunkSize, values.length));
      for (const local of expectedKeptLocals(chunk, topK)) {
        const level = levels[codes[expectedIndices.length]!]!;
        expectedIndices.push(local);
        const error = Math.abs(chunk[local]! - level);
        if (levels.some((other) => Math.abs(chunk[local]! - other) < error)) notNearest.push(start + local);
        expected[start + local] = level;
      }
    }
    expect(indices).toStrictEqual(expectedIndices);
    expect(notNearest).toStrictEqual([]);
    expectSameBits(decoded[t]!, expected);
  });
}

describe('sparseloco', () => {
  const denseBytes = parameterCount(SOFTMAX_REGRESSION) * 4;
  const sparseBytes = layoutSizeBytes(SOFTMAX_REGRESSION, 4096, 32);
  const ratio = (denseBytes / sparseBytes).toFixed(0);

  it(`k=32 of 4096 on softmax regression is ${sparseBytes} bytes vs ${denseBytes} dense (${ratio}x smaller)`, () => {
    const bytes = encodeSparseLoco(SOFTMAX_REGRESSION, randomGradient(SOFTMAX_REGRESSION, 10), { chunkSize: 4096, topK: 32 });
    expect(bytes.length).toBe(sparseBytes);
    expect(sparseBytes).toBe(7 + (28 + 96 + 16) + (28 + 15 + 3));
    expect(denseBytes / bytes.length).toBeGreaterThan(100);
    const mlpBytes = encodeSparseLoco(MLP, randomGradient(MLP, 10), { chunkSize: 4096, topK: 32 });
    expect(parameterCount(MLP) * 4 / mlpBytes.length).toBeGreaterThan(200);
  });

  it.each([
    ['softmax-regression, chunkSize 4096, topK 32', SOFTMAX_REGRESSION, 4096, 32] as const,
    ['softmax-regression, chunkSize 7, topK 3', SOFTMAX_REGRESSION, 7, 3] as const,
    ['softmax-regression, chunkSize 1, topK 1', SOFTMAX_REGRESSION, 1, 1] as const,
    ['mlp, chunkSize 1000, topK 17 (odd counts: padding)', MLP, 1000, 17] as const,
    ['mlp, chunkSize 4096, topK 4096 (keeps all)', MLP, 4096, 4096] as const,
    ['mlp, chunkSize 333, topK 0 (keeps none)', MLP, 333, 0] as const,
  ])('%s: keeps exactly the top-k per chunk at the nearest level', (_label, model, chunkSize, topK) => {
    expectTopKAndNearestLevels(model, randomGradient(model, chunkSize + topK), chunkSize, topK);
  });

  it('uses ascending quantile-mean levels centred on the mean of the kept values', () => {
    const grads = SOFTMAX_REGRESSION.parameters.map((tensor) => new Float32Array(elementCount(tensor)));
    grads[1]!.set([1, 2, 3, 4, 5, 6, 7, 8]);
    const parsed = parseBody(SOFTMAX_REGRESSION, encodeSparseLoco(SOFTMAX_REGRESSION, grads, { chunkSize: 16, topK: 8 }));
    expect(parsed[1]!.shift).toBe(4.5);
    expect(parsed[1]!.lookup).toStrictEqual([-3, -1, 1, 3]);
    expect(parsed[1]!.codes).toStrictEqual([0, 0, 1, 1, 2, 2, 3, 3]);
    // W is all zeros: four equal levels, so every value ties and takes the lowest code.
    expect(parsed[0]!.lookup).toStrictEqual([0, 0, 0, 0]);
    expect(new Set(parsed[0]!.codes)).toStrictEqual(new Set([0]));
    expect([...decodeSparseLoco(SOFTMAX_REGRESSION, encodeSparseLoco(SOFTMAX_REGRESSION, grads, { chunkSize: 16, topK: 8 }))[1]!]).toStrictEqual([1.5, 1.5, 3.5, 3.5, 5.5, 5.5, 7.5, 7.5, 0, 0]);
  });

  it('stays finite for values at the float32 limit, where centring would overflow', () => {
    const grads = SOFTMAX_REGRESSION.parameters.map((tensor) => new Float32Array(elementCount(tensor)));
    grads[0]!.set([FLOAT32_MAX, -FLOAT32_MAX, FLOAT32_MAX, -FLOAT32_MAX]);
    const decoded = decodeSparseLoco(SOFTMAX_REGRESSION, encodeSparseLoco(SOFTMAX_REGRESSION, grads, { chunkSize: 4096, topK: 4 }));
    expect([...decoded[0]!.subarray(0, 4)]).toStrictEqual([FLOAT32_MAX, -FLOAT32_MAX, FLOAT32_MAX, -FLOAT32_MAX]);
  });

  it('decodes a hand-made body exactly as the layout documents', () => {
    const decoded = decodeSparseLoco(SOFTMAX_REGRESSION, softmaxBody());
    const w = new Float32Array(7840);
    w[5] = -1;
    w[4095] = -0.5;
    w[4096] = 0.5;
    w[7839] = 1;
    expectSameBits(decoded[0]!, w);
    expect([...decoded[1]!]).toStrictEqual([0, 1.25, -0.75, 0, 0, 0, 0, 0, 0, 0.75]);
  });

  it('refuses, as a bug, chunk options outside the format', () => {
    const grads = randomGradient(SOFTMAX_REGRESSION, 11);
    for (const options of [{ chunkSize: 0, topK: 0 }, { chunkSize: 4097, topK: 1 }, { chunkSize: 8, topK: 9 }, { chunkSize: 8.5, topK: 1 }]) {
      expect(() => encodeSparseLoco(SOFTMAX_REGRESSION, grads, options)).toThrow(InvariantViolation);
    }
  });
});

// ---------------------------------------------------------------- limits, norm, dispatch

describe('maxEncodedSizeBytes and gradientL2Norm', () => {
  it('derives the limits from the model: dense exactly, sparseloco at topK = chunkSize', () => {
    expect(maxEncodedSizeBytes(SOFTMAX_REGRESSION, 'dense-f32')).toBe(31_400);
    expect(maxEncodedSizeBytes(MLP, 'dense-f32')).toBe(parameterCount(MLP) * 4);
    for (const model of [SOFTMAX_REGRESSION, MLP]) {
      expect(maxEncodedSizeBytes(model, 'sparseloco')).toBe(layoutSizeBytes(model, 4096, 4096));
      for (const chunkSize of [1, 5, 4096]) {
        expect(encodeSparseLoco(model, randomGradient(model, chunkSize), { chunkSize, topK: chunkSize }).length).toBe(maxEncodedSizeBytes(model, 'sparseloco'));
      }
    }
  });

  it('covers every encoding the domain accepts', () => {
    for (const encoding of GRADIENT_ENCODINGS satisfies readonly GradientEncoding[]) {
      expect(maxEncodedSizeBytes(SOFTMAX_REGRESSION, encoding)).toBeGreaterThan(0);
    }
  });

  it('decodeGradient dispatches to the named encoding', () => {
    const grads = randomGradient(MLP, 12);
    decodeGradient(MLP, 'dense-f32', encodeDense(MLP, grads)).forEach((values, i) => expectSameBits(values, grads[i]!));
    const sparse = encodeSparseLoco(MLP, grads, { chunkSize: 64, topK: 8 });
    const direct = decodeSparseLoco(MLP, sparse);
    decodeGradient(MLP, 'sparseloco', sparse).forEach((values, i) => expectSameBits(values, direct[i]!));
  });

  it('sums squares in float64: exact on small cases, finite at the float32 limit', () => {
    expect(gradientL2Norm([Float32Array.of(3), Float32Array.of(0, -4)])).toBe(5);
    expect(gradientL2Norm([])).toBe(0);
    expect(gradientL2Norm([Float32Array.of(FLOAT32_MAX, FLOAT32_MAX)])).toBeCloseTo(FLOAT32_MAX * Math.SQRT2, -30);
    const tenth = Math.fround(0.1);
    expect(gradientL2Norm([new Float32Array(1_000_000).fill(tenth)])).toBeCloseTo(tenth * 1000, 6);
  });
});

// ---------------------------------------------------------------- every refusal code, by hand

describe('every refusal code is provoked by a hand-made body', () => {
  const provoked = new Set<GradientDecodeCode>();
  const refuse = (decode: () => unknown, code: GradientDecodeCode): void => {
    expectDecodeError(decode, code);
    provoked.add(code);
  };
  const sparse = (bytes: Uint8Array) => () => decodeGradient(SOFTMAX_REGRESSION, 'sparseloco', bytes);
  const dense = (bytes: Uint8Array) => () => decodeGradient(SOFTMAX_REGRESSION, 'dense-f32', bytes);

  it('envelope: unknown encoding, empty, too large, truncated, trailing', () => {
    refuse(() => decodeGradient(SOFTMAX_REGRESSION, 'gzip' as never, softmaxBody()), 'GRADIENT_UNKNOWN_ENCODING');
    expect(() => maxEncodedSizeBytes(SOFTMAX_REGRESSION, 'gzip' as never)).toThrow(GradientDecodeError);
    refuse(sparse(new Uint8Array(0)), 'GRADIENT_EMPTY');
    refuse(dense(new Uint8Array(0)), 'GRADIENT_EMPTY');
    // All zeros would be a bad magic; refusing it as too large shows the limit is checked before parsing.
    refuse(sparse(new Uint8Array(maxEncodedSizeBytes(SOFTMAX_REGRESSION, 'sparseloco') + 1)), 'GRADIENT_TOO_LARGE');
    refuse(dense(new Uint8Array(31_401)), 'GRADIENT_TOO_LARGE');
    refuse(sparse(softmaxBody().subarray(0, 3)), 'GRADIENT_TRUNCATED');
    refuse(sparse(softmaxBody().subarray(0, 7 + 27)), 'GRADIENT_TRUNCATED');
    refuse(sparse(softmaxBody().subarray(0, softmaxBody().length - 1)), 'GRADIENT_TRUNCATED');
    refuse(dense(new Uint8Array(31_399)), 'GRADIENT_TRUNCATED');
    refuse(sparse(withByte(softmaxBody(), 0)), 'GRADIENT_TRAILING_BYTES');
  });

  it('header: magic, version, shape', () => {
    refuse(sparse(softmaxBody({ magic: 'TLSX' })), 'GRADIENT_BAD_MAGIC');
    refuse(sparse(softmaxBody({ magic: '\0\0\0\0' })), 'GRADIENT_BAD_MAGIC');
    refuse(sparse(softmaxBody({ version: 2 })), 'GRADIENT_BAD_VERSION');
    refuse(sparse(softmaxBody({ version: 0 })), 'GRADIENT_BAD_VERSION');
    refuse(sparse(softmaxBody({ tensorCount: 3 })), 'GRADIENT_SHAPE_MISMATCH');
    refuse(sparse(softmaxBody({ W: { elements: 7841 } })), 'GRADIENT_SHAPE_MISMATCH');
    refuse(sparse(softmaxBody({ b: { elements: 0, indices: [], codes: [] } })), 'GRADIENT_SHAPE_MISMATCH');
  });

  it('chunking: chunkSize 0 or over 4096, topK over chunkSize', () => {
    refuse(sparse(softmaxBody({ W: { chunkSize: 0 } })), 'GRADIENT_BAD_CHUNKING');
    refuse(sparse(softmaxBody({ W: { chunkSize: 4097 } })), 'GRADIENT_BAD_CHUNKING');
    refuse(sparse(softmaxBody({ b: { chunkSize: 2, topK: 3 } })), 'GRADIENT_BAD_CHUNKING');
  });

  it('indices: out of range of the (short last) chunk, duplicated, decreasing', () => {
    refuse(sparse(softmaxBody({ W: { indices: [5, 4095, 0, 3744] } })), 'GRADIENT_INDEX_OUT_OF_RANGE');
    refuse(sparse(softmaxBody({ b: { indices: [1, 2, 10] } })), 'GRADIENT_INDEX_OUT_OF_RANGE');
    refuse(sparse(softmaxBody({ W: { indices: [5, 5, 0, 3743] } })), 'GRADIENT_INDEX_NOT_INCREASING');
    refuse(sparse(softmaxBody({ W: { indices: [5, 4095, 9, 3] } })), 'GRADIENT_INDEX_NOT_INCREASING');
  });

  it('padding: the odd index slot and unused code bits must be zero', () => {
    refuse(sparse(softmaxBody({ b: { indexPadding: 1 } })), 'GRADIENT_BAD_PADDING');
    refuse(sparse(softmaxBody({ b: { codePadding: 0b10 } })), 'GRADIENT_BAD_PADDING');
  });

  it('non-finite: dense values, shift, lookup levels, and shift + level overflowing float32', () => {
    const bytes = new Uint8Array(31_400);
    new DataView(bytes.buffer).setFloat32(31_396, Number.POSITIVE_INFINITY, true);
    refuse(dense(bytes), 'GRADIENT_NON_FINITE');
    refuse(sparse(softmaxBody({ W: { shift: Number.NaN } })), 'GRADIENT_NON_FINITE');
    refuse(sparse(softmaxBody({ b: { lookup: [0, 0, Number.NEGATIVE_INFINITY, 0] } })), 'GRADIENT_NON_FINITE');
    refuse(sparse(softmaxBody({ b: { shift: 3e38, lookup: [0, 0, 0, 3e38] } })), 'GRADIENT_NON_FINITE');
  });

  it('provoked every exported code', () => {
    expect([...provoked].sort()).toStrictEqual([...GRADIENT_DECODE_CODES].sort());
  });
});
