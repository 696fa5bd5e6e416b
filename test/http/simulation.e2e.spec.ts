// End to end over a real socket: the whole embedded system, a small simulation through the SDK, then audits of what it left.

import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { simulate, type SimulationSummary } from '../../adapters/cli/simulate.js';
import { StaffClient } from '../../adapters/client/trainledger-client.js';
import { loadConfig } from '../../adapters/config.js';
import { newApiKey } from '../../adapters/http/auth/api-keys.js';
import { startSystem, type RunningSystem } from '../../adapters/system.js';
import { checkExchanges, recordExchanges, type OpenApiDoc, type Recorder } from './openapi-conformance.js';

type ExportedEvent = { streamId: string; type: string; data: Record<string, any> };

const adminKey = newApiKey('coordinator');
const dataDir = mkdtempSync(join(tmpdir(), 'trainledger-e2e-'));
let system: RunningSystem;
let summary: SimulationSummary;
let staff: StaffClient;
let events: ExportedEvent[];
let recorder: Recorder;

beforeAll(async () => {
  const config = loadConfig(['--data-dir', dataDir, '--port', '0'], {});
  system = await startSystem({ config, env: { TRAINLEDGER_ADMIN_KEY: adminKey }, log: () => {}, beforeListen: (app) => (recorder = recordExchanges(app)) });
  staff = new StaffClient({ baseUrl: system.address }, adminKey);
  summary = await simulate({ baseUrl: system.address, adminKey, contributors: 4, steps: 2, cheaters: 0.5, disputeShare: 1, seed: '7', roundTimeoutMs: 120_000, progress: () => {} });
  const ndjson = await staff.exportEvents();
  events = ndjson.trim().split('\n').map((line) => JSON.parse(line) as ExportedEvent);
}, 300_000);

afterAll(async () => {
  await system?.stop();
  rmSync(dataDir, { recursive: true, force: true });
});

const escrowInvoiceOf = (assignmentId: string) => events.find((e) => e.type === 'InvoiceOpened' && e.data.kind === 'escrow' && e.data.assignmentId === assignmentId)!;

describe('a small simulation over a real socket', () => {
  it('ends with every assignment final and every reservation released: nothing is left reserved, nothing overspent', () => {
    expect(summary.reservedMsat).toBe(0n);
    const released = events.filter((e) => e.type === 'BudgetReleased' && e.data.runId === summary.runId);
    expect(new Set(released.map((e) => e.data.assignmentId))).toEqual(new Set(summary.assignmentIds));
    for (const e of released) expect(BigInt(e.data.spentMsat)).toBeLessThanOrEqual(BigInt(e.data.reservedMsat));
    expect(released.reduce((sum, e) => sum + BigInt(e.data.spentMsat), 0n)).toBe(summary.spentMsat);
  });

  it('accepts the honest contributors and rejects every cheater with a reason; disputes of cheats are upheld', () => {
    expect(summary.assignments).toBe(8);
    expect(summary.accepted).toBe(4);
    expect(Object.values(summary.rejectedByReason).reduce((a, b) => a + b, 0)).toBe(4);
    expect(summary.disputesByOutcome).toEqual({ upheld: 4 });
  });

  it('settles every accepted assignment exactly once, and pays no rejected one', () => {
    const accepted = new Set(events.filter((e) => e.type === 'SubmissionAccepted').map((e) => e.data.assignmentId as string));
    for (const assignmentId of summary.assignmentIds) {
      const hash = escrowInvoiceOf(assignmentId)?.data.paymentHash;
      const settled = events.filter((e) => e.type === 'InvoiceSettled' && e.data.paymentHash === hash);
      const compensated = events.filter((e) => e.type === 'PaymentSent' && e.data.kind === 'compensation' && e.data.assignmentId === assignmentId);
      expect(settled.length + compensated.length, assignmentId).toBe(accepted.has(assignmentId) ? 1 : 0);
    }
  });

  it('leaves a balanced ledger', async () => {
    const trial = (await staff.trialBalance()) as Record<string, string>;
    expect(trial.debitsPostedMsat).toBe(trial.creditsPostedMsat);
    expect(trial.debitsPendingMsat).toBe(trial.creditsPendingMsat);
    expect(BigInt(trial.debitsPostedMsat!)).toBeGreaterThan(0n);
  });

  it('reports run metrics that match a plain fold over the exported events', async () => {
    const runEvents = events.filter((e) => e.data.runId === summary.runId);
    const sum = (pred: (e: ExportedEvent) => boolean, field: string) => runEvents.filter(pred).reduce((s, e) => s + BigInt(e.data[field]), 0n);
    const revenue = sum((e) => e.type === 'RunFunded' && e.data.source === 'customer', 'amountMsat');
    const escrowHashes = new Set(runEvents.filter((e) => e.type === 'InvoiceOpened' && e.data.kind === 'escrow').map((e) => e.data.paymentHash));
    const amounts = new Map(runEvents.filter((e) => e.type === 'InvoiceOpened').map((e) => [e.data.paymentHash, BigInt(e.data.amountMsat)]));
    const paid = runEvents
      .filter((e) => (e.type === 'InvoiceSettled' && escrowHashes.has(e.data.paymentHash)) || e.type === 'PaymentSent')
      .reduce((s, e) => s + amounts.get(e.data.paymentHash)!, 0n);
    const metrics = ((await staff.metricsByRun()) as Record<string, any>[]).find((m) => m.runId === summary.runId)!;
    expect(BigInt(metrics.externalRevenueMsat)).toBe(revenue);
    expect(BigInt(metrics.rewardsPaidMsat)).toBe(paid);
    expect(metrics.acceptedCount).toBe(runEvents.filter((e) => e.type === 'SubmissionAccepted').length);
    expect(metrics.rejectedCount).toBe(runEvents.filter((e) => e.type === 'SubmissionRejected').length);
    expect(summary.satsPaid).toBe(Number(paid / 1000n));
  });

  it('received only answers its OpenAPI document describes, over the socket, and sent only bodies it accepts', async () => {
    const doc = (await (await fetch(`${system.address}/docs/json`)).json()) as OpenApiDoc;
    const { problems, operations } = checkExchanges(doc, recorder.exchanges);
    expect(recorder.dropped).toBe(0);
    expect(problems).toEqual([]);
    // The SDK's side of the flow (escrow invoices and verdicts go in-process, through the dev channel and the validator).
    expect([...operations]).toEqual(expect.arrayContaining(['openRun', 'fundRun', 'registerContributor', 'assignWork', 'submitGradient', 'disputeRejection', 'exportEvents']));
  });
});
