// Escrow pass bench (issue 14): the work the escrow engine does after one new event, with 10,000 held escrows beside the same with 10; it should not grow with what is held.

import { randomUUID } from 'node:crypto';
import { sql, type Kysely } from 'kysely';
import { handleCommand } from '../../adapters/commands/command-handler.js';
import { openEventStore } from '../../adapters/event-store/open-event-store.js';
import { IDLE_RECHECK_MS } from '../../adapters/lightning/assignment-settler.js';
import { DevContributors } from '../../adapters/lightning/dev-contributors.js';
import { DevLightningNetwork } from '../../adapters/lightning/dev/dev-lightning-network.js';
import { DEFAULT_DISPATCHER_LIMITS } from '../../adapters/lightning/dispatcher-limits.js';
import { EscrowEngine } from '../../adapters/lightning/escrow-engine.js';
import { ESCROW_REACTOR_SUBSCRIPTION } from '../../adapters/lightning/escrow-reactor.js';
import { PreimageDeriver } from '../../adapters/lightning/preimages.js';
import type { PostgresEventStore } from '../../adapters/postgres/postgres-event-store.js';
import { assignmentDecider, assignmentStreamId, type AssignmentCommand, type AssignmentEvent } from '../../domain/assignment/index.js';
import { contributorDecider, contributorStreamId } from '../../domain/contributor/index.js';
import type { DomainEvent } from '../../domain/events.js';
import { invoiceDecider, invoiceStreamId, type InvoiceCommand, type InvoiceEvent } from '../../domain/invoice/index.js';
import type { CoordinatorNode } from '../../domain/ports/lightning.js';
import { runDecider, runStreamId, type RunCommand } from '../../domain/run/index.js';
import { assignWorkData, command, hex64, openRunData, RUN_ID, T0 } from '../domain/fixtures.js';
import { bulkLoad } from './bulk-load.js';
import { percentile, round } from './stats.js';

export type EscrowBenchDatabase = Readonly<{ engine: 'pglite' }> | Readonly<{ engine: 'postgres'; connectionString: string }>;
export type EscrowBenchSizes = Readonly<{
  /** Held escrows in the small case (the baseline). */
  smallHeld: number;
  /** Held escrows in the large case. */
  largeHeld: number;
  /** Measured passes per kind of event and size, after WARMUP_PASSES. */
  passes: number;
}>;
export const DEFAULT_ESCROW_BENCH_SIZES: EscrowBenchSizes = Object.freeze({ smallHeld: 10, largeHeld: 10_000, passes: 30 });
/** Passes run and thrown away before measuring, per kind and size: the first sweep tick, caches, JIT. */
const WARMUP_PASSES = 5;
const CONTRIBUTORS = 100;
const BASE_MSAT = 1_000_000n;
/** Held escrows seeded per statement batch (bulk load) and per dev-network call. */
const SEED_CHUNK = 1_000;
export const ESCROW_HELD_RATIO_GOAL = 1.5;

export type PassFigures = { passMsP50: number; passMsP90: number; nodeCallsPerPassP50: number; nodeCallsPerPassMax: number; dispatcherVisitsPerPassMax: number };
export type SizeFigures = { held: number; afterAcceptance: PassFigures; afterUnrelatedEvent: PassFigures; sweepTick: { pageSize: number; ms: number; nodeCalls: number } };
export type EscrowBenchResult = {
  engine: EscrowBenchDatabase['engine'];
  small: SizeFigures;
  large: SizeFigures;
  /** Median pass time after one acceptance (release, settle, budget) with largeHeld held / with smallHeld held; goal ≤ 1.5. */
  escrowHeldRatio: number;
  /** The same after one event that concerns no escrow. */
  escrowHeldRatioUnrelated: number;
  goal: number;
  met: boolean;
  seedMs: number;
  nodeCallsPerPassFlat: boolean;
};

/** The coordinator's dev node, counting every call made to it. */
function countingNode(real: CoordinatorNode): { node: CoordinatorNode; calls: () => number } {
  let calls = 0;
  const count = <A extends unknown[], R>(method: (...args: A) => R) => (...args: A): R => {
    calls += 1;
    return method.apply(real, args);
  };
  const node: CoordinatorNode = {
    publicKey: count(real.publicKey),
    blockHeight: count(real.blockHeight),
    decodeInvoice: count(real.decodeInvoice),
    pay: count(real.pay),
    paymentState: count(real.paymentState),
    subscribeToPayments: count(real.subscribeToPayments),
    close: () => real.close(),
  };
  return { node, calls: () => calls };
}

/**
 * Measures escrow passes in two worlds side by side: one with `smallHeld` escrows held, one with
 * `largeHeld`, each its own database, dev network and engine. Passes alternate between the worlds
 * (the order flipping every pass), so a neighbour's burst on a shared machine slows both alike.
 * Each measured pass follows one new event: an acceptance of one more held escrow (the pass
 * releases it, sees it settled and closes the assignment) or one funding of another run (the pass
 * has nothing to do). Held escrows are seeded as a running engine would have left them: the events
 * bulk-loaded into the log, the dev node holding each HTLC, the outbox projected, the settler's
 * schedule rows in place.
 */
export async function runEscrowBench(
  databases: Readonly<{ small: EscrowBenchDatabase; large: EscrowBenchDatabase }>,
  sizes: EscrowBenchSizes = DEFAULT_ESCROW_BENCH_SIZES,
  log: (line: string) => void = () => {},
): Promise<EscrowBenchResult> {
  const started = performance.now();
  const small = await EscrowWorld.open(databases.small, sizes.smallHeld);
  const large = await EscrowWorld.open(databases.large, sizes.largeHeld).catch(async (error: unknown) => {
    await small.close();
    throw error;
  });
  const seedMs = performance.now() - started;
  try {
    log(`escrow bench [${databases.small.engine}] seeded ${sizes.smallHeld} and ${sizes.largeHeld} held escrows in ${Math.round(seedMs)} ms`);
    const samples = new Map<EscrowWorld, { acceptance: PassSample[]; unrelated: PassSample[] }>([[small, { acceptance: [], unrelated: [] }], [large, { acceptance: [], unrelated: [] }]]);
    for (let i = 0; i < WARMUP_PASSES + sizes.passes; i += 1) {
      for (const world of i % 2 === 0 ? [small, large] : [large, small]) {
        const acceptance = await world.passAfterAcceptance();
        const unrelated = await world.passAfterUnrelatedEvent();
        if (i >= WARMUP_PASSES) {
          samples.get(world)!.acceptance.push(acceptance);
          samples.get(world)!.unrelated.push(unrelated);
        }
      }
    }
    const figures = async (world: EscrowWorld): Promise<SizeFigures> => {
      const { acceptance, unrelated } = samples.get(world)!;
      const result = { held: world.held, afterAcceptance: summarise(acceptance), afterUnrelatedEvent: summarise(unrelated), sweepTick: await world.sweepTick() };
      log(`escrow bench [${databases.small.engine}] ${world.held} held: ${JSON.stringify(result)}`);
      return result;
    };
    const smallFigures = await figures(small);
    const largeFigures = await figures(large);
    const escrowHeldRatio = round(largeFigures.afterAcceptance.passMsP50 / smallFigures.afterAcceptance.passMsP50, 3);
    const escrowHeldRatioUnrelated = round(largeFigures.afterUnrelatedEvent.passMsP50 / smallFigures.afterUnrelatedEvent.passMsP50, 3);
    return {
      engine: databases.small.engine,
      small: smallFigures,
      large: largeFigures,
      escrowHeldRatio,
      escrowHeldRatioUnrelated,
      goal: ESCROW_HELD_RATIO_GOAL,
      met: escrowHeldRatio <= ESCROW_HELD_RATIO_GOAL && escrowHeldRatioUnrelated <= ESCROW_HELD_RATIO_GOAL,
      seedMs: Math.round(seedMs),
      nodeCallsPerPassFlat:
        largeFigures.afterAcceptance.nodeCallsPerPassMax === smallFigures.afterAcceptance.nodeCallsPerPassMax &&
        largeFigures.afterUnrelatedEvent.nodeCallsPerPassMax === smallFigures.afterUnrelatedEvent.nodeCallsPerPassMax,
    };
  } finally {
    await large.close();
    await small.close();
  }
}

type PassSample = { ms: number; nodeCalls: number; visits: number };

/** One database, dev network and escrow engine with `held` escrows held, and the passes measured on it. */
class EscrowWorld {
  private seeded = 0;
  private fundings = 0;

  private constructor(
    readonly held: number,
    private readonly store: PostgresEventStore,
    private readonly db: Kysely<any>,
    private readonly network: DevLightningNetwork,
    private readonly engine: EscrowEngine,
    private readonly preimages: PreimageDeriver,
    private readonly contributors: readonly string[],
    private readonly clock: { nowMs: number },
    private readonly calls: () => number,
  ) {}

  static async open(database: EscrowBenchDatabase, held: number): Promise<EscrowWorld> {
    const { store, db } = await openEventStore(database.engine === 'pglite' ? { engine: 'pglite' } : { engine: 'postgres', connectionString: database.connectionString });
    const clock = { nowMs: T0 + 500 };
    const nowMs = () => clock.nowMs;
    const network = await DevLightningNetwork.open({ nowMs, seed: Buffer.alloc(32, 3) });
    try {
      const preimages = new PreimageDeriver(Buffer.alloc(32, 5));
      await handleCommand(store, runDecider, runStreamId(RUN_ID), command<RunCommand>('OpenRun', openRunData(), T0), { newEventId });
      await handleCommand(store, runDecider, runStreamId(RUN_ID), command<RunCommand>('FundRun', { runId: RUN_ID, fundingId: 'f1', source: 'customer', amountMsat: 10n ** 15n }, T0), { newEventId });
      await handleCommand(store, runDecider, runStreamId('run-other'), command<RunCommand>('OpenRun', openRunData({ runId: 'run-other' }), T0), { newEventId });
      const contributors = Array.from({ length: CONTRIBUTORS }, (_, i) => `bench-c${i}`);
      for (const id of contributors) {
        const nodeKey = await network.wallet(id).publicKey();
        await handleCommand(store, contributorDecider, contributorStreamId(id), command('RegisterContributor', { contributorId: id, signingPublicKeyHex: hex64(`${id}-signing`), lightningNodePubkeyHex: nodeKey }, T0), { newEventId });
      }
      const { node, calls } = countingNode(network.coordinator());
      const dev = new DevContributors(network);
      const engine = new EscrowEngine({ store, node, invoices: dev, contributors: dev, preimages, nowMs, newEventId, network: 'regtest' });
      await engine.prepare();
      await engine.runUntilQuiet();
      const world = new EscrowWorld(held, store, db, network, engine, preimages, contributors, clock, calls);
      await world.seed(held, false);
      return world;
    } catch (error) {
      await network.close();
      await store.close();
      throw error;
    }
  }

  /** `count` more held escrows (submitted, when asked), in chunks; returns their ids. */
  private async seed(count: number, submitted: boolean): Promise<string[]> {
    const ids: string[] = [];
    for (let from = 0; from < count; from += SEED_CHUNK) {
      const chunk = Array.from({ length: Math.min(SEED_CHUNK, count - from) }, () => `held-${this.seeded++}`);
      ids.push(...chunk);
      await seedHeld(this.db, this.network, this.preimages, chunk, this.contributors, this.clock.nowMs, submitted);
    }
    // As if a previous process had reacted to all of it; the next pass projects the outbox rows.
    await this.store.saveCheckpoint(ESCROW_REACTOR_SUBSCRIPTION, await this.store.headPosition());
    await this.engine.runUntilQuiet();
    return ids;
  }

  private async pass(): Promise<PassSample> {
    const callsBefore = this.calls();
    const visitsBefore = this.engine.dispatcher.counters.visits;
    const started = performance.now();
    await this.engine.runUntilQuiet();
    return { ms: performance.now() - started, nodeCalls: this.calls() - callsBefore, visits: this.engine.dispatcher.counters.visits - visitsBefore };
  }

  /** One more held, submitted escrow (untimed), then its acceptance: the one new event the timed pass follows. */
  async passAfterAcceptance(): Promise<PassSample> {
    const [id] = await this.seed(1, true);
    this.clock.nowMs += 1;
    await handleCommand(this.store, assignmentDecider, assignmentStreamId(id!), { ...command<AssignmentCommand>('AcceptSubmission', { assignmentId: id!, validatorId: 'v', qualityScore: 0.5, bonusMsat: 0n, evidence: {} }), metadata: { nowMs: this.clock.nowMs } } as AssignmentCommand, { newEventId });
    const sample = await this.pass();
    const settled = await this.store.readStream(invoiceStreamId(this.preimages.escrow(id!).paymentHash));
    if (settled.at(-1)?.type !== 'InvoiceSettled') throw new Error(`bench: escrow of ${id} ended ${settled.at(-1)?.type}, not settled`);
    return sample;
  }

  /** One funding of another run: an event the pass has nothing to do for. */
  async passAfterUnrelatedEvent(): Promise<PassSample> {
    await handleCommand(this.store, runDecider, runStreamId('run-other'), { type: 'FundRun', data: { runId: 'run-other', fundingId: `f-${this.fundings++}`, source: 'customer', amountMsat: 1_000n }, metadata: { nowMs: this.clock.nowMs } } as RunCommand, { newEventId });
    return this.pass();
  }

  /** One reconciliation sweep page: bounded by the dispatcher's batch size whatever is held. */
  async sweepTick(): Promise<SizeFigures['sweepTick']> {
    this.engine.dispatcher.sweepNow();
    const tick = await this.pass();
    return { pageSize: DEFAULT_DISPATCHER_LIMITS.batchSize, ms: round(tick.ms, 2), nodeCalls: tick.nodeCalls };
  }

  async close(): Promise<void> {
    await this.engine.close();
    await this.network.close();
    await this.store.close();
  }
}

const newEventId = () => randomUUID();

function summarise(samples: readonly PassSample[]): PassFigures {
  const ms = samples.map((s) => s.ms).sort((a, b) => a - b);
  const nodeCalls = samples.map((s) => s.nodeCalls).sort((a, b) => a - b);
  return {
    passMsP50: round(percentile(ms, 50), 2),
    passMsP90: round(percentile(ms, 90), 2),
    nodeCallsPerPassP50: percentile(nodeCalls, 50),
    nodeCallsPerPassMax: nodeCalls.at(-1) ?? 0,
    dispatcherVisitsPerPassMax: Math.max(0, ...samples.map((s) => s.visits)),
  };
}

/**
 * Held escrows as the engine leaves them: WorkAssigned (and GradientSubmitted when asked),
 * InvoiceOpened and InvoiceHeld decided by the deciders and bulk-loaded; the dev node holding each
 * HTLC; the settler's schedule row due only at its idle recheck.
 */
async function seedHeld(
  db: Kysely<any>,
  network: DevLightningNetwork,
  preimages: PreimageDeriver,
  ids: readonly string[],
  contributors: readonly string[],
  nowMs: number,
  submitted: boolean,
): Promise<void> {
  const policy = openRunData().escrowPolicy;
  const who = (id: string) => contributors[Number(id.slice('held-'.length)) % contributors.length]!;
  const held = await network.seedHeldInvoices(
    ids.map((id) => ({ walletName: who(id), paymentHash: preimages.escrow(id).paymentHash, amountMsat: BASE_MSAT, expirySec: policy.invoiceExpirySec, cltvDelta: policy.cltvDeltaBlocks, description: `escrow ${id}` })),
  );
  const height = await network.blockHeight();
  const history: Array<{ streamId: string; event: DomainEvent }> = [];
  for (const [index, id] of ids.entries()) {
    const contributorId = who(id);
    if (held[index]!.status !== 'in_flight') throw new Error(`bench: the dev node did not hold ${id}'s HTLC (${held[index]!.status})`);
    let assignment = assignmentDecider.initialState();
    const assignmentCommands: AssignmentCommand[] = [command<AssignmentCommand>('AssignWork', assignWorkData({ assignmentId: id, contributorId, baseRewardMsat: BASE_MSAT, deadlineMs: nowMs + 6 * 86_400_000 }), nowMs)];
    if (submitted) assignmentCommands.push(command<AssignmentCommand>('SubmitGradient', { assignmentId: id, contributorId, gradientDigest: hex64(`g-${id}`), sizeBytes: 4096, encoding: 'dense-f32', claimedLoss: 1, computeTimeMs: 5 }, nowMs));
    for (const cmd of assignmentCommands) {
      for (const event of assignmentDecider.decide(cmd, assignment)) {
        assignment = assignmentDecider.evolve(assignment, event);
        history.push({ streamId: assignmentStreamId(id), event: event as AssignmentEvent });
      }
    }
    const { paymentHash } = preimages.escrow(id);
    const decoded = await network.coordinator().decodeInvoice(held[index]!.bolt11);
    let invoice = invoiceDecider.initialState();
    const invoiceCommands: InvoiceCommand[] = [
      command<InvoiceCommand>('OpenInvoice', { paymentHash, kind: 'escrow', assignmentId: id, runId: RUN_ID, contributorId, amountMsat: BASE_MSAT, bolt11: held[index]!.bolt11, expiresAtMs: decoded.expiresAtMs, cltvExpiryHeight: height + policy.cltvDeltaBlocks, maxFeeMsat: 10_000n }, nowMs),
      command<InvoiceCommand>('MarkInvoiceHeld', { paymentHash }, nowMs),
    ];
    for (const cmd of invoiceCommands) {
      for (const event of invoiceDecider.decide(cmd, invoice)) {
        invoice = invoiceDecider.evolve(invoice, event);
        history.push({ streamId: invoiceStreamId(paymentHash), event: event as InvoiceEvent });
      }
    }
  }
  await bulkLoad(db, history, nowMs);
  await sql`INSERT INTO lightning_pending_assignments (assignment_id, next_check_at_ms)
    SELECT id, ${String(nowMs + IDLE_RECHECK_MS)} FROM unnest(${[...ids]}::text[]) AS id ON CONFLICT (assignment_id) DO NOTHING`.execute(db);
}
