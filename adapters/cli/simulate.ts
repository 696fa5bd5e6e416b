// `trainledger simulate`: honest and cheating contributors drive a real run over HTTP through the SDK, then a summary.

import { randomBytes } from 'node:crypto';
import { generateEd25519KeyPair } from '../http/auth/http-signature.js';
import { ContributorClient, StaffClient } from '../client/trainledger-client.js';
import { mnistBatch, mnistShardDigests } from '../../replay/data/mnist.js';
import { encodeDense } from '../../replay/encoding/dense-f32.js';
import { referenceStep } from '../../replay/graphs/reference-steps.js';
import { checkpointDigest, decodeCheckpoint, encodeCheckpoint, initialParameters } from '../../replay/model/checkpoint.js';
import type { ParameterSet } from '../../replay/model/model-spec.js';
import { createPrng } from '../../replay/model/prng.js';
import { StepRunner } from '../../replay/step/step-runner.js';

export const CHEAT_KINDS = ['noise', 'scaled', 'stale', 'copied'] as const;
export type CheatKind = (typeof CHEAT_KINDS)[number];

export type SimulationOptions = Readonly<{
  baseUrl: string;
  adminKey: string;
  contributors: number;
  steps: number;
  /** Share of contributors who cheat, each with one kind in turn: noise, scaled, stale, copied. */
  cheaters: number;
  /** Share of rejected contributors who dispute. */
  disputeShare: number;
  seed: string;
  /** Longest wait for verdicts and settlements of one round. */
  roundTimeoutMs: number;
  /** The run's dispute window; rejections nobody disputed are final (and their budget released) once it closes. */
  disputeWindowMs?: number;
  progress: (line: string) => void;
}>;

export type SimulationSummary = Readonly<{
  runId: string;
  assignments: number;
  accepted: number;
  rejectedByReason: Record<string, number>;
  disputesByOutcome: Record<string, number>;
  satsPaid: number;
  subsidyRatio: number | null;
  /** Still reserved when the simulation ends: 0 once every assignment is final and released its budget. */
  reservedMsat: bigint;
  spentMsat: bigint;
  assignmentIds: readonly string[];
}>;

export const DEFAULT_SIMULATION_DISPUTE_WINDOW_MS = 20_000;

/** Bounds, so a typo cannot start a simulation that never ends. */
/** quietMs: longer than the escrow loop's poll interval, so "nothing moved" means nothing is about to. */
export const SIMULATION_LIMITS = Object.freeze({ maxContributors: 64, maxSteps: 15, pollIntervalMs: 100, quietMs: 1_500 });
const BATCHES_PER_SHARD = 15;

type Participant = Readonly<{ id: string; client: ContributorClient; cheat: CheatKind | null }>;

export async function simulate(options: SimulationOptions): Promise<SimulationSummary> {
  if (options.contributors < 1 || options.contributors > SIMULATION_LIMITS.maxContributors) throw new Error(`--contributors must be 1..${SIMULATION_LIMITS.maxContributors}`);
  if (options.steps < 1 || options.steps > SIMULATION_LIMITS.maxSteps) throw new Error(`--steps must be 1..${SIMULATION_LIMITS.maxSteps} (batches in one epoch of a shard)`);
  const staff = new StaffClient({ baseUrl: options.baseUrl }, options.adminKey);
  const step = referenceStep('softmax-regression');
  const runner = new StepRunner({ provider: 'cpu', graphOptimizationLevel: 'disabled', intraOpNumThreads: 1 });
  const runId = `sim-${randomBytes(4).toString('hex')}`;
  try {
    let parameters = initialParameters(step.model, options.seed);
    const checkpoints: ParameterSet[] = [parameters];
    const { digest: initialDigest } = await staff.uploadCheckpoint(encodeCheckpoint(step.model, parameters));
    await staff.openRun({
      runId, stepGraphDigest: step.graphDigest, initialCheckpointDigest: initialDigest, shards: mnistShardDigests().slice(0, 19),
      rewardPolicy: { baseRewardMsat: '1000000', maxBonusMsat: '200000' },
      verificationPolicy: { replayProbability: 1, maxGradientNorm: 50, minRelativeImprovement: 0.004 },
      // A short dispute window, so undisputed rejections become final (and release their budget) before the simulation ends.
      escrowPolicy: { cltvDeltaBlocks: 144, invoiceExpirySec: 3600, disputeWindowMs: options.disputeWindowMs ?? DEFAULT_SIMULATION_DISPUTE_WINDOW_MS, assignmentTimeoutMs: 3_600_000 },
    });
    await staff.fundRun(runId, { fundingId: 'customer-1', source: 'customer', amountMsat: String(options.contributors * options.steps * 1_400_000) });
    await staff.fundRun(runId, { fundingId: 'subsidy-1', source: 'subsidy', amountMsat: String(options.contributors * options.steps * 600_000) });
    const participants = await register(options, runId);
    options.progress(`simulate: run ${runId}, ${participants.length} contributors (${participants.filter((p) => p.cheat).length} cheating), ${options.steps} steps`);
    const assignmentIds: string[] = [];
    for (let round = 0; round < options.steps; round += 1) {
      const ids = await playRound({ options, staff, runner, step, runId, round, participants, parameters, previous: checkpoints.at(-2) ?? null });
      assignmentIds.push(...ids.map((a) => a.assignmentId));
      parameters = await publishNext(staff, runId, step, parameters, ids.filter((a) => a.accepted).map((a) => a.gradients), round + 1);
      checkpoints.push(parameters);
      options.progress(`simulate: step ${round + 1}/${options.steps}: ${ids.filter((a) => a.accepted).length}/${ids.length} accepted`);
    }
    return await summarize(options, staff, runId, assignmentIds, participants);
  } finally {
    await runner.close();
  }
}

async function register(options: SimulationOptions, runId: string): Promise<Participant[]> {
  const cheaters = Math.round(options.contributors * options.cheaters);
  const participants: Participant[] = [];
  for (let i = 0; i < options.contributors; i += 1) {
    const id = `${runId}-c${i}`;
    const { publicKeyHex, privateKey } = generateEd25519KeyPair();
    const client = new ContributorClient({ baseUrl: options.baseUrl }, id, privateKey);
    // The development network's simulated node for this id: a real deployment's contributor brings their own.
    const nodeKey = await fetch(new URL(`/v1/dev/node-keys/${id}`, options.baseUrl)).then(async (r) => {
      if (!r.ok) throw new Error(`the server is not on the development Lightning network (GET /v1/dev/node-keys answered ${r.status}); simulate needs it`);
      return ((await r.json()) as { lightningNodePubkeyHex: string }).lightningNodePubkeyHex;
    });
    await client.register({ signingPublicKeyHex: publicKeyHex, lightningNodePubkeyHex: nodeKey });
    // Cheaters are the last ones, so a copier always has an honest gradient of the same round to copy.
    participants.push({ id, client, cheat: i >= options.contributors - cheaters ? CHEAT_KINDS[(options.contributors - 1 - i) % CHEAT_KINDS.length]! : null });
  }
  return participants;
}

type RoundInput = Readonly<{
  options: SimulationOptions;
  staff: StaffClient;
  runner: StepRunner;
  step: ReturnType<typeof referenceStep>;
  runId: string;
  round: number;
  participants: readonly Participant[];
  parameters: ParameterSet;
  previous: ParameterSet | null;
}>;

type Played = { assignmentId: string; accepted: boolean; gradients: ParameterSet };

async function playRound(input: RoundInput): Promise<Played[]> {
  const { staff, runId, round, participants, step } = input;
  const played: Played[] = [];
  const honestBytes: Uint8Array[] = [];
  for (const [c, p] of participants.entries()) {
    const assignmentId = `${p.id}-s${round}`;
    const shardId = `mnist-${String(c % 19).padStart(2, '0')}`;
    const batchIndex = round % BATCHES_PER_SHARD;
    const seed = input.options.seed;
    await staff.assign({ assignmentId, runId, contributorId: p.id, step: round + 1, shardId, batchIndex, seed });
    const terms = (await p.client.getAssignment(assignmentId)).terms as { baseCheckpointDigest: string };
    const base = decodeCheckpoint(step.model, await p.client.downloadCheckpoint(terms.baseCheckpointDigest));
    const honest = await computeGradient(input.runner, step, base, shardId, batchIndex, seed);
    const gradients = p.cheat ? await cheat(p.cheat, input, honest.gradients, { shardId, batchIndex, seed }, honestBytes) : honest.gradients;
    const bytes = p.cheat === 'copied' && honestBytes.length > 0 ? honestBytes[0]! : encodeDense(step.model, gradients);
    if (!p.cheat) honestBytes.push(bytes);
    await p.client.submitGradient(assignmentId, { bytes, encoding: 'dense-f32', claimedLoss: honest.loss, computeTimeMs: honest.computeMs });
    played.push({ assignmentId, accepted: false, gradients });
  }
  await waitUntil(input.options, `verdicts of step ${round + 1}`, async () => {
    const statuses = await Promise.all(played.map(async (a) => (await staff.getAssignment(a.assignmentId)).status as string));
    played.forEach((a, i) => (a.accepted = statuses[i] === 'accepted'));
    return statuses.every((s) => s !== 'submitted');
  });
  await disputeSome(input, played);
  return played;
}

async function computeGradient(runner: StepRunner, step: ReturnType<typeof referenceStep>, base: ParameterSet, shardId: string, batchIndex: number, seed: string) {
  const batch = mnistBatch({ shardId, batchIndex, batchSize: step.batchSize, seed });
  const startedMs = performance.now();
  const run = await runner.run(step, base, { x: batch.x, y: batch.y, batchSize: step.batchSize }, step.learningRate);
  return { gradients: run.outputs.gradients, loss: run.outputs.loss, computeMs: Math.max(1, Math.round(performance.now() - startedMs)) };
}

async function cheat(kind: CheatKind, input: RoundInput, honest: ParameterSet, batch: { shardId: string; batchIndex: number; seed: string }, honestBytes: readonly Uint8Array[]): Promise<ParameterSet> {
  if (kind === 'scaled') return honest.map((t) => t.map((v) => v * 1.5));
  if (kind === 'stale' && input.previous) return (await computeGradient(input.runner, input.step, input.previous, batch.shardId, batch.batchIndex, batch.seed)).gradients;
  if (kind === 'copied' && honestBytes.length > 0) return honest;
  // Noise with the honest step's norm, so only the quality check can tell.
  const prng = createPrng(`${input.round}${input.options.seed}`.slice(0, 19));
  const noise = honest.map((t) => t.map(() => prng.nextFloat() * 2 - 1));
  const norm = (p: ParameterSet) => Math.sqrt(p.reduce((s, t) => s + t.reduce((a, v) => a + v * v, 0), 0));
  const scale = norm(honest) / norm(noise);
  return noise.map((t) => t.map((v) => v * scale));
}

async function disputeSome(input: RoundInput, played: readonly Played[]): Promise<void> {
  const rejected = played.filter((a) => !a.accepted);
  const disputing = rejected.slice(0, Math.round(rejected.length * input.options.disputeShare));
  for (const a of disputing) {
    const participant = input.participants.find((p) => a.assignmentId.startsWith(`${p.id}-s`))!;
    await participant.client.dispute(a.assignmentId, { disputeId: `d-${a.assignmentId}`, reason: 'replay my step' });
  }
  await waitUntil(input.options, `dispute replays of step ${input.round + 1}`, async () => {
    const statuses = await Promise.all(disputing.map(async (a) => (await input.staff.getAssignment(a.assignmentId)).status as string));
    return statuses.every((s) => s === 'resolved');
  });
}

/** The coordinator's aggregation: the mean of the accepted gradients, applied with the step's learning rate. */
async function publishNext(staff: StaffClient, runId: string, step: ReturnType<typeof referenceStep>, parameters: ParameterSet, accepted: readonly ParameterSet[], stepNumber: number): Promise<ParameterSet> {
  if (accepted.length === 0) return parameters;
  const lr = Math.fround(step.learningRate);
  const next = parameters.map((t, i) => t.map((v, j) => v - (lr * accepted.reduce((s, g) => s + g[i]![j]!, 0)) / accepted.length));
  const { digest } = await staff.uploadCheckpoint(encodeCheckpoint(step.model, next));
  if (digest !== checkpointDigest(step.model, next)) throw new Error('the server named the checkpoint by another digest');
  await staff.publishCheckpoint(runId, { checkpointId: `ckpt-${stepNumber}`, step: stepNumber, digest });
  return next;
}

async function summarize(options: SimulationOptions, staff: StaffClient, runId: string, assignmentIds: readonly string[], participants: readonly Participant[]): Promise<SimulationSummary> {
  const views = await Promise.all(assignmentIds.map((id) => staff.getAssignment(id)));
  // Paid work settles on the dev network within a few escrow passes; wait for it before counting sats.
  await waitUntil(options, 'escrow settlements', async () => {
    const escrows = await Promise.all(assignmentIds.map(async (id) => (await staff.getAssignment(id)).escrow.status as string));
    return escrows.every((s) => ['settled', 'canceled', 'expired', 'none'].includes(s));
  });
  const rejectedByReason: Record<string, number> = {};
  const disputesByOutcome: Record<string, number> = {};
  for (const v of views) {
    if (v.rejection) rejectedByReason[v.rejection.reasonCode] = (rejectedByReason[v.rejection.reasonCode] ?? 0) + 1;
    if (v.resolution) disputesByOutcome[v.resolution.resolution] = (disputesByOutcome[v.resolution.resolution] ?? 0) + 1;
  }
  // Every reservation returns once its assignment is final: paid, forfeited, or past its dispute window.
  const windowMs = options.disputeWindowMs ?? DEFAULT_SIMULATION_DISPUTE_WINDOW_MS;
  options.progress(`simulate: waiting for every reservation to be released (undisputed rejections are final after the ${windowMs} ms dispute window)`);
  await waitUntil({ ...options, roundTimeoutMs: options.roundTimeoutMs + windowMs }, 'every reservation to be released', async () => BigInt((await staff.getRun(runId)).reservedMsat) === 0n);
  await waitUntilQuiet(options);
  const run = await staff.getRun(runId);
  const runMetrics = ((await staff.metricsByRun()) as { runId: string; rewardsPaidMsat: string; subsidyRatio: number | null }[]).find((m) => m.runId === runId);
  return {
    runId,
    assignments: views.length,
    accepted: views.filter((v) => v.acceptance).length,
    rejectedByReason,
    disputesByOutcome,
    satsPaid: Number(BigInt(runMetrics?.rewardsPaidMsat ?? '0') / 1000n),
    subsidyRatio: runMetrics?.subsidyRatio ?? null,
    reservedMsat: BigInt(run.reservedMsat),
    spentMsat: BigInt(run.spentMsat),
    assignmentIds,
  };
}

/**
 * Bonuses are paid after settlement and projections follow the log: the run's figures are final
 * once every projector has caught up and the log head stopped moving between two polls.
 */
async function waitUntilQuiet(options: SimulationOptions): Promise<void> {
  let lastHead = '';
  let sinceMs = Date.now();
  await waitUntil(options, 'projections to catch up', async () => {
    const health = (await (await fetch(new URL('/health', options.baseUrl))).json()) as { logHead: { globalPosition: string }; projections: { lagEvents: number }[] };
    const head = health.logHead.globalPosition;
    if (head !== lastHead) [lastHead, sinceMs] = [head, Date.now()];
    return Date.now() - sinceMs >= SIMULATION_LIMITS.quietMs && health.projections.every((p) => p.lagEvents === 0);
  });
}

/** Polls a condition against the server until it holds or the round's time is up: the server works asynchronously. */
async function waitUntil(options: SimulationOptions, what: string, condition: () => Promise<boolean>): Promise<void> {
  const deadlineMs = Date.now() + options.roundTimeoutMs;
  while (!(await condition())) {
    if (Date.now() > deadlineMs) throw new Error(`simulate: gave up waiting for ${what} after ${options.roundTimeoutMs} ms`);
    await new Promise((resolve) => setTimeout(resolve, SIMULATION_LIMITS.pollIntervalMs));
  }
}

export function formatSummary(summary: SimulationSummary): string {
  const rows: [string, string][] = [
    ['run', summary.runId],
    ['assignments', String(summary.assignments)],
    ['accepted', String(summary.accepted)],
    ...Object.entries(summary.rejectedByReason).map(([reason, n]): [string, string] => [`rejected: ${reason}`, String(n)]),
    ...Object.entries(summary.disputesByOutcome).map(([outcome, n]): [string, string] => [`disputes ${outcome}`, String(n)]),
    ['sats paid', summary.satsPaid.toLocaleString('en-US')],
    ['budget spent (msat)', summary.spentMsat.toLocaleString('en-US')],
    ['still reserved (msat)', summary.reservedMsat.toLocaleString('en-US')],
    ['subsidy ratio', summary.subsidyRatio === null ? 'n/a (no revenue)' : summary.subsidyRatio.toFixed(3)],
  ];
  const width = Math.max(...rows.map(([k]) => k.length));
  return rows.map(([k, v]) => `${k.padEnd(width)}  ${v}`).join('\n');
}
