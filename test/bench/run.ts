// `npm run bench`: appends, rebuilds and signed gradient submissions on PostgreSQL and PGlite, and replay steps per provider, each beside a same-run baseline; prints JSON.

import { randomBytes } from 'node:crypto';
import { cpus, totalmem } from 'node:os';
import pg from 'pg';
import { openEventStore } from '../../adapters/event-store/open-event-store.js';
import { startThrowawayCluster, type RunningCluster } from '../support/postgres-cluster.js';
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { ALL_PROJECTORS } from '../../projections/index.js';
import { runAppendBench, type AppendBenchSizes } from './append-bench.js';
import { runRebuildBench } from './rebuild-bench.js';
import { runReplayBench } from './replay-bench.js';
import { MAX_HISTORY_ASSIGNMENTS, MAX_SUBMISSIONS, runSubmissionBench, type SubmissionBenchSizes } from './submission-bench.js';
import { PeakMemory } from './stats.js';

type Engine = 'postgres' | 'pglite';

type BenchArgs = { engines: Engine[]; sizes: AppendBenchSizes; rebuildEvents: number; replaySteps: number; submissions: number; concurrency: number; historyAssignments: number };

function parseArgs(argv: readonly string[]): BenchArgs {
  const args = new Map(argv.map((a) => a.replace(/^--/, '').split('=') as [string, string]));
  const enginesArg = args.get('engines') ?? 'postgres,pglite';
  // --engines=none skips the store benchmarks, for a replay-only run on a GPU machine.
  const engines = (enginesArg === 'none' ? [] : enginesArg.split(',')) as Engine[];
  for (const e of engines) if (e !== 'postgres' && e !== 'pglite') throw new Error(`unknown engine ${e}; use postgres and/or pglite`);
  const int = (name: string, fallback: number) => {
    const value = Number(args.get(name) ?? fallback);
    if (!Number.isInteger(value) || value < 1 || value > 1_000_000) throw new Error(`--${name} must be an integer from 1 to 1000000`);
    return value;
  };
  const rebuildEvents = Number(args.get('rebuild-events') ?? 1_000_000);
  if (!Number.isInteger(rebuildEvents) || rebuildEvents < 0 || rebuildEvents > 10_000_000) throw new Error('--rebuild-events must be an integer from 0 (skip) to 10000000');
  const replaySteps = Number(args.get('replay-steps') ?? 500);
  if (!Number.isInteger(replaySteps) || replaySteps < 0 || replaySteps > 1_000_000) throw new Error('--replay-steps must be an integer from 0 (skip) to 1000000');
  const submissions = Number(args.get('submissions') ?? 300);
  if (!Number.isInteger(submissions) || submissions < 0 || submissions > MAX_SUBMISSIONS) throw new Error(`--submissions must be an integer from 0 (skip) to ${MAX_SUBMISSIONS}`);
  const historyAssignments = Number(args.get('history-assignments') ?? 100_000);
  if (!Number.isInteger(historyAssignments) || historyAssignments < 0 || historyAssignments > MAX_HISTORY_ASSIGNMENTS) throw new Error(`--history-assignments must be an integer from 0 to ${MAX_HISTORY_ASSIGNMENTS}`);
  return { engines, sizes: { singleAppends: int('single', 2000), batchAppends: int('batches', 200), batchSize: int('batch-size', 100) }, rebuildEvents, replaySteps, submissions, concurrency: int('concurrency', 16), historyAssignments };
}

/** Runs `fn` against a brand-new database on DATABASE_URL's server, or on a throwaway cluster. */
async function withPostgres<T>(fn: (url: string) => Promise<T>): Promise<T> {
  const cluster: RunningCluster | null = process.env.DATABASE_URL ? null : await startThrowawayCluster();
  const adminUrl = process.env.DATABASE_URL ?? cluster!.adminUrl;
  try {
    const name = `trainledger_bench_${randomBytes(6).toString('hex')}`;
    const admin = new pg.Client({ connectionString: adminUrl });
    await admin.connect();
    await admin.query(`CREATE DATABASE ${name}`);
    await admin.end();
    const url = new URL(adminUrl);
    url.pathname = `/${name}`;
    return await fn(url.toString());
  } finally {
    cluster?.stop();
  }
}

type Target = Parameters<typeof openEventStore>[0];

/** Opens a fresh store on `engine` for one benchmark: a new database (or DATABASE_URL), or PGlite in a temporary folder. */
async function withFreshStore<T>(engine: Engine, fn: (opened: Awaited<ReturnType<typeof openEventStore>>) => Promise<T>): Promise<T> {
  const run = async (target: Target) => {
    const opened = await openEventStore(target);
    try {
      return await fn(opened);
    } finally {
      await opened.store.close();
    }
  };
  if (engine === 'postgres') return withPostgres((connectionString) => run({ engine: 'postgres', connectionString }));
  // On disk rather than in memory: a million events would not fit PGlite's 32-bit WebAssembly heap.
  const dataDir = mkdtempSync(join(tmpdir(), 'trainledger-bench-'));
  try {
    return await run({ engine: 'pglite', dataDir });
  } finally {
    rmSync(dataDir, { recursive: true, force: true });
  }
}

async function benchEngine(engine: Engine, args: BenchArgs) {
  const appends = await withFreshStore(engine, ({ store, db }) => runAppendBench(store, db, args.sizes));
  if (args.rebuildEvents === 0) return { appends };
  process.stderr.write(`bench: rebuild on ${engine} over ${args.rebuildEvents} events...\n`);
  const rebuild = await withFreshStore(engine, ({ store }) => runRebuildBench(store, args.rebuildEvents, ALL_PROJECTORS, (line) => process.stderr.write(`${line}\n`)));
  return { appends, rebuild };
}

/** The whole embedded system on `engine` (a new PostgreSQL database, or PGlite in the bench's own temporary folder), N signed submissions. */
async function benchSubmissions(engine: Engine, sizes: SubmissionBenchSizes) {
  const log = (line: string) => process.stderr.write(`${line}\n`);
  if (engine === 'postgres') return withPostgres((connectionString) => runSubmissionBench({ engine: 'postgres', connectionString }, sizes, log));
  return runSubmissionBench({ engine: 'pglite' }, sizes, log);
}

async function main(): Promise<void> {
  const args = parseArgs(process.argv.slice(2));
  const { engines, sizes } = args;
  const memory = new PeakMemory();
  const results: Record<string, unknown> = {};
  const submissions: Record<string, unknown> = {};
  for (const engine of engines) {
    process.stderr.write(`bench: appends on ${engine} (${sizes.singleAppends} single, ${sizes.batchAppends} x ${sizes.batchSize})...\n`);
    results[engine] = await benchEngine(engine, args);
    if (args.submissions > 0) submissions[engine] = await benchSubmissions(engine, { submissions: args.submissions, concurrency: args.concurrency, historyAssignments: args.historyAssignments });
  }
  const replay = args.replaySteps > 0 ? await runReplayBench(args.replaySteps, (line) => process.stderr.write(`${line}\n`)) : null;
  const report = {
    benchmark: 'event-store appends, projection rebuilds, signed gradient submissions and step replay',
    command: `npm run bench -- --engines=${engines.length > 0 ? engines.join(',') : 'none'} --single=${sizes.singleAppends} --batches=${sizes.batchAppends} --batch-size=${sizes.batchSize} --rebuild-events=${args.rebuildEvents} --replay-steps=${args.replaySteps} --submissions=${args.submissions} --concurrency=${args.concurrency} --history-assignments=${args.historyAssignments}`,
    machine: { node: process.version, cpus: cpus().length, memoryGiB: Math.round(totalmem() / 2 ** 30) },
    notes: [
      'appends: sequential single writer; storeToRawRatio = store events/s / raw multi-row INSERT events/s into a plain table, same engine, same run.',
      'rebuild: generated histories bulk-loaded, then each projector replays the log from position zero in 1000-event batches; readBaseline is the same batched read and decode with no projector work; readShare = read time / rebuild time.',
      'PostgreSQL is a throwaway cluster with fsync off unless DATABASE_URL is set; PGlite is in a temporary data folder.',
      'submissions: per engine, the whole embedded system (startSystem on 127.0.0.1, port 0: API, projections, validator, replay feeder and worker, escrow loop on the dev Lightning network, all in this process) takes N sequential SDK submitGradient calls, each RFC 9421-signed, over distinct sparseloco bodies of the MLP sized closest to 64 KiB (bodySizeBytes, with chunkSize/topK), timed request to 201. One contributor; waves of 100 assignments, one run each, made untimed before the wave once the log is quiet (every open assignment holds an escrow HTLC the dispatcher checks on each pass, and the route replays the run stream on each submission, so a fixed wave keeps the figure independent of N). Background consumers react to each submission during the timing and share the CPU (and PGlite\'s single connection); the run policy accepts every gradient (held-out check only, replayProbability 0, bonus 0) and the escrow settles; verdicts are not timed. isolatedSubmissions: single submissions, each after the log has been quiet for 1.5 s, what the API takes with nothing else running. 20 untimed warm-ups each side; the per-caller rate limit is raised so it never refuses (it still runs).',
      'submissions bareRoute: the same bodies by plain fetch (no signing) to a bare Fastify() POST /discard route in the same process, reading the octet-stream body as a buffer and answering 204, timed while the system is idle; apiToBareRatio = submissions/s / bare requests/s.',
      'replay: per available execution provider and reference model, 5 alternating rounds (median) of: executeRecipe as verification calls it (checkpoint from the per-store digest-keyed cache, seeded batch, session.run fetching loss and gradients, gradient digest on demand) against a bare session.run of the same session with feeds built once and every output fetched; overheadRatio = bare steps/s / engine steps/s, overheadRatioP50 = engine p50 / bare p50; bareSessionRunSameFetches fetches what the engine fetches; engineWithGradientDigest also reads the gradient digest (one SHA-256). Optimization disabled, one intra-op thread.',
    ],
    results,
    submissions: args.submissions > 0 && engines.length > 0 ? submissions : null,
    replay,
    memory: memory.stop(),
  };
  process.stdout.write(`${JSON.stringify(report, null, 2)}\n`);
}

main().catch((error: unknown) => {
  console.error(error);
  process.exit(1);
});
