// Submission benchmark: signed ~64 KiB sparseloco gradients through the whole embedded system over a real socket, beside a bare fastify route that discards the same bodies.

import { randomBytes } from 'node:crypto';
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import Fastify, { type FastifyInstance } from 'fastify';
import { ContributorClient, StaffClient } from '../../adapters/client/trainledger-client.js';
import { loadConfig } from '../../adapters/config.js';
import { DEFAULT_API_LIMITS } from '../../adapters/http/api-context.js';
import { generateEd25519KeyPair } from '../../adapters/http/auth/http-signature.js';
import { startSystem, type RunningSystem } from '../../adapters/system.js';
import { mnistShardDigests } from '../../replay/data/mnist.js';
import { encodeSparseLoco, MAX_SPARSELOCO_CHUNK_SIZE_ELEMENTS, SPARSELOCO_FILE_HEADER_SIZE_BYTES, sparseLocoSizeBytes, type SparseLocoOptions } from '../../replay/encoding/sparseloco.js';
import { referenceStep } from '../../replay/graphs/reference-steps.js';
import { encodeCheckpoint, initialParameters } from '../../replay/model/checkpoint.js';
import { elementCount, type ModelSpec, type ParameterSet } from '../../replay/model/model-spec.js';
import { createPrng } from '../../replay/model/prng.js';
import { percentile, round, timeSequential, type Timing } from './stats.js';

/** Where the system keeps its events: PGlite in the bench's temporary data folder, or a PostgreSQL database made for this run. */
export type SubmissionBenchDatabase = Readonly<{ engine: 'pglite' }> | Readonly<{ engine: 'postgres'; connectionString: string }>;

/** Bounds, so a typo cannot start a run that never ends. */
export const MAX_SUBMISSIONS = 100_000;
export const TARGET_BODY_BYTES = 64 * 1024;
/** Untimed requests on each side first: JIT, connection pools, prepared statements. */
const WARM_UP_REQUESTS = 20;
/** Submissions timed one at a time, each after the log has gone quiet: the API's own cost with no background backlog (the loops still poll each second). */
const ISOLATED_SAMPLES = 10;
/**
 * Assignments per run, and per timed wave. Every open assignment holds an escrow HTLC that the
 * escrow dispatcher looks at on each pass, and the gradient route replays the run's stream (one
 * budget reservation per assignment) on every submission; waves of a fixed size keep both, and so
 * the figure, independent of N. Each wave's run and assignments are made before its timing starts.
 */
const ASSIGNMENTS_PER_RUN = 100;
const BASE_REWARD_MSAT = 1_000n;
const GRADIENT_SEED = '65536';
/** Gradient values are uniform in ±GRADIENT_SCALE. */
const GRADIENT_SCALE = 0.01;
/**
 * The validator judges every submission in this same process (integrity, then two held-out MLP
 * evaluations), and the escrow then settles the HTLC. A random gradient barely moves the held-out
 * loss, so the improvement floor is -1 (any gradient that does not double the loss passes): every
 * verdict is an acceptance, the usual path. No replay draws, so the replay worker stays idle. Bonus
 * 0, so no payout invoices. Verdicts are never part of the timing.
 */
const VERIFICATION_POLICY = Object.freeze({ replayProbability: 0, maxGradientNorm: 50, minRelativeImprovement: -1 });
/** Per-caller limit while benchmarking: the limiter still runs on every request, it just never refuses. */
const UNTHROTTLED_REQUESTS_PER_MINUTE = 100_000_000;
/** The log is quiet when its head has not moved for this long (the system's loops poll every second). */
const QUIET_WINDOW_MS = 1_500;
const QUIET_POLL_MS = 100;
/** Background work per assignment set up (escrow HTLC on the dev network, projections) gets this long. */
const QUIET_TIMEOUT_BASE_MS = 60_000;
const QUIET_TIMEOUT_PER_ASSIGNMENT_MS = 100;
/** Byte offset of the first tensor's `shift` (f32): file header, then the tensor header's field at 8. */
const FIRST_TENSOR_SHIFT_OFFSET = SPARSELOCO_FILE_HEADER_SIZE_BYTES + 8;

type Rate = { perSec: number; latencyMsP50: number; latencyMsP99: number };

export type SubmissionBenchResult = {
  bodySizeBytes: number;
  sparseloco: SparseLocoOptions & { targetBytes: number };
  requests: number;
  /** N sequential submissions, in waves of ASSIGNMENTS_PER_RUN, with the whole system reacting to each. */
  submissions: Rate;
  /** Single submissions, each after the log went quiet. */
  isolatedSubmissions: { samples: number; latencyMsP50: number; latencyMsP99: number };
  bareRoute: Rate;
  apiToBareRatio: number;
  /** False when the system's background work had not settled before some timing began (see stderr). */
  quietBeforeTiming: boolean;
};

export async function runSubmissionBench(database: SubmissionBenchDatabase, count: number, log: (line: string) => void): Promise<SubmissionBenchResult> {
  if (!Number.isInteger(count) || count < 1 || count > MAX_SUBMISSIONS) throw new Error(`submissions must be an integer from 1 to ${MAX_SUBMISSIONS}`);
  const step = referenceStep('mlp');
  const options = closestSparseLocoOptions(step.model, TARGET_BODY_BYTES);
  const bodies = new DistinctBodies(encodeSparseLoco(step.model, seededGradient(step.model, GRADIENT_SEED), options));
  log(`bench: submissions on ${database.engine}: ${count} signed sparseloco bodies of ${bodies.sizeBytes} bytes (chunkSize ${options.chunkSize}, topK ${options.topK})...`);

  const dataDir = mkdtempSync(join(tmpdir(), 'trainledger-submission-bench-'));
  const adminKey = `tl_coordinator_${randomBytes(32).toString('base64url')}`;
  let system: RunningSystem | null = null;
  let bare: FastifyInstance | null = null;
  try {
    // PGlite's files go in the data folder (loadConfig's layout); PostgreSQL through --database-url.
    const argv = ['--data-dir', dataDir, '--host', '127.0.0.1', '--port', '0', ...(database.engine === 'postgres' ? ['--database-url', database.connectionString] : [])];
    system = await startSystem({
      config: loadConfig(argv, {}),
      env: { TRAINLEDGER_ADMIN_KEY: adminKey },
      log: (line) => log(`system: ${line}`),
      limits: { ...DEFAULT_API_LIMITS, requestsPerMinute: UNTHROTTLED_REQUESTS_PER_MINUTE },
    });
    const baseUrl = system.address;
    const seeder = await Seeder.open(baseUrl, adminKey);
    let quiet = true;
    const settle = async (what: string, assignments: number) => {
      const timeoutMs = QUIET_TIMEOUT_BASE_MS + QUIET_TIMEOUT_PER_ASSIGNMENT_MS * assignments;
      if (await waitForQuietLog(baseUrl, timeoutMs)) return;
      quiet = false;
      log(`bench: warning: ${database.engine} log still moving ${what} after ${timeoutMs} ms; timing anyway`);
    };

    bare = Fastify();
    bare.addContentTypeParser('application/octet-stream', { parseAs: 'buffer' }, (_request, body, done) => done(null, body));
    bare.post('/discard', async (_request, reply) => reply.code(204).send());
    const bareUrl = new URL('/discard', await bare.listen({ host: '127.0.0.1', port: 0 }));

    // Body i is the same bytes on both sides; warm-up and isolated bodies come first, so every submission is distinct.
    const submit = (assignmentId: string, i: number) =>
      seeder.contributor.submitGradient(assignmentId, { bytes: bodies.body(i), encoding: 'sparseloco', claimedLoss: 2.3, computeTimeMs: 10 });
    const discard = async (i: number) => {
      const response = await fetch(bareUrl, { method: 'POST', headers: { 'content-type': 'application/octet-stream' }, body: bodies.body(i) });
      await response.arrayBuffer();
      if (response.status !== 204) throw new Error(`bare route answered ${response.status}`);
    };

    const isolatedCount = Math.min(count, ISOLATED_SAMPLES);
    const warmUpIds = await seeder.runWithAssignments('bench-warm-up', WARM_UP_REQUESTS + isolatedCount);
    await settle('after setup', warmUpIds.length);
    for (let i = 0; i < WARM_UP_REQUESTS; i += 1) {
      await discard(i);
      await submit(warmUpIds[i]!, i);
    }
    const isolatedMs: number[] = [];
    for (let k = 0; k < isolatedCount; k += 1) {
      await settle('before an isolated submission', WARM_UP_REQUESTS);
      const i = WARM_UP_REQUESTS + k;
      isolatedMs.push((await timeSequential(1, 1, () => submit(warmUpIds[i]!, i))).latencyMsP50);
    }
    const firstTimedBody = WARM_UP_REQUESTS + isolatedCount;

    // The bare route while the system is idle; then the API, wave by wave, each wave's run made untimed first.
    await settle('before the bare route', warmUpIds.length);
    const bareTiming = await timeSequential(count, 1, (i) => discard(firstTimedBody + i));
    const samplesMs: number[] = [];
    let elapsedMs = 0;
    for (let first = 0, wave = 0; first < count; first += ASSIGNMENTS_PER_RUN, wave += 1) {
      const ids = await seeder.runWithAssignments(`bench-run-${wave}`, Math.min(ASSIGNMENTS_PER_RUN, count - first));
      await settle(`before wave ${wave}`, ids.length);
      const timing = await timeSequential(ids.length, 1, async (j) => {
        const startedMs = performance.now();
        await submit(ids[j]!, firstTimedBody + first + j);
        samplesMs.push(performance.now() - startedMs);
      });
      elapsedMs += timing.elapsedMs;
    }
    samplesMs.sort((a, b) => a - b);
    isolatedMs.sort((a, b) => a - b);
    const apiPerSec = (count / elapsedMs) * 1000;
    return {
      bodySizeBytes: bodies.sizeBytes,
      sparseloco: { ...options, targetBytes: TARGET_BODY_BYTES },
      requests: count,
      submissions: { perSec: round(apiPerSec), latencyMsP50: round(percentile(samplesMs, 50), 3), latencyMsP99: round(percentile(samplesMs, 99), 3) },
      isolatedSubmissions: { samples: isolatedCount, latencyMsP50: round(percentile(isolatedMs, 50), 3), latencyMsP99: round(percentile(isolatedMs, 99), 3) },
      bareRoute: rate(bareTiming),
      apiToBareRatio: round(apiPerSec / bareTiming.eventsPerSec, 4),
      quietBeforeTiming: quiet,
    };
  } finally {
    await bare?.close();
    await system?.stop();
    rmSync(dataDir, { recursive: true, force: true });
  }
}

function rate(timing: Timing): Rate {
  return { perSec: timing.eventsPerSec, latencyMsP50: timing.latencyMsP50, latencyMsP99: timing.latencyMsP99 };
}

/** The MLP's initial checkpoint, one registered contributor, and funded runs of assignments to them. */
class Seeder {
  private assigned = 0;
  private constructor(
    private readonly staff: StaffClient,
    readonly contributor: ContributorClient,
    private readonly checkpointDigest: string,
  ) {}

  static async open(baseUrl: string, adminKey: string): Promise<Seeder> {
    const staff = new StaffClient({ baseUrl }, adminKey);
    const step = referenceStep('mlp');
    const { digest } = await staff.uploadCheckpoint(encodeCheckpoint(step.model, initialParameters(step.model, '1')));
    const contributorId = 'bench-contributor';
    const { publicKeyHex, privateKey } = generateEd25519KeyPair();
    const contributor = new ContributorClient({ baseUrl }, contributorId, privateKey);
    // The development network's simulated node for this id, as `trainledger simulate` registers.
    const nodeKeyResponse = await fetch(new URL(`/v1/dev/node-keys/${contributorId}`, baseUrl));
    if (!nodeKeyResponse.ok) throw new Error(`GET /v1/dev/node-keys answered ${nodeKeyResponse.status}`);
    const { lightningNodePubkeyHex } = (await nodeKeyResponse.json()) as { lightningNodePubkeyHex: string };
    await contributor.register({ signingPublicKeyHex: publicKeyHex, lightningNodePubkeyHex });
    return new Seeder(staff, contributor, digest);
  }

  /** Opens a run funded twice over and makes `assignments` assignments in it to the contributor; returns their ids. */
  async runWithAssignments(runId: string, assignments: number): Promise<string[]> {
    const step = referenceStep('mlp');
    const shards = mnistShardDigests().slice(0, 1);
    await this.staff.openRun({
      runId, stepGraphDigest: step.graphDigest, initialCheckpointDigest: this.checkpointDigest, shards,
      rewardPolicy: { baseRewardMsat: String(BASE_REWARD_MSAT), maxBonusMsat: '0' },
      verificationPolicy: VERIFICATION_POLICY,
      escrowPolicy: { cltvDeltaBlocks: 144, invoiceExpirySec: 3600, disputeWindowMs: 86_400_000, assignmentTimeoutMs: 3_600_000 },
    });
    await this.staff.fundRun(runId, { fundingId: 'bench-funding', source: 'customer', amountMsat: String(2n * BigInt(assignments) * BASE_REWARD_MSAT) });
    const ids: string[] = [];
    for (let j = 0; j < assignments; j += 1) {
      const assignmentId = `bench-a${this.assigned}`;
      await this.staff.assign({ assignmentId, runId, contributorId: this.contributor.contributorId, step: 1, shardId: shards[0]!.shardId, batchIndex: this.assigned % 15, seed: '42' });
      this.assigned += 1;
      ids.push(assignmentId);
    }
    return ids;
  }
}

/** Waits until the log head holds still for QUIET_WINDOW_MS and no projection lags; false on timeout. */
async function waitForQuietLog(baseUrl: string, timeoutMs: number): Promise<boolean> {
  const deadline = performance.now() + timeoutMs;
  let lastHead = '';
  let stillSince = performance.now();
  while (performance.now() < deadline) {
    const response = await fetch(new URL('/health', baseUrl));
    const health = (await response.json()) as { logHead?: { globalPosition: string }; projections?: { lagEvents: number }[] };
    const head = health.logHead?.globalPosition ?? '';
    const caughtUp = (health.projections ?? []).every((p) => p.lagEvents === 0);
    if (head !== lastHead || !caughtUp) {
      lastHead = head;
      stillSince = performance.now();
    } else if (performance.now() - stillSince >= QUIET_WINDOW_MS) return true;
    await new Promise((resolve) => setTimeout(resolve, QUIET_POLL_MS));
  }
  return false;
}

/** The chunkSize and topK (one pair for every tensor) whose body size is closest to `targetBytes`; ties to the smaller chunk. */
export function closestSparseLocoOptions(model: ModelSpec, targetBytes: number): SparseLocoOptions {
  let best: SparseLocoOptions = { chunkSize: 1, topK: 0 };
  let bestDistance = Math.abs(sparseLocoSizeBytes(model, best) - targetBytes);
  for (let chunkSize = 1; chunkSize <= MAX_SPARSELOCO_CHUNK_SIZE_ELEMENTS; chunkSize += 1) {
    // Size never falls as topK grows: find the first topK at or over the target, then compare it with the one below.
    let low = 0;
    let high = chunkSize;
    while (low < high) {
      const mid = (low + high) >> 1;
      if (sparseLocoSizeBytes(model, { chunkSize, topK: mid }) >= targetBytes) high = mid;
      else low = mid + 1;
    }
    for (const topK of [low - 1, low]) {
      if (topK < 0) continue;
      const distance = Math.abs(sparseLocoSizeBytes(model, { chunkSize, topK }) - targetBytes);
      if (distance < bestDistance) {
        best = { chunkSize, topK };
        bestDistance = distance;
      }
    }
  }
  return best;
}

/** A gradient-shaped tensor set: finite, uniform in ±GRADIENT_SCALE, the same for the same seed. */
function seededGradient(model: ModelSpec, seed: string): ParameterSet {
  const prng = createPrng(seed);
  return model.parameters.map((tensor) => Float32Array.from({ length: elementCount(tensor) }, () => (prng.nextFloat() * 2 - 1) * GRADIENT_SCALE));
}

/**
 * Body i is the encoded gradient with its first tensor's `shift` moved i + 1 float32 steps: still a
 * valid, canonical sparseloco body (levels stay finite), and a different gradient for every i, so
 * no submission is a byte copy of another. Made per request (one 64 KiB copy) to bound memory.
 */
class DistinctBodies {
  private readonly shiftBits: number;
  constructor(private readonly base: Uint8Array) {
    this.shiftBits = new DataView(base.buffer, base.byteOffset, base.byteLength).getUint32(FIRST_TENSOR_SHIFT_OFFSET, true);
  }
  get sizeBytes(): number {
    return this.base.byteLength;
  }
  body(i: number): Uint8Array {
    const bytes = this.base.slice();
    const view = new DataView(bytes.buffer);
    view.setUint32(FIRST_TENSOR_SHIFT_OFFSET, (this.shiftBits + i + 1) >>> 0, true);
    if (!Number.isFinite(view.getFloat32(FIRST_TENSOR_SHIFT_OFFSET, true))) throw new Error(`body ${i}: shift is no longer finite`);
    return bytes;
  }
}
