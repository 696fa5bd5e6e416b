// `npm run bench`: every figure of the README's Benchmarks table, each beside its same-run baseline, as JSON on stdout (progress on stderr).

import { mkdtempSync, rmSync } from 'node:fs';
import { cpus, tmpdir, totalmem } from 'node:os';
import { join } from 'node:path';
import { openEventStore } from '../../adapters/event-store/open-event-store.js';
import { ALL_PROJECTORS } from '../../projections/index.js';
import { createDatabaseOn, startThrowawayCluster, type RunningCluster } from '../support/postgres-cluster.js';
import { runAppendBench, runDurableAppendBench, type AppendBenchSizes, type DurableAppendBenchResult } from './append-bench.js';
import { AUDIT_TO_READ_RATIO_GOAL, auditMemoryFlatness, runAuditBenchSize, type AuditBenchResult } from './audit-bench.js';
import { ESCROW_HELD_RATIO_GOAL, runEscrowBench, type EscrowBenchResult } from './escrow-bench.js';
import { runIdleMemoryBench } from './idle-memory-bench.js';
import { runRebuildBench } from './rebuild-bench.js';
import { runReplayBench } from './replay-bench.js';
import { PeakMemory } from './stats.js';
import { MAX_HISTORY_ASSIGNMENTS, MAX_SUBMISSIONS, runSubmissionBench, type SubmissionBenchResult, type SubmissionBenchSizes } from './submission-bench.js';

type Engine = 'postgres' | 'pglite';

type BenchArgs = {
  engines: Engine[];
  durableAppends: { singleEvents: number; batches: number; batchSize: number; repeats: number };
  storeAppends: AppendBenchSizes;
  rebuildEvents: number;
  replaySteps: number;
  submissions: number;
  concurrency: number;
  historyAssignments: number;
  escrowHeld: number;
  idleMemory: boolean;
  /** Log sizes for the audit bench, in assignments (0: skip); two or more show whether memory stays flat. */
  auditAssignments: number[];
};

function parseArgs(argv: readonly string[]): BenchArgs {
  const args = new Map(argv.map((a) => a.replace(/^--/, '').split('=') as [string, string]));
  const known = new Set(['engines', 'appends', 'append-batches', 'batch-size', 'repeats', 'single', 'batches', 'rebuild-events', 'replay-steps', 'submissions', 'concurrency', 'history-assignments', 'escrow-held', 'idle-memory', 'audit-assignments']);
  for (const name of args.keys()) if (!known.has(name)) throw new Error(`unknown argument --${name}; known: ${[...known].map((k) => `--${k}`).join(', ')}`);
  const enginesArg = args.get('engines') ?? 'postgres,pglite';
  // --engines=none skips the store benchmarks, for a replay-only run on a GPU machine.
  const engines = (enginesArg === 'none' ? [] : enginesArg.split(',')) as Engine[];
  for (const e of engines) if (e !== 'postgres' && e !== 'pglite') throw new Error(`unknown engine ${e}; use postgres and/or pglite, or none`);
  const int = (name: string, fallback: number, min: number, max: number) => {
    const value = Number(args.get(name) ?? fallback);
    if (!Number.isInteger(value) || value < min || value > max) throw new Error(`--${name} must be an integer from ${min} to ${max}${min === 0 ? ' (0 skips it)' : ''}`);
    return value;
  };
  const batchSize = int('batch-size', 100, 1, 1_000);
  return {
    engines,
    durableAppends: { singleEvents: int('appends', 10_000, 0, 1_000_000), batches: int('append-batches', 100, 1, 100_000), batchSize, repeats: int('repeats', 3, 1, 9) },
    storeAppends: { singleAppends: int('single', 2_000, 1, 1_000_000), batchAppends: int('batches', 200, 1, 100_000), batchSize },
    rebuildEvents: int('rebuild-events', 1_000_000, 0, 10_000_000),
    replaySteps: int('replay-steps', 500, 0, 1_000_000),
    submissions: int('submissions', 320, 0, MAX_SUBMISSIONS),
    concurrency: int('concurrency', 16, 1, 256),
    historyAssignments: int('history-assignments', 100_000, 0, MAX_HISTORY_ASSIGNMENTS),
    escrowHeld: int('escrow-held', 10_000, 0, 100_000),
    idleMemory: int('idle-memory', 1, 0, 1) === 1,
    auditAssignments: (args.get('audit-assignments') ?? '100000').split(',').map((v) => Number(v)).filter((n) => {
      if (!Number.isInteger(n) || n < 0 || n > 2_000_000) throw new Error('--audit-assignments must be a comma-separated list of integers from 0 to 2000000 (0 skips it)');
      return n > 0;
    }),
  };
}

/**
 * One PostgreSQL server for the whole run, with fsync, synchronous_commit and full_page_writes on
 * (production's settings): DATABASE_URL's server when set, else a throwaway cluster. Each bench
 * gets a brand-new database on it.
 */
class PostgresServer {
  private constructor(private readonly adminUrl: string, private readonly cluster: RunningCluster | null) {}

  static async start(): Promise<PostgresServer> {
    if (process.env.DATABASE_URL) return new PostgresServer(process.env.DATABASE_URL, null);
    const cluster = await startThrowawayCluster({ durable: true });
    return new PostgresServer(cluster.adminUrl, cluster);
  }

  freshDatabase(): Promise<string> {
    return createDatabaseOn(this.adminUrl, 'trainledger_bench');
  }

  stop(): void {
    this.cluster?.stop();
  }
}

const log = (line: string) => process.stderr.write(`${line}\n`);

/** A fresh store on `engine` for one bench: a new PostgreSQL database, or PGlite in a temporary folder. */
async function withFreshStore<T>(engine: Engine, server: PostgresServer | null, fn: (opened: Awaited<ReturnType<typeof openEventStore>>) => Promise<T>): Promise<T> {
  const run = async (target: Parameters<typeof openEventStore>[0]) => {
    const opened = await openEventStore(target);
    try {
      return await fn(opened);
    } finally {
      await opened.store.close();
    }
  };
  if (engine === 'postgres') return run({ engine: 'postgres', connectionString: await server!.freshDatabase() });
  // On disk rather than in memory: a million events would not fit PGlite's 32-bit WebAssembly heap.
  const dataDir = mkdtempSync(join(tmpdir(), 'trainledger-bench-'));
  try {
    return await run({ engine: 'pglite', dataDir });
  } finally {
    rmSync(dataDir, { recursive: true, force: true });
  }
}

type EngineResults = {
  storeAppends: Awaited<ReturnType<typeof runAppendBench>>;
  rebuild?: Awaited<ReturnType<typeof runRebuildBench>>;
  submissions?: SubmissionBenchResult;
  escrow?: EscrowBenchResult;
  audit?: AuditBenchResult;
};

async function benchEngine(engine: Engine, server: PostgresServer | null, args: BenchArgs): Promise<EngineResults> {
  log(`bench: store appends on ${engine} (${args.storeAppends.singleAppends} single, ${args.storeAppends.batchAppends} x ${args.storeAppends.batchSize})...`);
  const out: EngineResults = { storeAppends: await withFreshStore(engine, server, ({ store, db }) => runAppendBench(store, db, args.storeAppends)) };
  if (args.rebuildEvents > 0) {
    log(`bench: rebuild on ${engine} over ${args.rebuildEvents} events...`);
    out.rebuild = await withFreshStore(engine, server, ({ store }) => runRebuildBench(store, args.rebuildEvents, ALL_PROJECTORS, log));
  }
  if (args.submissions > 0) {
    const sizes: SubmissionBenchSizes = { submissions: args.submissions, concurrency: args.concurrency, historyAssignments: args.historyAssignments };
    out.submissions = await runSubmissionBench(engine === 'postgres' ? { engine, connectionString: await server!.freshDatabase() } : { engine }, sizes, log);
  }
  if (args.escrowHeld > 0) {
    log(`bench: escrow passes on ${engine}, 10 and ${args.escrowHeld} held...`);
    const database = async () => (engine === 'postgres' ? { engine, connectionString: await server!.freshDatabase() } : { engine });
    out.escrow = await runEscrowBench({ small: await database(), large: await database() }, { smallHeld: 10, largeHeld: args.escrowHeld, passes: 30 }, log);
  }
  if (args.auditAssignments.length > 0) out.audit = await benchAudit(engine, server, args.auditAssignments);
  return out;
}

/** One fresh database per size; the audit and the read each run in a child process, so their peaks are their own. */
async function benchAudit(engine: Engine, server: PostgresServer | null, sizes: readonly number[]): Promise<AuditBenchResult> {
  const results = [];
  for (const assignments of sizes) {
    log(`bench: audit on ${engine} over ${assignments} assignments...`);
    if (engine === 'postgres') results.push(await runAuditBenchSize({ engine, connectionString: await server!.freshDatabase() }, assignments, log));
    else {
      const dataDir = mkdtempSync(join(tmpdir(), 'trainledger-bench-audit-'));
      try {
        results.push(await runAuditBenchSize({ engine, dataDir }, assignments, log));
      } finally {
        rmSync(dataDir, { recursive: true, force: true });
      }
    }
  }
  return { sizes: results, memoryFlatness: auditMemoryFlatness(results) };
}

type Goal = { figure: string; key: string; value: number; goal: string; met: boolean; baseline: string };

/** The issue's goal table, from the figures above: one row per goal, each with the baseline it is a ratio to. */
function goals(durable: DurableAppendBenchResult | null, engines: Partial<Record<Engine, EngineResults>>, replay: Awaited<ReturnType<typeof runReplayBench>> | null): Goal[] {
  const rows: Goal[] = [];
  const atLeast = (figure: string, key: string, value: number, goal: number, baseline: string) => rows.push({ figure, key, value, goal: `>= ${goal}`, met: value >= goal, baseline });
  if (durable) {
    atLeast('appends, 1 event, 16 writers', 'vsRaw', durable.single.vsRaw, 0.5, 'raw single-row INSERT, 16 writers');
    atLeast('appends, 1 event, 16 writers', 'vsEmmett', durable.single.vsEmmett, 1.5, "Emmett appendToStream, 16 writers");
    atLeast(`appends, ${durable.batched.eventsPerAppend} events, 16 writers`, 'vsRaw', durable.batched.vsRaw, 0.6, 'raw multi-row INSERT, 16 writers');
    atLeast(`appends, ${durable.batched.eventsPerAppend} events, 16 writers`, 'vsEmmett', durable.batched.vsEmmett, 1.2, 'Emmett appendToStream, 16 writers');
  }
  for (const [engine, results] of Object.entries(engines) as Array<[Engine, EngineResults]>) {
    const s = results.submissions;
    if (s) {
      atLeast(`signed submissions/s, ${s.concurrency} contributors, API part alone, ${engine}`, 'vsFloor', s.vsFloor, engine === 'postgres' ? 0.5 : 0.3, 'bare route: body, one ed25519 verify, one INSERT');
      atLeast(`submissions/s at ${s.history.historyAssignments} assignments of history, ${engine}`, 'historyFlatness', s.history.historyFlatness.submissions, 0.9, 'the same on a new run');
      atLeast(`assignments/s at ${s.history.historyAssignments} assignments of history, ${engine}`, 'historyFlatness', s.history.historyFlatness.assignments, 0.9, 'the same on a new run');
    }
    const e = results.escrow;
    for (const a of results.audit?.sizes ?? []) {
      rows.push({ figure: `audit of ${a.assignments} assignments (${a.events} events), ${engine}`, key: 'auditToReadRatio', value: a.auditToReadRatio, goal: `<= ${AUDIT_TO_READ_RATIO_GOAL}`, met: a.auditToReadRatio <= AUDIT_TO_READ_RATIO_GOAL, baseline: 'reading and decoding the same events, same keyset pages' });
    }
    if (e) rows.push({ figure: `escrow pass after one acceptance, ${e.large.held} held, ${engine}`, key: 'escrowHeldRatio', value: e.escrowHeldRatio, goal: `<= ${ESCROW_HELD_RATIO_GOAL}`, met: e.escrowHeldRatio <= ESCROW_HELD_RATIO_GOAL, baseline: `the same with ${e.small.held} held` });
  }
  for (const [provider, result] of Object.entries(replay ?? {}) as Array<[string, { available: boolean; models?: Record<string, { overheadRatio: number }> }]>) {
    for (const [model, figures] of Object.entries(result.models ?? {})) {
      rows.push({ figure: `replay step, ${model}, ${provider}`, key: 'overheadRatio', value: figures.overheadRatio, goal: '<= 1.5', met: figures.overheadRatio <= 1.5, baseline: 'bare session.run, same session' });
    }
  }
  return rows;
}

function commandLine(args: BenchArgs): string {
  const a = args;
  return [
    'npm run bench --',
    `--engines=${a.engines.length > 0 ? a.engines.join(',') : 'none'}`,
    `--appends=${a.durableAppends.singleEvents} --append-batches=${a.durableAppends.batches} --batch-size=${a.durableAppends.batchSize} --repeats=${a.durableAppends.repeats}`,
    `--single=${a.storeAppends.singleAppends} --batches=${a.storeAppends.batchAppends}`,
    `--rebuild-events=${a.rebuildEvents} --replay-steps=${a.replaySteps}`,
    `--submissions=${a.submissions} --concurrency=${a.concurrency} --history-assignments=${a.historyAssignments} --escrow-held=${a.escrowHeld} --idle-memory=${a.idleMemory ? 1 : 0} --audit-assignments=${a.auditAssignments.join(',') || 0}`,
  ].join(' ');
}

async function main(): Promise<void> {
  const args = parseArgs(process.argv.slice(2));
  const memory = new PeakMemory();
  const server = args.engines.includes('postgres') ? await PostgresServer.start() : null;
  try {
    let durableAppends: DurableAppendBenchResult | null = null;
    if (server && args.durableAppends.singleEvents > 0) {
      log(`bench: durable appends on PostgreSQL, 16 writers: ${args.durableAppends.singleEvents} single events, ${args.durableAppends.batches} x ${args.durableAppends.batchSize}, ${args.durableAppends.repeats} runs each...`);
      durableAppends = await runDurableAppendBench(await server.freshDatabase(), { ...args.durableAppends, writers: 16 }, log);
    }
    const engines: Partial<Record<Engine, EngineResults>> = {};
    for (const engine of args.engines) engines[engine] = await benchEngine(engine, server, args);
    const replay = args.replaySteps > 0 ? await runReplayBench(args.replaySteps, log) : null;
    // The service as `npm start` runs it, in its own process: what it holds at idle, first boot and restart.
    const idleMemory = args.idleMemory ? await runIdleMemoryBench(log) : null;
    const goalRows = goals(durableAppends, engines, replay);
    const report = {
      benchmark: 'TrainLedger: durable appends, projection rebuilds, signed gradient submissions, escrow passes and step replay, each beside a same-run baseline',
      command: commandLine(args),
      machine: { node: process.version, cpus: cpus().length, memoryGiB: Math.round(totalmem() / 2 ** 30) },
      goals: goalRows,
      goalsMet: `${goalRows.filter((g) => g.met).length} of ${goalRows.length}`,
      notes: [
        'PostgreSQL: one server for the run with fsync, synchronous_commit and full_page_writes on (DATABASE_URL if set, else a throwaway cluster); each bench gets a new database. PGlite: a temporary data folder.',
        'durableAppends: 16 concurrent writers per contestant, each appending to its own stream; TrainLedger\'s store, a raw INSERT into a plain table (one row per event; one multi-row INSERT per batch), and Emmett\'s PostgreSQL appendToStream; a CHECKPOINT before each timed run, contestants rotated, median of the runs. vsRaw and vsEmmett = TrainLedger events/s over the baseline\'s.',
        'storeAppends: the same concurrent writers through the store and a raw INSERT on each engine (PGlite has one connection, so its writers queue).',
        'rebuild: generated histories bulk-loaded, then each projector replays the log from position zero in 1,000-event batches; readBaseline is the same read and decode with no projector work.',
        'submissions: the API part alone (--parts=api; no validator, projections or escrow in the process) takes signed RFC 9421 submitGradient calls from N contributors at once over distinct ~64 KiB sparseloco bodies; the floor is a bare route in the same process that reads the same body, verifies one ed25519 signature and commits one single-row INSERT. vsFloor = submissions/s over floor requests/s. historyFlatness = rate on a run with historyAssignments finished assignments (bulk-loaded) over the rate on a new run.',
        'escrow: two worlds side by side (each its own database, dev Lightning network and escrow engine), one with 10 escrows held and one with N; passes alternate between them, each after one new event (an acceptance, or an unrelated funding); escrowHeldRatio = median pass time with N held over with 10 held; node calls per pass are counted.',
        'audit: generated histories of N assignments bulk-loaded and projected, then in a child process each: runAudit (integrity, rebuild of every projection, settlement, ledger; no node, no replays) and, as the baseline, reading and decoding the same events in the same keyset pages; auditToReadRatio = audit time over read time. Peak memory is the child\'s VmHWM (/proc/self/status) and its sampled peak V8 heapUsed; memoryFlatness = the largest size\'s peak over the smallest\'s (1 is flat).',
        'replay: per execution provider and reference model, alternating rounds of executeRecipe (as verification calls it) and a bare session.run of the same session; overheadRatio = bare steps/s over engine steps/s.',
      ],
      durableAppends,
      engines,
      replay,
      idleMemory,
      memory: memory.stop(),
    };
    process.stdout.write(`${JSON.stringify(report, null, 2)}\n`);
  } finally {
    server?.stop();
  }
}

main().catch((error: unknown) => {
  console.error(error);
  process.exit(1);
});
