// Train-step ONNX graphs on real onnxruntime-node: gradients vs finite differences, SGD update, convergence, determinism, I/O contract.

import { createHash } from 'node:crypto';
import fc from 'fast-check';
import * as ort from 'onnxruntime-node';
import { describe, expect, it } from 'vitest';
import {
  BATCH_DIM_PARAM,
  type TrainStepDtype,
  buildTrainStepGraph,
  gradOutputName,
  nextOutputName,
  trainStepInputNames,
  trainStepOutputNames,
} from '../../replay/graphs/train-step-graph.js';
import { MLP, type ModelSpec, SOFTMAX_REGRESSION, elementCount } from '../../replay/model/model-spec.js';
import { ProtoWriter } from '../../replay/onnx/protobuf-writer.js';
import { mulberry32 } from '../support/mulberry32.js';

const MODELS_UNDER_TEST: readonly ModelSpec[] = [SOFTMAX_REGRESSION, MLP];

type StepInputs = Readonly<{ params: readonly Float64Array[]; x: Float64Array; y: Float64Array; batch: number; lr: number }>;
type StepOutputs = Readonly<Record<string, Float32Array | Float64Array>>;


function uniform(random: () => number, count: number, low: number, high: number): Float64Array {
  return Float64Array.from({ length: count }, () => low + (high - low) * random());
}

/** Glorot-ish weights, small biases, standardized (zero-mean) pixels, random one-hot labels. */
function syntheticInputs(model: ModelSpec, seed: number, batch: number, lr = 0.1): StepInputs {
  const random = mulberry32(seed);
  const params = model.parameters.map((tensor) => {
    const scale = tensor.dims.length === 2 ? 1 / Math.sqrt(tensor.dims[0] as number) : 0.1;
    return uniform(random, elementCount(tensor), -scale, scale);
  });
  const x = uniform(random, batch * model.inputSize, -1, 1);
  const y = new Float64Array(batch * model.classes);
  for (let row = 0; row < batch; row += 1) y[row * model.classes + Math.floor(random() * model.classes)] = 1;
  return { params, x, y, batch, lr };
}

async function openSession(model: ModelSpec, dtype: TrainStepDtype, options: ort.InferenceSession.SessionOptions = {}): Promise<ort.InferenceSession> {
  return ort.InferenceSession.create(buildTrainStepGraph(model, { dtype }), { executionProviders: ['cpu'], ...options });
}

function tensor(dtype: TrainStepDtype, values: ArrayLike<number>, dims: readonly number[]): ort.Tensor {
  return dtype === 'float32' ? new ort.Tensor('float32', Float32Array.from(values), dims) : new ort.Tensor('float64', Float64Array.from(values), dims);
}

async function runStep(session: ort.InferenceSession, model: ModelSpec, dtype: TrainStepDtype, inputs: StepInputs): Promise<StepOutputs> {
  const feeds: Record<string, ort.Tensor> = {
    x: tensor(dtype, inputs.x, [inputs.batch, model.inputSize]),
    y: tensor(dtype, inputs.y, [inputs.batch, model.classes]),
    lr: tensor(dtype, [inputs.lr], []),
  };
  model.parameters.forEach((spec, index) => {
    feeds[spec.name] = tensor(dtype, inputs.params[index] as Float64Array, spec.dims);
  });
  const results = await session.run(feeds);
  const outputs: Record<string, Float32Array | Float64Array> = {};
  for (const [name, value] of Object.entries(results)) {
    expect(value.data instanceof Float32Array || value.data instanceof Float64Array).toBe(true);
    outputs[name] = value.data as Float32Array | Float64Array;
  }
  return outputs;
}

function rawOutput(outputs: StepOutputs, name: string): Float32Array | Float64Array {
  const values = outputs[name];
  if (values === undefined) throw new Error(`missing output ${name}`);
  return values;
}

/** An output widened to float64 (exact for float32), so arithmetic on it needs no per-dtype branches. */
function output(outputs: StepOutputs, name: string): Float64Array {
  return Float64Array.from(rawOutput(outputs, name));
}

function lossOf(outputs: StepOutputs): number {
  return output(outputs, 'loss')[0] as number;
}

function withCoordinate(inputs: StepInputs, paramIndex: number, coordinate: number, delta: number): StepInputs {
  const params = inputs.params.map((values, index) => {
    if (index !== paramIndex) return values;
    const shifted = Float64Array.from(values);
    shifted[coordinate] = (shifted[coordinate] as number) + delta;
    return shifted;
  });
  return { ...inputs, params };
}

function relativeError(actual: number, expected: number, floor = 1e-6): number {
  return Math.abs(actual - expected) / Math.max(Math.abs(actual), Math.abs(expected), floor);
}

function norm(values: ArrayLike<number>): number {
  let sum = 0;
  for (let index = 0; index < values.length; index += 1) sum += (values[index] as number) ** 2;
  return Math.sqrt(sum);
}

function bytesOf(values: Float32Array | Float64Array): Buffer {
  return Buffer.from(values.buffer, values.byteOffset, values.byteLength);
}

function sha256(bytes: Uint8Array): string {
  return createHash('sha256').update(bytes).digest('hex');
}

describe.each(MODELS_UNDER_TEST)('train step for $name', (model) => {
  it('float64 gradients match central finite differences of the loss', async () => {
    const session = await openSession(model, 'float64');
    const inputs = syntheticInputs(model, 11, 8);
    const outputs = await runStep(session, model, 'float64', inputs);
    const pick = mulberry32(99);
    const stepSize = 1e-5;
    let largestGradient = 0;
    for (const [paramIndex, spec] of model.parameters.entries()) {
      const gradient = output(outputs, gradOutputName(spec.name));
      expect(gradient).toHaveLength(elementCount(spec));
      for (let sample = 0; sample < 6; sample += 1) {
        const coordinate = Math.floor(pick() * elementCount(spec));
        const lossUp = lossOf(await runStep(session, model, 'float64', withCoordinate(inputs, paramIndex, coordinate, stepSize)));
        const lossDown = lossOf(await runStep(session, model, 'float64', withCoordinate(inputs, paramIndex, coordinate, -stepSize)));
        const numeric = (lossUp - lossDown) / (2 * stepSize);
        const analytic = gradient[coordinate] as number;
        largestGradient = Math.max(largestGradient, Math.abs(analytic));
        expect(relativeError(analytic, numeric), `${spec.name}[${coordinate}]: ${analytic} vs ${numeric}`).toBeLessThan(1e-5);
      }
    }
    // A graph that output zeros everywhere would pass the comparisons above only if the loss were flat too.
    expect(largestGradient).toBeGreaterThan(1e-3);
  });

  it('float32 gradients agree with float64 and with a float32 directional finite difference', async () => {
    const inputs = syntheticInputs(model, 12, 16);
    const single = await runStep(await openSession(model, 'float32'), model, 'float32', inputs);
    const double = await runStep(await openSession(model, 'float64'), model, 'float64', inputs);
    for (const spec of model.parameters) {
      const name = gradOutputName(spec.name);
      const reference = output(double, name);
      const difference = output(single, name).map((value, index) => value - (reference[index] as number));
      expect(norm(difference) / norm(reference), name).toBeLessThan(1e-4);
    }
    // Along the gradient's own unit direction the slope of the loss is the gradient's norm.
    const gradients = model.parameters.map((spec) => output(single, gradOutputName(spec.name)));
    const gradientNorm = Math.sqrt(gradients.reduce((sum, values) => sum + norm(values) ** 2, 0));
    // Small enough that few Relu kinks are crossed, large enough that float32 rounding of the loss stays far below the slope.
    const stepSize = 1e-3;
    const moved = (sign: number): StepInputs => ({
      ...inputs,
      params: inputs.params.map((values, index) => values.map((value, at) => value + (sign * stepSize * (gradients[index]?.[at] as number)) / gradientNorm)),
    });
    const session = await openSession(model, 'float32');
    const slope = (lossOf(await runStep(session, model, 'float32', moved(1))) - lossOf(await runStep(session, model, 'float32', moved(-1)))) / (2 * stepSize);
    expect(relativeError(slope, gradientNorm), `slope ${slope} vs gradient norm ${gradientNorm}`).toBeLessThan(1e-3);
  });

  it.each(['float32', 'float64'] as const)('%s next_* is exactly parameter − lr·grad, rounded like the graph', async (dtype) => {
    const inputs = syntheticInputs(model, 13, 4, 0.37);
    const outputs = await runStep(await openSession(model, dtype), model, dtype, inputs);
    const round = dtype === 'float32' ? Math.fround : (value: number) => value;
    const lr = round(inputs.lr);
    for (const [paramIndex, spec] of model.parameters.entries()) {
      const parameter = inputs.params[paramIndex] as Float64Array;
      const gradient = output(outputs, gradOutputName(spec.name));
      const next = output(outputs, nextOutputName(spec.name));
      const mismatch = next.findIndex((value, index) => value !== round(round(parameter[index] as number) - round(lr * (gradient[index] as number))));
      expect(mismatch, `${nextOutputName(spec.name)} first differs at ${mismatch}`).toBe(-1);
      expect(next.some((value, index) => value !== round(parameter[index] as number))).toBe(true);
    }
  });

  it('lowers the loss over 20 SGD steps on a fixed batch, feeding next_* back in', async () => {
    const session = await openSession(model, 'float32');
    let inputs = syntheticInputs(model, 14, 32, 0.1);
    const losses: number[] = [];
    for (let step = 0; step <= 20; step += 1) {
      const outputs = await runStep(session, model, 'float32', inputs);
      losses.push(lossOf(outputs));
      inputs = { ...inputs, params: model.parameters.map((spec) => output(outputs, nextOutputName(spec.name))) };
    }
    // Ten random classes start near ln 10; a working gradient step must beat that by far on a batch it can memorize.
    expect(losses[0]).toBeGreaterThan(1.5);
    expect(losses.every((loss) => Number.isFinite(loss))).toBe(true);
    expect(losses.slice(1).every((loss, step) => loss < (losses[step] as number))).toBe(true);
    expect(losses[20]).toBeLessThan((losses[0] as number) / 4);
  });

  it('averages over the batch: the loss and gradients of a batch are the means of its halves', async () => {
    const session = await openSession(model, 'float64');
    const whole = syntheticInputs(model, 15, 6);
    const half = (start: number, end: number): StepInputs => ({
      ...whole,
      batch: end - start,
      x: whole.x.slice(start * model.inputSize, end * model.inputSize),
      y: whole.y.slice(start * model.classes, end * model.classes),
    });
    const [all, first, second] = await Promise.all([whole, half(0, 2), half(2, 6)].map((inputs) => runStep(session, model, 'float64', inputs)));
    const mean = (name: string): Float64Array => {
      const firstValues = output(first!, name);
      const secondValues = output(second!, name);
      return firstValues.map((value, index) => (value * 2 + (secondValues[index] as number) * 4) / 6);
    };
    expect(relativeError(lossOf(all!), mean('loss')[0] as number, 1e-12)).toBeLessThan(1e-12);
    for (const spec of model.parameters) {
      const name = gradOutputName(spec.name);
      const expected = mean(name);
      const worst = output(all!, name).reduce((max, value, index) => Math.max(max, Math.abs(value - (expected[index] as number))), 0);
      expect(worst, name).toBeLessThan(1e-12);
    }
  });

  it.each(['float32', 'float64'] as const)('%s loss and gradients stay finite when one logit dwarfs the rest', async (dtype) => {
    const base = syntheticInputs(model, 18, 8);
    const gapLogits = 1e4; // exp(−1e4) underflows to 0 in both dtypes; a naive log(softmax) would give −∞ and NaN.
    const outputBias = Float64Array.from(base.params.at(-1)!, (value, index) => (index === 0 ? value + gapLogits : value));
    const y = new Float64Array(base.batch * model.classes);
    for (let row = 0; row < base.batch; row += 1) y[row * model.classes + 1] = 1;
    const inputs: StepInputs = { ...base, y, params: [...base.params.slice(0, -1), outputBias] };
    const outputs = await runStep(await openSession(model, dtype), model, dtype, inputs);
    for (const name of trainStepOutputNames(model)) expect(output(outputs, name).every(Number.isFinite), name).toBe(true);
    // Every row bets everything on class 0 while the label is class 1: the loss is about the gap itself.
    expect(lossOf(outputs)).toBeGreaterThan(gapLogits / 2);
    const biasGradient = output(outputs, gradOutputName(model.parameters.at(-1)!.name));
    expect(biasGradient[0]).toBeCloseTo(1, 5);
    expect(biasGradient[1]).toBeCloseTo(-1, 5);
  });

  // Across sessions with the same thread count. Thread counts are not interchangeable in general: on real
  // MNIST batches the MLP's low bits move between 1 and 2 threads, so recipes pin it (step-runner.int.spec.ts).
  it('is bitwise reproducible on CPU across sessions with optimizations off', async () => {
    const options = (threads: number): ort.InferenceSession.SessionOptions => ({ graphOptimizationLevel: 'disabled', intraOpNumThreads: threads, interOpNumThreads: 1 });
    const inputs = syntheticInputs(model, 16, 64);
    const one = await runStep(await openSession(model, 'float32', options(1)), model, 'float32', inputs);
    const two = await runStep(await openSession(model, 'float32', options(1)), model, 'float32', inputs);
    for (const name of trainStepOutputNames(model)) {
      expect(bytesOf(rawOutput(two, name)).equals(bytesOf(rawOutput(one, name))), name).toBe(true);
    }
  });

  it('declares exactly the exported inputs and outputs, with a symbolic batch dimension', async () => {
    const session = await openSession(model, 'float32');
    expect(session.inputNames).toEqual(trainStepInputNames(model));
    expect(session.outputNames).toEqual(trainStepOutputNames(model));
    expect(trainStepInputNames(model)).toEqual([...model.parameters.map((spec) => spec.name), 'x', 'y', 'lr']);
    expect(trainStepOutputNames(model)).toEqual([
      'loss',
      ...model.parameters.map((spec) => `grad_${spec.name}`),
      ...model.parameters.map((spec) => `next_${spec.name}`),
    ]);
    const shapes = Object.fromEntries(
      [...session.inputMetadata, ...session.outputMetadata].map((meta) => [meta.name, meta.isTensor ? { type: meta.type, shape: meta.shape } : null]),
    );
    expect(shapes.x).toEqual({ type: 'float32', shape: [BATCH_DIM_PARAM, model.inputSize] });
    expect(shapes.y).toEqual({ type: 'float32', shape: [BATCH_DIM_PARAM, model.classes] });
    expect(shapes.lr).toEqual({ type: 'float32', shape: [] });
    expect(shapes.loss).toEqual({ type: 'float32', shape: [] });
    for (const spec of model.parameters) {
      for (const name of [spec.name, gradOutputName(spec.name), nextOutputName(spec.name)]) expect(shapes[name]).toEqual({ type: 'float32', shape: spec.dims });
    }
  });

  it('runs any batch size through the same model', async () => {
    const session = await openSession(model, 'float32');
    for (const batch of [1, 3, 50]) {
      const outputs = await runStep(session, model, 'float32', syntheticInputs(model, 17, batch));
      expect(Number.isFinite(lossOf(outputs)), `batch ${batch}`).toBe(true);
      expect(output(outputs, gradOutputName(model.parameters[0]!.name))).toHaveLength(elementCount(model.parameters[0]!));
    }
  });
});

describe('train-step model bytes', () => {
  it('are the same on every build and differ between models and dtypes', () => {
    const digests = MODELS_UNDER_TEST.flatMap((model) =>
      (['float32', 'float64'] as const).map((dtype) => {
        const digest = sha256(buildTrainStepGraph(model, { dtype }));
        expect(sha256(buildTrainStepGraph(model, { dtype })), `${model.name} ${dtype}`).toBe(digest);
        return digest;
      }),
    );
    expect(new Set(digests).size).toBe(4);
    expect(sha256(buildTrainStepGraph(MLP))).toBe(sha256(buildTrainStepGraph(MLP, { dtype: 'float32' })));
  });

  it('are the bytes every run opened so far names: a changed graph would orphan their recipes', () => {
    // Runs name their step by this digest and every verdict's recipe carries it; the forward-only
    // loss graph was added beside the train step without moving a byte of it.
    expect(sha256(buildTrainStepGraph(SOFTMAX_REGRESSION))).toBe('b1cbcba8f8b1d67c25735b770e3f6b6597ed926c5d0474db31685e28de5e4cee');
    expect(sha256(buildTrainStepGraph(MLP))).toBe('86c104d05dc85aa23eb10920df70587a5b503661ac892eb5d1300e111a18b85e');
    expect(sha256(buildTrainStepGraph(SOFTMAX_REGRESSION, { dtype: 'float64' }))).toBe('fce106c554eea7ced90ddf00bc313424d07ba207ae6b35fe2d9c6acb9c59b373');
    expect(sha256(buildTrainStepGraph(MLP, { dtype: 'float64' }))).toBe('263a081fc227e025e50efb1afbd0a265b6812a88c3b0db2d4a20593159e44416');
  });

  it('refuses specs and dtypes it cannot build, with stable codes', () => {
    const broken: ModelSpec = { ...SOFTMAX_REGRESSION, parameters: [{ name: 'W', dims: [784, 10] }] };
    const misChained: ModelSpec = { ...MLP, parameters: [MLP.parameters[0]!, MLP.parameters[1]!, { name: 'W2', dims: [32, 10] }, MLP.parameters[3]!] };
    const clashing: ModelSpec = { ...SOFTMAX_REGRESSION, parameters: [{ name: 'x', dims: [784, 10] }, { name: 'b', dims: [10] }] };
    const shadowing: ModelSpec = { ...SOFTMAX_REGRESSION, parameters: [{ name: 'W', dims: [784, 10] }, { name: 'logits', dims: [10] }] };
    for (const spec of [broken, misChained, clashing, shadowing]) expect(() => buildTrainStepGraph(spec)).toThrow(expect.objectContaining({ code: 'UNSUPPORTED_MODEL_SPEC' }));
    const dtype = 'float16' as unknown as TrainStepDtype;
    expect(() => buildTrainStepGraph(MLP, { dtype })).toThrow(expect.objectContaining({ code: 'UNSUPPORTED_DTYPE' }));
  });
});

/** A reader written from the protobuf encoding spec, independent of the writer under test. */
function readVarint(bytes: Uint8Array, start: number): { value: bigint; end: number } {
  let value = 0n;
  let shift = 0n;
  let at = start;
  for (;;) {
    const byte = bytes[at] as number;
    value |= BigInt(byte & 0x7f) << shift;
    at += 1;
    shift += 7n;
    if ((byte & 0x80) === 0) return { value, end: at };
  }
}

describe('ProtoWriter', () => {
  const hex = (bytes: Uint8Array): string => Buffer.from(bytes).toString('hex');

  it('matches the protobuf encoding guide byte for byte', () => {
    expect(hex(new ProtoWriter().varint(1, 150).finish())).toBe('089601');
    expect(hex(new ProtoWriter().string(2, 'testing').finish())).toBe('120774657374696e67');
    expect(hex(new ProtoWriter().packedVarints(4, [3, 270, 86942]).finish())).toBe('2206038e029ea705');
    expect(hex(new ProtoWriter().varint(1, -2).finish())).toBe('08feffffffffffffffff01');
    expect(hex(new ProtoWriter().float(1, 1).finish())).toBe('0d0000803f');
    expect(hex(new ProtoWriter().double(1, 1).finish())).toBe('09000000000000f03f');
    expect(hex(new ProtoWriter().message(3, new ProtoWriter().varint(1, 150).finish()).finish())).toBe('1a03089601');
  });

  it('round-trips every int64 through varint encoding', () => {
    fc.assert(
      fc.property(fc.bigInt({ min: -(1n << 63n), max: (1n << 63n) - 1n }), fc.integer({ min: 1, max: 2 ** 29 - 1 }), (value, field) => {
        const bytes = new ProtoWriter().varint(field, value).finish();
        const tag = readVarint(bytes, 0);
        expect(tag.value).toBe(BigInt(field) << 3n);
        const body = readVarint(bytes, tag.end);
        expect(body.end).toBe(bytes.length);
        expect(BigInt.asIntN(64, body.value)).toBe(value);
      }),
    );
  });
});
