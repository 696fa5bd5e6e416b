// Submission benchmark: signed ~64 KiB gradients from 16 concurrent contributors into the API part alone, beside a floor route, on a new run and on one with a long history.

import { createPublicKey, randomBytes, randomUUID, sign, verify, type KeyObject } from 'node:crypto';
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { PGlite } from '@electric-sql/pglite';
import Fastify, { type FastifyInstance } from 'fastify';
import pg from 'pg';
import { ContributorClient, StaffClient } from '../../adapters/client/trainledger-client.js';
import { loadAggregate } from '../../adapters/commands/command-handler.js';
import type { HistoryEvent } from '../projections/history.js';
import { bulkLoad } from './bulk-load.js';
import { loadConfig } from '../../adapters/config.js';
import { openEventStore } from '../../adapters/event-store/open-event-store.js';
import { DEFAULT_API_LIMITS } from '../../adapters/http/api-context.js';
import { BOOTSTRAP_KEY_ID } from '../../adapters/http/auth/api-keys.js';
import { contentDigest, generateEd25519KeyPair } from '../../adapters/http/auth/http-signature.js';
import { startSystem, type RunningSystem } from '../../adapters/system.js';
import { runDecider, runStreamId } from '../../domain/run/index.js';
import { mnistShardDigests } from '../../replay/data/mnist.js';
import { encodeSparseLoco, MAX_SPARSELOCO_CHUNK_SIZE_ELEMENTS, SPARSELOCO_FILE_HEADER_SIZE_BYTES, sparseLocoSizeBytes, type SparseLocoOptions } from '../../replay/encoding/sparseloco.js';
import { referenceStep } from '../../replay/graphs/reference-steps.js';
import { encodeCheckpoint, initialParameters, sha256Hex } from '../../replay/model/checkpoint.js';
import { elementCount, type ModelSpec, type ParameterSet } from '../../replay/model/model-spec.js';
import { createPrng } from '../../replay/model/prng.js';
import { percentile, round } from './stats.js';

/** Where the system keeps its events: PGlite in the bench's temporary data folder, or a PostgreSQL database made for this run. */
export type SubmissionBenchDatabase = Readonly<{ engine: 'pglite' }> | Readonly<{ engine: 'postgres'; connectionString: string }>;

export type SubmissionBenchSizes = Readonly<{
  /** Timed submissions per phase (new run, long run), spread over the contributors. */
  submissions: number;
  /** Contributors submitting at once, each its own assignments one after another. */
  concurrency: number;
  /** Completed assignments already in the long run's history before its timing. */
  historyAssignments: number;
}>;

/** Bounds, so a typo cannot start a run that never ends. */
export const MAX_SUBMISSIONS = 100_000;
export const MAX_HISTORY_ASSIGNMENTS = 1_000_000;
export const TARGET_BODY_BYTES = 64 * 1024;
/** Untimed requests on each side first, per contributor: JIT, connection pools, the first fold of each run. */
const WARM_UP_PER_CONTRIBUTOR = 3;
/** Timed rounds; each runs the floor, the new run and the long run once, in a rotating order. */
const ROUNDS = 5;
const BASE_REWARD_MSAT = 1_000n;
/** Covers an assignment's worst case (base, bonus bound, routing fees) with room to spare. */
const FUNDING_PER_ASSIGNMENT_MSAT = 20_000n;
const GRADIENT_SEED = '65536';
/** Gradient values are uniform in ±GRADIENT_SCALE. */
const GRADIENT_SCALE = 0.01;
/** The run policy accepts what it sees; no verdict is timed here (the API part alone runs no validator). */
const VERIFICATION_POLICY = Object.freeze({ replayProbability: 0, maxGradientNorm: 50, minRelativeImprovement: -1 });
const ESCROW_POLICY = Object.freeze({ cltvDeltaBlocks: 144, invoiceExpirySec: 3600, disputeWindowMs: 86_400_000, assignmentTimeoutMs: 3_600_000 });
/** Per-caller limit while benchmarking: the limiter still runs on every request, it just never refuses. */
const UNTHROTTLED_REQUESTS_PER_MINUTE = 100_000_000;
/** Byte offset of the first tensor's `shift` (f32): file header, then the tensor header's field at 8. */
const FIRST_TENSOR_SHIFT_OFFSET = SPARSELOCO_FILE_HEADER_SIZE_BYTES + 8;

type Rate = { perSec: number; latencyMsP50: number; latencyMsP99: number; operations: number };
type PhaseResult = { assignments: Rate; submissions: Rate };

export type SubmissionBenchResult = {
  bodySizeBytes: number;
  sparseloco: SparseLocoOptions & { targetBytes: number };
  concurrency: number;
  rounds: number;
  /** 16 contributors into the API part alone (no projections, validator or escrow in this process), on a new run. */
  api: Rate;
  /** The same bodies, the same concurrency: read the body, verify one ed25519 signature over its digest, commit one single-row INSERT. */
  floor: Rate;
  vsFloor: number;
  history: {
    historyAssignments: number;
    newRun: PhaseResult;
    longRun: PhaseResult;
    /** Long-run rate divided by new-run rate: 1 is perfectly flat. */
    historyFlatness: { submissions: number; assignments: number };
    seedMs: number;
    /** One full fold of the long run's stream: what a process's first request on that run pays, once. */
    firstFoldMs: number;
  };
};

export async function runSubmissionBench(database: SubmissionBenchDatabase, sizes: SubmissionBenchSizes, log: (line: string) => void): Promise<SubmissionBenchResult> {
  const { submissions, concurrency, historyAssignments } = sizes;
  if (!Number.isInteger(submissions) || submissions < 1 || submissions > MAX_SUBMISSIONS) throw new Error(`submissions must be an integer from 1 to ${MAX_SUBMISSIONS}`);
  if (!Number.isInteger(concurrency) || concurrency < 1 || concurrency > 256) throw new Error('concurrency must be an integer from 1 to 256');
  if (!Number.isInteger(historyAssignments) || historyAssignments < 0 || historyAssignments > MAX_HISTORY_ASSIGNMENTS) throw new Error(`historyAssignments must be an integer from 0 to ${MAX_HISTORY_ASSIGNMENTS}`);
  const step = referenceStep('mlp');
  const options = closestSparseLocoOptions(step.model, TARGET_BODY_BYTES);
  const bodies = new DistinctBodies(encodeSparseLoco(step.model, seededGradient(step.model, GRADIENT_SEED), options));
  log(`bench: submissions on ${database.engine}: ${concurrency} contributors, ${submissions} signed sparseloco bodies of ${bodies.sizeBytes} bytes per phase, long run history ${historyAssignments} assignments...`);

  const dataDir = mkdtempSync(join(tmpdir(), 'trainledger-submission-bench-'));
  const adminKey = `tl_coordinator_${randomBytes(32).toString('base64url')}`;
  const argv = ['--data-dir', dataDir, '--host', '127.0.0.1', '--port', '0', '--parts', 'api', ...(database.engine === 'postgres' ? ['--database-url', database.connectionString] : [])];
  const config = loadConfig(argv, {});
  let system: RunningSystem | null = null;
  let floor: Floor | null = null;
  try {
    // The long run's history goes in before the system starts: PGlite has one process, and the first fold then happens in the warm-up.
    const seedStarted = performance.now();
    const { firstFoldMs } = await seedLongRun(config.database, 'bench-long', historyAssignments);
    const seedMs = performance.now() - seedStarted;
    log(`bench: seeded ${historyAssignments} completed assignments into run bench-long in ${round(seedMs)} ms; its first fold took ${round(firstFoldMs)} ms`);

    system = await startSystem({ config, env: { TRAINLEDGER_ADMIN_KEY: adminKey }, log: (line) => log(`system: ${line}`), limits: { ...DEFAULT_API_LIMITS, requestsPerMinute: UNTHROTTLED_REQUESTS_PER_MINUTE } });
    const seeder = await Seeder.open(system.address, adminKey, concurrency);
    floor = await Floor.open(database, dataDir);

    let nextBody = 0;
    const submitAll = async (ids: string[][]) =>
      timeConcurrent(ids, async (contributor, assignmentId) => {
        await seeder.contributors[contributor]!.submitGradient(assignmentId, { bytes: bodies.body(nextBody++), encoding: 'sparseloco', claimedLoss: 2.3, computeTimeMs: 10 });
      });
    const perRound = Math.max(concurrency, Math.ceil(submissions / ROUNDS));
    const runPhase = async (runId: string): Promise<PhaseResult> => {
      const assigned = await seeder.assign(runId, perRound);
      return { assignments: assigned.rate, submissions: await submitAll(assigned.byContributor) };
    };
    const floorPhase = () => timeConcurrent(spread(Array.from({ length: perRound }, () => ''), concurrency), () => floor!.call(bodies.body(nextBody++)));

    // Untimed warm-up of all three: JIT, connection pools, and the first fold of each run.
    await seeder.openRun('bench-new', (ROUNDS + 1) * perRound + concurrency * WARM_UP_PER_CONTRIBUTOR);
    await seeder.fundRun('bench-long', (ROUNDS + 1) * perRound + concurrency * WARM_UP_PER_CONTRIBUTOR);
    await timeConcurrent(Array.from({ length: concurrency }, () => Array.from({ length: WARM_UP_PER_CONTRIBUTOR }, () => '')), () => floor!.call(bodies.body(nextBody++)));
    for (const runId of ['bench-new', 'bench-long']) await submitAll((await seeder.assign(runId, concurrency * WARM_UP_PER_CONTRIBUTOR)).byContributor);

    // Timed rounds, the three interleaved in a rotating order, so a neighbour's burst on this shared
    // machine slows one round of each rather than all of one; every figure is the median round.
    const rounds: Array<{ floor: Rate; newRun: PhaseResult; longRun: PhaseResult }> = [];
    for (let round = 0; round < ROUNDS; round += 1) {
      const result: Partial<(typeof rounds)[number]> = {};
      const order = (['floor', 'newRun', 'longRun'] as const).map((_, k, all) => all[(k + round) % all.length]!);
      for (const part of order) {
        if (part === 'floor') result.floor = await floorPhase();
        else result[part] = await runPhase(part === 'newRun' ? 'bench-new' : 'bench-long');
      }
      rounds.push(result as (typeof rounds)[number]);
      log(`bench: submissions round ${round + 1}/${ROUNDS} [${database.engine}]: floor ${result.floor!.perSec}/s, new run ${result.newRun!.submissions.perSec}/s, long run ${result.longRun!.submissions.perSec}/s`);
    }
    const medianRate = (rates: Rate[]): Rate => [...rates].sort((a, b) => a.perSec - b.perSec)[Math.floor(rates.length / 2)]!;
    const medianOf = (values: number[]) => round([...values].sort((a, b) => a - b)[Math.floor(values.length / 2)]!, 3);
    const newRun = { assignments: medianRate(rounds.map((r) => r.newRun.assignments)), submissions: medianRate(rounds.map((r) => r.newRun.submissions)) };
    const longRun = { assignments: medianRate(rounds.map((r) => r.longRun.assignments)), submissions: medianRate(rounds.map((r) => r.longRun.submissions)) };
    return {
      bodySizeBytes: bodies.sizeBytes,
      sparseloco: { ...options, targetBytes: TARGET_BODY_BYTES },
      concurrency,
      rounds: ROUNDS,
      api: newRun.submissions,
      floor: medianRate(rounds.map((r) => r.floor)),
      // Ratios within each round first (the two sides ran back to back), then the median round.
      vsFloor: medianOf(rounds.map((r) => r.newRun.submissions.perSec / r.floor.perSec)),
      history: {
        historyAssignments,
        newRun,
        longRun,
        historyFlatness: {
          submissions: medianOf(rounds.map((r) => r.longRun.submissions.perSec / r.newRun.submissions.perSec)),
          assignments: medianOf(rounds.map((r) => r.longRun.assignments.perSec / r.newRun.assignments.perSec)),
        },
        seedMs: round(seedMs),
        firstFoldMs: round(firstFoldMs),
      },
    };
  } finally {
    await floor?.close();
    await system?.stop();
    rmSync(dataDir, { recursive: true, force: true });
  }
}

/**
 * A run whose stream holds `assignments` finished reservations (reserved, then released with
 * nothing spent): what a run looks like after that many assignments, to the run aggregate every
 * assignment and submission reads. Bulk-loaded (see bulk-load.ts), then folded and chain-checked
 * before use; funding for the timed phase comes later, through the API.
 */
async function seedLongRun(target: ReturnType<typeof loadConfig>['database'], runId: string, assignments: number): Promise<{ firstFoldMs: number }> {
  const { store, db } = await openEventStore(target);
  try {
    const step = referenceStep('mlp');
    const atMs = Date.now();
    const streamId = runStreamId(runId);
    const amountMsat = BASE_REWARD_MSAT;
    const definition = { runId, coordinatorId: BOOTSTRAP_KEY_ID, stepGraphDigest: step.graphDigest, initialCheckpointDigest: checkpointOf(step.model).digest, shards: mnistShardDigests().slice(0, 1), rewardPolicy: { baseRewardMsat: BASE_REWARD_MSAT, maxBonusMsat: 0n }, verificationPolicy: VERIFICATION_POLICY, escrowPolicy: ESCROW_POLICY };
    const history: HistoryEvent[] = [
      { streamId, event: { type: 'RunOpened', data: { ...definition, atMs } } },
      { streamId, event: { type: 'RunFunded', data: { runId, fundingId: 'history', source: 'customer', amountMsat, atMs } } },
    ] as HistoryEvent[];
    for (let i = 0; i < assignments; i += 1) {
      const reservationId = `rsv-history-${i}`;
      const assignmentId = `history-${i}`;
      history.push({ streamId, event: { type: 'BudgetReserved', data: { runId, reservationId, assignmentId, amountMsat, atMs } } } as HistoryEvent);
      history.push({ streamId, event: { type: 'BudgetReleased', data: { runId, reservationId, assignmentId, reservedMsat: amountMsat, spentMsat: 0n, returnedMsat: amountMsat, atMs } } } as HistoryEvent);
    }
    // Straight into the log in large statements (the chain and the head as the store writes them), then checked by a fold.
    await bulkLoad(db, history, atMs);
    const foldStarted = performance.now();
    const { state, lastRevision } = await loadAggregate(store, runDecider, streamId);
    const firstFoldMs = performance.now() - foldStarted;
    if (lastRevision !== history.length - 1 || state.status !== 'open' || state.releasedReservationIds.size !== assignments) throw new Error(`seeded run ${runId} folds to revision ${lastRevision}, not ${history.length - 1}`);
    const chain = await store.verifyStream(streamId);
    if (!chain.ok) throw new Error(`seeded run ${runId} does not verify: ${chain.problem} ${chain.detail}`);
    return { firstFoldMs };
  } finally {
    await store.close();
  }
}

/**
 * Runs `operation` over every item of every lane, the lanes at once and each lane's items in
 * order (one contributor's submissions one after another), and times the whole.
 */
async function timeConcurrent(lanes: readonly (readonly string[])[], operation: (lane: number, item: string) => Promise<unknown>): Promise<Rate> {
  const samplesMs: number[] = [];
  const started = performance.now();
  await Promise.all(
    lanes.map(async (items, lane) => {
      for (const item of items) {
        const t0 = performance.now();
        await operation(lane, item);
        samplesMs.push(performance.now() - t0);
      }
    }),
  );
  const elapsedMs = performance.now() - started;
  samplesMs.sort((a, b) => a - b);
  return { perSec: round((samplesMs.length / elapsedMs) * 1000, 1), latencyMsP50: round(percentile(samplesMs, 50), 3), latencyMsP99: round(percentile(samplesMs, 99), 3), operations: samplesMs.length };
}

/** Items dealt round-robin into `lanes` lanes. */
function spread<T>(items: readonly T[], lanes: number): T[][] {
  const out: T[][] = Array.from({ length: lanes }, () => []);
  items.forEach((item, i) => out[i % lanes]!.push(item));
  return out;
}

function checkpointOf(model: ModelSpec): { bytes: Uint8Array; digest: string } {
  const bytes = encodeCheckpoint(model, initialParameters(model, '1'));
  return { bytes, digest: sha256Hex(bytes) };
}

/** Registered contributors, the MLP's initial checkpoint, and runs whose assignments go round-robin to them. */
class Seeder {
  private assigned = 0;
  private constructor(
    private readonly staff: StaffClient,
    readonly contributors: ContributorClient[],
  ) {}

  static async open(baseUrl: string, adminKey: string, count: number): Promise<Seeder> {
    const staff = new StaffClient({ baseUrl }, adminKey);
    await staff.uploadCheckpoint(checkpointOf(referenceStep('mlp').model).bytes);
    const contributors: ContributorClient[] = [];
    for (let i = 0; i < count; i += 1) {
      const contributorId = `bench-contributor-${i}`;
      const { publicKeyHex, privateKey } = generateEd25519KeyPair();
      const contributor = new ContributorClient({ baseUrl }, contributorId, privateKey);
      const nodeKeyResponse = await fetch(new URL(`/v1/dev/node-keys/${contributorId}`, baseUrl));
      if (!nodeKeyResponse.ok) throw new Error(`GET /v1/dev/node-keys answered ${nodeKeyResponse.status}`);
      const { lightningNodePubkeyHex } = (await nodeKeyResponse.json()) as { lightningNodePubkeyHex: string };
      await contributor.register({ signingPublicKeyHex: publicKeyHex, lightningNodePubkeyHex });
      contributors.push(contributor);
    }
    return new Seeder(staff, contributors);
  }

  async openRun(runId: string, assignments: number): Promise<void> {
    const step = referenceStep('mlp');
    await this.staff.openRun({
      runId, stepGraphDigest: step.graphDigest, initialCheckpointDigest: checkpointOf(step.model).digest, shards: mnistShardDigests().slice(0, 1),
      rewardPolicy: { baseRewardMsat: String(BASE_REWARD_MSAT), maxBonusMsat: '0' }, verificationPolicy: VERIFICATION_POLICY, escrowPolicy: ESCROW_POLICY,
    });
    await this.fundRun(runId, assignments);
  }

  async fundRun(runId: string, assignments: number): Promise<void> {
    await this.staff.fundRun(runId, { fundingId: `bench-funding-${randomUUID()}`, source: 'customer', amountMsat: String(BigInt(assignments) * FUNDING_PER_ASSIGNMENT_MSAT) });
  }

  /** `count` assignments, one after another (they all reserve on the run's one stream), timed; returns their ids by contributor. */
  async assign(runId: string, count: number): Promise<{ rate: Rate; byContributor: string[][] }> {
    const byContributor: string[][] = this.contributors.map(() => []);
    const shard = mnistShardDigests()[0]!;
    const rate = await timeConcurrent([Array.from({ length: count }, () => '')], async () => {
      const contributor = this.assigned % this.contributors.length;
      const assignmentId = `bench-a${this.assigned}`;
      await this.staff.assign({ assignmentId, runId, contributorId: this.contributors[contributor]!.contributorId, step: 1, shardId: shard.shardId, batchIndex: this.assigned % 15, seed: '42' });
      byContributor[contributor]!.push(assignmentId);
      this.assigned += 1;
    });
    return { rate, byContributor };
  }
}

/**
 * The floor a submission cannot go below on this machine and engine: a bare route that reads the
 * same body, verifies one ed25519 signature over its digest and commits one single-row INSERT.
 * The client signs each request, as the SDK does, so both sides pay the client's share too.
 */
class Floor {
  private constructor(
    private readonly app: FastifyInstance,
    private readonly url: URL,
    private readonly privateKey: KeyObject,
    private readonly closeDb: () => Promise<void>,
  ) {}

  static async open(database: SubmissionBenchDatabase, dataDir: string): Promise<Floor> {
    const { privateKey } = generateEd25519KeyPair();
    const publicKey = createPublicKey(privateKey);
    const insert = await floorInsert(database, dataDir);
    const app = Fastify();
    app.addContentTypeParser('application/octet-stream', { parseAs: 'buffer' }, (_request, body, done) => done(null, body));
    app.post('/floor', async (request, reply) => {
      const body = request.body as Buffer;
      const digest = contentDigest(body);
      const signature = Buffer.from(String(request.headers.signature), 'base64');
      if (!verify(null, Buffer.from(digest), publicKey, signature)) return reply.code(401).send();
      await insert.run(digest);
      return reply.code(201).send();
    });
    const url = new URL('/floor', await app.listen({ host: '127.0.0.1', port: 0 }));
    return new Floor(app, url, privateKey, insert.close);
  }

  async call(body: Uint8Array): Promise<void> {
    const signature = sign(null, Buffer.from(contentDigest(body)), this.privateKey).toString('base64');
    const response = await fetch(this.url, { method: 'POST', headers: { 'content-type': 'application/octet-stream', signature }, body });
    await response.arrayBuffer();
    if (response.status !== 201) throw new Error(`floor route answered ${response.status}`);
  }

  async close(): Promise<void> {
    await this.app.close();
    await this.closeDb();
  }
}

/** One single-row INSERT per call on the bench's engine: a pool on the same PostgreSQL database, or a PGlite of its own. */
async function floorInsert(database: SubmissionBenchDatabase, dataDir: string): Promise<{ run: (digest: string) => Promise<void>; close: () => Promise<void> }> {
  const ddl = 'CREATE TABLE IF NOT EXISTS bench_floor (id bigserial PRIMARY KEY, digest text NOT NULL, at timestamptz NOT NULL DEFAULT now())';
  if (database.engine === 'postgres') {
    const pool = new pg.Pool({ connectionString: database.connectionString, max: 16 });
    await pool.query(ddl);
    return { run: async (digest) => void (await pool.query('INSERT INTO bench_floor (digest) VALUES ($1)', [digest])), close: () => pool.end() };
  }
  const db = new PGlite(join(dataDir, 'floor-pglite'));
  await db.query(ddl);
  return { run: async (digest) => void (await db.query('INSERT INTO bench_floor (digest) VALUES ($1)', [digest])), close: () => db.close() };
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
