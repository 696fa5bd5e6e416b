// The 'sparseloco' gradient encoding: chunked top-k, 2-bit quantized values, 12-bit packed indices (after Templar's SparseLoCo).

/*
 * Byte layout, version 1. All multi-byte numbers are little-endian; f32 is IEEE-754 binary32.
 *
 *   file header (7 bytes)
 *     0  4  magic        ASCII "TLSL" (0x54 0x4C 0x53 0x4C)
 *     4  1  version      u8, = 1
 *     5  2  tensorCount  u16, must equal the model's parameter tensor count
 *   then per tensor, in ModelSpec order:
 *     tensor header (28 bytes)
 *     0  4  elementCount u32, must equal the tensor's element count in the model
 *     4  2  chunkSize    u16, 1..4096 elements (so a within-chunk index fits 12 bits)
 *     6  2  topK         u16, 0..chunkSize
 *     8  4  shift        f32, finite
 *    12 16  lookup[4]    f32 x 4, finite
 *     indices  ceil(kept / 2) * 3 bytes
 *     codes    ceil(kept / 4) bytes
 *
 * The flattened tensor is cut into chunks of chunkSize elements; the last may be shorter. Chunk c
 * keeps min(topK, its length) elements, so kept = sum of those and is fixed by the header alone.
 * Indices are chunk-relative, chunk after chunk, strictly increasing inside a chunk (the
 * canonical form: no duplicates, one body per kept set). Two 12-bit indices a, b share three
 * bytes as the 24-bit little-endian number a | b << 12; an odd count pads b with 0. Codes are
 * 2 bits each, four per byte, the first in the lowest bits; unused high bits are 0. Padding that
 * is not zero is refused, so every accepted body is canonical.
 *
 * Decoding: element (chunk start + index) = f32(shift + lookup[code]); every other element is +0.
 * All four f32(shift + lookup[i]) must be finite, so no decoded value can overflow.
 *
 * Encoder's choice of levels (the decoder accepts any finite levels): sort the kept values and
 * split them into four equal-count quantile groups; lookup[g] is group g's mean minus shift,
 * where shift is the mean of all kept values (so lookup holds small offsets, keeping float32
 * precision). Each kept value then takes the code of the NEAREST decoded level, ties to the
 * lower code. If centring would overflow float32, shift is 0 and lookup holds the means.
 * Top-k is by magnitude |v|, ties to the lower index.
 */

import { invariant } from '../../domain/errors.js';
import { elementCount, type ModelSpec, type ParameterSet, type TensorSpec } from '../model/model-spec.js';
import { assertGradientFitsModel, FLOAT32_SIZE_BYTES } from './dense-f32.js';
import { GradientDecodeError } from './gradient-decode-error.js';

export const SPARSELOCO_MAGIC: readonly number[] = Object.freeze([0x54, 0x4c, 0x53, 0x4c]);
export const SPARSELOCO_VERSION = 1;
/** Largest chunk: a 12-bit index addresses 4096 elements. */
export const MAX_SPARSELOCO_CHUNK_SIZE_ELEMENTS = 4096;
/** 2-bit codes address four levels. */
export const SPARSELOCO_LEVEL_COUNT = 4;
export const SPARSELOCO_FILE_HEADER_SIZE_BYTES = 7;
export const SPARSELOCO_TENSOR_HEADER_SIZE_BYTES = 28;

/** Field offsets inside the headers, as in the layout above; the reader and the writer share them. */
const FILE_FIELD = Object.freeze({ version: 4, tensorCount: 5 });
const TENSOR_FIELD = Object.freeze({ elementCount: 0, chunkSize: 4, topK: 6, shift: 8, lookup: 12 });

const MAX_TENSOR_COUNT = 0xffff;
const MAX_TENSOR_ELEMENTS = 0xffffffff;
const INDEX_PAIR_SIZE_BYTES = 3;
const CODES_PER_BYTE = 4;

export type SparseLocoOptions = Readonly<{ chunkSize: number; topK: number }>;

/** Elements a tensor of `elements` keeps: topK per full chunk, min(topK, rest) for a short last chunk. */
export function keptElementCount(elements: number, chunkSize: number, topK: number): number {
  const fullChunks = Math.floor(elements / chunkSize);
  const restElements = elements % chunkSize;
  return fullChunks * Math.min(topK, chunkSize) + Math.min(topK, restElements);
}

function packedIndexSizeBytes(kept: number): number {
  return Math.ceil(kept / 2) * INDEX_PAIR_SIZE_BYTES;
}

function packedCodeSizeBytes(kept: number): number {
  return Math.ceil(kept / CODES_PER_BYTE);
}

function tensorSizeBytes(kept: number): number {
  return SPARSELOCO_TENSOR_HEADER_SIZE_BYTES + packedIndexSizeBytes(kept) + packedCodeSizeBytes(kept);
}

/** Exact body size for these options; every tensor uses the same chunkSize and topK. */
export function sparseLocoSizeBytes(model: ModelSpec, options: SparseLocoOptions): number {
  const tensorsBytes = model.parameters.reduce(
    (sum, tensor) => sum + tensorSizeBytes(keptElementCount(elementCount(tensor), options.chunkSize, options.topK)),
    0,
  );
  return SPARSELOCO_FILE_HEADER_SIZE_BYTES + tensorsBytes;
}

/** Worst case over all valid bodies: topK = chunkSize keeps every element, whatever the chunk size. */
export function maxSparseLocoSizeBytes(model: ModelSpec): number {
  const tensorsBytes = model.parameters.reduce((sum, tensor) => sum + tensorSizeBytes(elementCount(tensor)), 0);
  return SPARSELOCO_FILE_HEADER_SIZE_BYTES + tensorsBytes;
}

// ---------------------------------------------------------------- encoder

type Quantizer = Readonly<{ shift: number; lookup: readonly number[]; levels: readonly number[] }>;

export function encodeSparseLoco(model: ModelSpec, grads: ParameterSet, options: SparseLocoOptions): Uint8Array {
  assertGradientFitsModel(model, grads);
  const { chunkSize, topK } = options;
  invariant(Number.isInteger(chunkSize) && chunkSize >= 1 && chunkSize <= MAX_SPARSELOCO_CHUNK_SIZE_ELEMENTS, `chunkSize ${chunkSize} not in 1..4096`);
  invariant(Number.isInteger(topK) && topK >= 0 && topK <= chunkSize, `topK ${topK} not in 0..chunkSize`);
  invariant(model.parameters.length <= MAX_TENSOR_COUNT, 'too many tensors for a u16 count');
  const bytes = new Uint8Array(sparseLocoSizeBytes(model, options));
  const view = new DataView(bytes.buffer);
  bytes.set(SPARSELOCO_MAGIC, 0);
  view.setUint8(FILE_FIELD.version, SPARSELOCO_VERSION);
  view.setUint16(FILE_FIELD.tensorCount, model.parameters.length, true);
  let offsetBytes = SPARSELOCO_FILE_HEADER_SIZE_BYTES;
  for (const values of grads) offsetBytes = writeTensor(bytes, offsetBytes, values, options);
  invariant(offsetBytes === bytes.byteLength, 'sparseloco body size disagrees with its layout');
  return bytes;
}

function writeTensor(bytes: Uint8Array, startBytes: number, values: Float32Array, options: SparseLocoOptions): number {
  invariant(values.length <= MAX_TENSOR_ELEMENTS, 'tensor too large for a u32 element count');
  const positions = topKPositions(values, options.chunkSize, options.topK);
  const keptValues = Float32Array.from(positions, (position) => values[position]!);
  const quantizer = fitQuantizer(keptValues);
  const view = new DataView(bytes.buffer, startBytes);
  view.setUint32(TENSOR_FIELD.elementCount, values.length, true);
  view.setUint16(TENSOR_FIELD.chunkSize, options.chunkSize, true);
  view.setUint16(TENSOR_FIELD.topK, options.topK, true);
  view.setFloat32(TENSOR_FIELD.shift, quantizer.shift, true);
  quantizer.lookup.forEach((level, i) => view.setFloat32(TENSOR_FIELD.lookup + i * FLOAT32_SIZE_BYTES, level, true));
  const indexStartBytes = startBytes + SPARSELOCO_TENSOR_HEADER_SIZE_BYTES;
  const codeStartBytes = indexStartBytes + packedIndexSizeBytes(positions.length);
  packIndices(positions.map((position) => position % options.chunkSize), bytes.subarray(indexStartBytes, codeStartBytes));
  const codes = Uint8Array.from(keptValues, (value) => nearestLevelCode(value, quantizer.levels));
  packCodes(codes, bytes.subarray(codeStartBytes, codeStartBytes + packedCodeSizeBytes(codes.length)));
  return startBytes + tensorSizeBytes(positions.length);
}

/** Absolute positions kept, chunk by chunk, ascending inside each chunk. */
function topKPositions(values: Float32Array, chunkSize: number, topK: number): Uint32Array {
  const positions = new Uint32Array(keptElementCount(values.length, chunkSize, topK));
  let kept = 0;
  for (let chunkStart = 0; chunkStart < values.length; chunkStart += chunkSize) {
    const chunkLength = Math.min(chunkSize, values.length - chunkStart);
    const magnitude = (local: number): number => Math.abs(values[chunkStart + local]!);
    const byMagnitude = Array.from({ length: chunkLength }, (_, local) => local);
    byMagnitude.sort((a, b) => magnitude(b) - magnitude(a) || a - b);
    const chosen = byMagnitude.slice(0, Math.min(topK, chunkLength)).sort((a, b) => a - b);
    for (const local of chosen) positions[kept++] = chunkStart + local;
  }
  return positions;
}

function fitQuantizer(keptValues: Float32Array): Quantizer {
  const groupMeans = quantileGroupMeans(Float32Array.from(keptValues).sort());
  const shift = Math.fround(mean(keptValues));
  const lookup = groupMeans.map((groupMean) => Math.fround(groupMean - shift));
  const levels = lookup.map((offset) => Math.fround(shift + offset));
  if ([...lookup, ...levels].every(Number.isFinite)) return { shift, lookup, levels };
  // Centring overflowed (values near the float32 limit): the means themselves are always representable.
  const plain = groupMeans.map(Math.fround);
  return { shift: 0, lookup: plain, levels: plain };
}

/** Means of four equal-count groups of the sorted values; with fewer than four values groups share one. */
function quantileGroupMeans(sorted: Float32Array): number[] {
  const count = sorted.length;
  return Array.from({ length: SPARSELOCO_LEVEL_COUNT }, (_, group) => {
    if (count === 0) return 0;
    const from = Math.min(Math.floor((group * count) / SPARSELOCO_LEVEL_COUNT), count - 1);
    const to = Math.max(from + 1, Math.floor(((group + 1) * count) / SPARSELOCO_LEVEL_COUNT));
    return mean(sorted.subarray(from, to));
  });
}

function mean(values: Float32Array): number {
  if (values.length === 0) return 0;
  let sum = 0;
  for (const value of values) sum += value;
  return sum / values.length;
}

function nearestLevelCode(value: number, levels: readonly number[]): number {
  let bestCode = 0;
  for (let code = 1; code < levels.length; code++) {
    if (Math.abs(value - levels[code]!) < Math.abs(value - levels[bestCode]!)) bestCode = code;
  }
  return bestCode;
}

function packIndices(locals: Uint32Array, out: Uint8Array): void {
  for (let i = 0; i < locals.length; i += 2) {
    const first = locals[i]!;
    const second = locals[i + 1] ?? 0;
    const pairStart = (i / 2) * INDEX_PAIR_SIZE_BYTES;
    out[pairStart] = first & 0xff;
    out[pairStart + 1] = (first >> 8) | ((second & 0x0f) << 4);
    out[pairStart + 2] = second >> 4;
  }
}

function packCodes(codes: Uint8Array, out: Uint8Array): void {
  codes.forEach((code, i) => {
    out[Math.floor(i / CODES_PER_BYTE)]! |= code << ((i % CODES_PER_BYTE) * 2);
  });
}

// ---------------------------------------------------------------- decoder

/** Bounds-checked cursor: every read past the end becomes GRADIENT_TRUNCATED, never an exception of its own. */
class ByteReader {
  private offsetBytes = 0;
  private readonly view: DataView;
  constructor(private readonly bytes: Uint8Array) {
    this.view = new DataView(bytes.buffer, bytes.byteOffset, bytes.byteLength);
  }

  get remainingBytes(): number {
    return this.bytes.byteLength - this.offsetBytes;
  }

  take(sizeBytes: number, what: string): { at: number; view: DataView; bytes: Uint8Array } {
    if (sizeBytes > this.remainingBytes) {
      throw new GradientDecodeError('GRADIENT_TRUNCATED', `${what} needs ${sizeBytes} bytes at offset ${this.offsetBytes}, ${this.remainingBytes} left`);
    }
    const at = this.offsetBytes;
    this.offsetBytes += sizeBytes;
    return { at, view: new DataView(this.view.buffer, this.view.byteOffset + at, sizeBytes), bytes: this.bytes.subarray(at, at + sizeBytes) };
  }
}

type TensorHeader = Readonly<{ chunkSize: number; topK: number; levels: readonly number[] }>;

export function decodeSparseLoco(model: ModelSpec, bytes: Uint8Array): ParameterSet {
  const limitBytes = maxSparseLocoSizeBytes(model);
  if (bytes.byteLength === 0) throw new GradientDecodeError('GRADIENT_EMPTY', 'sparseloco body is empty');
  if (bytes.byteLength > limitBytes) {
    throw new GradientDecodeError('GRADIENT_TOO_LARGE', `sparseloco body is ${bytes.byteLength} bytes, model ${model.name} allows at most ${limitBytes}`);
  }
  const reader = new ByteReader(bytes);
  readFileHeader(reader, model);
  const tensors = model.parameters.map((tensor) => readTensor(reader, tensor));
  if (reader.remainingBytes > 0) {
    throw new GradientDecodeError('GRADIENT_TRAILING_BYTES', `${reader.remainingBytes} bytes left after the last tensor`);
  }
  return tensors;
}

function readFileHeader(reader: ByteReader, model: ModelSpec): void {
  const magic = reader.take(SPARSELOCO_MAGIC.length, 'magic').bytes;
  if (!SPARSELOCO_MAGIC.every((byte, i) => magic[i] === byte)) {
    throw new GradientDecodeError('GRADIENT_BAD_MAGIC', `body does not start with "TLSL" (got ${Array.from(magic, (b) => b.toString(16)).join(' ')})`);
  }
  const version = reader.take(1, 'version').view.getUint8(0);
  if (version !== SPARSELOCO_VERSION) {
    throw new GradientDecodeError('GRADIENT_BAD_VERSION', `sparseloco version ${version}, only ${SPARSELOCO_VERSION} is understood`);
  }
  const tensorCount = reader.take(2, 'tensor count').view.getUint16(0, true);
  if (tensorCount !== model.parameters.length) {
    throw new GradientDecodeError('GRADIENT_SHAPE_MISMATCH', `body has ${tensorCount} tensors, model ${model.name} has ${model.parameters.length}`);
  }
}

function readTensorHeader(reader: ByteReader, tensor: TensorSpec): TensorHeader {
  const { at, view } = reader.take(SPARSELOCO_TENSOR_HEADER_SIZE_BYTES, `tensor ${tensor.name} header`);
  const elements = view.getUint32(TENSOR_FIELD.elementCount, true);
  if (elements !== elementCount(tensor)) {
    throw new GradientDecodeError('GRADIENT_SHAPE_MISMATCH', `tensor ${tensor.name} has ${elements} elements, model says ${elementCount(tensor)}`);
  }
  const chunkSize = view.getUint16(TENSOR_FIELD.chunkSize, true);
  const topK = view.getUint16(TENSOR_FIELD.topK, true);
  if (chunkSize === 0 || chunkSize > MAX_SPARSELOCO_CHUNK_SIZE_ELEMENTS || topK > chunkSize) {
    throw new GradientDecodeError('GRADIENT_BAD_CHUNKING', `tensor ${tensor.name}: chunkSize ${chunkSize}, topK ${topK} (need 1 <= chunkSize <= 4096, topK <= chunkSize)`);
  }
  const shift = view.getFloat32(TENSOR_FIELD.shift, true);
  const lookup = Array.from({ length: SPARSELOCO_LEVEL_COUNT }, (_, i) => view.getFloat32(TENSOR_FIELD.lookup + i * FLOAT32_SIZE_BYTES, true));
  const levels = lookup.map((offset) => Math.fround(shift + offset));
  if (![shift, ...lookup, ...levels].every(Number.isFinite)) {
    throw new GradientDecodeError('GRADIENT_NON_FINITE', `tensor ${tensor.name} (header at ${at}): shift ${shift}, lookup [${lookup}], levels [${levels}] must all be finite`);
  }
  return { chunkSize, topK, levels };
}

function readTensor(reader: ByteReader, tensor: TensorSpec): Float32Array {
  const header = readTensorHeader(reader, tensor);
  const values = new Float32Array(elementCount(tensor));
  const kept = keptElementCount(values.length, header.chunkSize, header.topK);
  const indices = reader.take(packedIndexSizeBytes(kept), `tensor ${tensor.name} indices`).bytes;
  const codes = reader.take(packedCodeSizeBytes(kept), `tensor ${tensor.name} codes`).bytes;
  requireZeroPadding(indices, codes, kept, tensor);
  let slot = 0;
  for (let chunkStart = 0; chunkStart < values.length; chunkStart += header.chunkSize) {
    const chunkLength = Math.min(header.chunkSize, values.length - chunkStart);
    const chunkKept = Math.min(header.topK, chunkLength);
    let previous = -1;
    for (let i = 0; i < chunkKept; i++, slot++) {
      const local = unpackIndex(indices, slot);
      if (local >= chunkLength) {
        throw new GradientDecodeError('GRADIENT_INDEX_OUT_OF_RANGE', `tensor ${tensor.name} chunk at ${chunkStart}: index ${local} >= chunk length ${chunkLength}`);
      }
      if (local <= previous) {
        throw new GradientDecodeError('GRADIENT_INDEX_NOT_INCREASING', `tensor ${tensor.name} chunk at ${chunkStart}: index ${local} follows ${previous}`);
      }
      previous = local;
      values[chunkStart + local] = header.levels[unpackCode(codes, slot)]!;
    }
  }
  return values;
}

function unpackIndex(packed: Uint8Array, slot: number): number {
  const pairStart = (slot >> 1) * INDEX_PAIR_SIZE_BYTES;
  if (slot % 2 === 0) return packed[pairStart]! | ((packed[pairStart + 1]! & 0x0f) << 8);
  return (packed[pairStart + 1]! >> 4) | (packed[pairStart + 2]! << 4);
}

function unpackCode(packed: Uint8Array, slot: number): number {
  return (packed[Math.floor(slot / CODES_PER_BYTE)]! >> ((slot % CODES_PER_BYTE) * 2)) & 0b11;
}

/** Unused bits must be zero, so two different bodies never decode to the same kept set. */
function requireZeroPadding(indices: Uint8Array, codes: Uint8Array, kept: number, tensor: TensorSpec): void {
  if (kept % 2 === 1 && unpackIndex(indices, kept) !== 0) {
    throw new GradientDecodeError('GRADIENT_BAD_PADDING', `tensor ${tensor.name}: padding index slot after ${kept} indices is not zero`);
  }
  const usedCodeBits = (kept % CODES_PER_BYTE) * 2;
  if (usedCodeBits > 0 && codes[codes.length - 1]! >> usedCodeBits !== 0) {
    throw new GradientDecodeError('GRADIENT_BAD_PADDING', `tensor ${tensor.name}: unused bits of the last code byte are not zero`);
  }
}
