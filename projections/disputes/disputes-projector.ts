// The disputes projector: each rejection, then its dispute, replay verdict (with the full recipe) and resolution, one row per assignment.

import type { Kysely, Selectable } from 'kysely';
import type { DomainEvent } from '../../domain/events.js';
import { invariant } from '../../domain/errors.js';
import type { ProjectedEvent, Projector } from '../projector.js';
import { DISPUTES_MIGRATIONS } from './migrations/index.js';
import type { DisputesTables } from './schema.js';
import { insertRows, keyIn } from '../batch-sql.js';

type Row = Selectable<DisputesTables['rejections']>;
const TYPES = new Set(['SubmissionRejected', 'RejectionDisputed', 'ReplayVerdictRecorded', 'DisputeResolved']);
type DisputeEvent = Extract<DomainEvent, { type: 'SubmissionRejected' | 'RejectionDisputed' | 'ReplayVerdictRecorded' | 'DisputeResolved' }>;
const READ_CHUNK_KEYS = 5_000;
const WRITE_CHUNK_ROWS = 2_000;

export const disputesProjector: Projector = {
  name: 'disputes',
  migrations: DISPUTES_MIGRATIONS,
  tables: [{ name: 'rejections', orderBy: ['assignment_id'] }],
  async apply(db: Kysely<any>, events: readonly ProjectedEvent[]): Promise<void> {
    const disputes = db as Kysely<DisputesTables>;
    const relevant = events.map((e) => e.event).filter((e): e is DisputeEvent => TYPES.has(e.type));
    if (relevant.length === 0) return;
    const ids = [...new Set(relevant.map((e) => e.data.assignmentId))];
    const rows = new Map<string, Row>();
    for (let i = 0; i < ids.length; i += READ_CHUNK_KEYS) {
      const found = await disputes.selectFrom('rejections').selectAll().where(keyIn('assignment_id', ids.slice(i, i + READ_CHUNK_KEYS))).execute();
      for (const row of found) rows.set(row.assignment_id, row);
    }
    const changed = new Set<string>();
    for (const event of relevant) {
      applyEvent(rows, event);
      changed.add(event.data.assignmentId);
    }
    const out = [...changed].sort().map((id) => rows.get(id)!);
    for (let i = 0; i < out.length; i += WRITE_CHUNK_ROWS) {
      await insertRows(disputes, 'rejections', out.slice(i, i + WRITE_CHUNK_ROWS))
        .onConflict((oc) =>
          oc.column('assignment_id').doUpdateSet((eb) => ({
            dispute_id: eb.ref('excluded.dispute_id'),
            dispute_reason: eb.ref('excluded.dispute_reason'),
            disputed_at_ms: eb.ref('excluded.disputed_at_ms'),
            replay_job_id: eb.ref('excluded.replay_job_id'),
            replay_outcome: eb.ref('excluded.replay_outcome'),
            execution_provider: eb.ref('excluded.execution_provider'),
            device: eb.ref('excluded.device'),
            replay_duration_ms: eb.ref('excluded.replay_duration_ms'),
            recipe_json: eb.ref('excluded.recipe_json'),
            metric_json: eb.ref('excluded.metric_json'),
            tolerance_json: eb.ref('excluded.tolerance_json'),
            replayed_at_ms: eb.ref('excluded.replayed_at_ms'),
            resolution: eb.ref('excluded.resolution'),
            resolved_at_ms: eb.ref('excluded.resolved_at_ms'),
          })),
        )
        .execute();
    }
  },
};

function applyEvent(rows: Map<string, Row>, event: DisputeEvent): void {
  const d = event.data;
  if (event.type === 'SubmissionRejected') {
    invariant(!rows.has(d.assignmentId), `disputes: assignment ${d.assignmentId} rejected twice`);
    rows.set(d.assignmentId, emptyRow(event));
    return;
  }
  const row = rows.get(d.assignmentId);
  invariant(row !== undefined, `disputes: ${event.type} for assignment ${d.assignmentId}, which was never rejected`);
  switch (event.type) {
    case 'RejectionDisputed':
      invariant(row.dispute_id === null, `disputes: assignment ${d.assignmentId} disputed twice`);
      row.dispute_id = event.data.disputeId;
      row.dispute_reason = event.data.reason;
      row.disputed_at_ms = String(d.atMs);
      return;
    case 'ReplayVerdictRecorded':
      invariant(row.dispute_id !== null, `disputes: replay verdict for assignment ${d.assignmentId}, which is not disputed`);
      row.replay_job_id = event.data.replayJobId;
      row.replay_outcome = event.data.outcome;
      row.execution_provider = event.data.executionProvider;
      row.device = event.data.device;
      row.replay_duration_ms = String(event.data.durationMs);
      row.recipe_json = JSON.stringify(event.data.recipe);
      row.metric_json = JSON.stringify(event.data.metric);
      row.tolerance_json = JSON.stringify(event.data.tolerance);
      row.replayed_at_ms = String(d.atMs);
      return;
    case 'DisputeResolved':
      invariant(row.dispute_id === event.data.disputeId, `disputes: resolution of ${event.data.disputeId} for assignment ${d.assignmentId}, whose dispute is ${String(row.dispute_id)}`);
      invariant(row.resolution === null, `disputes: dispute ${event.data.disputeId} resolved twice`);
      row.resolution = event.data.resolution;
      row.resolved_at_ms = String(d.atMs);
      return;
    default: {
      const unhandled: never = event;
      throw new Error(`disputes: unhandled event ${String((unhandled as DomainEvent).type)}`);
    }
  }
}

function emptyRow(event: Extract<DisputeEvent, { type: 'SubmissionRejected' }>): Row {
  const d = event.data;
  return {
    assignment_id: d.assignmentId,
    run_id: d.runId,
    contributor_id: d.contributorId,
    reason_code: d.reasonCode,
    validator_id: d.validatorId,
    rejected_at_ms: String(d.atMs),
    dispute_id: null,
    dispute_reason: null,
    disputed_at_ms: null,
    replay_job_id: null,
    replay_outcome: null,
    execution_provider: null,
    device: null,
    replay_duration_ms: null,
    recipe_json: null,
    metric_json: null,
    tolerance_json: null,
    replayed_at_ms: null,
    resolution: null,
    resolved_at_ms: null,
  };
}
