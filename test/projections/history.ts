// Random but valid event histories for projection tests: the real deciders driven by simulated runs, contributors and assignments.

import { createHash, randomUUID } from 'node:crypto';
import fc from 'fast-check';
import { EVENT_STORE_LIMITS } from '../../adapters/event-store/limits.js';
import {
  assignmentDecider,
  assignmentStreamId,
  contributorDecider,
  contributorStreamId,
  type Decider,
  type DomainEvent,
  DomainError,
  invoiceDecider,
  invoiceStreamId,
  runDecider,
  runStreamId,
  toWire,
  type AssignmentCommand,
  type AssignmentState,
  type ContributorCommand,
  type ContributorState,
  type InvoiceCommand,
  type InvoiceState,
  type RunCommand,
  type RunState,
} from '../../domain/index.js';
import type { InvoiceKind } from '../../domain/invoice/index.js';
import type { EventStore, JsonObject, NewEvent } from '../../domain/ports/event-store.js';

export type HistoryEvent = Readonly<{ streamId: string; event: DomainEvent }>;
export type HistorySize = Readonly<{ runs: number; assignments: number }>;
export type HistoryOptions = Readonly<{
  /** Prepended to every id, so several histories can share one event store. */
  idPrefix?: string;
  startMs?: number;
}>;

/** Saturday 2026-11-21 22:13:20 UTC: histories cross hour, day and week (Monday) boundaries early. */
export const HISTORY_START_MS = Date.UTC(2026, 10, 21, 22, 13, 20);

const MINUTE_MS = 60_000;
const HOUR_MS = 60 * MINUTE_MS;
const DAY_MS = 24 * HOUR_MS;

// ---- deterministic randomness -------------------------------------------------------------

/** mulberry32: a tiny seeded PRNG, enough for test data and exactly replayable from its seed. */
export function mulberry32(seed: number): () => number {
  let a = seed >>> 0;
  return () => {
    a = (a + 0x6d2b79f5) >>> 0;
    let t = a;
    t = Math.imul(t ^ (t >>> 15), t | 1);
    t ^= t + Math.imul(t ^ (t >>> 7), t | 61);
    return ((t ^ (t >>> 14)) >>> 0) / 4_294_967_296;
  };
}

class Rand {
  constructor(private readonly next: () => number) {}
  float(): number {
    return this.next();
  }
  /** Whole number in [min, max]. */
  int(min: number, max: number): number {
    return min + Math.floor(this.next() * (max - min + 1));
  }
  chance(p: number): boolean {
    return this.next() < p;
  }
  pick<T>(items: readonly T[]): T {
    const item = items[this.int(0, items.length - 1)];
    if (item === undefined) throw new Error('pick from an empty list');
    return item;
  }
  msat(min: bigint, max: bigint): bigint {
    return min + BigInt(Math.floor(this.next() * Number(max - min + 1n)));
  }
}

// ---- payment hashes -----------------------------------------------------------------------

function sha256Hex(input: string | Buffer): string {
  return createHash('sha256').update(input).digest('hex');
}

/** The preimage of an assignment's invoice of one kind; deterministic, so reruns give the same hashes. */
export function preimageFor(assignmentId: string, kind: InvoiceKind, attempt = 0): string {
  return sha256Hex(`trainledger-test-preimage:${assignmentId}:${kind}${attempt === 0 ? '' : `:${attempt}`}`);
}

/** sha256 of the preimage's bytes, the real Lightning relation (the domain checks only the shape). */
export function paymentHashFor(assignmentId: string, kind: InvoiceKind, attempt = 0): string {
  return sha256Hex(Buffer.from(preimageFor(assignmentId, kind, attempt), 'hex'));
}

// ---- the simulation: processes on a shared clock ------------------------------------------

/** A simulated actor; each `yield` is how many ms it waits before its next step. */
type Process<R = void> = Generator<number, R, void>;
type Task = { atMs: number; seq: number; process: Process };

/** A binary min-heap on (atMs, seq): O(log n) per step keeps large histories fast and ties deterministic. */
class TaskQueue {
  private readonly heap: Task[] = [];
  push(task: Task): void {
    const heap = this.heap;
    heap.push(task);
    for (let i = heap.length - 1; i > 0; ) {
      const parent = (i - 1) >> 1;
      if (!earlier(heap[i]!, heap[parent]!)) break;
      [heap[i], heap[parent]] = [heap[parent]!, heap[i]!];
      i = parent;
    }
  }
  pop(): Task | undefined {
    const heap = this.heap;
    const top = heap[0];
    const last = heap.pop();
    if (top === undefined || last === undefined || heap.length === 0) return top;
    heap[0] = last;
    for (let i = 0; ; ) {
      const left = 2 * i + 1;
      const right = left + 1;
      let min = i;
      if (left < heap.length && earlier(heap[left]!, heap[min]!)) min = left;
      if (right < heap.length && earlier(heap[right]!, heap[min]!)) min = right;
      if (min === i) break;
      [heap[i], heap[min]] = [heap[min]!, heap[i]!];
      i = min;
    }
    return top;
  }
}

function earlier(a: Task, b: Task): boolean {
  return a.atMs < b.atMs || (a.atMs === b.atMs && a.seq < b.seq);
}

type DataOf<C extends { type: string; data: unknown }, T extends C['type']> = Extract<C, { type: T }>['data'];

class Simulation {
  readonly out: HistoryEvent[] = [];
  readonly runs = new Map<string, RunState>();
  readonly contributors = new Map<string, ContributorState>();
  readonly assignments = new Map<string, AssignmentState>();
  readonly invoices = new Map<string, InvoiceState>();
  private readonly queue = new TaskQueue();
  private seq = 0;
  /** Time of the last command; every command gets a strictly later one. */
  private lastMs: number;
  private targetMs: number;

  constructor(readonly rand: Rand, startMs: number) {
    this.lastMs = startMs - 1;
    this.targetMs = startMs;
  }

  /** The simulated present: the current step's wake-up time, or later when commands already ran past it. */
  get nowMs(): number {
    return Math.max(this.lastMs, this.targetMs);
  }

  spawn(atMs: number, process: Process): void {
    this.queue.push({ atMs, seq: this.seq++, process });
  }

  runToEnd(): void {
    for (let task = this.queue.pop(); task !== undefined; task = this.queue.pop()) {
      this.targetMs = Math.max(task.atMs, this.lastMs + 1);
      const step = task.process.next();
      if (!step.done) this.spawn(this.nowMs + Math.max(1, Math.floor(step.value)), task.process);
    }
  }

  run<T extends RunCommand['type']>(type: T, data: DataOf<RunCommand, T>): boolean {
    return this.decide(runDecider, this.runs, data.runId, runStreamId(data.runId), type, data);
  }
  contributor<T extends ContributorCommand['type']>(type: T, data: DataOf<ContributorCommand, T>): boolean {
    return this.decide(contributorDecider, this.contributors, data.contributorId, contributorStreamId(data.contributorId), type, data);
  }
  assignment<T extends AssignmentCommand['type']>(type: T, data: DataOf<AssignmentCommand, T>): boolean {
    return this.decide(assignmentDecider, this.assignments, data.assignmentId, assignmentStreamId(data.assignmentId), type, data);
  }
  invoice<T extends InvoiceCommand['type']>(type: T, data: DataOf<InvoiceCommand, T>): boolean {
    return this.decide(invoiceDecider, this.invoices, data.paymentHash, invoiceStreamId(data.paymentHash), type, data);
  }

  /** Decides one command at a fresh instant; a DomainError skips it, keeping only what the decider allows. */
  private decide<E extends DomainEvent, S>(decider: Decider<any, E, S>, states: Map<string, S>, key: string, streamId: string, type: string, data: unknown): boolean {
    const nowMs = Math.max(this.lastMs + 1, this.targetMs);
    this.lastMs = nowMs;
    const state = states.get(key) ?? decider.initialState();
    let events: E[];
    try {
      events = decider.decide({ type, data, metadata: { nowMs } }, state);
    } catch (error) {
      if (error instanceof DomainError) return false;
      throw error;
    }
    let next = state;
    for (const event of events) {
      next = decider.evolve(next, event);
      this.out.push({ streamId, event });
    }
    states.set(key, next);
    return events.length > 0;
  }
}

// ---- runs and contributors ----------------------------------------------------------------

type RunPlan = Readonly<{
  runId: string;
  baseRewardMsat: bigint;
  maxBonusMsat: bigint;
  assignmentTimeoutMs: number;
  disputeWindowMs: number;
  /** Which pools fund it: only customers, only subsidy, or a random mix per funding. */
  mix: 'customer' | 'subsidy' | 'mixed';
  fundings: number;
  /** Total funding as a multiple of what its expected assignments could cost; below 1 it runs dry. */
  fundingFactor: number;
}>;

type World = Readonly<{
  sim: Simulation;
  rand: Rand;
  prefix: string;
  startMs: number;
  spanMs: number;
  runs: readonly RunPlan[];
  contributorIds: readonly string[];
  assignmentsPerRun: number;
}>;

function planRun(rand: Rand, runId: string): RunPlan {
  return {
    runId,
    baseRewardMsat: rand.msat(1_000n, 5_000_000n),
    maxBonusMsat: rand.chance(0.2) ? 0n : rand.msat(1n, 2_000_000n),
    assignmentTimeoutMs: rand.int(30 * MINUTE_MS, 8 * HOUR_MS),
    disputeWindowMs: rand.int(2 * HOUR_MS, 36 * HOUR_MS),
    mix: rand.pick(['customer', 'subsidy', 'mixed', 'mixed', 'mixed'] as const),
    fundings: rand.int(1, 4),
    fundingFactor: 0.5 + rand.float() * 2,
  };
}

function openRunData(world: World, plan: RunPlan): DataOf<RunCommand, 'OpenRun'> {
  const { runId } = plan;
  return {
    runId,
    coordinatorId: `${world.prefix}coord`,
    stepGraphDigest: sha256Hex(`${runId}:graph`),
    initialCheckpointDigest: sha256Hex(`${runId}:ckpt-0`),
    shards: [0, 1, 2].map((i) => ({ shardId: `shard-${i}`, digest: sha256Hex(`${runId}:shard-${i}`) })),
    rewardPolicy: { baseRewardMsat: plan.baseRewardMsat, maxBonusMsat: plan.maxBonusMsat },
    verificationPolicy: { replayProbability: 0.1, maxGradientNorm: 10, minRelativeImprovement: 0.001 },
    escrowPolicy: { cltvDeltaBlocks: 144, invoiceExpirySec: 3600, disputeWindowMs: plan.disputeWindowMs, assignmentTimeoutMs: plan.assignmentTimeoutMs },
  };
}

/** Opens the run, funds it several times across the span, and sometimes closes it near the end. */
function* runProcess(world: World, plan: RunPlan): Process {
  const { sim, rand } = world;
  sim.run('OpenRun', openRunData(world, plan));
  const perAssignmentMsat = plan.baseRewardMsat * 2n + plan.maxBonusMsat;
  const totalMsat = (BigInt(Math.max(1, world.assignmentsPerRun)) * perAssignmentMsat * BigInt(Math.round(plan.fundingFactor * 100))) / 100n;
  for (let i = 0; i < plan.fundings; i += 1) {
    if (i > 0) yield rand.int(MINUTE_MS, Math.floor(world.spanMs / plan.fundings));
    const source = plan.mix === 'mixed' ? rand.pick(['customer', 'subsidy'] as const) : plan.mix;
    const amountMsat = 1n + (totalMsat * BigInt(rand.int(50, 150))) / BigInt(100 * plan.fundings);
    sim.run('FundRun', { runId: plan.runId, fundingId: `f${i}`, source, amountMsat });
    if (rand.chance(0.5)) {
      const step = 100 * (i + 1) + rand.int(0, 99);
      sim.run('PublishCheckpoint', { runId: plan.runId, checkpointId: `ckpt-${step}`, step, digest: sha256Hex(`${plan.runId}:ckpt-${step}`) });
    }
  }
  if (!rand.chance(0.3)) return;
  yield Math.max(MINUTE_MS, world.startMs + world.spanMs - sim.nowMs) + rand.int(0, DAY_MS);
  sim.run('CloseRun', { runId: plan.runId, reason: 'training finished' });
}

/** Registers before any work is handed out; a few are suspended later, which stops new work for them. */
function* contributorProcess(world: World, contributorId: string): Process {
  const { sim, rand } = world;
  sim.contributor('RegisterContributor', {
    contributorId,
    signingPublicKeyHex: sha256Hex(`${contributorId}:signing`),
    lightningNodePubkeyHex: `02${sha256Hex(`${contributorId}:node`)}`,
  });
  if (!rand.chance(0.1)) return;
  yield rand.int(HOUR_MS, world.spanMs);
  sim.contributor('SuspendContributor', { contributorId, reason: 'signing key reported compromised' });
}

// ---- assignments ----------------------------------------------------------------------------

type Life = Readonly<{
  world: World;
  sim: Simulation;
  rand: Rand;
  run: RunPlan;
  assignmentId: string;
  contributorId: string;
  reservationId: string;
  baseRewardMsat: bigint;
  escrowHash: string;
}>;

/** Result of a lifecycle: msat paid out (base, bonus, compensation; fees excluded), or null while still in flight. */
type Outcome = bigint | null;

const minutes = (rand: Rand, min: number, max: number): number => rand.int(min * MINUTE_MS, max * MINUTE_MS);

function escrowStatus(life: Life): InvoiceState['status'] {
  return life.sim.invoices.get(life.escrowHash)?.status ?? 'none';
}

function assignmentState(life: Life): AssignmentState | undefined {
  return life.sim.assignments.get(life.assignmentId);
}

/** One assignment's life; its aggregates are dropped afterwards, since nothing touches them again (keeps large histories lean). */
function* assignmentProcess(world: World, index: number): Process {
  const assignmentId = `${world.prefix}a${index}`;
  try {
    yield* assignmentLife(world, assignmentId);
  } finally {
    world.sim.assignments.delete(assignmentId);
    for (const kind of ['escrow', 'bonus', 'compensation'] as const) world.sim.invoices.delete(paymentHashFor(assignmentId, kind));
  }
}

/** Reserve, assign, open and usually hold the escrow, then work or expire; the reservation is released once the outcome is final. */
function* assignmentLife(world: World, assignmentId: string): Process {
  const { sim, rand } = world;
  const run = rand.pick(world.runs);
  const contributorId = rand.pick(world.contributorIds);
  if (sim.contributors.get(contributorId)?.status !== 'active') return;
  const baseRewardMsat = run.baseRewardMsat * BigInt(rand.int(1, 2));
  const reservationId = `res-${assignmentId}`;
  const reserve = { runId: run.runId, reservationId, assignmentId, amountMsat: baseRewardMsat + run.maxBonusMsat };
  // The coordinator hands out work only against a reservation; a refused one (budget spent, run closed) means no work.
  if (!sim.run('ReserveBudget', reserve)) return;
  const life: Life = { world, sim, rand, run, assignmentId, contributorId, reservationId, baseRewardMsat, escrowHash: paymentHashFor(assignmentId, 'escrow') };
  sim.assignment('AssignWork', workTerms(life));
  if (rand.chance(0.03)) return;
  yield minutes(rand, 1, 20);
  openEscrow(life);
  yield rand.int(5_000, 5 * MINUTE_MS);
  if (rand.chance(0.9)) sim.invoice('MarkInvoiceHeld', { paymentHash: life.escrowHash });
  if (rand.chance(0.02)) return;
  const spentMsat = rand.chance(0.12) ? yield* expiredLife(life) : yield* workLife(life);
  if (spentMsat === null) return;
  yield minutes(rand, 1, 10);
  sim.run('ReleaseBudget', { runId: run.runId, reservationId, spentMsat });
}

function workTerms(life: Life): DataOf<AssignmentCommand, 'AssignWork'> {
  const { rand, run, assignmentId, contributorId, sim } = life;
  return {
    assignmentId,
    runId: run.runId,
    contributorId,
    step: rand.int(0, 100_000),
    shardId: `shard-${rand.int(0, 2)}`,
    batchIndex: rand.int(0, 1000),
    baseCheckpointDigest: sha256Hex(`${run.runId}:ckpt-base`),
    seed: String(rand.int(0, 2 ** 31)),
    baseRewardMsat: life.baseRewardMsat,
    maxBonusMsat: run.maxBonusMsat,
    maxFeeMsat: life.baseRewardMsat / 100n + 10n,
    // The clock moves 1 ms per command, so the next command's time is known here.
    deadlineMs: sim.nowMs + 1 + run.assignmentTimeoutMs,
    disputeWindowMs: run.disputeWindowMs,
  };
}

function openEscrow(life: Life): void {
  const { sim, rand, run } = life;
  // Long enough to outlive the deadline, the dispute window and a replay, so an overturn can still settle it.
  const lifetimeMs = run.assignmentTimeoutMs + run.disputeWindowMs + rand.int(6 * HOUR_MS, 2 * DAY_MS);
  sim.invoice('OpenInvoice', {
    paymentHash: life.escrowHash,
    kind: 'escrow',
    assignmentId: life.assignmentId,
    runId: run.runId,
    contributorId: life.contributorId,
    amountMsat: life.baseRewardMsat,
    bolt11: `lnbcrt${life.escrowHash.slice(0, 40)}`,
    expiresAtMs: sim.nowMs + 1 + lifetimeMs,
    cltvExpiryHeight: 800_000 + rand.int(0, 10_000),
  });
}

/** No submission: the assignment expires after its deadline and the escrow is voided. */
function* expiredLife(life: Life): Process<Outcome> {
  const deadlineMs = assignmentState(life)?.terms?.deadlineMs ?? life.sim.nowMs;
  yield Math.max(1, deadlineMs - life.sim.nowMs) + minutes(life.rand, 1, 120);
  life.sim.assignment('ExpireAssignment', { assignmentId: life.assignmentId });
  yield* voidEscrow(life, 'assignment expired without a submission');
  return 0n;
}

/** Cancels an open or held escrow now, or lets it run out and records the expiry. */
function* voidEscrow(life: Life, reason: string): Process {
  const status = escrowStatus(life);
  if (status !== 'open' && status !== 'held') return;
  if (life.rand.chance(0.6)) {
    // Usually through the outbox: the cancel intent is logged before the contributor's node cancels.
    if (life.rand.chance(0.7)) life.sim.invoice('RequestEscrowCancel', { paymentHash: life.escrowHash, reason });
    yield life.rand.int(1_000, 10 * MINUTE_MS);
    life.sim.invoice('CancelInvoice', { paymentHash: life.escrowHash, reason });
    return;
  }
  const expiresAtMs = life.sim.invoices.get(life.escrowHash)?.terms?.expiresAtMs ?? life.sim.nowMs;
  yield Math.max(1, expiresAtMs - life.sim.nowMs) + minutes(life.rand, 0, 30);
  life.sim.invoice('ExpireInvoice', { paymentHash: life.escrowHash });
}

function* workLife(life: Life): Process<Outcome> {
  const { sim, rand } = life;
  const deadlineMs = assignmentState(life)?.terms?.deadlineMs ?? sim.nowMs;
  // Mostly on time; now and then late, which the decider refuses, and the work then expires.
  const late = rand.chance(0.05);
  yield late ? deadlineMs - sim.nowMs + minutes(rand, 1, 30) : rand.int(1, Math.max(1, deadlineMs - sim.nowMs - 10));
  const submitted = sim.assignment('SubmitGradient', {
    assignmentId: life.assignmentId,
    contributorId: life.contributorId,
    gradientDigest: sha256Hex(`${life.assignmentId}:gradient`),
    sizeBytes: rand.int(1024, 64 * 1024 * 1024),
    encoding: rand.pick(['dense-f32', 'sparseloco'] as const),
    claimedLoss: 1 + rand.float() * 3,
    computeTimeMs: rand.int(1_000, 4 * HOUR_MS),
  });
  if (!submitted) return yield* expiredLife(life);
  yield minutes(rand, 1, 45);
  if (rand.chance(0.03)) return null;
  return rand.chance(0.6) ? yield* acceptedLife(life) : yield* rejectedLife(life);
}

function* acceptedLife(life: Life): Process<Outcome> {
  const { sim, rand, run } = life;
  const bonusMsat = run.maxBonusMsat > 0n && rand.chance(0.5) ? rand.msat(1n, run.maxBonusMsat) : 0n;
  sim.assignment('AcceptSubmission', {
    assignmentId: life.assignmentId,
    validatorId: `validator-${rand.int(1, 3)}`,
    qualityScore: rand.float(),
    bonusMsat,
    evidence: { lossBefore: 2.5, lossAfter: 2.4 },
  });
  yield rand.int(1_000, 5 * MINUTE_MS);
  let paidMsat = yield* payBase(life);
  if (bonusMsat > 0n) {
    yield rand.int(1_000, 10 * MINUTE_MS);
    paidMsat += yield* payout(life, 'bonus', bonusMsat);
  }
  return paidMsat;
}

/** Settles a held escrow; an open one is held then settled, or canceled and compensated; a voided one is compensated. */
function* payBase(life: Life): Process<bigint> {
  const { sim, rand } = life;
  const settle = { paymentHash: life.escrowHash, preimageHex: preimageFor(life.assignmentId, 'escrow') };
  if (escrowStatus(life) === 'open') {
    if (rand.chance(0.5)) {
      sim.invoice('MarkInvoiceHeld', { paymentHash: life.escrowHash });
    } else {
      sim.invoice('CancelInvoice', { paymentHash: life.escrowHash, reason: 'escrow never held' });
    }
    yield rand.int(1_000, 5 * MINUTE_MS);
  }
  const status = escrowStatus(life);
  if (status === 'held') {
    // Usually through the outbox: the release intent is logged before the contributor settles.
    if (rand.chance(0.7)) sim.invoice('RequestEscrowRelease', settle);
    // The node reports the routing fee it paid to lock the HTLC once the contributor settles.
    return sim.invoice('SettleInvoice', { ...settle, feeMsat: rand.msat(0n, life.baseRewardMsat / 100n + 10n) }) ? life.baseRewardMsat : 0n;
  }
  if (status === 'canceled' || status === 'expired') return yield* payout(life, 'compensation', life.baseRewardMsat);
  return 0n;
}

/**
 * A bonus or compensation payout: sometimes a refused invoice first; opened, sometimes failing
 * first, usually sent with a routing fee. An invoice given up on is abandoned, and the payout
 * then either tries a fresh invoice or is abandoned for good.
 */
function* payout(life: Life, kind: 'bonus' | 'compensation', amountMsat: bigint, attempt = 0): Process<bigint> {
  const { sim, rand } = life;
  if (attempt === 0 && rand.chance(0.05)) {
    sim.assignment('RecordInvoiceRefused', { assignmentId: life.assignmentId, kind, code: 'INVOICE_EXPIRES_TOO_SOON', message: 'the invoice expires within a minute' });
    yield minutes(rand, 1, 30);
  }
  const paymentHash = paymentHashFor(life.assignmentId, kind, attempt);
  sim.invoice('OpenInvoice', {
    paymentHash,
    kind,
    assignmentId: life.assignmentId,
    runId: life.run.runId,
    contributorId: life.contributorId,
    amountMsat,
    bolt11: `lnbcrt${paymentHash.slice(0, 40)}`,
    expiresAtMs: sim.nowMs + 1 + DAY_MS,
  });
  yield rand.int(1_000, 2 * MINUTE_MS);
  if (rand.chance(0.25)) {
    sim.invoice('RecordPaymentFailed', { paymentHash, failureCode: rand.pick(['NO_ROUTE', 'TEMPORARY_CHANNEL_FAILURE'] as const) });
    yield minutes(rand, 1, 60);
    if (rand.chance(0.3)) {
      sim.invoice('AbandonPayment', { paymentHash, code: 'PAYMENT_ATTEMPTS_EXHAUSTED', message: 'every attempt failed' });
      yield minutes(rand, 1, 60);
      if (attempt === 0 && rand.chance(0.5)) return yield* payout(life, kind, amountMsat, 1);
      sim.assignment('AbandonPayout', { assignmentId: life.assignmentId, kind, code: 'PAYOUT_ATTEMPTS_EXHAUSTED', message: 'every invoice failed' });
      return 0n;
    }
  }
  const feeMsat = rand.msat(0n, amountMsat / 100n + 10n);
  return sim.invoice('RecordPaymentSent', { paymentHash, feeMsat, preimageHex: preimageFor(life.assignmentId, kind, attempt) }) ? amountMsat : 0n;
}

function* rejectedLife(life: Life): Process<Outcome> {
  const { sim, rand } = life;
  sim.assignment('RejectSubmission', {
    assignmentId: life.assignmentId,
    validatorId: `validator-${rand.int(1, 3)}`,
    reasonCode: rand.pick(['NORM_TOO_LARGE', 'LOSS_NOT_IMPROVED'] as const),
    evidence: { norm: 1e9 },
  });
  yield rand.int(1_000, 5 * MINUTE_MS);
  // The reaction cancels the escrow at once; a lazy coordinator leaves it held, so an overturn can still settle it.
  const status = escrowStatus(life);
  if ((status === 'open' || status === 'held') && rand.chance(0.5)) sim.invoice('CancelInvoice', { paymentHash: life.escrowHash, reason: 'submission rejected' });
  if (rand.chance(0.55)) {
    const resolved = yield* disputeLife(life);
    if (resolved !== 'not-disputed') return resolved;
  }
  const deadlineMs = assignmentState(life)?.rejection?.disputeDeadlineMs ?? sim.nowMs;
  yield Math.max(1, deadlineMs - sim.nowMs) + minutes(rand, 1, 60);
  // The escrow engine closes the window in the log; a history written before it did leaves the rejection open.
  if (rand.chance(0.8)) sim.assignment('FinalizeRejection', { assignmentId: life.assignmentId });
  yield* voidEscrow(life, 'rejection stands');
  return 0n;
}

function* disputeLife(life: Life): Process<Outcome | 'not-disputed'> {
  const { sim, rand, assignmentId } = life;
  const deadlineMs = assignmentState(life)?.rejection?.disputeDeadlineMs ?? sim.nowMs;
  // Sometimes too late: the decider refuses it and the rejection stands.
  yield rand.chance(0.9) ? rand.int(1, Math.max(1, deadlineMs - sim.nowMs - 10)) : deadlineMs - sim.nowMs + minutes(rand, 1, 60);
  const disputed = sim.assignment('DisputeRejection', { assignmentId, contributorId: life.contributorId, disputeId: `dsp-${assignmentId}`, reason: 'my gradient is honest' });
  if (!disputed) return 'not-disputed';
  yield minutes(rand, 1, 30);
  const replayJobId = `job-${assignmentId}`;
  sim.assignment('RequestReplay', { assignmentId, replayJobId });
  yield minutes(rand, 5, 180);
  if (rand.chance(0.03)) return null;
  const outcome = rand.pick(['match', 'mismatch'] as const);
  sim.assignment('RecordReplayVerdict', {
    assignmentId,
    replayJobId,
    outcome,
    recipe: { stepGraphDigest: sha256Hex(`${life.run.runId}:graph`), seed: '7', executionProvider: 'cpu', graphOptimizationLevel: 'disabled' },
    metric: { relativeL2: outcome === 'match' ? 1e-7 : 0.4 },
    tolerance: { relativeL2: 1e-5 },
    executionProvider: 'cpu',
    device: 'x86_64',
    durationMs: rand.int(100, 2 * HOUR_MS),
  });
  yield minutes(rand, 1, 30);
  sim.assignment('ResolveDispute', { assignmentId, resolution: outcome === 'match' ? 'overturned' : 'upheld' });
  yield rand.int(1_000, 5 * MINUTE_MS);
  if (outcome === 'match') return yield* payBase(life);
  const status = escrowStatus(life);
  if (status === 'open' || status === 'held') sim.invoice('CancelInvoice', { paymentHash: life.escrowHash, reason: 'rejection upheld after replay' });
  return 0n;
}

// ---- entry points -------------------------------------------------------------------------

/**
 * A deterministic history from a seed: `size.runs` runs and up to `size.assignments`
 * assignments (refused reservations hand out no work). O(n log n) in the number of events,
 * dominated by the run aggregate's own state copies when one run holds very many
 * reservations, so large benchmarks should spread work over many runs (say one per 1,000).
 */
export function generateHistory(seed: number, size: HistorySize, options: HistoryOptions = {}): HistoryEvent[] {
  const rand = new Rand(mulberry32(seed));
  const startMs = options.startMs ?? HISTORY_START_MS;
  const prefix = options.idPrefix ?? '';
  const sim = new Simulation(rand, startMs);
  const runs = Array.from({ length: Math.max(1, size.runs) }, (_, i) => planRun(rand, `${prefix}r${i}`));
  const contributorCount = Math.max(2, Math.min(5_000, Math.ceil(size.assignments / 6)));
  const contributorIds = Array.from({ length: contributorCount }, (_, i) => `${prefix}c${i}`);
  // Several days at least, so hourly, daily and weekly buckets all see more than one period.
  const spanMs = Math.max(rand.int(2 * DAY_MS, 9 * DAY_MS), Math.min(120 * DAY_MS, size.assignments * 10 * MINUTE_MS));
  const world: World = { sim, rand, prefix, startMs, spanMs, runs, contributorIds, assignmentsPerRun: Math.ceil(size.assignments / runs.length) };
  for (const plan of runs) sim.spawn(startMs, runProcess(world, plan));
  for (const contributorId of contributorIds) sim.spawn(startMs + rand.int(0, 30 * MINUTE_MS), contributorProcess(world, contributorId));
  for (let i = 0; i < size.assignments; i += 1) sim.spawn(startMs + HOUR_MS + rand.int(0, spanMs), assignmentProcess(world, i));
  sim.runToEnd();
  return sim.out;
}

export type HistoryArbitraryOptions = Readonly<{
  maxRuns?: number;
  maxAssignments?: number;
  /** A fixed prefix, or one made per generated history (so samples and shrinks never share ids in one store). */
  idPrefix?: string | (() => string);
}>;

/**
 * fast-check histories: a seed and a size, mapped through generateHistory. Shrinking
 * works on the counts (fewer runs, fewer assignments); a counterexample prints as the
 * generateHistory call that rebuilds it.
 */
export function historyArbitrary(options: HistoryArbitraryOptions = {}): fc.Arbitrary<HistoryEvent[]> {
  const maxRuns = options.maxRuns ?? 3;
  const maxAssignments = options.maxAssignments ?? 40;
  const sizes = fc.record({
    seed: fc.integer({ min: 0, max: 0x7fff_ffff }),
    runs: fc.integer({ min: 1, max: Math.max(1, maxRuns) }),
    assignments: fc.integer({ min: 0, max: Math.max(0, maxAssignments) }),
  });
  return sizes.map(({ seed, runs, assignments }) => {
    const idPrefix = typeof options.idPrefix === 'function' ? options.idPrefix() : (options.idPrefix ?? '');
    const history = generateHistory(seed, { runs, assignments }, { idPrefix });
    const call = `generateHistory(${seed}, { runs: ${runs}, assignments: ${assignments} }, { idPrefix: ${JSON.stringify(idPrefix)} }) /* ${history.length} events */`;
    Object.defineProperty(history, fc.toStringMethod, { value: () => call, enumerable: false });
    return history;
  });
}

/** Appends the history in order, one append per run of consecutive events on the same stream. */
export async function appendHistory(store: EventStore, history: readonly HistoryEvent[], newEventId: () => string = randomUUID): Promise<void> {
  let i = 0;
  while (i < history.length) {
    const streamId = history[i]!.streamId;
    const batch: NewEvent[] = [];
    for (; i < history.length && history[i]!.streamId === streamId && batch.length < EVENT_STORE_LIMITS.maxEventsPerAppend; i += 1) {
      const { event } = history[i]!;
      batch.push({ eventId: newEventId(), type: event.type, schemaVersion: 1, data: toWire(event.data) as JsonObject });
    }
    await store.append(streamId, batch, { expectedRevision: 'any' });
  }
}
