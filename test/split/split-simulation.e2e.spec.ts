// End to end over a real socket on the split composition: the whole system with its log behind the plain port (a second SQL store, or ESDB_URL's cluster), a simulation through the SDK.

import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { simulate, type SimulationSummary } from '../../adapters/cli/simulate.js';
import { StaffClient } from '../../adapters/client/trainledger-client.js';
import { loadConfig } from '../../adapters/config.js';
import { newApiKey } from '../../adapters/http/auth/api-keys.js';
import { startSystem, type RunningSystem } from '../../adapters/system.js';
import type { EventStore } from '../../domain/ports/event-store.js';
import { checkExchanges, recordExchanges, type OpenApiDoc, type Recorder } from '../http/openapi-conformance.js';
import { splitLogs } from '../support/split-logs.js';

type ExportedEvent = { streamId: string; type: string; data: Record<string, any> };

describe.each(splitLogs())('a small simulation over a real socket, $name', (splitLog) => {
  const adminKey = newApiKey('coordinator');
  const dataDir = mkdtempSync(join(tmpdir(), 'trainledger-split-e2e-'));
  let system: RunningSystem;
  let summary: SimulationSummary;
  let staff: StaffClient;
  let events: ExportedEvent[];
  let recorder: Recorder;
  let log: EventStore;

  beforeAll(async () => {
    const config = loadConfig(['--data-dir', dataDir, '--port', '0'], {});
    // The system closes the log it is given at stop; the spec reads it through the same port meanwhile.
    log = await splitLog.open();
    system = await startSystem({ config, env: { TRAINLEDGER_ADMIN_KEY: adminKey }, log: () => {}, openLog: async () => log, beforeListen: (app) => (recorder = recordExchanges(app)) });
    staff = new StaffClient({ baseUrl: system.address }, adminKey);
    summary = await simulate({ baseUrl: system.address, adminKey, contributors: 2, steps: 2, cheaters: 0.5, disputeShare: 1, seed: '11', roundTimeoutMs: 120_000, progress: () => {} });
    const ndjson = await staff.exportEvents();
    events = ndjson.trim().split('\n').map((line) => JSON.parse(line) as ExportedEvent);
  }, 300_000);

  afterAll(async () => {
    await system?.stop();
    rmSync(dataDir, { recursive: true, force: true });
  });

  it('ends with every assignment final, every reservation released, honest work accepted and cheats rejected', () => {
    expect(summary.assignments).toBe(4);
    expect(summary.accepted).toBe(2);
    expect(summary.reservedMsat).toBe(0n);
    expect(summary.disputesByOutcome).toEqual({ upheld: 2 });
    const released = events.filter((e) => e.type === 'BudgetReleased' && e.data.runId === summary.runId);
    expect(new Set(released.map((e) => e.data.assignmentId))).toEqual(new Set(summary.assignmentIds));
  });

  it('settles every accepted assignment exactly once over the dev Lightning network, and pays no rejected one', () => {
    const accepted = new Set(events.filter((e) => e.type === 'SubmissionAccepted').map((e) => e.data.assignmentId as string));
    for (const assignmentId of summary.assignmentIds) {
      const hash = events.find((e) => e.type === 'InvoiceOpened' && e.data.kind === 'escrow' && e.data.assignmentId === assignmentId)?.data.paymentHash;
      const settled = events.filter((e) => e.type === 'InvoiceSettled' && e.data.paymentHash === hash);
      const compensated = events.filter((e) => e.type === 'PaymentSent' && e.data.kind === 'compensation' && e.data.assignmentId === assignmentId);
      expect(settled.length + compensated.length, assignmentId).toBe(accepted.has(assignmentId) ? 1 : 0);
    }
    expect(summary.satsPaid).toBeGreaterThan(0);
  });

  it('leaves a balanced ledger and run metrics that match a plain fold over the exported events (read models in SQL, fed from the split log)', async () => {
    const trial = (await staff.trialBalance()) as Record<string, string>;
    expect(trial.debitsPostedMsat).toBe(trial.creditsPostedMsat);
    expect(trial.debitsPendingMsat).toBe(trial.creditsPendingMsat);
    expect(BigInt(trial.debitsPostedMsat!)).toBeGreaterThan(0n);
    const runEvents = events.filter((e) => e.data.runId === summary.runId);
    const metrics = ((await staff.metricsByRun()) as Record<string, any>[]).find((m) => m.runId === summary.runId)!;
    expect(metrics.acceptedCount).toBe(runEvents.filter((e) => e.type === 'SubmissionAccepted').length);
    expect(metrics.rejectedCount).toBe(runEvents.filter((e) => e.type === 'SubmissionRejected').length);
  });

  it('keeps its hash chains whole on the log, and every event the API exported is the log\'s', async () => {
    expect((await log.verifyAll()).ok).toBe(true);
    const all: string[] = [];
    for (let after; ; ) {
      const page = await log.readAll({ maxCount: 1_000, ...(after ? { after } : {}) });
      all.push(...page.map((e) => `${e.streamId}@${e.revision}`));
      if (page.length < 1_000) break;
      after = page[page.length - 1]!.position;
    }
    expect(all).toHaveLength(events.length);
  });

  it('audits clean over POST /v1/audits with every replay verdict re-run: the log catalog, run beside the read models, lists every stream of the log', async () => {
    const headers = { authorization: `Bearer ${adminKey}`, 'content-type': 'application/json', 'idempotency-key': 'split-e2e-audit' };
    const started = await fetch(`${system.address}/v1/audits`, { method: 'POST', headers, body: JSON.stringify({ replay: true }) });
    expect(started.status).toBe(202);
    const { auditId } = (await started.json()) as { auditId: string };
    let view: Record<string, any> = { status: 'running' };
    // Polls the job until it is no longer running: a condition, not a sleep.
    for (let look = 0; look < 3_000 && view.status === 'running'; look += 1) {
      view = (await (await fetch(`${system.address}/v1/audits/${auditId}`, { headers: { authorization: `Bearer ${adminKey}` } })).json()) as Record<string, any>;
      if (view.status === 'running') await new Promise((resolve) => setTimeout(resolve, 50));
    }
    expect(view.status, JSON.stringify(view.error)).toBe('finished');
    expect(view.report.discrepancies).toEqual([]);
    expect(view.report.eventsInLog).toBe(events.length);
    expect(view.report.parts.integrity.events).toBe(events.length);
    expect(view.report.parts.settlement.assignments).toBe(summary.assignments);
    expect(view.report.parts.replay).toEqual({ mode: 'all', verdicts: 2, replayed: 2 });
    expect(view.report.parts.node.checked).toBe(true);
    const health = (await (await fetch(`${system.address}/health`)).json()) as Record<string, any>;
    expect(JSON.stringify(health)).toContain('log_catalog');
  }, 300_000);

  it('received only answers its OpenAPI document describes', async () => {
    const doc = (await (await fetch(`${system.address}/docs/json`)).json()) as OpenApiDoc;
    const { problems } = checkExchanges(doc, recorder.exchanges);
    expect(recorder.dropped).toBe(0);
    expect(problems).toEqual([]);
  });
});
