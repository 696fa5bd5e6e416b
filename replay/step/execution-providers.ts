// Chooses the onnxruntime execution provider (cuda, then webgpu, then cpu) and records which one ran and why.

import { cpus } from 'node:os';
import * as ort from 'onnxruntime-node';

export const EXECUTION_PROVIDERS = ['cuda', 'webgpu', 'cpu'] as const;
export type ExecutionProviderName = (typeof EXECUTION_PROVIDERS)[number];
export type ProviderRequest = ExecutionProviderName | 'auto';

export const GRAPH_OPTIMIZATION_LEVELS = ['disabled', 'basic', 'extended', 'all'] as const;
export type GraphOptimizationLevel = (typeof GRAPH_OPTIMIZATION_LEVELS)[number];

/** One provider tried: whether a session came up on it, and the reason when it did not. */
export type ProviderAttempt = Readonly<{ provider: ExecutionProviderName; ok: boolean; reason: string }>;

export type OpenedSession = Readonly<{
  session: ort.InferenceSession;
  provider: ExecutionProviderName;
  /** Human-readable device, recorded with every verdict. */
  device: string;
  attempts: readonly ProviderAttempt[];
}>;

export type SessionSettings = Readonly<{
  provider: ProviderRequest;
  graphOptimizationLevel: GraphOptimizationLevel;
  /** CPU threads for one operator; outputs on CPU with optimization disabled do not depend on it. */
  intraOpNumThreads: number;
}>;

export const ONNXRUNTIME_VERSION: string = ort.env.versions.node ?? ort.env.versions.common ?? 'unknown';

/**
 * Opens a session on the first provider that works, in the order cuda → webgpu → cpu for
 * 'auto', or only the one asked for. Each failure is kept as a reason (libraries missing, no
 * adapter) so a verdict can say why it ran where it ran.
 */
export async function openSession(graphBytes: Uint8Array, settings: SessionSettings): Promise<OpenedSession> {
  const candidates: readonly ExecutionProviderName[] = settings.provider === 'auto' ? EXECUTION_PROVIDERS : [settings.provider];
  const attempts: ProviderAttempt[] = [];
  for (const provider of candidates) {
    try {
      const session = await ort.InferenceSession.create(graphBytes, {
        executionProviders: [provider],
        graphOptimizationLevel: settings.graphOptimizationLevel,
        intraOpNumThreads: settings.intraOpNumThreads,
        interOpNumThreads: 1,
        executionMode: 'sequential',
        logSeverityLevel: 3,
      });
      attempts.push({ provider, ok: true, reason: settings.provider === 'auto' ? 'first available in cuda → webgpu → cpu' : 'requested' });
      return { session, provider, device: describeDevice(provider), attempts };
    } catch (error) {
      attempts.push({ provider, ok: false, reason: firstLine(error) });
    }
  }
  throw new ExecutionProviderUnavailableError(attempts);
}

export class ExecutionProviderUnavailableError extends Error {
  override readonly name = 'ExecutionProviderUnavailableError';
  readonly code = 'EXECUTION_PROVIDER_UNAVAILABLE';
  constructor(readonly attempts: readonly ProviderAttempt[]) {
    super(`no execution provider could run the graph: ${attempts.map((a) => `${a.provider}: ${a.reason}`).join('; ')}`);
  }
}

function describeDevice(provider: ExecutionProviderName): string {
  if (provider === 'cpu') {
    const all = cpus();
    return `cpu: ${all[0]?.model.trim() ?? 'unknown'} x${all.length}`;
  }
  // onnxruntime-node does not report the adapter's name; the worker's host says which GPU it has.
  return `${provider}: device 0`;
}

/** onnxruntime's messages carry source paths and stack lines; the first line says what failed. */
function firstLine(error: unknown): string {
  const message = error instanceof Error ? error.message : String(error);
  const line = message.split('\n')[0] ?? message;
  return line.length > 300 ? `${line.slice(0, 300)}…` : line;
}
