// Runs train steps and forward-only losses on onnxruntime: one cached session per graph and runner, outputs as parameter sets.

import * as ort from 'onnxruntime-node';
import type { ParameterSet } from '../model/model-spec.js';
import type { StepDefinition } from '../graphs/reference-steps.js';
import { gradOutputName, nextOutputName, OUTPUT_LOSS } from '../graphs/train-step-graph.js';
import { openSession, type ExecutionProviderName, type OpenedSession, type ProviderAttempt, type SessionSettings } from './execution-providers.js';

export type TrainBatch = Readonly<{ x: Float32Array; y: Float32Array; batchSize: number }>;

export type StepOutputs = Readonly<{
  loss: number;
  gradients: ParameterSet;
  /** parameters − learningRate × gradients, computed in the graph. */
  next: ParameterSet;
}>;

export type StepRun = Readonly<{
  outputs: StepOutputs;
  provider: ExecutionProviderName;
  device: string;
  attempts: readonly ProviderAttempt[];
  /** Wall time of session.run alone. */
  runMs: number;
}>;

/**
 * Which of the train step's outputs a caller reads; the loss always comes. onnxruntime runs only
 * the nodes the fetched outputs need, and every node it runs computes what it computes in a full
 * run, so a fetched output is bitwise the same whatever else is fetched.
 */
export type StepFetch = 'all' | 'gradients' | 'next';

export type PartialStepRun = Omit<StepRun, 'outputs'> & Readonly<{ outputs: Readonly<{ loss: number; gradients: ParameterSet | null; next: ParameterSet | null }> }>;

export type LossRun = Omit<StepRun, 'outputs'> & Readonly<{ loss: number }>;

/** Sessions cached per runner; a worker holds at most two per reference model (train step and forward loss). */
export const MAX_CACHED_SESSIONS = 8;

export class StepRunner {
  private readonly sessions = new Map<string, Promise<OpenedSession>>();

  constructor(readonly settings: SessionSettings) {}

  /** The session a step would run on, opened on first use: also tells which provider won. */
  async sessionFor(step: StepDefinition): Promise<OpenedSession> {
    return this.sessionForGraph(step.graphDigest, step.graphBytes);
  }

  /** The session of the step's forward-only loss graph, with this runner's settings. */
  async lossSessionFor(step: StepDefinition): Promise<OpenedSession> {
    return this.sessionForGraph(step.forwardLoss.graphDigest, step.forwardLoss.graphBytes);
  }

  /** One train step, every output read. */
  async run(step: StepDefinition, parameters: ParameterSet, batch: TrainBatch, learningRate: number): Promise<StepRun> {
    const run = await this.runStep(step, parameters, batch, learningRate, 'all');
    const { loss, gradients, next } = run.outputs;
    return { ...run, outputs: { loss, gradients: gradients!, next: next! } };
  }

  /** One train step, reading only what `fetch` names (and the loss): what a caller does not read, onnxruntime does not compute or copy out. */
  async runStep(step: StepDefinition, parameters: ParameterSet, batch: TrainBatch, learningRate: number, fetch: StepFetch): Promise<PartialStepRun> {
    const opened = await this.sessionFor(step);
    const feeds = feedsFor(step, parameters, batch, learningRate);
    const startedMs = performance.now();
    const results = await opened.session.run(feeds, fetchNames(step, fetch));
    const runMs = performance.now() - startedMs;
    const read = (name: string) => outputTensor(results, name);
    const outputs = {
      loss: scalar(read(OUTPUT_LOSS)),
      gradients: fetch === 'next' ? null : step.model.parameters.map((p) => read(gradOutputName(p.name))),
      next: fetch === 'gradients' ? null : step.model.parameters.map((p) => read(nextOutputName(p.name))),
    };
    return { outputs, provider: opened.provider, device: opened.device, attempts: opened.attempts, runMs };
  }

  /** The loss of `parameters` on `batch` from the forward-only graph: no backward pass, no update. */
  async evaluateLoss(step: StepDefinition, parameters: ParameterSet, batch: TrainBatch): Promise<LossRun> {
    const opened = await this.lossSessionFor(step);
    const feeds = lossFeedsFor(step, parameters, batch);
    const startedMs = performance.now();
    const results = await opened.session.run(feeds);
    const runMs = performance.now() - startedMs;
    return { loss: scalar(outputTensor(results, OUTPUT_LOSS)), provider: opened.provider, device: opened.device, attempts: opened.attempts, runMs };
  }

  async close(): Promise<void> {
    const sessions = [...this.sessions.values()];
    this.sessions.clear();
    await Promise.all(sessions.map(async (opened) => (await opened.catch(() => null))?.session.release()));
  }

  private async sessionForGraph(graphDigest: string, graphBytes: Uint8Array): Promise<OpenedSession> {
    let opened = this.sessions.get(graphDigest);
    if (!opened) {
      if (this.sessions.size >= MAX_CACHED_SESSIONS) throw new Error(`step runner already holds ${MAX_CACHED_SESSIONS} sessions; use another runner per graph family`);
      opened = openSession(graphBytes, this.settings);
      this.sessions.set(graphDigest, opened);
      // A failed open must not poison the cache: the next call tries again.
      opened.catch(() => this.sessions.delete(graphDigest));
    }
    return opened;
  }
}

/** Feeds of the train-step graph: the parameters, x, y and lr, wrapping the callers' arrays without copying them. */
export function feedsFor(step: StepDefinition, parameters: ParameterSet, batch: TrainBatch, learningRate: number): Record<string, ort.Tensor> {
  const feeds = lossFeedsFor(step, parameters, batch);
  feeds.lr = new ort.Tensor('float32', Float32Array.of(learningRate), []);
  return feeds;
}

/** Feeds of the forward-only loss graph: the parameters, x and y. */
export function lossFeedsFor(step: StepDefinition, parameters: ParameterSet, batch: TrainBatch): Record<string, ort.Tensor> {
  const { model } = step;
  if (parameters.length !== model.parameters.length) throw new Error(`${model.name} takes ${model.parameters.length} parameter tensors, got ${parameters.length}`);
  if (batch.x.length !== batch.batchSize * model.inputSize || batch.y.length !== batch.batchSize * model.classes) {
    throw new Error(`batch of ${batch.batchSize} needs x of ${batch.batchSize * model.inputSize} and y of ${batch.batchSize * model.classes} values`);
  }
  const feeds: Record<string, ort.Tensor> = {};
  const tensors = parameterTensors(step, parameters);
  model.parameters.forEach((tensor, i) => {
    feeds[tensor.name] = tensors[i]!;
  });
  feeds.x = new ort.Tensor('float32', batch.x, [batch.batchSize, model.inputSize]);
  feeds.y = new ort.Tensor('float32', batch.y, [batch.batchSize, model.classes]);
  return feeds;
}

/**
 * A parameter set's input tensors, made once per set: a cached checkpoint feeds every step of
 * every recipe that starts from it. The tensors wrap the set's own arrays (no copy), so they
 * always show the arrays' current values.
 */
const parameterTensorCache = new WeakMap<ParameterSet, readonly ort.Tensor[]>();

function parameterTensors(step: StepDefinition, parameters: ParameterSet): readonly ort.Tensor[] {
  const cached = parameterTensorCache.get(parameters);
  if (cached && cached.every((tensor, i) => tensor.data === parameters[i])) return cached;
  const tensors = step.model.parameters.map((spec, i) => new ort.Tensor('float32', parameters[i]!, [...spec.dims]));
  parameterTensorCache.set(parameters, tensors);
  return tensors;
}

const fetchNameCache = new Map<string, readonly string[]>();

function fetchNames(step: StepDefinition, fetch: StepFetch): readonly string[] {
  const key = `${step.graphDigest}:${fetch}`;
  let names = fetchNameCache.get(key);
  if (!names) {
    const grads = fetch === 'next' ? [] : step.model.parameters.map((p) => gradOutputName(p.name));
    const next = fetch === 'gradients' ? [] : step.model.parameters.map((p) => nextOutputName(p.name));
    names = Object.freeze([OUTPUT_LOSS, ...grads, ...next]);
    fetchNameCache.set(key, names);
  }
  return names;
}

/**
 * Not copied: onnxruntime-node copies every output into a fresh ArrayBuffer of its own (no
 * preallocated outputs are passed here), so a later run cannot change an earlier run's result;
 * test/replay/step-runner.int.spec.ts holds the binding to that.
 */
function outputTensor(results: ort.InferenceSession.OnnxValueMapType, name: string): Float32Array {
  const value = results[name];
  if (!value || !(value.data instanceof Float32Array)) throw new Error(`the graph produced no float32 output ${name}`);
  return value.data;
}

function scalar(values: Float32Array): number {
  const loss = values[0];
  if (loss === undefined) throw new Error('the graph produced an empty loss');
  return loss;
}
