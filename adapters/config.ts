// Configuration from flags and environment, validated once at start-up, with embedded defaults.

import { join, resolve } from 'node:path';
import type { DatabaseTarget } from './postgres/database.js';
import { parseEsdbUrl, type EsdbTarget } from './eventstoredb/esdb-url.js';

export type AppConfig = Readonly<{
  /** Holds PGlite's files (when embedded), the coordinator secret and the dev Lightning network. */
  dataDir: string;
  database: DatabaseTarget;
  /** ESDB_URL: the log on an EventStoreDB/KurrentDB cluster instead of the database (see adapters/eventstoredb). */
  eventStore: EsdbTarget | null;
  http: { host: string; port: number; bodyLimitBytes: number };
  /** Which parts this process runs; every one by default, one alone in a production split. */
  parts: ReadonlySet<SystemPart>;
  shutdownTimeoutMs: number;
}>;

export const SYSTEM_PARTS = ['api', 'projections', 'escrow', 'validator', 'replay'] as const;
export type SystemPart = (typeof SYSTEM_PARTS)[number];

export class ConfigError extends Error {
  override readonly name = 'ConfigError';
  readonly code = 'INVALID_CONFIG';
}

export const DEFAULT_CONFIG = Object.freeze({
  dataDir: './data',
  host: '127.0.0.1',
  port: 8080,
  bodyLimitBytes: 1024 * 1024,
  shutdownTimeoutMs: 10_000,
  /**
   * PGlite's buffer cache, in its WebAssembly heap. PostgreSQL's 128 MB default holds ~90 MB
   * more resident at idle than this; an embedded ledger's hot pages (stream heads, recent events,
   * checkpoints) fit here, and the OS page cache still holds the files. Raise it for a large log
   * read at random.
   */
  pgliteSharedBuffersMb: 32,
});

/** Bounds on the shutdown deadline: long enough to drain, short enough that a stuck stop still ends. */
export const SHUTDOWN_TIMEOUT_MS_RANGE = Object.freeze({ min: 100, max: 600_000 });
/** PGlite's heap is 32-bit WebAssembly, 2 GiB at most: the cache must leave room for everything else. */
export const PGLITE_SHARED_BUFFERS_MB_RANGE = Object.freeze({ min: 1, max: 1_024 });

/**
 * Flags win over environment variables, which win over defaults:
 * --data-dir / TRAINLEDGER_DATA_DIR, --port / TRAINLEDGER_PORT, --host / TRAINLEDGER_HOST,
 * --database-url / DATABASE_URL (PostgreSQL instead of the embedded PGlite),
 * --parts / TRAINLEDGER_PARTS (a comma-separated subset of api, projections, escrow, validator, replay),
 * --shutdown-timeout-ms / TRAINLEDGER_SHUTDOWN_TIMEOUT_MS (how long a stop may take before the process exits anyway),
 * --pglite-shared-buffers-mb / TRAINLEDGER_PGLITE_SHARED_BUFFERS_MB (the embedded PGlite's buffer cache),
 * --esdb-url / ESDB_URL (an esdb:// or kurrentdb:// connection string: the log on an EventStoreDB/KurrentDB cluster, TLS unless tls=false).
 */
export function loadConfig(argv: readonly string[], env: NodeJS.ProcessEnv): AppConfig {
  const flags = parseFlags(argv);
  const databaseUrl = flags['database-url'] ?? env.DATABASE_URL;
  const dataDir = resolve(flags['data-dir'] ?? env.TRAINLEDGER_DATA_DIR ?? DEFAULT_CONFIG.dataDir);
  const port = parsePort(flags.port ?? env.TRAINLEDGER_PORT ?? String(DEFAULT_CONFIG.port));
  const host = flags.host ?? env.TRAINLEDGER_HOST ?? DEFAULT_CONFIG.host;
  // PGlite gets a folder of its own: the data folder also holds the coordinator secret and the dev network.
  const sharedBuffersMb = parseIntegerIn('--pglite-shared-buffers-mb (TRAINLEDGER_PGLITE_SHARED_BUFFERS_MB)', flags['pglite-shared-buffers-mb'] ?? env.TRAINLEDGER_PGLITE_SHARED_BUFFERS_MB ?? String(DEFAULT_CONFIG.pgliteSharedBuffersMb), PGLITE_SHARED_BUFFERS_MB_RANGE);
  const database: DatabaseTarget = databaseUrl ? { engine: 'postgres', connectionString: databaseUrl } : { engine: 'pglite', dataDir: join(dataDir, 'pglite'), sharedBuffersMb };
  const parts = parseParts(flags.parts ?? env.TRAINLEDGER_PARTS ?? SYSTEM_PARTS.join(','));
  const shutdownTimeoutMs = parseIntegerIn('--shutdown-timeout-ms (TRAINLEDGER_SHUTDOWN_TIMEOUT_MS)', flags['shutdown-timeout-ms'] ?? env.TRAINLEDGER_SHUTDOWN_TIMEOUT_MS ?? String(DEFAULT_CONFIG.shutdownTimeoutMs), SHUTDOWN_TIMEOUT_MS_RANGE);
  const esdbUrl = flags['esdb-url'] ?? env.ESDB_URL;
  const eventStore = esdbUrl === undefined || esdbUrl === '' ? null : parseEsdbUrl(esdbUrl);
  return { dataDir, database, eventStore, http: { host, port, bodyLimitBytes: DEFAULT_CONFIG.bodyLimitBytes }, parts, shutdownTimeoutMs };
}

const KNOWN_FLAGS = new Set(['data-dir', 'port', 'host', 'database-url', 'parts', 'shutdown-timeout-ms', 'pglite-shared-buffers-mb', 'esdb-url']);

function parseParts(text: string): ReadonlySet<SystemPart> {
  const parts = text.split(',').map((p) => p.trim()).filter((p) => p !== '');
  const unknown = parts.filter((p) => !(SYSTEM_PARTS as readonly string[]).includes(p));
  if (parts.length === 0 || unknown.length > 0) throw new ConfigError(`--parts takes a comma-separated list of ${SYSTEM_PARTS.join(', ')}; got ${JSON.stringify(text)}`);
  return new Set(parts as SystemPart[]);
}

function parseFlags(argv: readonly string[]): Record<string, string> {
  const flags: Record<string, string> = {};
  for (let i = 0; i < argv.length; i += 1) {
    const arg = argv[i]!;
    const match = /^--([a-z-]+)(?:=(.*))?$/.exec(arg);
    if (!match || !KNOWN_FLAGS.has(match[1]!)) throw new ConfigError(`unknown argument ${arg}; known flags: ${[...KNOWN_FLAGS].map((f) => `--${f}`).join(', ')}`);
    const value = match[2] ?? argv[(i += 1)];
    if (value === undefined) throw new ConfigError(`flag --${match[1]} needs a value`);
    flags[match[1]!] = value;
  }
  return flags;
}

function parsePort(text: string): number {
  const port = Number(text);
  if (!Number.isInteger(port) || port < 0 || port > 65_535) throw new ConfigError(`port must be an integer from 0 to 65535, got ${JSON.stringify(text)}`);
  return port;
}

function parseIntegerIn(what: string, text: string, range: Readonly<{ min: number; max: number }>): number {
  const value = Number(text);
  if (!Number.isInteger(value) || value < range.min || value > range.max) throw new ConfigError(`${what} must be an integer from ${range.min} to ${range.max}, got ${JSON.stringify(text)}`);
  return value;
}
