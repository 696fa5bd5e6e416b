// Disputes projection against a plain fold of a generated history, appended in chunks, on PGlite and PostgreSQL; and rebuild identity.

import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import type { LedgerStore } from '../../adapters/event-store/ledger-store.js';
import { disputesProjector } from '../../projections/disputes/disputes-projector.js';
import { disputeOf, recentDisputes } from '../../projections/disputes/queries.js';
import { rebuildProjection } from '../../projections/rebuild.js';
import { ProjectionRunner } from '../../projections/runner.js';
import { PROJECTION_ENGINES } from './engines.js';
import { appendHistory, generateHistory } from './history.js';

const HISTORY = generateHistory(20261203, { runs: 3, assignments: 150 }, { idPrefix: 'dsp-' });
const CHUNK_EVENTS = 97;

type Expected = { runId: string; contributorId: string; disputeId: string; rejectionCode: string; disputedAtMs: number; replayOutcome: string | null; resolution: string | null; recipe: unknown };

/** The plain fold: no SQL, no projector code. */
function expectedDisputes(): Map<string, Expected> {
  const rejected = new Map<string, string>();
  const out = new Map<string, Expected>();
  for (const { event } of HISTORY) {
    const d = event.data as Record<string, unknown> & { assignmentId: string };
    if (event.type === 'SubmissionRejected') rejected.set(d.assignmentId, d.reasonCode as string);
    if (event.type === 'RejectionDisputed') {
      out.set(d.assignmentId, { runId: d.runId as string, contributorId: d.contributorId as string, disputeId: d.disputeId as string, rejectionCode: rejected.get(d.assignmentId)!, disputedAtMs: d.atMs as number, replayOutcome: null, resolution: null, recipe: null });
    }
    if (event.type === 'ReplayVerdictRecorded') Object.assign(out.get(d.assignmentId)!, { replayOutcome: d.outcome, recipe: d.recipe });
    if (event.type === 'DisputeResolved') out.get(d.assignmentId)!.resolution = d.resolution as string;
  }
  return out;
}

describe.each(PROJECTION_ENGINES)('disputes projection [$name]', (engine) => {
  let store: LedgerStore;

  beforeAll(async () => {
    store = (await engine.open()).store;
    const runner = new ProjectionRunner({ store, projectors: [disputesProjector], batchSize: 31 });
    await runner.prepare();
    for (let i = 0; i < HISTORY.length; i += CHUNK_EVENTS) {
      await appendHistory(store, HISTORY.slice(i, i + CHUNK_EVENTS));
      await runner.catchUp();
    }
  }, 120_000);
  afterAll(async () => store?.close());

  it('lists every dispute, newest first, with its rejection, replay verdict, recipe and resolution as the log has them', async () => {
    const expected = expectedDisputes();
    expect(expected.size, 'the history has disputes').toBeGreaterThan(2);
    expect([...expected.values()].some((e) => e.resolution === 'overturned') && [...expected.values()].some((e) => e.resolution === 'upheld'), 'both resolutions occur').toBe(true);
    const db = store.db.withSchema('disputes');
    const listed = await recentDisputes(db, { limit: 10_000 });
    expect(listed.map((d) => d.assignmentId).sort()).toEqual([...expected.keys()].sort());
    for (let i = 1; i < listed.length; i += 1) expect(listed[i - 1]!.disputedAtMs).toBeGreaterThanOrEqual(listed[i]!.disputedAtMs);
    for (const [assignmentId, e] of expected) {
      const { recipe, ...summary } = e;
      expect(await disputeOf(db, assignmentId)).toMatchObject({ assignmentId, ...summary, recipe });
    }
    const runId = [...expected.values()][0]!.runId;
    const ofRun = await recentDisputes(db, { runId, limit: 2 });
    expect(ofRun.length).toBeLessThanOrEqual(2);
    for (const d of ofRun) expect(d.runId).toBe(runId);
  });

  it('rebuilds from position zero into tables identical to the live ones', async () => {
    const report = await rebuildProjection({ store, projector: disputesProjector, swap: false, batchSize: 500 });
    expect(report.identical).toBe(true);
  });
});
