// The audit's discrepancy catalog: every stable code, the part that finds it, and what it means; plus the evidence a finding carries.

export type AuditPart = 'integrity' | 'rebuild' | 'settlement' | 'node' | 'ledger' | 'replay';
/** The parts a caller may pick (replay is asked for on its own: --replay, --replay-sample). */
export const AUDIT_PART_NAMES = ['integrity', 'rebuild', 'settlement', 'node', 'ledger'] as const;
export type AuditPartName = (typeof AUDIT_PART_NAMES)[number];

export const DISCREPANCY_CATALOG = Object.freeze({
  EVENT_HASH_MISMATCH: { part: 'integrity', meaning: "An event's stored hash does not match its content: the row was edited after it was written." },
  CHAIN_BROKEN_LINK: { part: 'integrity', meaning: "An event's prev_hash is not its predecessor's hash: an event was replaced or re-chained." },
  EVENT_REVISION_GAP: { part: 'integrity', meaning: 'A stream skips a revision (or does not start at 0): an event is missing.' },
  STREAM_HEAD_MISMATCH: { part: 'integrity', meaning: "The stream head's revision or hash is not the last event's: the tail was cut or the head edited." },
  GLOBAL_ORDER_VIOLATION: { part: 'integrity', meaning: "A stream's revisions do not follow the log's checkpoint order (transaction, global position)." },
  PROJECTION_MISMATCH: { part: 'rebuild', meaning: 'A live projection table differs from the one rebuilt from the log; the differing rows are named.' },
  PROJECTION_REBUILD_FAILED: { part: 'rebuild', meaning: 'Rebuilding a projection from the log stops on an event its projector refuses (a broken invariant): the log holds what the rules forbid.' },
  PROJECTION_LIVE_BROKEN: { part: 'rebuild', meaning: 'The live projection cannot apply an event the rebuild applied: its rows are corrupt.' },
  SETTLED_WITHOUT_ACCEPTED_VERDICT: { part: 'settlement', meaning: 'Money went out (escrow settled, compensation or bonus sent) that no accepted or overturned verdict owes.' },
  ACCEPTED_NEVER_SETTLED: { part: 'settlement', meaning: 'An accepted assignment was still not paid its base reward (or bonus) past its deadline plus the settlement grace.' },
  OVERTURNED_NEVER_COMPENSATED: { part: 'settlement', meaning: 'A rejection overturned on dispute was still not paid past the settlement grace.' },
  ASSIGNMENT_UNFOLDABLE: { part: 'settlement', meaning: "An assignment's or invoice's events do not fold through the domain's evolve: the log breaks a domain invariant." },
  ESCROW_HELD_NODE_VOIDED: { part: 'node', meaning: 'The log holds the escrow (HTLC locked) while the Lightning node says the payment failed: canceled or expired.' },
  NODE_DISAGREES_PAID: { part: 'node', meaning: 'The log says a payment reached the contributor, but the node does not report it succeeded.' },
  NODE_PAYMENT_WITHOUT_EVENT: { part: 'node', meaning: 'The Lightning node made a payment whose hash has no invoice stream in the log.' },
  LEDGER_IMBALANCE: { part: 'ledger', meaning: 'The trial balance is not zero: debits and credits differ (pending or posted).' },
  RUN_FUNDS_UNRECONCILED: { part: 'ledger', meaning: "A run's budget account does not equal its transfers: funding != paid + held + returned + fees." },
  REPLAY_NOT_REPRODUCED: { part: 'replay', meaning: "Re-running a replay verdict's recipe gives another outcome than the one logged." },
  REPLAY_UNAVAILABLE: { part: 'replay', meaning: "A replay verdict's recipe could not be re-run (blob missing, recipe invalid); the verdict is unchecked." },
} as const satisfies Record<string, { part: AuditPart; meaning: string }>);

export type DiscrepancyCode = keyof typeof DISCREPANCY_CATALOG;
export const DISCREPANCY_CODES = Object.freeze(Object.keys(DISCREPANCY_CATALOG) as DiscrepancyCode[]);

/** One event that shows a finding, named the way anyone can look it up in the log. */
export type EvidenceEvent = Readonly<{ streamId: string; revision: number; globalPosition: string; eventType: string }>;

export type Discrepancy = Readonly<{
  code: DiscrepancyCode;
  /** What the finding is about: a stream, an assignment, a table, a payment hash, a run. */
  subject: string;
  explanation: string;
  events: readonly EvidenceEvent[];
  /** Extra facts for the finding (differing rows, amounts), JSON-safe (msat as strings). */
  details?: Readonly<Record<string, unknown>>;
}>;

export function evidenceOf(event: Readonly<{ streamId: string; revision: number; type: string; position: { globalPosition: bigint } }>): EvidenceEvent {
  return { streamId: event.streamId, revision: event.revision, globalPosition: event.position.globalPosition.toString(), eventType: event.type };
}
