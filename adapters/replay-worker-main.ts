// `npm run replay-worker`: replay workers (and optionally the validator) alone, against PostgreSQL (the log there or on EventStoreDB), on the best execution provider here.

import { mkdirSync } from 'node:fs';
import { join, resolve } from 'node:path';
import { pathToFileURL } from 'node:url';
import { FileBlobStore } from './blobs/file-blob-store.js';
import { ConfigError } from './config.js';
import { openEventStore, openSplitStore } from './event-store/open-event-store.js';
import { openEsdbEventStore } from './eventstoredb/open-esdb.js';
import { EventStoreError } from '../domain/ports/event-store-errors.js';
import { esdbTargetFrom } from './eventstoredb/select-esdb.js';
import type { DatabaseTarget } from './postgres/database.js';
import { DEFAULT_REPLAY_LEASE_MS, VerificationService } from './replay/verification-service.js';
import { EXECUTION_PROVIDERS, type ProviderRequest } from '../replay/step/execution-providers.js';
import { REFERENCE_SETTINGS, MAX_INTRA_OP_THREADS } from '../replay/recipe.js';

const FLAGS = ['database-url', 'data-dir', 'provider', 'threads', 'workers', 'lease-ms', 'validator'] as const;
/** Workers per process: each holds its own sessions; more belong in more processes. */
const MAX_WORKERS = 16;

type WorkerConfig = Readonly<{ database: DatabaseTarget; blobDir: string; provider: ProviderRequest; threads: number; workers: number; leaseMs: number; validator: boolean }>;

export function loadWorkerConfig(argv: readonly string[], env: NodeJS.ProcessEnv): WorkerConfig {
  const flags = new Map<string, string>();
  for (let i = 0; i < argv.length; i += 1) {
    const arg = argv[i]!;
    const match = /^--([a-z-]+)(?:=(.*))?$/.exec(arg);
    if (!match || !(FLAGS as readonly string[]).includes(match[1]!)) throw new ConfigError(`unknown argument ${JSON.stringify(arg)}; flags: ${FLAGS.map((f) => `--${f}`).join(' ')}`);
    // --validator is a switch; every other flag takes a value, as --flag=value or --flag value.
    const value = match[2] ?? (match[1] === 'validator' ? 'true' : argv[(i += 1)]);
    if (value === undefined) throw new ConfigError(`--${match[1]} needs a value`);
    flags.set(match[1]!, value);
  }
  const dataDir = resolve(flags.get('data-dir') ?? env.TRAINLEDGER_DATA_DIR ?? './data');
  const url = flags.get('database-url') ?? env.DATABASE_URL;
  const provider = (flags.get('provider') ?? env.TRAINLEDGER_REPLAY_PROVIDER ?? 'auto') as ProviderRequest;
  if (provider !== 'auto' && !EXECUTION_PROVIDERS.includes(provider)) throw new ConfigError(`--provider must be auto, ${EXECUTION_PROVIDERS.join(', ')}; got ${provider}`);
  return {
    database: url ? { engine: 'postgres', connectionString: url } : { engine: 'pglite', dataDir: join(dataDir, 'pglite') },
    blobDir: join(dataDir, 'blobs'),
    provider,
    threads: intFlag(flags, 'threads', REFERENCE_SETTINGS.intraOpNumThreads, 1, MAX_INTRA_OP_THREADS),
    workers: intFlag(flags, 'workers', 1, 1, MAX_WORKERS),
    leaseMs: intFlag(flags, 'lease-ms', DEFAULT_REPLAY_LEASE_MS, 1_000, 3_600_000),
    validator: flags.get('validator') === 'true',
  };
}

function intFlag(flags: Map<string, string>, name: string, fallback: number, min: number, max: number): number {
  const raw = flags.get(name);
  if (raw === undefined) return fallback;
  const value = Number(raw);
  if (!Number.isInteger(value) || value < min || value > max) throw new ConfigError(`--${name} must be an integer from ${min} to ${max}, got ${JSON.stringify(raw)}`);
  return value;
}

/** `trainledger replay-worker` and `npm run replay-worker`: runs until SIGINT or SIGTERM. */
export async function replayWorkerCommand(argv: readonly string[], env: NodeJS.ProcessEnv): Promise<void> {
  const config = loadWorkerConfig(argv, env);
  // With ESDB_URL the log is the cluster's (probed first: EVENT_STORE_UNREACHABLE when none answers) and the replay
  // jobs and checkpoints stay in the database, as on the server: the split composition (adapters/event-store/split-log.ts).
  const esdb = esdbTargetFrom(env);
  mkdirSync(config.blobDir, { recursive: true });
  const { store, db } = esdb ? await openSplitStore((await openEsdbEventStore(esdb)).store, config.database) : await openEventStore(config.database);
  const log = (line: string) => console.error(line);
  const service = new VerificationService({
    store, db, blobs: new FileBlobStore(config.blobDir), log, nowMs: Date.now, leaseMs: config.leaseMs, workerIdPrefix: env.HOSTNAME ?? 'worker', engine: config.database.engine,
    settings: { provider: config.provider, graphOptimizationLevel: REFERENCE_SETTINGS.graphOptimizationLevel, intraOpNumThreads: config.threads },
    parts: { validator: config.validator, replayWorkers: config.workers },
  });
  await service.start();
  log(`trainledger replay-worker: ${config.workers} worker(s), provider ${config.provider}, ${config.threads} thread(s), lease ${config.leaseMs} ms, validator ${config.validator ? 'on' : 'off'}`);
  const shutdown = async (signal: string) => {
    log(`${signal} received: stopping workers (a claimed job's lease lets another worker finish it)`);
    await service.stop();
    await store.close();
    process.exit(0);
  };
  process.once('SIGINT', () => void shutdown('SIGINT'));
  process.once('SIGTERM', () => void shutdown('SIGTERM'));
}

export function failWorker(error: unknown): never {
  const code = error instanceof ConfigError ? 'INVALID_CONFIG' : error instanceof EventStoreError ? error.code : 'START_FAILED';
  console.error(`trainledger replay-worker: ${code}: ${error instanceof Error ? error.message : String(error)}`);
  process.exit(2);
}

if (process.argv[1] && import.meta.url === pathToFileURL(process.argv[1]).href) replayWorkerCommand(process.argv.slice(2), process.env).catch(failWorker);
