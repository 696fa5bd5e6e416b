// Protobuf wire-format encoder: just the field kinds ONNX's ModelProto uses, emitted in call order so equal calls give equal bytes.

import { invariant } from '../../domain/errors.js';

/** Wire types from the protobuf encoding spec; groups (3, 4) are deprecated and never needed here. */
export const WireType = Object.freeze({ VARINT: 0, FIXED64: 1, LENGTH_DELIMITED: 2, FIXED32: 5 } as const);
export type WireTypeCode = (typeof WireType)[keyof typeof WireType];

const MAX_FIELD_NUMBER = 2 ** 29 - 1;
const INITIAL_CAPACITY_BYTES = 256;
const UINT64_MASK = (1n << 64n) - 1n;

/**
 * Appends fields to one message. Nested messages are encoded by their own writer first and
 * then embedded with `message`, which keeps every length prefix exact without back-patching.
 */
export class ProtoWriter {
  private buffer = new Uint8Array(INITIAL_CAPACITY_BYTES);
  private view = new DataView(this.buffer.buffer);
  private lengthBytes = 0;

  /** An int32/int64/uint64/enum/bool field; negatives take ten bytes, as protobuf's two's-complement rule demands. */
  varint(field: number, value: number | bigint): this {
    this.tag(field, WireType.VARINT);
    this.rawVarint(toUint64(value));
    return this;
  }

  bool(field: number, value: boolean): this {
    return this.varint(field, value ? 1 : 0);
  }

  fixed32(field: number, value: number): this {
    invariant(Number.isInteger(value) && value >= 0 && value <= 0xffffffff, `fixed32 out of range: ${value}`);
    this.tag(field, WireType.FIXED32);
    this.reserve(4).setUint32(this.lengthBytes - 4, value, true);
    return this;
  }

  fixed64(field: number, value: bigint): this {
    this.tag(field, WireType.FIXED64);
    this.reserve(8).setBigUint64(this.lengthBytes - 8, toUint64(value), true);
    return this;
  }

  /** A `float` field: the value is rounded to IEEE-754 single precision, as the reader will see it. */
  float(field: number, value: number): this {
    this.tag(field, WireType.FIXED32);
    this.reserve(4).setFloat32(this.lengthBytes - 4, value, true);
    return this;
  }

  double(field: number, value: number): this {
    this.tag(field, WireType.FIXED64);
    this.reserve(8).setFloat64(this.lengthBytes - 8, value, true);
    return this;
  }

  bytes(field: number, value: Uint8Array): this {
    this.tag(field, WireType.LENGTH_DELIMITED);
    this.rawVarint(BigInt(value.byteLength));
    this.reserve(value.byteLength);
    this.buffer.set(value, this.lengthBytes - value.byteLength);
    return this;
  }

  string(field: number, value: string): this {
    return this.bytes(field, new TextEncoder().encode(value));
  }

  /** An embedded message, already encoded by its own writer. */
  message(field: number, encoded: Uint8Array): this {
    return this.bytes(field, encoded);
  }

  /** A `[packed = true]` repeated varint field; an empty list writes nothing, like protobuf's own encoders. */
  packedVarints(field: number, values: readonly (number | bigint)[]): this {
    if (values.length === 0) return this;
    const body = new ProtoWriter();
    for (const value of values) body.rawVarint(toUint64(value));
    return this.bytes(field, body.finish());
  }

  packedFloats(field: number, values: ArrayLike<number>): this {
    return this.packedFixed(field, values, 4, (view, offsetBytes, value) => view.setFloat32(offsetBytes, value, true));
  }

  packedDoubles(field: number, values: ArrayLike<number>): this {
    return this.packedFixed(field, values, 8, (view, offsetBytes, value) => view.setFloat64(offsetBytes, value, true));
  }

  /** A copy of the bytes written so far; the writer stays usable. */
  finish(): Uint8Array {
    return this.buffer.slice(0, this.lengthBytes);
  }

  private packedFixed(
    field: number,
    values: ArrayLike<number>,
    widthBytes: number,
    write: (view: DataView, offsetBytes: number, value: number) => void,
  ): this {
    if (values.length === 0) return this;
    const body = new Uint8Array(values.length * widthBytes);
    const view = new DataView(body.buffer);
    for (let index = 0; index < values.length; index += 1) write(view, index * widthBytes, values[index] as number);
    return this.bytes(field, body);
  }

  private tag(field: number, wireType: WireTypeCode): void {
    invariant(Number.isInteger(field) && field >= 1 && field <= MAX_FIELD_NUMBER, `invalid protobuf field number: ${field}`);
    this.rawVarint(BigInt(field) * 8n + BigInt(wireType));
  }

  private rawVarint(value: bigint): void {
    let rest = value;
    while (rest >= 0x80n) {
      this.reserve(1);
      this.buffer[this.lengthBytes - 1] = Number(rest & 0x7fn) | 0x80;
      rest >>= 7n;
    }
    this.reserve(1);
    this.buffer[this.lengthBytes - 1] = Number(rest);
  }

  /** Grows the buffer for `extraBytes` more and advances the end past them; returns the view to fill them through. */
  private reserve(extraBytes: number): DataView {
    const neededBytes = this.lengthBytes + extraBytes;
    if (neededBytes > this.buffer.byteLength) {
      let capacityBytes = this.buffer.byteLength * 2;
      while (capacityBytes < neededBytes) capacityBytes *= 2;
      const grown = new Uint8Array(capacityBytes);
      grown.set(this.buffer.subarray(0, this.lengthBytes));
      this.buffer = grown;
      this.view = new DataView(grown.buffer);
    }
    this.lengthBytes = neededBytes;
    return this.view;
  }
}

/** Integers as protobuf varints see them: 64-bit two's complement, so int64 −1 and uint64 max share bytes. */
function toUint64(value: number | bigint): bigint {
  if (typeof value === 'number') invariant(Number.isSafeInteger(value), `varint value must be a safe integer: ${value}`);
  const wide = BigInt(value);
  invariant(wide >= -(1n << 63n) && wide <= UINT64_MASK, `varint value out of 64-bit range: ${wide}`);
  return BigInt.asUintN(64, wide);
}
