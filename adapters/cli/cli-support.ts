// What the audit-side commands share: flags with switches, stable exit codes, and opening a live store (refusing a PGlite folder a server holds).

import { existsSync } from 'node:fs';
import { join, resolve } from 'node:path';
import { FileBlobStore } from '../blobs/file-blob-store.js';
import { openEventStore, openSplitStore } from '../event-store/open-event-store.js';
import type { LedgerStore } from '../event-store/ledger-store.js';
import { esdbTargetFrom } from '../eventstoredb/select-esdb.js';
import type { DatabaseTarget } from '../postgres/database.js';
import { LOG_START, type LogPosition, type RecordedEvent } from '../../domain/ports/event-store.js';
import { UsageError } from './trainledger.js';

/** Exit statuses of replay, rebuild, export --bundle and audit-bundle; documented in each command's --help. */
export const EXIT = Object.freeze({ ok: 0, failed: 1, usage: 2, verificationFailed: 3, notFound: 4, storeBusy: 5 });

/** A failure with a stable code, printed as "trainledger: CODE: message", exiting with its status. */
export class CliFailure extends Error {
  override readonly name = 'CliFailure';
  constructor(
    readonly code: string,
    message: string,
    readonly exitCode: number = EXIT.failed,
  ) {
    super(`${code}: ${message}`);
  }
}

export type ParsedArgs = Readonly<{ flags: Map<string, string>; positionals: string[] }>;

/** --name value, --name=value, and switches (no value); anything else unknown is a usage error naming it. */
export function parseArgs(command: string, argv: readonly string[], spec: { values: readonly string[]; switches?: readonly string[]; positionals?: number }, usage: string): ParsedArgs {
  const flags = new Map<string, string>();
  const positionals: string[] = [];
  const switches = spec.switches ?? [];
  for (let i = 0; i < argv.length; i += 1) {
    const arg = argv[i]!;
    if (!arg.startsWith('-') && positionals.length < (spec.positionals ?? 0)) {
      positionals.push(arg);
      continue;
    }
    const match = /^--([a-z-]+)(?:=(.*))?$/.exec(arg);
    const name = match?.[1];
    if (!match || name === undefined || (!spec.values.includes(name) && !switches.includes(name))) throw new UsageError(`unknown argument ${JSON.stringify(arg)} for ${command}`, usage);
    if (switches.includes(name)) {
      if (match[2] !== undefined) throw new UsageError(`--${name} is a switch and takes no value`, usage);
      flags.set(name, 'true');
      continue;
    }
    const value = match[2] ?? argv[(i += 1)];
    if (value === undefined) throw new UsageError(`--${name} needs a value`, usage);
    flags.set(name, value);
  }
  return { flags, positionals };
}

export type LiveStore = Readonly<{ store: LedgerStore; blobDir: string | null; describe: string; close: () => Promise<void> }>;

/**
 * PGlite is one process: a second one opening the folder a server holds would corrupt it. A PGlite that is
 * open keeps postmaster.pid in its folder and removes it on close, so its presence means a server is running
 * (or one died without closing: start and stop the server once to clear it).
 */
export function refuseBusyPglite(pgliteDir: string): void {
  if (!existsSync(join(pgliteDir, 'PG_VERSION'))) throw new CliFailure('DATA_DIR_NOT_FOUND', `${pgliteDir} holds no PGlite database: pass the server's --data-dir, or --database-url`, EXIT.notFound);
  if (existsSync(join(pgliteDir, 'postmaster.pid'))) {
    throw new CliFailure(
      'DATA_DIR_IN_USE',
      `${pgliteDir} is held by a running server (PGlite is single-process; its postmaster.pid is there). Stop the server first` +
        ' (or, for export, read it over HTTP with --url). If no server runs, one stopped without closing: start and stop it once.',
      EXIT.storeBusy,
    );
  }
}

/** --database-url (or DATABASE_URL) for PostgreSQL, else the PGlite folder under --data-dir (or TRAINLEDGER_DATA_DIR, else ./data). */
export async function openLiveStore(flags: Map<string, string>, env: NodeJS.ProcessEnv): Promise<LiveStore> {
  const url = flags.get('database-url') ?? env.DATABASE_URL;
  const dataDirFlag = flags.get('data-dir') ?? env.TRAINLEDGER_DATA_DIR;
  const dataDir = resolve(dataDirFlag ?? './data');
  const blobDir = flags.has('blobs') ? resolve(flags.get('blobs')!) : url && !dataDirFlag ? null : join(dataDir, 'blobs');
  const pgliteDir = join(dataDir, 'pglite');
  if (!url) refuseBusyPglite(pgliteDir);
  const target: DatabaseTarget = url ? { engine: 'postgres', connectionString: url } : { engine: 'pglite', dataDir: pgliteDir };
  const sqlDescribe = url ? 'PostgreSQL' : `PGlite in ${pgliteDir}`;
  // ESDB_URL: the log on the cluster, the read models (a rebuild's target) in the database, as `trainledger start` runs.
  const esdb = esdbTargetFrom(env);
  if (esdb) {
    const { openEsdbEventStore } = await import('../eventstoredb/open-esdb.js');
    const { store } = await openSplitStore((await openEsdbEventStore(esdb, { liveWakeups: false })).store, target);
    return { store, blobDir, describe: `EventStoreDB at ${esdb.display}, read models in ${sqlDescribe}`, close: () => store.close() };
  }
  const { store } = await openEventStore(target);
  return { store, blobDir, describe: sqlDescribe, close: () => store.close() };
}

export function blobStoreAt(dir: string | null): FileBlobStore | null {
  return dir === null ? null : new FileBlobStore(dir);
}

/** Log pages read per query when a command walks the whole log. */
const LOG_PAGE_SIZE = 1_000;

export async function* wholeLog(store: { readAll: LedgerStore['readAll'] }): AsyncGenerator<RecordedEvent> {
  let after: LogPosition = LOG_START;
  for (;;) {
    const page = await store.readAll({ after, maxCount: LOG_PAGE_SIZE });
    yield* page;
    if (page.length < LOG_PAGE_SIZE) return;
    after = page[page.length - 1]!.position;
  }
}

/** A whole stream, read in pages. */
export async function readWholeStream(store: { readStream: LedgerStore['readStream'] }, streamId: string): Promise<RecordedEvent[]> {
  const events: RecordedEvent[] = [];
  for (let from = 0; ; from += LOG_PAGE_SIZE) {
    const page = await store.readStream(streamId, { fromRevision: from, maxCount: LOG_PAGE_SIZE });
    events.push(...page);
    if (page.length < LOG_PAGE_SIZE) return events;
  }
}

/** JSON with bigints as decimal strings and non-finite numbers as null. */
export function toJson(value: unknown): string {
  return JSON.stringify(value, (_k, v: unknown) => (typeof v === 'bigint' ? v.toString() : typeof v === 'number' && !Number.isFinite(v) ? null : v), 2);
}
