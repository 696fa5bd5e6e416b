// The reference models' shapes: parameter tensors in canonical order, from which graphs, encodings and limits are derived.

export const MNIST_INPUT_SIZE = 784;
export const MNIST_CLASSES = 10;

export type TensorSpec = Readonly<{ name: string; dims: readonly number[] }>;

export type ModelName = 'softmax-regression' | 'mlp';

/**
 * A model is its parameter tensors in a fixed order. A checkpoint and a dense gradient are
 * those tensors' float32 values concatenated in that order, little-endian, nothing else.
 */
export type ModelSpec = Readonly<{
  name: ModelName;
  inputSize: number;
  classes: number;
  /** Hidden width of the MLP; null for softmax regression. */
  hiddenSize: number | null;
  parameters: readonly TensorSpec[];
}>;

export const SOFTMAX_REGRESSION: ModelSpec = Object.freeze({
  name: 'softmax-regression',
  inputSize: MNIST_INPUT_SIZE,
  classes: MNIST_CLASSES,
  hiddenSize: null,
  parameters: Object.freeze([
    { name: 'W', dims: [MNIST_INPUT_SIZE, MNIST_CLASSES] },
    { name: 'b', dims: [MNIST_CLASSES] },
  ]),
});

export const MLP_HIDDEN_SIZE = 64;

export const MLP: ModelSpec = Object.freeze({
  name: 'mlp',
  inputSize: MNIST_INPUT_SIZE,
  classes: MNIST_CLASSES,
  hiddenSize: MLP_HIDDEN_SIZE,
  parameters: Object.freeze([
    { name: 'W1', dims: [MNIST_INPUT_SIZE, MLP_HIDDEN_SIZE] },
    { name: 'b1', dims: [MLP_HIDDEN_SIZE] },
    { name: 'W2', dims: [MLP_HIDDEN_SIZE, MNIST_CLASSES] },
    { name: 'b2', dims: [MNIST_CLASSES] },
  ]),
});

export const MODELS: Readonly<Record<ModelName, ModelSpec>> = Object.freeze({ 'softmax-regression': SOFTMAX_REGRESSION, mlp: MLP });

export function elementCount(tensor: TensorSpec): number {
  return tensor.dims.reduce((product, dim) => product * dim, 1);
}

/** Total float32 values in one checkpoint or one dense gradient of this model. */
export function parameterCount(model: ModelSpec): number {
  return model.parameters.reduce((sum, tensor) => sum + elementCount(tensor), 0);
}

/** Parameters (or gradients) as one Float32Array per tensor, in the model's order. */
export type ParameterSet = readonly Float32Array[];
