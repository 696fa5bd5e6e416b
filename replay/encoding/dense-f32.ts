// The 'dense-f32' gradient encoding: every parameter's float32 gradient in model order, little-endian, nothing else.

import { invariant } from '../../domain/errors.js';
import { elementCount, type ModelSpec, type ParameterSet, parameterCount } from '../model/model-spec.js';
import { GradientDecodeError } from './gradient-decode-error.js';

export const FLOAT32_SIZE_BYTES = 4;

/** The only size a dense body may have: no header, so the model alone fixes it. */
export function denseSizeBytes(model: ModelSpec): number {
  return parameterCount(model) * FLOAT32_SIZE_BYTES;
}

/** Encoders trust their caller; a gradient that does not fit the model is a bug, not a user error. */
export function assertGradientFitsModel(model: ModelSpec, grads: ParameterSet): void {
  invariant(grads.length === model.parameters.length, `gradient has ${grads.length} tensors, model ${model.name} has ${model.parameters.length}`);
  model.parameters.forEach((tensor, i) => {
    const values = grads[i] as Float32Array;
    invariant(values.length === elementCount(tensor), `tensor ${tensor.name}: ${values.length} values, expected ${elementCount(tensor)}`);
    invariant(firstNonFinite(values) === -1, `tensor ${tensor.name} holds a non-finite value`);
  });
}

export function encodeDense(model: ModelSpec, grads: ParameterSet): Uint8Array {
  assertGradientFitsModel(model, grads);
  const bytes = new Uint8Array(denseSizeBytes(model));
  let offsetBytes = 0;
  for (const values of grads) {
    // On a little-endian host the wire format is the memory layout: one copy per tensor.
    if (LITTLE_ENDIAN_HOST) bytes.set(new Uint8Array(values.buffer, values.byteOffset, values.byteLength), offsetBytes);
    else writeLittleEndian(bytes, offsetBytes, values);
    offsetBytes += values.byteLength;
  }
  return bytes;
}

export function decodeDense(model: ModelSpec, bytes: Uint8Array): ParameterSet {
  const expectedBytes = denseSizeBytes(model);
  if (bytes.byteLength === 0) throw new GradientDecodeError('GRADIENT_EMPTY', 'dense body is empty');
  if (bytes.byteLength > expectedBytes) {
    throw new GradientDecodeError('GRADIENT_TOO_LARGE', `dense body is ${bytes.byteLength} bytes, model ${model.name} needs exactly ${expectedBytes}`);
  }
  if (bytes.byteLength < expectedBytes) {
    throw new GradientDecodeError('GRADIENT_TRUNCATED', `dense body is ${bytes.byteLength} bytes, model ${model.name} needs exactly ${expectedBytes}`);
  }
  let offsetBytes = 0;
  return model.parameters.map((tensor) => {
    const values = readLittleEndian(bytes, offsetBytes, elementCount(tensor));
    const bad = firstNonFinite(values);
    if (bad !== -1) {
      throw new GradientDecodeError('GRADIENT_NON_FINITE', `tensor ${tensor.name}[${bad}] is ${values[bad]} (byte offset ${offsetBytes + bad * FLOAT32_SIZE_BYTES})`);
    }
    offsetBytes += values.byteLength;
    return values;
  });
}

/** Index of the first NaN or ±Infinity, or −1. */
export function firstNonFinite(values: Float32Array): number {
  // x·0 is ±0 for every finite x and NaN for NaN or ±Infinity: one branch-free pass finds out
  // whether there is one (a third faster than testing each value), the second finds where.
  let probe = 0;
  for (let i = 0; i < values.length; i += 1) probe += values[i]! * 0;
  if (probe === 0) return -1;
  for (let i = 0; i < values.length; i += 1) if (!Number.isFinite(values[i]!)) return i;
  return -1;
}

/** Whether this host lays float32 out little-endian, so a tensor's memory is its wire bytes. */
export const LITTLE_ENDIAN_HOST = new Uint8Array(Float32Array.of(1).buffer)[3] === 0x3f;

/** A fresh, aligned Float32Array from `count` little-endian floats at `offsetBytes` (the body itself may be unaligned). */
function readLittleEndian(bytes: Uint8Array, offsetBytes: number, count: number): Float32Array {
  const values = new Float32Array(count);
  if (LITTLE_ENDIAN_HOST) {
    new Uint8Array(values.buffer).set(bytes.subarray(offsetBytes, offsetBytes + count * FLOAT32_SIZE_BYTES));
    return values;
  }
  const view = new DataView(bytes.buffer, bytes.byteOffset + offsetBytes, count * FLOAT32_SIZE_BYTES);
  for (let i = 0; i < count; i += 1) values[i] = view.getFloat32(i * FLOAT32_SIZE_BYTES, true);
  return values;
}

function writeLittleEndian(bytes: Uint8Array, offsetBytes: number, values: Float32Array): void {
  const view = new DataView(bytes.buffer, bytes.byteOffset + offsetBytes, values.byteLength);
  for (let i = 0; i < values.length; i += 1) view.setFloat32(i * FLOAT32_SIZE_BYTES, values[i]!, true);
}
