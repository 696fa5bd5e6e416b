// Wires the audit core to this process's adapters: the PostgreSQL/PGlite log, the projectors, the store's hash chain, the node and the replayer.

import { chainHash, GENESIS_HASH } from '../event-store/hash-chain.js';
import { PostgresAuditLog } from '../postgres/postgres-audit-log.js';
import { PostgresEventStore } from '../postgres/postgres-event-store.js';
import type { LedgerStore } from '../event-store/ledger-store.js';
import type { EventStore } from '../../domain/ports/event-store.js';
import { EventStoreError } from '../../domain/ports/event-store-errors.js';
import { ALL_PROJECTORS } from '../../projections/index.js';
import { isNodePaymentLedger, type RecipeReplayer } from '../../replay/audit/ports.js';
import type { AuditOptions, ReplayChoice } from '../../replay/audit/run-audit.js';
import type { BlobStore } from '../../replay/ports/blob-store.js';

export type AuditSettings = Readonly<{
  replay?: ReplayChoice;
  parts?: AuditOptions['parts'];
  settlementGraceMs?: number;
  maxFindings?: number;
  onProgress?: AuditOptions['onProgress'];
  shouldStop?: AuditOptions['shouldStop'];
}>;

/**
 * The audit reads the log in (stream, revision) order with SQL keyset pages and aggregates over the ledger
 * tables (the AuditLog port, replay/audit/ports.ts), which only the SQL log offers today. On the split
 * composition (the log on EventStoreDB) it is refused with this code rather than run on half a log.
 */
export class AuditUnsupportedError extends EventStoreError {
  override readonly name = 'AuditUnsupportedError';
  constructor() {
    super(
      'AUDIT_UNSUPPORTED_ON_SPLIT_LOG',
      'the audit reads the log in stream order through SQL (the AuditLog port), and this server runs with its log on EventStoreDB (ESDB_URL): ' +
        'the audit cannot run on that composition yet. Check the cluster with the event-store contract suite (ESDB_URL=... npx vitest run test/contract/event-store.esdb.int.spec.ts).',
    );
  }
}

/** Whether the audit can run on this store: the SQL log, not the split composition. */
export function canAudit(store: LedgerStore): store is PostgresEventStore {
  return store instanceof PostgresEventStore;
}

/** `node` is the coordinator's node when it can list its payments (dev network, LND); anything else skips the node part. */
export function auditOptions(store: LedgerStore, node: unknown, replayer: RecipeReplayer | undefined, nowMs: () => number, settings: AuditSettings = {}): AuditOptions {
  if (!canAudit(store)) throw new AuditUnsupportedError();
  return {
    log: new PostgresAuditLog(store.db),
    projectionLog: store,
    projectors: ALL_PROJECTORS,
    chainHash: (prevHash, event) => chainHash(prevHash, event),
    genesisHash: GENESIS_HASH,
    ...(isNodePaymentLedger(node) ? { node } : {}),
    ...(replayer ? { replayer } : {}),
    nowMs,
    ...settings,
  };
}

/** The replay engine as the audit uses it: one CPU step runner, the blobs in `blobDir`, the shipped calibration. Close it after the audit. */
export async function openStepReplayer(store: EventStore, blobs: string | BlobStore): Promise<RecipeReplayer & { close: () => Promise<void> }> {
  // Loaded only here: onnxruntime is needed only when replays are asked for.
  const [{ StepRunner }, { StepRecipeReplayer }, { EventStoreCommandBus }, { FileBlobStore }, { loadCalibration }, { REFERENCE_SETTINGS }] = await Promise.all([
    import('../../replay/step/step-runner.js'),
    import('../../replay/audit/recipe-replayer.js'),
    import('../commands/command-bus.js'),
    import('../blobs/file-blob-store.js'),
    import('../../replay/compare/calibration.js'),
    import('../../replay/recipe.js'),
  ]);
  const runner = new StepRunner({ provider: 'cpu', graphOptimizationLevel: REFERENCE_SETTINGS.graphOptimizationLevel, intraOpNumThreads: REFERENCE_SETTINGS.intraOpNumThreads });
  const commands = new EventStoreCommandBus(store, { newEventId: () => crypto.randomUUID() });
  const replayer = new StepRecipeReplayer({ store, commands, blobs: typeof blobs === 'string' ? new FileBlobStore(blobs) : blobs, runner, calibration: loadCalibration() });
  return { replay: (assignment) => replayer.replay(assignment), close: () => runner.close() };
}
