// Runs train steps on onnxruntime: one cached session per (graph, provider, optimization level), outputs as parameter sets.

import * as ort from 'onnxruntime-node';
import type { ParameterSet } from '../model/model-spec.js';
import type { StepDefinition } from '../graphs/reference-steps.js';
import { gradOutputName, nextOutputName } from '../graphs/train-step-graph.js';
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

/** Sessions cached per runner; a worker holds at most one per reference graph. */
export const MAX_CACHED_SESSIONS = 8;

export class StepRunner {
  private readonly sessions = new Map<string, Promise<OpenedSession>>();

  constructor(readonly settings: SessionSettings) {}

  /** The session a step would run on, opened on first use: also tells which provider won. */
  async sessionFor(step: StepDefinition): Promise<OpenedSession> {
    let opened = this.sessions.get(step.graphDigest);
    if (!opened) {
      if (this.sessions.size >= MAX_CACHED_SESSIONS) throw new Error(`step runner already holds ${MAX_CACHED_SESSIONS} sessions; use another runner per graph family`);
      opened = openSession(step.graphBytes, this.settings);
      this.sessions.set(step.graphDigest, opened);
      // A failed open must not poison the cache: the next call tries again.
      opened.catch(() => this.sessions.delete(step.graphDigest));
    }
    return opened;
  }

  async run(step: StepDefinition, parameters: ParameterSet, batch: TrainBatch, learningRate: number): Promise<StepRun> {
    const opened = await this.sessionFor(step);
    const feeds = feedsFor(step, parameters, batch, learningRate);
    const startedMs = performance.now();
    const results = await opened.session.run(feeds);
    const runMs = performance.now() - startedMs;
    return { outputs: readOutputs(step, results), provider: opened.provider, device: opened.device, attempts: opened.attempts, runMs };
  }

  async close(): Promise<void> {
    const sessions = [...this.sessions.values()];
    this.sessions.clear();
    await Promise.all(sessions.map(async (opened) => (await opened.catch(() => null))?.session.release()));
  }
}

export function feedsFor(step: StepDefinition, parameters: ParameterSet, batch: TrainBatch, learningRate: number): Record<string, ort.Tensor> {
  const { model } = step;
  if (parameters.length !== model.parameters.length) throw new Error(`${model.name} takes ${model.parameters.length} parameter tensors, got ${parameters.length}`);
  if (batch.x.length !== batch.batchSize * model.inputSize || batch.y.length !== batch.batchSize * model.classes) {
    throw new Error(`batch of ${batch.batchSize} needs x of ${batch.batchSize * model.inputSize} and y of ${batch.batchSize * model.classes} values`);
  }
  const feeds: Record<string, ort.Tensor> = {};
  model.parameters.forEach((tensor, i) => {
    feeds[tensor.name] = new ort.Tensor('float32', parameters[i]!, [...tensor.dims]);
  });
  feeds.x = new ort.Tensor('float32', batch.x, [batch.batchSize, model.inputSize]);
  feeds.y = new ort.Tensor('float32', batch.y, [batch.batchSize, model.classes]);
  feeds.lr = new ort.Tensor('float32', Float32Array.of(learningRate), []);
  return feeds;
}

function readOutputs(step: StepDefinition, results: ort.InferenceSession.OnnxValueMapType): StepOutputs {
  const tensor = (name: string): Float32Array => {
    const value = results[name];
    if (!value || !(value.data instanceof Float32Array)) throw new Error(`the step graph produced no float32 output ${name}`);
    // Copied: onnxruntime may reuse the output buffer on the next run.
    return new Float32Array(value.data);
  };
  const loss = tensor('loss')[0];
  if (loss === undefined) throw new Error('the step graph produced an empty loss');
  return {
    loss,
    gradients: step.model.parameters.map((p) => tensor(gradOutputName(p.name))),
    next: step.model.parameters.map((p) => tensor(nextOutputName(p.name))),
  };
}
