// `npm run bench`: appends and rebuilds on PostgreSQL and PGlite, and replay steps per provider, each beside a same-run baseline; prints JSON.

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
import { PeakMemory } from './stats.js';

type Engine = 'postgres' | 'pglite';

type BenchArgs = { engines: Engine[]; sizes: AppendBenchSizes; rebuildEvents: number; replaySteps: number };

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
  return { engines, sizes: { singleAppends: int('single', 2000), batchAppends: int('batches', 200), batchSize: int('batch-size', 100) }, rebuildEvents, replaySteps };
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

async function main(): Promise<void> {
  const args = parseArgs(process.argv.slice(2));
  const { engines, sizes } = args;
  const memory = new PeakMemory();
  const results: Record<string, unknown> = {};
  for (const engine of engines) {
    process.stderr.write(`bench: appends on ${engine} (${sizes.singleAppends} single, ${sizes.batchAppends} x ${sizes.batchSize})...\n`);
    results[engine] = await benchEngine(engine, args);
  }
  const replay = args.replaySteps > 0 ? await runReplayBench(args.replaySteps, (line) => process.stderr.write(`${line}\n`)) : null;
  const report = {
    benchmark: 'event-store appends, projection rebuilds and step replay',
    command: `npm run bench -- --engines=${engines.length > 0 ? engines.join(',') : 'none'} --single=${sizes.singleAppends} --batches=${sizes.batchAppends} --batch-size=${sizes.batchSize} --rebuild-events=${args.rebuildEvents} --replay-steps=${args.replaySteps}`,
    machine: { node: process.version, cpus: cpus().length, memoryGiB: Math.round(totalmem() / 2 ** 30) },
    notes: [
      'appends: sequential single writer; storeToRawRatio = store events/s / raw multi-row INSERT events/s into a plain table, same engine, same run.',
      'rebuild: generated histories bulk-loaded, then each projector replays the log from position zero in 1000-event batches; readBaseline is the same batched read and decode with no projector work; readShare = read time / rebuild time.',
      'PostgreSQL is a throwaway cluster with fsync off unless DATABASE_URL is set; PGlite is in a temporary data folder.',
      'replay: per available execution provider and reference model, executeRecipe (checkpoint from the blob store, seeded batch, session.run, digests) against a bare session.run of the same graph and session with feeds built once; overheadRatio = bare steps/s / engine steps/s. Optimization disabled, one intra-op thread (the reference recipe class).',
    ],
    results,
    replay,
    memory: memory.stop(),
  };
  process.stdout.write(`${JSON.stringify(report, null, 2)}\n`);
}

main().catch((error: unknown) => {
  console.error(error);
  process.exit(1);
});
