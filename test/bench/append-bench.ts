// Append benchmark: 16 concurrent writers through the event store, beside a raw INSERT and Emmett's appendToStream, same database, fsync on.
//
// Run alone: npx tsx test/bench/append-bench.ts --single=10000 --batches=100 --batch-size=100 --writers=16 --repeats=3
// (a throwaway cluster with fsync, synchronous_commit and full_page_writes on, or DATABASE_URL's server).

import { randomBytes, randomUUID } from 'node:crypto';
import { pathToFileURL } from 'node:url';
import { getPostgreSQLEventStore } from '@event-driven-io/emmett-postgresql';
import { sql, type Kysely } from 'kysely';
import pg from 'pg';
import { openEventStore } from '../../adapters/event-store/open-event-store.js';
import type { AppendPathCounts, PostgresEventStore } from '../../adapters/postgres/postgres-event-store.js';
import type { NewEvent } from '../../domain/ports/event-store.js';
import { createDatabaseOn, startThrowawayCluster } from '../support/postgres-cluster.js';
import { medianTiming, round, timeConcurrent, type Timing } from './stats.js';

export type DurableAppendBenchSizes = {
  /** Events appended one per append, over all writers. */
  singleEvents: number;
  /** Appends of `batchSize` events, over all writers. */
  batches: number;
  batchSize: number;
  /** Concurrent writers for every contestant (default 16). */
  writers?: number;
  /** Timed runs per contestant and mode; the median by events/s is reported (default 3). */
  repeats?: number;
};

export type ModeResult = {
  eventsPerAppend: number;
  /** The median run of each contestant. */
  trainledger: Timing;
  rawInsert: Timing;
  emmett: Timing;
  /** TrainLedger events/s over the baseline's (medians). */
  vsRaw: number;
  vsEmmett: number;
  /** events/s of every run, in run order. */
  runs: { trainledger: number[]; rawInsert: number[]; emmett: number[] };
  /** How the timed TrainLedger appends were carried out (all runs): fast = one statement. */
  trainledgerPaths: AppendPathCounts;
};

export type DurableAppendBenchResult = {
  writers: number;
  repeats: number;
  server: { version: string; fsync: string; synchronousCommit: string; fullPageWrites: string };
  single: ModeResult;
  batched: ModeResult;
  chainVerified: boolean;
};

/** A payload shaped like a real WorkAssigned event, so JSON size and hashing cost are representative. */
function payload(i: number): NewEvent['data'] {
  return {
    assignmentId: `asg-${i}`,
    runId: 'run-bench',
    contributorId: `contrib-${i % 97}`,
    step: i,
    shardId: `shard-${i % 13}`,
    batchIndex: i % 600,
    baseCheckpointDigest: 'ab'.repeat(32),
    seed: String(1_000_000 + i),
    baseRewardMsat: '1000000',
    deadlineMs: 1_700_000_000_000 + i,
    atMs: 1_700_000_000_000,
  };
}

function newEvents(count: number, offset: number): NewEvent[] {
  return Array.from({ length: count }, (_, k) => ({ eventId: randomUUID(), type: 'WorkAssigned', data: payload(offset + k) }));
}

/** Each writer appends round-robin to streams of its own, so contention is on the WAL and the commit, not on one head row. */
const STREAMS_PER_WRITER = 4;

/** One side of the comparison: `append` is writer w's i-th append of `events` (never shared between writers). */
type Contestant = {
  name: 'trainledger' | 'rawInsert' | 'emmett';
  prepare: (tag: string) => void;
  append: (writer: number, i: number, events: readonly NewEvent[]) => Promise<unknown>;
};

type Mode = { key: 'single' | 'batched'; appends: number; eventsPerAppend: number };

/**
 * The benchmark on one database (`connectionString`: an empty database, on a server that should run
 * with fsync, synchronous_commit and full_page_writes on; the result reports what the server runs with).
 * Every contestant gets `writers` connections and `writers` concurrent writers; modes and contestants
 * alternate across repeats, and a CHECKPOINT precedes each timed run.
 */
export async function runDurableAppendBench(
  connectionString: string,
  sizes: DurableAppendBenchSizes,
  log: (line: string) => void = () => {},
): Promise<DurableAppendBenchResult> {
  const writers = sizes.writers ?? 16;
  const repeats = sizes.repeats ?? 3;
  const admin = new pg.Pool({ connectionString, max: 1 });
  const raw = new pg.Pool({ connectionString, max: writers });
  const emmettPool = new pg.Pool({ connectionString, max: writers });
  const opened = await openEventStore({ engine: 'postgres', connectionString, maxConnections: writers });
  const store = opened.store;
  // dumbo (under Emmett) replaces pg's global int8 and jsonb parsers when its pool is made (int8 as
  // BigInt, jsonb with its own big-int parsing); restore ours so the store reads what it always reads.
  const parsers = [20, 114, 3802].map((oid) => [oid, pg.types.getTypeParser(oid)] as const);
  const emmett = getPostgreSQLEventStore(connectionString, { connectionOptions: { pool: emmettPool } });
  for (const [oid, parser] of parsers) pg.types.setTypeParser(oid, parser);
  try {
    const server = await serverSettings(admin);
    if (server.fsync !== 'on' || server.synchronousCommit !== 'on') log(`append bench: WARNING: the server runs with fsync=${server.fsync}, synchronous_commit=${server.synchronousCommit}`);
    await admin.query(`CREATE TABLE IF NOT EXISTS bench_raw_events (id bigserial PRIMARY KEY, stream_id text NOT NULL, event_id uuid NOT NULL, event_type text NOT NULL, data jsonb NOT NULL)`);

    const contestants = [trainledgerContestant(store, writers), rawContestant(raw), emmettContestant(emmett, writers)];
    const modes: Mode[] = [
      { key: 'single', appends: sizes.singleEvents, eventsPerAppend: 1 },
      { key: 'batched', appends: sizes.batches, eventsPerAppend: sizes.batchSize },
    ];
    const timings = new Map<string, Timing[]>();
    const paths = new Map<string, AppendPathCounts>(modes.map((m) => [m.key, { fast: 0, fastMissed: 0, slow: 0 }]));

    // Untimed: Emmett's schema, every pool's connections, the JIT.
    for (const c of contestants) {
      c.prepare(`warm-${c.name}`);
      await timeConcurrent(writers, writers * 3, 1, (w, i) => c.append(w, i, newEvents(1, i)));
    }

    for (let repeat = 0; repeat < repeats; repeat += 1) {
      for (const mode of modes) {
        // Rotate the order so no contestant always runs first after the checkpoint, or last.
        const order = contestants.map((_, k) => contestants[(k + repeat) % contestants.length]!);
        for (const c of order) {
          const batches = Array.from({ length: writers }, (_, w) =>
            Array.from({ length: Math.ceil(mode.appends / writers) }, (_, i) => newEvents(mode.eventsPerAppend, (i * writers + w) * mode.eventsPerAppend)),
          );
          c.prepare(`${mode.key}-r${repeat}-${randomBytes(3).toString('hex')}`);
          await admin.query('CHECKPOINT');
          const before = store.appendPaths();
          const timing = await timeConcurrent(writers, mode.appends, mode.eventsPerAppend, (w, i) => c.append(w, i, batches[w]![i]!));
          if (c.name === 'trainledger') addPaths(paths.get(mode.key)!, before, store.appendPaths());
          const key = `${mode.key}:${c.name}`;
          timings.set(key, [...(timings.get(key) ?? []), timing]);
          log(`append bench: ${mode.key} ${c.name} run ${repeat + 1}/${repeats}: ${timing.eventsPerSec} events/s, p50 ${timing.latencyMsP50} ms, p99 ${timing.latencyMsP99} ms`);
        }
      }
    }

    const result = (mode: Mode): ModeResult => {
      const runsOf = (name: Contestant['name']) => timings.get(`${mode.key}:${name}`) ?? [];
      const [tl, rawMedian, em] = (['trainledger', 'rawInsert', 'emmett'] as const).map((n) => medianTiming(runsOf(n)));
      return {
        eventsPerAppend: mode.eventsPerAppend,
        trainledger: tl!,
        rawInsert: rawMedian!,
        emmett: em!,
        vsRaw: round(tl!.eventsPerSec / rawMedian!.eventsPerSec, 3),
        vsEmmett: round(tl!.eventsPerSec / em!.eventsPerSec, 3),
        runs: {
          trainledger: runsOf('trainledger').map((t) => t.eventsPerSec),
          rawInsert: runsOf('rawInsert').map((t) => t.eventsPerSec),
          emmett: runsOf('emmett').map((t) => t.eventsPerSec),
        },
        trainledgerPaths: paths.get(mode.key)!,
      };
    };
    const verdict = await store.verifyAll();
    return { writers, repeats, server, single: result(modes[0]!), batched: result(modes[1]!), chainVerified: verdict.ok };
  } finally {
    await emmett.close().catch(() => {});
    await Promise.allSettled([raw.end(), emmettPool.end(), admin.end()]);
    await store.close();
  }
}

function trainledgerContestant(store: PostgresEventStore, writers: number): Contestant {
  let tag = '';
  let heads: Map<string, number>[] = [];
  return {
    name: 'trainledger',
    prepare: (t) => {
      tag = t;
      heads = Array.from({ length: writers }, () => new Map());
    },
    // A command's path: the writer knows its stream's revision and expects exactly it.
    append: async (writer, i, events) => {
      const streamId = `tl-${tag}-w${writer}-s${i % STREAMS_PER_WRITER}`;
      const revision = heads[writer]!.get(streamId);
      const result = await store.append(streamId, events, { expectedRevision: revision === undefined ? 'no_stream' : revision });
      heads[writer]!.set(streamId, result.lastRevision);
    },
  };
}

function rawContestant(pool: pg.Pool): Contestant {
  let tag = '';
  return {
    name: 'rawInsert',
    prepare: (t) => void (tag = t),
    // One autocommit INSERT of plain rows: no head, no chain, no checks.
    append: async (writer, i, events) => {
      const streamId = `raw-${tag}-w${writer}-s${i % STREAMS_PER_WRITER}`;
      const values: unknown[] = [];
      const rows = events.map((e, k) => {
        values.push(streamId, e.eventId, e.type, JSON.stringify(e.data));
        return `($${k * 4 + 1}, $${k * 4 + 2}::uuid, $${k * 4 + 3}, $${k * 4 + 4}::jsonb)`;
      });
      await pool.query(`INSERT INTO bench_raw_events (stream_id, event_id, event_type, data) VALUES ${rows.join(', ')}`, values);
    },
  };
}

function emmettContestant(emmett: ReturnType<typeof getPostgreSQLEventStore>, writers: number): Contestant {
  let tag = '';
  let versions: Map<string, bigint>[] = [];
  return {
    name: 'emmett',
    prepare: (t) => {
      tag = t;
      versions = Array.from({ length: writers }, () => new Map());
    },
    // The same command path in Emmett: an expected stream version (0n for a stream that does not exist yet).
    append: async (writer, i, events) => {
      const streamName = `em-${tag}-w${writer}-s${i % STREAMS_PER_WRITER}`;
      const expectedStreamVersion = versions[writer]!.get(streamName) ?? 0n;
      const result = await emmett.appendToStream(
        streamName,
        events.map((e) => ({ type: e.type, data: e.data })),
        { expectedStreamVersion },
      );
      versions[writer]!.set(streamName, result.nextExpectedStreamVersion);
    },
  };
}

function addPaths(total: AppendPathCounts, before: AppendPathCounts, after: AppendPathCounts): void {
  total.fast += after.fast - before.fast;
  total.fastMissed += after.fastMissed - before.fastMissed;
  total.slow += after.slow - before.slow;
}

async function serverSettings(pool: pg.Pool): Promise<DurableAppendBenchResult['server']> {
  const { rows } = await pool.query<{ version: string; fsync: string; synchronous_commit: string; full_page_writes: string }>(
    `SELECT current_setting('server_version') AS version, current_setting('fsync') AS fsync,
       current_setting('synchronous_commit') AS synchronous_commit, current_setting('full_page_writes') AS full_page_writes`,
  );
  const row = rows[0]!;
  return { version: row.version, fsync: row.fsync, synchronousCommit: row.synchronous_commit, fullPageWrites: row.full_page_writes };
}

/**
 * Runs `fn` on a brand-new database: on DATABASE_URL's server when set (its durability settings are
 * reported as they are), otherwise on a throwaway cluster started with fsync, synchronous_commit and
 * full_page_writes on, stopped afterwards.
 */
export async function withDurablePostgresDatabase<T>(fn: (connectionString: string) => Promise<T>): Promise<T> {
  const cluster = process.env.DATABASE_URL ? null : await startThrowawayCluster({ durable: true });
  const adminUrl = process.env.DATABASE_URL ?? cluster!.adminUrl;
  try {
    return await fn(await createDatabaseOn(adminUrl, 'trainledger_append_bench'));
  } finally {
    cluster?.stop();
  }
}

// ---------------------------------------------------------------------------------------------
// The former entry point, kept for callers that hand in an open store (either engine): the same
// concurrent writers through the store and a raw INSERT on its database, without Emmett.

export type AppendBenchSizes = { singleAppends: number; batchAppends: number; batchSize: number };

export type AppendBenchResult = {
  single: { store: Timing; rawInsert: Timing; storeToRawRatio: number; vsRaw: number };
  batched: { store: Timing; rawInsert: Timing; storeToRawRatio: number; vsRaw: number };
};

export async function runAppendBench(store: PostgresEventStore, db: Kysely<any>, sizes: AppendBenchSizes, writers = 16): Promise<AppendBenchResult> {
  await sql`CREATE TABLE IF NOT EXISTS bench_raw_events (id bigserial PRIMARY KEY, stream_id text NOT NULL, event_id uuid NOT NULL, event_type text NOT NULL, data jsonb NOT NULL)`.execute(db);
  const tl = trainledgerContestant(store, writers);
  const rawInsert = async (streamId: string, batch: readonly NewEvent[]) => {
    const rows = batch.map((e) => sql`(${streamId}, ${e.eventId}::uuid, ${e.type}, ${JSON.stringify(e.data)}::jsonb)`);
    await sql`INSERT INTO bench_raw_events (stream_id, event_id, event_type, data) VALUES ${sql.join(rows)}`.execute(db);
  };
  const mode = async (key: string, appends: number, size: number) => {
    tl.prepare(`${key}-${randomBytes(3).toString('hex')}`);
    const storeTiming = await timeConcurrent(writers, appends, size, (w, i) => tl.append(w, i, newEvents(size, i * size)));
    const rawTiming = await timeConcurrent(writers, appends, size, (w, i) => rawInsert(`raw-${key}-w${w}`, newEvents(size, i * size)));
    const ratio = round(storeTiming.eventsPerSec / rawTiming.eventsPerSec, 3);
    return { store: storeTiming, rawInsert: rawTiming, storeToRawRatio: ratio, vsRaw: ratio };
  };
  return { single: await mode('single', sizes.singleAppends, 1), batched: await mode('batch', sizes.batchAppends, sizes.batchSize) };
}

// ---------------------------------------------------------------------------------------------

async function main(argv: readonly string[]): Promise<void> {
  const args = new Map(argv.map((a) => a.replace(/^--/, '').split('=') as [string, string]));
  const int = (name: string, fallback: number, max: number) => {
    const value = Number(args.get(name) ?? fallback);
    if (!Number.isInteger(value) || value < 1 || value > max) throw new Error(`--${name} must be an integer from 1 to ${max}`);
    return value;
  };
  const sizes: Required<DurableAppendBenchSizes> = {
    singleEvents: int('single', 10_000, 1_000_000),
    batches: int('batches', 100, 100_000),
    batchSize: int('batch-size', 100, 1_000),
    writers: int('writers', 16, 64),
    repeats: int('repeats', 3, 15),
  };
  const result = await withDurablePostgresDatabase((url) => runDurableAppendBench(url, sizes, (line) => process.stderr.write(`${line}\n`)));
  const command = `npx tsx test/bench/append-bench.ts --single=${sizes.singleEvents} --batches=${sizes.batches} --batch-size=${sizes.batchSize} --writers=${sizes.writers} --repeats=${sizes.repeats}`;
  process.stdout.write(`${JSON.stringify({ benchmark: 'event-store appends, concurrent writers, fsync on', command, ...result }, null, 2)}\n`);
}

if (process.argv[1] && import.meta.url === pathToFileURL(process.argv[1]).href) {
  main(process.argv.slice(2)).catch((error: unknown) => {
    console.error(error);
    process.exit(1);
  });
}
