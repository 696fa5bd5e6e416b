// Runs the whole audit (integrity, rebuild, settlement with the node, ledger, replays) over ports, streaming, and returns its report.

import { createHash } from 'node:crypto';
import type { ProjectionLog } from '../../projections/ports/projection-log.js';
import type { Projector } from '../../projections/projector.js';
import { DISCREPANCY_CATALOG, type AuditPart, type AuditPartName, type Discrepancy, type DiscrepancyCode } from './catalog.js';
import { DEFAULT_MAX_FINDINGS, Findings } from './findings.js';
import type { LogPosition } from '../../domain/ports/event-store.js';
import { HashPass, scanIntegrity } from './chain-scan.js';
import { checkIntegrity, type ChainHash } from './integrity.js';
import { checkLedger } from './ledger-check.js';
import { checkNodePayments, nodeDiscrepancies } from './node-check.js';
import type { AuditLog, NodePaymentLedger, RecipeReplayer, SettlementEvent } from './ports.js';
import { checkRebuild } from './rebuild-check.js';
import { deriveSettlement, settlementDiscrepancies } from './settlement.js';

export const AUDIT_LIMITS = Object.freeze({
  /** Events per page of the integrity walk. */
  pageSize: 2_000,
  /** Assignments whose events are loaded together. */
  assignmentsPerBatch: 200,
  /** Largest --replay-sample. */
  maxReplaySample: 10_000,
  /** Differing rows named per projection table. */
  maxRowDiffs: 20,
});

/** Default time an accepted or overturned payout may take past its deadline or verdict before it is reported. */
export const DEFAULT_SETTLEMENT_GRACE_MS = 24 * 60 * 60 * 1000;

export type ReplayChoice = Readonly<{ mode: 'none' } | { mode: 'all' } | { mode: 'sample'; count: number }>;

export type AuditOptions = Readonly<{
  log: AuditLog;
  projectionLog: ProjectionLog;
  projectors: readonly Projector[];
  chainHash: ChainHash;
  genesisHash: string;
  /** The coordinator's node; absent, the node part is skipped (and the report says so). */
  node?: NodePaymentLedger;
  replayer?: RecipeReplayer;
  replay?: ReplayChoice;
  nowMs: () => number;
  settlementGraceMs?: number;
  maxFindings?: number;
  maxRowDiffs?: number;
  /** Seeds the replay sample, so a sampled audit can be repeated. */
  sampleSeed?: string;
  onProgress?: (progress: AuditProgress) => void;
  /** The parts to run (default all but replay, which `replay` turns on); the node part also needs `node`. */
  parts?: readonly AuditPartName[];
  /** Asked after every page; true ends the audit with AuditStopped (a server shutting down). */
  shouldStop?: () => boolean;
}>;

/** The audit was asked to stop (shouldStop) before it finished. */
export class AuditStopped extends Error {
  override readonly name = 'AuditStopped';
  readonly code = 'AUDIT_STOPPED';
}

export type AuditProgress = Readonly<{ part: AuditPart; eventsDone: number; eventsTotal: number }>;

export type AuditReport = Readonly<{
  version: 1;
  /** The parts this audit ran; a part left out reports zeros and finds nothing. */
  partsRun: readonly AuditPart[];
  startedAtMs: number;
  finishedAtMs: number;
  clean: boolean;
  eventsInLog: number;
  parts: Readonly<{
    integrity: Readonly<{ streams: number; events: number }>;
    rebuild: Readonly<Record<string, { eventsApplied: number; identical: boolean; tables: number }>>;
    settlement: Readonly<{ assignments: number }>;
    node: Readonly<{ checked: boolean; payments: number }>;
    ledger: Readonly<{ runs: number }>;
    replay: Readonly<{ mode: ReplayChoice['mode']; verdicts: number; replayed: number }>;
  }>;
  /** Wall time of each part, so a slow audit says where its time went. */
  timingsMs: Readonly<Record<'integrity' | 'rebuild' | 'settlement' | 'node' | 'ledger' | 'replay', number>>;
  /** Every code with how often it was found (zeros included). */
  counts: Readonly<Record<DiscrepancyCode, number>>;
  total: number;
  /** The first maxFindings findings in full; `truncated` when more were counted. */
  discrepancies: readonly Discrepancy[];
  truncated: boolean;
}>;

export async function runAudit(options: AuditOptions): Promise<AuditReport> {
  const startedAtMs = options.nowMs();
  const findings = new Findings(options.maxFindings ?? DEFAULT_MAX_FINDINGS);
  const onFinding = (f: Discrepancy) => findings.add(f);
  const eventsInLog = await options.log.countEvents();
  const eventsTotal = eventsInLog * (2 + options.projectors.length);
  let eventsDone = 0;
  const progress = (part: AuditPart) => (n: number) => {
    if (options.shouldStop?.()) throw new AuditStopped('the audit was stopped before it finished');
    eventsDone += n;
    options.onProgress?.({ part, eventsDone, eventsTotal });
  };

  const timingsMs = { integrity: 0, rebuild: 0, settlement: 0, node: 0, ledger: 0, replay: 0 };
  const timed = async <T>(part: keyof typeof timingsMs, work: () => Promise<T>): Promise<T> => {
    const start = performance.now();
    try {
      return await work();
    } finally {
      timingsMs[part] += Math.round(performance.now() - start);
    }
  };
  const replayChoice = options.replay ?? { mode: 'none' };
  // The three log walks are independent and each bounded, so they run side by side (on PostgreSQL on
  // separate connections; PGlite's one connection interleaves them).
  // The ledger part reads the live tables the rebuild's cut-over last brought to the log, so it runs after.
  const wanted = new Set<AuditPart>(options.parts ?? ['integrity', 'rebuild', 'settlement', 'node', 'ledger']);
  if (!options.node) wanted.delete('node');
  if (replayChoice.mode !== 'none' && wanted.has('settlement')) wanted.add('replay');
  const skip = <T>(part: AuditPart, empty: T, work: () => Promise<T>): Promise<T> => (wanted.has(part) ? work() : Promise.resolve(empty));
  // Where the log's database checks the chains' structure, the integrity part hashes the pages the
  // rebuild reads anyway (one read of the log for both, not two) and the scan reads only what the rebuild did not.
  const scan = wanted.has('integrity') ? (options.log.chainScan ?? null) : null;
  const pass = scan ? new HashPass(options.chainHash) : null;
  const integrityProgress = progress('integrity');
  const sharedRead =
    scan && pass && wanted.has('rebuild')
      ? async (after: LogPosition, maxCount: number) => {
          const page = await scan.eventsInLogOrder(after, maxCount, true);
          pass.feed(page);
          integrityProgress(page.length);
          return page;
        }
      : undefined;
  const rebuildRun = skip('rebuild', {}, () => timed('rebuild', () => checkRebuild({ log: options.projectionLog, projectors: options.projectors, maxRowDiffs: options.maxRowDiffs ?? AUDIT_LIMITS.maxRowDiffs, onFinding, onEvents: progress('rebuild'), ...(sharedRead ? { read: sharedRead } : {}) })));
  const integrityChecks = () =>
    scan && pass
      ? scanIntegrity({ log: options.log, scan, pass, chainHash: options.chainHash, genesisHash: options.genesisHash, pageSize: AUDIT_LIMITS.pageSize, fedUntilDone: sharedRead ? rebuildRun : null, onFinding, onEvents: integrityProgress })
      : checkIntegrity({ log: options.log, chainHash: options.chainHash, genesisHash: options.genesisHash, pageSize: AUDIT_LIMITS.pageSize, onFinding, onEvents: integrityProgress });
  const [integrity, rebuild, settlement] = await Promise.all([
    skip('integrity', { streams: 0, events: 0 }, () => timed('integrity', integrityChecks)),
    rebuildRun,
    // Settlement time includes the node calls per assignment and, with --replay, every re-run step.
    skip('settlement', { assignments: 0, verdicts: 0, replayed: 0, sampled: [] }, () => timed('settlement', () => checkSettlements(options, wanted.has('node'), replayChoice, onFinding, progress('settlement')))),
  ]);
  const node = options.node && wanted.has('node') ? { checked: true, ...(await timed('node', () => checkNodePayments(options.node!, options.log, AUDIT_LIMITS.pageSize, onFinding))) } : { checked: false, payments: 0 };
  const ledger = await skip('ledger', { runs: 0 }, () => timed('ledger', () => checkLedger(options.log, AUDIT_LIMITS.pageSize, onFinding)));
  const replay = await timed('replay', () => replaySample(options, replayChoice, settlement.sampled, onFinding));

  return {
    version: 1,
    partsRun: PART_ORDER.filter((p) => wanted.has(p)),
    startedAtMs,
    finishedAtMs: options.nowMs(),
    clean: findings.total === 0,
    eventsInLog,
    parts: { integrity, rebuild, settlement: { assignments: settlement.assignments }, node, ledger, replay: { mode: replayChoice.mode, verdicts: settlement.verdicts, replayed: settlement.replayed + replay } },
    timingsMs,
    counts: findings.counts,
    total: findings.total,
    // Parts ran side by side: order the findings kept by part and subject, so equal audits print alike.
    discrepancies: [...findings.kept].sort(byPartThenSubject),
    truncated: findings.total > findings.kept.length,
  };
}

type SettlementWalk = { assignments: number; verdicts: number; replayed: number; sampled: string[] };

/** One batch of assignments (with their invoice streams) in memory at a time, in assignment-id order. */
async function checkSettlements(options: AuditOptions, askNode: boolean, replay: ReplayChoice, onFinding: (f: Discrepancy) => void, onEvents: (n: number) => void): Promise<SettlementWalk> {
  const walk: SettlementWalk = { assignments: 0, verdicts: 0, replayed: 0, sampled: [] };
  const rules = { nowMs: options.nowMs(), settlementGraceMs: options.settlementGraceMs ?? DEFAULT_SETTLEMENT_GRACE_MS };
  const sample = replay.mode === 'sample' ? new Reservoir(replay.count, options.sampleSeed ?? 'audit') : null;
  for (let after = ''; ; ) {
    const ids = await options.log.assignmentIds(after, AUDIT_LIMITS.assignmentsPerBatch);
    if (ids.length === 0) break;
    const events = await options.log.assignmentEvents(ids);
    onEvents(events.length);
    const byAssignment = groupByAssignment(events);
    for (const assignmentId of ids) {
      const d = deriveSettlement(assignmentId, byAssignment.get(assignmentId) ?? [], rules.nowMs);
      walk.assignments += 1;
      for (const f of settlementDiscrepancies(d, rules)) onFinding(f);
      if (askNode && options.node && d.unfoldable === null) for (const f of await nodeDiscrepancies(options.node, d)) onFinding(f);
      if (d.assignment.verdict === null || d.unfoldable !== null) continue;
      walk.verdicts += 1;
      if (replay.mode === 'all') {
        walk.replayed += 1;
        const f = await replayFinding(options, d.assignmentId, d.assignment, byAssignment.get(assignmentId) ?? []);
        if (f) onFinding(f);
      } else sample?.offer(assignmentId);
    }
    if (ids.length < AUDIT_LIMITS.assignmentsPerBatch) break;
    after = ids[ids.length - 1]!;
  }
  walk.sampled = sample?.items() ?? [];
  return walk;
}

function groupByAssignment(events: readonly SettlementEvent[]): Map<string, SettlementEvent[]> {
  const groups = new Map<string, SettlementEvent[]>();
  for (const event of events) {
    const id = typeof event.data.assignmentId === 'string' ? event.data.assignmentId : null;
    if (id === null) continue;
    const list = groups.get(id) ?? [];
    list.push(event);
    groups.set(id, list);
  }
  return groups;
}

async function replaySample(options: AuditOptions, replay: ReplayChoice, sampled: readonly string[], onFinding: (f: Discrepancy) => void): Promise<number> {
  if (replay.mode !== 'sample') return 0;
  let replayed = 0;
  for (const assignmentId of sampled) {
    const events = await options.log.assignmentEvents([assignmentId]);
    const d = deriveSettlement(assignmentId, events, options.nowMs());
    replayed += 1;
    const f = await replayFinding(options, assignmentId, d.assignment, events);
    if (f) onFinding(f);
  }
  return replayed;
}

async function replayFinding(options: AuditOptions, assignmentId: string, assignment: ReturnType<typeof deriveSettlement>['assignment'], events: readonly SettlementEvent[]): Promise<Discrepancy | null> {
  const verdictEvent = events.find((e) => e.type === 'ReplayVerdictRecorded' && e.streamId.startsWith('assignment-'));
  const evidence = verdictEvent ? [{ streamId: verdictEvent.streamId, revision: verdictEvent.revision, globalPosition: verdictEvent.position.globalPosition.toString(), eventType: verdictEvent.type }] : [];
  if (!options.replayer) return { code: 'REPLAY_UNAVAILABLE', subject: assignmentId, explanation: 'no replay engine was given to this audit', events: evidence };
  const logged = assignment.verdict!.outcome;
  const result = await options.replayer.replay(assignment);
  if (result.outcome === 'unavailable') return { code: 'REPLAY_UNAVAILABLE', subject: assignmentId, explanation: `the recipe of assignment ${assignmentId}'s replay verdict could not be re-run: ${result.reason}`, events: evidence };
  if (result.outcome === logged) return null;
  return { code: 'REPLAY_NOT_REPRODUCED', subject: assignmentId, explanation: `assignment ${assignmentId}: the log records a '${logged}' replay verdict, re-running its recipe gives '${result.outcome}'`, events: evidence, details: { logged, replayed: result.outcome } };
}

const PART_ORDER: readonly AuditPart[] = ['integrity', 'rebuild', 'settlement', 'node', 'ledger', 'replay'];

function byPartThenSubject(a: Discrepancy, b: Discrepancy): number {
  const part = PART_ORDER.indexOf(DISCREPANCY_CATALOG[a.code].part) - PART_ORDER.indexOf(DISCREPANCY_CATALOG[b.code].part);
  if (part !== 0) return part;
  return a.subject < b.subject ? -1 : a.subject > b.subject ? 1 : a.code < b.code ? -1 : a.code > b.code ? 1 : 0;
}

/** A fixed-size uniform sample of a stream (reservoir sampling), with a seeded, repeatable choice. */
class Reservoir {
  private readonly kept: string[] = [];
  private seen = 0;
  constructor(private readonly size: number, private readonly seed: string) {}
  offer(item: string): void {
    this.seen += 1;
    if (this.kept.length < this.size) {
      this.kept.push(item);
      return;
    }
    const slot = Number(BigInt(`0x${createHash('sha256').update(`${this.seed}:${this.seen}:${item}`).digest('hex').slice(0, 12)}`) % BigInt(this.seen));
    if (slot < this.size) this.kept[slot] = item;
  }
  items(): string[] {
    return [...this.kept];
  }
}

/** The codes the report table lists, in catalog order, with their part. */
export function catalogRows(): { code: DiscrepancyCode; part: AuditPart; meaning: string }[] {
  return (Object.entries(DISCREPANCY_CATALOG) as [DiscrepancyCode, { part: AuditPart; meaning: string }][]).map(([code, v]) => ({ code, ...v }));
}
