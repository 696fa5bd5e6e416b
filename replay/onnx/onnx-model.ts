// ONNX messages as plain typed values, encoded to ModelProto bytes with onnx.proto's field numbers, deterministically.

import { invariant } from '../../domain/errors.js';
import { ProtoWriter } from './protobuf-writer.js';

/** TensorProto.DataType codes (onnx.proto) for the element types these graphs use. */
export const DataType = Object.freeze({ FLOAT: 1, INT64: 7, BOOL: 9, DOUBLE: 11 } as const);
export type DataTypeCode = (typeof DataType)[keyof typeof DataType];

/** A fixed size, or a symbolic `dim_param` name that the runtime binds per call (e.g. 'batch'). */
export type Dim = number | string;

export type ValueInfo = Readonly<{ name: string; elemType: DataTypeCode; dims: readonly Dim[] }>;

export type Attribute = Readonly<
  | { name: string; kind: 'int'; value: number }
  | { name: string; kind: 'float'; value: number }
  | { name: string; kind: 'ints'; value: readonly number[] }
  | { name: string; kind: 'string'; value: string }
>;

/** An initializer; its element type follows from the typed array, and its values go out as raw_data. */
export type Tensor = Readonly<{ name: string; dims: readonly number[]; values: Float32Array | Float64Array | BigInt64Array }>;

export type Node = Readonly<{
  opType: string;
  inputs: readonly string[];
  outputs: readonly string[];
  name?: string;
  /** Empty or absent means the default 'ai.onnx' domain. */
  domain?: string;
  attributes?: readonly Attribute[];
}>;

export type Graph = Readonly<{
  name: string;
  nodes: readonly Node[];
  initializers: readonly Tensor[];
  inputs: readonly ValueInfo[];
  outputs: readonly ValueInfo[];
}>;

export type OperatorSetId = Readonly<{ domain: string; version: number }>;

export type Model = Readonly<{
  irVersion: number;
  opsetImports: readonly OperatorSetId[];
  producerName: string;
  producerVersion?: string;
  docString?: string;
  graph: Graph;
}>;

// Field numbers from onnx/onnx.proto, one table per message, so each encoder reads like the .proto.
const MODEL_FIELD = { irVersion: 1, producerName: 2, producerVersion: 3, docString: 6, graph: 7, opsetImport: 8 } as const;
const OPSET_FIELD = { domain: 1, version: 2 } as const;
const GRAPH_FIELD = { node: 1, name: 2, initializer: 5, input: 11, output: 12 } as const;
const NODE_FIELD = { input: 1, output: 2, name: 3, opType: 4, attribute: 5, domain: 7 } as const;
const ATTRIBUTE_FIELD = { name: 1, f: 2, i: 3, s: 4, ints: 8, type: 20 } as const;
const ATTRIBUTE_TYPE = { float: 1, int: 2, string: 3, ints: 7 } as const;
const TENSOR_FIELD = { dims: 1, dataType: 2, name: 8, rawData: 9 } as const;
const VALUE_INFO_FIELD = { name: 1, type: 2 } as const;
const TYPE_FIELD = { tensorType: 1 } as const;
const TENSOR_TYPE_FIELD = { elemType: 1, shape: 2 } as const;
const SHAPE_FIELD = { dim: 1 } as const;
const DIMENSION_FIELD = { dimValue: 1, dimParam: 2 } as const;

export function intAttribute(name: string, value: number): Attribute {
  return { name, kind: 'int', value };
}

export function floatAttribute(name: string, value: number): Attribute {
  return { name, kind: 'float', value };
}

export function intsAttribute(name: string, value: readonly number[]): Attribute {
  return { name, kind: 'ints', value };
}

export function stringAttribute(name: string, value: string): Attribute {
  return { name, kind: 'string', value };
}

/** ModelProto bytes. Fields go out in field-number order, as protobuf's reference encoders write them. */
export function encodeModel(model: Model): Uint8Array {
  const writer = new ProtoWriter().varint(MODEL_FIELD.irVersion, model.irVersion).string(MODEL_FIELD.producerName, model.producerName);
  if (model.producerVersion !== undefined) writer.string(MODEL_FIELD.producerVersion, model.producerVersion);
  if (model.docString !== undefined) writer.string(MODEL_FIELD.docString, model.docString);
  writer.message(MODEL_FIELD.graph, encodeGraph(model.graph));
  for (const opset of model.opsetImports) writer.message(MODEL_FIELD.opsetImport, encodeOpset(opset));
  return writer.finish();
}

function encodeOpset(opset: OperatorSetId): Uint8Array {
  return new ProtoWriter().string(OPSET_FIELD.domain, opset.domain).varint(OPSET_FIELD.version, opset.version).finish();
}

export function encodeGraph(graph: Graph): Uint8Array {
  const writer = new ProtoWriter();
  for (const node of graph.nodes) writer.message(GRAPH_FIELD.node, encodeNode(node));
  writer.string(GRAPH_FIELD.name, graph.name);
  for (const tensor of graph.initializers) writer.message(GRAPH_FIELD.initializer, encodeTensor(tensor));
  for (const input of graph.inputs) writer.message(GRAPH_FIELD.input, encodeValueInfo(input));
  for (const output of graph.outputs) writer.message(GRAPH_FIELD.output, encodeValueInfo(output));
  return writer.finish();
}

export function encodeNode(node: Node): Uint8Array {
  const writer = new ProtoWriter();
  for (const input of node.inputs) writer.string(NODE_FIELD.input, input);
  for (const output of node.outputs) writer.string(NODE_FIELD.output, output);
  if (node.name !== undefined) writer.string(NODE_FIELD.name, node.name);
  writer.string(NODE_FIELD.opType, node.opType);
  for (const attribute of node.attributes ?? []) writer.message(NODE_FIELD.attribute, encodeAttribute(attribute));
  if (node.domain !== undefined && node.domain !== '') writer.string(NODE_FIELD.domain, node.domain);
  return writer.finish();
}

export function encodeAttribute(attribute: Attribute): Uint8Array {
  const writer = new ProtoWriter().string(ATTRIBUTE_FIELD.name, attribute.name);
  switch (attribute.kind) {
    case 'float':
      writer.float(ATTRIBUTE_FIELD.f, attribute.value);
      break;
    case 'int':
      writer.varint(ATTRIBUTE_FIELD.i, attribute.value);
      break;
    case 'string':
      writer.string(ATTRIBUTE_FIELD.s, attribute.value);
      break;
    case 'ints':
      // onnx.proto declares `repeated int64 ints` without [packed = true], so proto2 writes one tag per value.
      for (const value of attribute.value) writer.varint(ATTRIBUTE_FIELD.ints, value);
      break;
  }
  return writer.varint(ATTRIBUTE_FIELD.type, ATTRIBUTE_TYPE[attribute.kind]).finish();
}

export function encodeTensor(tensor: Tensor): Uint8Array {
  const elementCount = tensor.dims.reduce((product, dim) => product * dim, 1);
  invariant(elementCount === tensor.values.length, `initializer ${tensor.name}: dims hold ${elementCount} values, got ${tensor.values.length}`);
  const writer = new ProtoWriter();
  // `dims` is proto2 `repeated int64` without packing: one tag per dimension.
  for (const dim of tensor.dims) writer.varint(TENSOR_FIELD.dims, dim);
  writer.varint(TENSOR_FIELD.dataType, tensorDataType(tensor.values));
  writer.string(TENSOR_FIELD.name, tensor.name);
  return writer.bytes(TENSOR_FIELD.rawData, littleEndianBytes(tensor.values)).finish();
}

function tensorDataType(values: Tensor['values']): DataTypeCode {
  if (values instanceof Float32Array) return DataType.FLOAT;
  if (values instanceof Float64Array) return DataType.DOUBLE;
  return DataType.INT64;
}

/** raw_data is little-endian by spec; writing through DataView keeps the bytes the same on any host. */
function littleEndianBytes(values: Tensor['values']): Uint8Array {
  const widthBytes = values.BYTES_PER_ELEMENT;
  const bytes = new Uint8Array(values.length * widthBytes);
  const view = new DataView(bytes.buffer);
  for (let index = 0; index < values.length; index += 1) {
    const offsetBytes = index * widthBytes;
    if (values instanceof Float32Array) view.setFloat32(offsetBytes, values[index] as number, true);
    else if (values instanceof Float64Array) view.setFloat64(offsetBytes, values[index] as number, true);
    else view.setBigInt64(offsetBytes, values[index] as bigint, true);
  }
  return bytes;
}

export function encodeValueInfo(value: ValueInfo): Uint8Array {
  const shape = new ProtoWriter();
  for (const dim of value.dims) shape.message(SHAPE_FIELD.dim, encodeDimension(dim));
  const tensorType = new ProtoWriter().varint(TENSOR_TYPE_FIELD.elemType, value.elemType).message(TENSOR_TYPE_FIELD.shape, shape.finish());
  const type = new ProtoWriter().message(TYPE_FIELD.tensorType, tensorType.finish());
  return new ProtoWriter().string(VALUE_INFO_FIELD.name, value.name).message(VALUE_INFO_FIELD.type, type.finish()).finish();
}

function encodeDimension(dim: Dim): Uint8Array {
  const writer = new ProtoWriter();
  return (typeof dim === 'number' ? writer.varint(DIMENSION_FIELD.dimValue, dim) : writer.string(DIMENSION_FIELD.dimParam, dim)).finish();
}
