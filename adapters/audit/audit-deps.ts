// Wires the audit core to this process's adapters: the log reader (SQL log, or the catalog on the split), the projectors, the store's hash chain, the node and the replayer.

import { chainHash, GENESIS_HASH } from '../event-store/hash-chain.js';
import { CatalogAuditLog } from './catalog-audit-log.js';
import { PostgresAuditLog } from '../postgres/postgres-audit-log.js';
import { PostgresEventStore } from '../postgres/postgres-event-store.js';
import type { LedgerStore } from '../event-store/ledger-store.js';
import type { EventStore } from '../../domain/ports/event-store.js';
import { ALL_PROJECTORS } from '../../projections/index.js';
import { isNodePaymentLedger, type AuditLog, type RecipeReplayer } from '../../replay/audit/ports.js';
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
 * The log as the audit reads it: on the SQL log, SQL keyset pages over its events and streams tables; on the split
 * composition (the log behind the plain port, EventStoreDB), the log catalog's streams in SQL, each read through the port.
 */
export function auditLogFor(store: LedgerStore, nowMs: () => number): AuditLog {
  if (store instanceof PostgresEventStore) return new PostgresAuditLog(store.db);
  return new CatalogAuditLog(store, store, { nowMs });
}

/** `node` is the coordinator's node when it can list its payments (dev network, LND); anything else skips the node part. */
export function auditOptions(store: LedgerStore, node: unknown, replayer: RecipeReplayer | undefined, nowMs: () => number, settings: AuditSettings = {}): AuditOptions {
  return {
    log: auditLogFor(store, nowMs),
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
