// Escrow pass bench (issue 14): the work the escrow engine does after one new event, with 10,000 held escrows beside the same with 10; it should not grow with what is held.

import { randomUUID } from 'node:crypto';
import { pathToFileURL } from 'node:url';
import pg from 'pg';
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
import { startThrowawayCluster } from '../support/postgres-cluster.js';
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
 * Measures escrow passes: with `smallHeld` escrows held, then (after seeding more in bulk, in the
 * same database) with `largeHeld`. Each measured pass follows one new event: an acceptance of one
 * more held escrow (the pass releases it, sees it settled and closes the assignment) or one
 * funding of another run (the pass has nothing to do). Held escrows are seeded as a running
 * engine would have left them: the events bulk-loaded into the log, the dev node holding each
 * HTLC, the outbox projected, the settler's schedule rows in place.
 */
export async function runEscrowBench(database: EscrowBenchDatabase, sizes: EscrowBenchSizes = DEFAULT_ESCROW_BENCH_SIZES, log: (line: string) => void = () => {}): Promise<EscrowBenchResult> {
  const { store, db } = await openEventStore(database.engine === 'pglite' ? { engine: 'pglite' } : { engine: 'postgres', connectionString: database.connectionString });
  const clock = { nowMs: T0 + 500 };
  const nowMs = () => clock.nowMs;
  const network = await DevLightningNetwork.open({ nowMs, seed: Buffer.alloc(32, 3) });
  try {
    const preimages = new PreimageDeriver(Buffer.alloc(32, 5));
    const newEventId = () => randomUUID();
    const run = (runId: string, cmd: RunCommand) => handleCommand(store, runDecider, runStreamId(runId), cmd, { newEventId });
    await run(RUN_ID, command<RunCommand>('OpenRun', openRunData(), T0));
    await run(RUN_ID, command<RunCommand>('FundRun', { runId: RUN_ID, fundingId: 'f1', source: 'customer', amountMsat: 10n ** 15n }, T0));
    await run('run-other', command<RunCommand>('OpenRun', openRunData({ runId: 'run-other' }), T0));
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

    let seeded = 0;
    let seedMs = 0;
    const seed = async (count: number, submitted: boolean): Promise<string[]> => {
      const started = performance.now();
      const ids: string[] = [];
      for (let from = 0; from < count; from += SEED_CHUNK) {
        const chunk = Array.from({ length: Math.min(SEED_CHUNK, count - from) }, () => `held-${seeded++}`);
        ids.push(...chunk);
        await seedHeld(store, db, network, preimages, chunk, contributors, clock.nowMs, submitted);
      }
      // As if a previous process had reacted to all of it; the next pass projects the outbox rows.
      await store.saveCheckpoint(ESCROW_REACTOR_SUBSCRIPTION, await store.headPosition());
      await engine.runUntilQuiet();
      seedMs += performance.now() - started;
      return ids;
    };

    const passes = async (): Promise<{ ms: number; nodeCalls: number; visits: number }> => {
      const callsBefore = calls();
      const visitsBefore = engine.dispatcher.counters.visits;
      const started = performance.now();
      await engine.runUntilQuiet();
      return { ms: performance.now() - started, nodeCalls: calls() - callsBefore, visits: engine.dispatcher.counters.visits - visitsBefore };
    };

    let fundings = 0;
    const measureSize = async (held: number): Promise<SizeFigures> => {
      const acceptance: Array<{ ms: number; nodeCalls: number; visits: number }> = [];
      const unrelated: Array<{ ms: number; nodeCalls: number; visits: number }> = [];
      for (let i = 0; i < WARMUP_PASSES + sizes.passes; i += 1) {
        // One more held escrow, submitted: the acceptance below is the one new event its pass follows.
        const [id] = await seed(1, true);
        clock.nowMs += 1;
        await handleCommand(store, assignmentDecider, assignmentStreamId(id!), { ...command<AssignmentCommand>('AcceptSubmission', { assignmentId: id!, validatorId: 'v', qualityScore: 0.5, bonusMsat: 0n, evidence: {} }), metadata: { nowMs: clock.nowMs } } as AssignmentCommand, { newEventId });
        const accepted = await passes();
        const settledEvents = await store.readStream(invoiceStreamId(preimages.escrow(id!).paymentHash));
        if (settledEvents.at(-1)?.type !== 'InvoiceSettled') throw new Error(`bench: escrow of ${id} ended ${settledEvents.at(-1)?.type}, not settled`);
        await run('run-other', { type: 'FundRun', data: { runId: 'run-other', fundingId: `f-${fundings++}`, source: 'customer', amountMsat: 1_000n }, metadata: { nowMs: clock.nowMs } } as RunCommand);
        const other = await passes();
        if (i >= WARMUP_PASSES) {
          acceptance.push(accepted);
          unrelated.push(other);
        }
      }
      engine.dispatcher.sweepNow();
      const tick = await passes();
      const figures = { held, afterAcceptance: summarise(acceptance), afterUnrelatedEvent: summarise(unrelated), sweepTick: { pageSize: DEFAULT_DISPATCHER_LIMITS.batchSize, ms: round(tick.ms, 2), nodeCalls: tick.nodeCalls } };
      log(`escrow bench [${database.engine}] ${held} held: ${JSON.stringify(figures)}`);
      return figures;
    };

    await seed(sizes.smallHeld, false);
    const small = await measureSize(sizes.smallHeld);
    log(`escrow bench [${database.engine}] seeding ${sizes.largeHeld - sizes.smallHeld} more held escrows`);
    await seed(sizes.largeHeld - sizes.smallHeld, false);
    const large = await measureSize(sizes.largeHeld);
    await engine.close();

    const escrowHeldRatio = round(large.afterAcceptance.passMsP50 / small.afterAcceptance.passMsP50, 3);
    const escrowHeldRatioUnrelated = round(large.afterUnrelatedEvent.passMsP50 / small.afterUnrelatedEvent.passMsP50, 3);
    return {
      engine: database.engine,
      small,
      large,
      escrowHeldRatio,
      escrowHeldRatioUnrelated,
      goal: ESCROW_HELD_RATIO_GOAL,
      met: escrowHeldRatio <= ESCROW_HELD_RATIO_GOAL && escrowHeldRatioUnrelated <= ESCROW_HELD_RATIO_GOAL,
      seedMs: Math.round(seedMs),
      nodeCallsPerPassFlat:
        large.afterAcceptance.nodeCallsPerPassMax === small.afterAcceptance.nodeCallsPerPassMax && large.afterUnrelatedEvent.nodeCallsPerPassMax === small.afterUnrelatedEvent.nodeCallsPerPassMax,
    };
  } finally {
    await network.close();
    await store.close();
  }
}

function summarise(samples: ReadonlyArray<{ ms: number; nodeCalls: number; visits: number }>): PassFigures {
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
  store: PostgresEventStore,
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
  void store;
}

/** `npx tsx test/bench/escrow-bench.ts [--engine=pglite|postgres] [--held=10000] [--passes=30]`: prints the result as JSON. */
async function main(argv: readonly string[]): Promise<void> {
  const args = new Map(argv.map((a) => a.replace(/^--/, '').split('=') as [string, string]));
  const engine = args.get('engine') ?? 'pglite';
  const sizes = { ...DEFAULT_ESCROW_BENCH_SIZES, largeHeld: Number(args.get('held') ?? DEFAULT_ESCROW_BENCH_SIZES.largeHeld), passes: Number(args.get('passes') ?? DEFAULT_ESCROW_BENCH_SIZES.passes) };
  const log = (line: string) => process.stderr.write(`${line}\n`);
  if (engine === 'pglite') {
    process.stdout.write(`${JSON.stringify(await runEscrowBench({ engine: 'pglite' }, sizes, log), null, 2)}\n`);
    return;
  }
  if (engine !== 'postgres') throw new Error(`unknown engine ${engine}; use pglite or postgres`);
  const cluster = process.env.DATABASE_URL ? null : await startThrowawayCluster({ durable: true });
  const adminUrl = process.env.DATABASE_URL ?? cluster!.adminUrl;
  try {
    const name = `trainledger_escrow_bench_${Date.now()}`;
    const admin = new pg.Client({ connectionString: adminUrl });
    await admin.connect();
    await admin.query(`CREATE DATABASE ${name}`);
    await admin.end();
    const url = new URL(adminUrl);
    url.pathname = `/${name}`;
    process.stdout.write(`${JSON.stringify(await runEscrowBench({ engine: 'postgres', connectionString: url.toString() }, sizes, log), null, 2)}\n`);
  } finally {
    cluster?.stop();
  }
}

if (process.argv[1] !== undefined && import.meta.url === pathToFileURL(process.argv[1]).href) {
  main(process.argv.slice(2)).catch((error: unknown) => {
    process.stderr.write(`${error instanceof Error ? (error.stack ?? error.message) : String(error)}\n`);
    process.exit(1);
  });
}
