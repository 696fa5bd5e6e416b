// Jepsen's set checker over idempotency keys: what clients were told (ok, failed, unknown) against what the log holds (lost, unexpected, duplicated, recovered).

/** ok: a 2xx; fail: a 4xx (nothing happened, the server said so); unknown: a reset, a timeout, a refused connection mid-retry, a 5xx. */
export type Outcome = 'ok' | 'fail' | 'unknown';

/** One command a client sent, under one idempotency key, however many times it was sent. */
export type SetOperation = Readonly<{
  /** The key the server writes into the metadata of every event the command appends (see commandKey in adapters/http/api-context.ts). */
  key: string;
  /** Every attempt's outcome, in order: a client retries an unknown outcome with the same key. */
  outcomes: readonly Outcome[];
  /** How many events the 2xx answer listed (0 for a no-op); null when no attempt got a 2xx. */
  acknowledgedEvents: number | null;
}>;

/** An event of the log as the checker needs it: the command key in its metadata, where it lies. */
export type LoggedEvent = Readonly<{ key: string | null; streamId: string; revision: number; type: string }>;

export type SetReport = {
  attempted: number;
  acknowledged: number;
  failed: number;
  /** Still unknown when the run ended: no attempt was ever answered. */
  indeterminate: number;
  /** Acknowledged with events that the log does not hold (or holds fewer of). Must be 0. */
  lost: number;
  /** Logged under a key no client ever sent. Must be 0. */
  unexpected: number;
  /** A key whose events were appended more than once. Must be 0. */
  duplicated: number;
  /** Answered with a 4xx (and never a 2xx), yet logged. Must be 0. */
  failedButStored: number;
  /** Had an unknown outcome, and the log holds its effect. */
  recovered: number;
  /** Had an unknown outcome, and the log holds nothing for it: it never happened. */
  unknownNotStored: number;
  /** The keys behind each non-zero must-be-0 count, a few of each, for the failure message. */
  examples: Record<string, string[]>;
};

const MAX_EXAMPLES = 5;

/**
 * Checks every operation against the log. Events whose metadata has no key (the escrow engine's, the
 * validator's, the projections' reactions) are not client commands and are left out; events with a
 * key that is not http: are the server's own commands and are left out too.
 */
export function checkSet(operations: readonly SetOperation[], events: readonly LoggedEvent[], operationKeyOf: (eventKey: string) => string | null = httpOperationKey): SetReport {
  const byKey = new Map<string, LoggedEvent[]>();
  /** One request may run several commands at once (an atomic multi-stream append), each under its own key. */
  const byCommandKey = new Map<string, LoggedEvent[]>();
  for (const e of events) {
    const key = e.key === null ? null : operationKeyOf(e.key);
    if (key === null) continue;
    byKey.set(key, [...(byKey.get(key) ?? []), e]);
    byCommandKey.set(e.key!, [...(byCommandKey.get(e.key!) ?? []), e]);
  }
  const commandKeysOf = new Map<string, string[]>();
  for (const commandKey of byCommandKey.keys()) {
    const key = operationKeyOf(commandKey)!;
    commandKeysOf.set(key, [...(commandKeysOf.get(key) ?? []), commandKey]);
  }
  const report: SetReport = { attempted: 0, acknowledged: 0, failed: 0, indeterminate: 0, lost: 0, unexpected: 0, duplicated: 0, failedButStored: 0, recovered: 0, unknownNotStored: 0, examples: {} };
  const example = (what: keyof SetReport, key: string) => {
    const list = (report.examples[what] ??= []);
    if (list.length < MAX_EXAMPLES) list.push(key);
  };
  const attemptedKeys = new Set<string>();
  for (const op of operations) {
    attemptedKeys.add(op.key);
    report.attempted += 1;
    const logged = byKey.get(op.key) ?? [];
    const ok = op.outcomes.includes('ok');
    const sawUnknown = op.outcomes.includes('unknown');
    if (ok) report.acknowledged += 1;
    else if (op.outcomes.includes('fail')) report.failed += 1;
    else report.indeterminate += 1;

    if (ok && op.acknowledgedEvents !== null && logged.length < op.acknowledgedEvents) {
      report.lost += 1;
      example('lost', op.key);
    }
    if (!ok && op.outcomes.includes('fail') && logged.length > 0) {
      report.failedButStored += 1;
      example('failedButStored', op.key);
    }
    const parts = commandKeysOf.get(op.key) ?? [];
    const soleAnswer = ok && parts.length === 1 ? op.acknowledgedEvents : null;
    if (parts.some((k) => isDuplicated(byCommandKey.get(k)!, soleAnswer))) {
      report.duplicated += 1;
      example('duplicated', op.key);
    }
    if (sawUnknown && logged.length > 0) report.recovered += 1;
    if (sawUnknown && logged.length === 0) report.unknownNotStored += 1;
  }
  for (const key of byKey.keys()) {
    if (attemptedKeys.has(key)) continue;
    report.unexpected += 1;
    example('unexpected', key);
  }
  return report;
}

/** The server's command keys are http:<hash of caller and Idempotency-Key>:<command type>; the operation is the part before the type. */
export function httpOperationKey(eventKey: string): string | null {
  const match = /^(http:[0-9a-f]{64}):[A-Za-z]+$/.exec(eventKey);
  return match ? match[1]! : null;
}

/**
 * One command appends once, to one stream, in consecutive revisions: its events in more than one
 * stream, a gap between them, more of them than its answer listed, or its first event's type again
 * later in the same key, is the command applied twice.
 */
function isDuplicated(logged: readonly LoggedEvent[], acknowledgedEvents: number | null): boolean {
  if (logged.length === 0) return false;
  if (new Set(logged.map((e) => e.streamId)).size > 1) return true;
  const revisions = logged.map((e) => e.revision).sort((a, b) => a - b);
  if (revisions.some((r, i) => i > 0 && r !== revisions[i - 1]! + 1)) return true;
  if (acknowledgedEvents !== null && acknowledgedEvents > 0 && logged.length > acknowledgedEvents) return true;
  const ordered = [...logged].sort((a, b) => a.revision - b.revision);
  return ordered.slice(1).some((e) => e.type === ordered[0]!.type);
}

/** Each stream's revisions from 0 with no gap and no repeat, in the order the log holds them. */
export function revisionGaps(events: readonly LoggedEvent[]): string[] {
  const next = new Map<string, number>();
  const problems: string[] = [];
  for (const e of events) {
    const expected = next.get(e.streamId) ?? 0;
    if (e.revision !== expected) problems.push(`${e.streamId}: expected revision ${expected}, found ${e.revision}`);
    next.set(e.streamId, e.revision + 1);
  }
  return problems;
}
