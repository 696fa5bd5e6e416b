// Nothing lost under SIGKILL (reliability suite, part 1): concurrent clients against the real server process, killed and restarted at seeded random moments on PGlite and on PostgreSQL; then Jepsen's set checker, the chains, the ledger, the audit and every retry.

import { spawn } from 'node:child_process';
import { randomBytes } from 'node:crypto';
import { mkdtempSync, readFileSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, describe, expect, it } from 'vitest';
import { verifyChain } from '../../adapters/event-store/verify-chain.js';
import { openEventStore } from '../../adapters/event-store/open-event-store.js';
import type { DatabaseTarget } from '../../adapters/postgres/database.js';
import type { RecordedEvent } from '../../domain/ports/event-store.js';
import { createPostgresDatabase } from '../support/databases.js';
import { mulberry32 } from '../support/mulberry32.js';
import { FULL_RUN, printReport } from './reliability-settings.js';
import { checkSet, httpOperationKey, revisionGaps, type LoggedEvent } from './set-checker.js';
import { acknowledgedEvents, attempt, commandKeyPrefix, finalAttempt, freePort, outcomesOf, poll, ROOT, ServerFleet, SIGKILL_LIMITS, type Engine } from './sigkill-clients.js';
import { prepareServer, Workload, type WorkloadPolicy } from './sigkill-workload.js';

/** Short in `npm test` (both engines in about a minute and a half), longer under RELIABILITY_FULL=1. */
const SETTINGS = Object.freeze({
  clients: FULL_RUN ? 12 : 6,
  runs: FULL_RUN ? 4 : 2,
  kills: Number(process.env.RELIABILITY_SIGKILLS ?? (FULL_RUN ? 15 : 5)),
  /** The server is killed this long after it answered /health again: a random moment inside the clients' traffic. */
  upMs: FULL_RUN ? { min: 500, max: 6_000 } : { min: 300, max: 1_500 },
  /** Traffic after the last restart, before the clients stop. */
  tailMs: FULL_RUN ? 3_000 : 500,
  policy: { assignmentTimeoutMs: FULL_RUN ? 20_000 : 6_000, disputeWindowMs: 2_000, replayProbability: 0.2 } satisfies WorkloadPolicy,
  /** How long the clients' last assignments may take to end once the clients stop: their deadline, window and the escrow's passes. */
  // The full run leaves hundreds of escrows and payouts to drain on the development network, which fsyncs its whole
  // state file at every change: minutes, not seconds, on two shared cores.
  finalGraceMs: FULL_RUN ? 300_000 : 30_000,
  /** How far past its deadline and dispute window (or the chaos' end, if later) an assignment's budget may be released. */
  lateGraceMs: FULL_RUN ? 300_000 : 15_000,
  /** Share of the kills that land while the server is still starting (opening the store, migrating, catching up). */
  bootKillShare: FULL_RUN ? 0.3 : 0.2,
  /** A kill during boot lands this long after the spawn, at most: from the first import to catching up. */
  maxBootKillMs: FULL_RUN ? 4_000 : 2_500,
  /** Unknown-outcome operations retried after the run, and operations retried with a changed body. */
  maxRetried: FULL_RUN ? 2_000 : 300,
  maxChanged: FULL_RUN ? 500 : 60,
  auditTimeoutMs: 120_000,
});
const TEST_TIMEOUT_MS = FULL_RUN ? 1_200_000 : 240_000;

const seed = process.env.RELIABILITY_SEED === undefined ? Math.floor(Math.random() * 2 ** 31) : Number(process.env.RELIABILITY_SEED);
if (!Number.isSafeInteger(seed)) throw new Error(`RELIABILITY_SEED must be an integer, got ${process.env.RELIABILITY_SEED}`);
console.info(`reliability sigkill: seed ${seed}, ${SETTINGS.kills} kills per engine (replay with RELIABILITY_SEED=${seed})`);

type EngineReport = Record<string, string | number>;
const reports: EngineReport[] = [];

const sleep = (ms: number) => new Promise((done) => setTimeout(done, ms));

async function readLog(target: DatabaseTarget): Promise<RecordedEvent[]> {
  const { store } = await openEventStore(target);
  try {
    const events: RecordedEvent[] = [];
    // Bounded: a short run logs thousands of events, a full one tens of thousands.
    for (let page = 0; page < 1_000; page += 1) {
      const batch = await store.readAll({ maxCount: 10_000, ...(events.length > 0 ? { after: events.at(-1)!.position } : {}) });
      if (batch.length === 0) break;
      events.push(...batch);
    }
    return events;
  } finally {
    await store.close();
  }
}

async function runAudit(dataDir: string, databaseUrl: string | null): Promise<{ exit: number | null; report: { clean?: boolean; discrepancies?: unknown[] } | null; output: string }> {
  const jsonFile = join(dataDir, 'audit.json');
  const args = ['--import', 'tsx', 'adapters/cli/trainledger.ts', 'audit', '--data-dir', dataDir, ...(databaseUrl ? ['--database-url', databaseUrl] : []), '--json', jsonFile];
  const child = spawn(process.execPath, args, { cwd: ROOT, env: { ...process.env }, stdio: ['ignore', 'pipe', 'pipe'], timeout: SETTINGS.auditTimeoutMs });
  let output = '';
  child.stdout.on('data', (c: Buffer) => (output += c.toString()));
  child.stderr.on('data', (c: Buffer) => (output += c.toString()));
  const exit = await new Promise<number | null>((done) => child.once('exit', (code) => done(code)));
  let report = null;
  try {
    report = JSON.parse(readFileSync(jsonFile, 'utf8'));
  } catch {
    // No report written: the exit status and the output say why.
  }
  return { exit, report, output: output.slice(-4_000) };
}

const FINAL_ESCROW = new Set(['none', 'settled', 'canceled', 'expired']);
const FINAL_PAYOUT = new Set(['paid', 'abandoned', 'forfeited', 'released', 'none']);
const OPEN_STATUS = new Set(['assigned', 'submitted', 'disputed', 'replaying']);

type AssignmentView = { status: string; dispute: unknown; escrow: { status: string }; payouts: { kind: string; state: string }[]; terms: { deadlineMs: number; disputeWindowMs: number } };

function isFinal(view: AssignmentView): boolean {
  return !OPEN_STATUS.has(view.status) && FINAL_ESCROW.has(view.escrow.status) && view.payouts.every((p) => FINAL_PAYOUT.has(p.state));
}

async function staffGet<T>(baseUrl: string, apiKey: string, path: string): Promise<T> {
  const response = await fetch(new URL(path, baseUrl), { headers: { authorization: `Bearer ${apiKey}` }, signal: AbortSignal.timeout(10_000) });
  if (!response.ok) throw new Error(`GET ${path}: ${response.status} ${await response.text()}`);
  return (await response.json()) as T;
}

async function scenario(engine: Engine): Promise<EngineReport> {
  const dataDir = mkdtempSync(join(tmpdir(), `trainledger-sigkill-${engine}-`));
  const databaseUrl = engine === 'postgres' ? await createPostgresDatabase('sigkill') : null;
  const target: DatabaseTarget = databaseUrl ? { engine: 'postgres', connectionString: databaseUrl } : { engine: 'pglite', dataDir: join(dataDir, 'pglite') };
  const adminKey = `tl_coordinator_${randomBytes(32).toString('base64url')}`;
  const fleet = new ServerFleet({ engine, dataDir, databaseUrl, port: await freePort(), adminKey });
  const random = mulberry32(seed ^ (engine === 'pglite' ? 0x51 : 0x9a));
  const startedMs = Date.now();
  try {
    await fleet.start();
    const prepared = await prepareServer(fleet.baseUrl, adminKey);
    const workload = new Workload({ baseUrl: fleet.baseUrl, adminKey, ...prepared, clients: SETTINGS.clients, runs: SETTINGS.runs, policy: SETTINGS.policy, random: mulberry32(seed) });
    const clients = workload.run();
    let clientsFailed: unknown = null;
    clients.catch((error: unknown) => (clientsFailed = error));

    const killedAfterMs: number[] = [];
    for (let k = 0; k < SETTINGS.kills && clientsFailed === null; k += 1) {
      // The random moment itself, not a wait for something: the server is killed wherever its requests happen to be.
      const upMs = Math.round(SETTINGS.upMs.min + random() * (SETTINGS.upMs.max - SETTINGS.upMs.min));
      await sleep(upMs);
      await fleet.kill();
      killedAfterMs.push(upMs);
      // Sometimes the restart itself is killed, mid-recovery, and started again.
      if (random() < SETTINGS.bootKillShare) await fleet.startAndKillDuringBoot(Math.round(random() * SETTINGS.maxBootKillMs));
      await fleet.start();
    }
    await sleep(SETTINGS.tailMs);
    workload.stop();
    await clients;
    const chaosEndMs = Date.now();
    const chaosMs = chaosEndMs - startedMs;
    const ops = workload.operations;

    // Every assignment reaches a final state within its deadline and dispute window (plus the grace the escrow needs).
    const settleBeganMs = Date.now();
    const finalByMs = new Map<string, number>();
    const lastViews = new Map<string, AssignmentView>();
    const maxWaitMs = SETTINGS.policy.assignmentTimeoutMs + SETTINGS.policy.disputeWindowMs + SETTINGS.finalGraceMs + 5_000;
    await poll(async () => {
      try {
        for (const [id] of workload.assignments) {
          if (finalByMs.has(id)) continue;
          const view = await staffGet<AssignmentView>(fleet.baseUrl, adminKey, `/v1/assignments/${id}`);
          lastViews.set(id, view);
          if (isFinal(view)) finalByMs.set(id, Date.now());
        }
        if (finalByMs.size < workload.assignments.size) return null;
        const runs = await Promise.all(workload.runIds.map((r) => staffGet<{ reservedMsat: string }>(fleet.baseUrl, adminKey, `/v1/runs/${r}`)));
        return runs.every((r) => r.reservedMsat === '0') ? true : null;
      } catch {
        // A read that timed out on a busy server is asked again next round; only the deadline ends the wait.
        return null;
      }
    }, maxWaitMs, 'every assignment to reach a final state').catch(() => undefined);
    const notFinal = [...workload.assignments.keys()].filter((id) => !finalByMs.has(id));
    const reservedRuns = (await Promise.all(workload.runIds.map((r) => staffGet<{ reservedMsat: string }>(fleet.baseUrl, adminKey, `/v1/runs/${r}`).catch(() => ({ reservedMsat: '0' }))))).filter((r) => r.reservedMsat !== '0').length;

    // Retries: an unknown outcome, sent again with its key, answers what the key first answered; a changed body is refused.
    const unknownOps = ops.filter((o) => outcomesOf(o).includes('unknown') && finalAttempt(o) !== null).slice(0, SETTINGS.maxRetried);
    const retryMismatches: string[] = [];
    for (const op of unknownOps) {
      const first = finalAttempt(op)!;
      const again = await attempt(fleet.baseUrl, op, op.body, SIGKILL_LIMITS.checkTimeoutMs);
      const same = again.status === first.status && (first.outcome !== 'ok' || JSON.stringify(eventsOf(again.body)) === JSON.stringify(eventsOf(first.body)));
      if (!same) retryMismatches.push(`${op.kind} ${op.path}: first ${first.status} ${first.body.slice(0, 200)}, retry ${again.status} ${again.body.slice(0, 200)}`);
    }
    const changedOps = [...unknownOps, ...ops.filter((o) => !outcomesOf(o).includes('unknown') && finalAttempt(o) !== null)].slice(0, SETTINGS.maxChanged);
    const changedNot422: string[] = [];
    for (const op of changedOps) {
      const changed = await attempt(fleet.baseUrl, op, op.changedBody, SIGKILL_LIMITS.checkTimeoutMs);
      if (changed.status !== 422 || changed.code !== 'IDEMPOTENCY_KEY_REUSED') changedNot422.push(`${op.kind} ${op.path}: ${changed.status} ${changed.body.slice(0, 200)}`);
    }
    const settleMs = Date.now() - settleBeganMs;
    const trial = await staffGet<{ debitsPendingMsat: string; creditsPendingMsat: string; debitsPostedMsat: string; creditsPostedMsat: string }>(fleet.baseUrl, adminKey, '/v1/ledger/trial-balance');
    const ledgerBalanced = trial.debitsPendingMsat === trial.creditsPendingMsat && trial.debitsPostedMsat === trial.creditsPostedMsat;
    await fleet.stop();

    // The log, read from the store the server left.
    const events = await readLog(target);
    const logged: LoggedEvent[] = events.map((e) => ({ key: typeof e.metadata.idempotencyKey === 'string' ? e.metadata.idempotencyKey : null, streamId: e.streamId, revision: e.revision, type: e.type }));
    const setOps = ops.filter((o) => o.logged).map((o) => ({ key: commandKeyPrefix(o), outcomes: outcomesOf(o), acknowledgedEvents: acknowledgedEvents(o) }));
    const set = checkSet(setOps, logged);
    // What an acknowledged answer listed is what the log holds under its key, type for type.
    const typesByOp = new Map<string, string[]>();
    for (const e of logged) {
      const key = e.key === null ? null : httpOperationKey(e.key);
      if (key) typesByOp.set(key, [...(typesByOp.get(key) ?? []), e.type]);
    }
    // (An assignment's answer lists its own events; the budget reservation appended with it in one transaction is the run's.)
    const answerMismatches = ops.filter((o) => o.logged && acknowledgedEvents(o) !== null).filter((o) => {
      const answered = eventsOf(o.attempts.find((a) => a.outcome === 'ok')!.body).map((e) => e.type).sort();
      const held = (typesByOp.get(commandKeyPrefix(o)) ?? []).filter((t) => o.kind !== 'assign' || t !== 'BudgetReserved').sort();
      return JSON.stringify(answered) !== JSON.stringify(held);
    });
    // Reservations the log still holds open, with what their assignment's stream says, for the failure message.
    // Every assignment's ending is its budget's release: it must come by its deadline and dispute window, give or take
    // one restart (the release due while the server was down comes when it is back).
    const releasedAtMs = new Map(events.filter((e) => e.type === 'BudgetReleased').map((e) => [String(e.data.assignmentId), e.recordedAtMs]));
    const pastWindowMs = [...workload.assignments.keys()].map((id) => {
      const terms = lastViews.get(id)?.terms;
      const atMs = releasedAtMs.get(id);
      // Measured from the later of its window's end and the chaos' end: while the server is killed every second or two,
      // the escrow's passes, the replay worker's boot and the dev node's payments only get moments to run.
      return { id, ending: lastViews.get(id)?.status ?? 'unknown', late: terms && atMs !== undefined ? atMs - Math.max(terms.deadlineMs + terms.disputeWindowMs, chaosEndMs) : Infinity };
    });
    const latestByEnding: Record<string, number> = {};
    for (const p of pastWindowMs) latestByEnding[p.ending] = Math.max(latestByEnding[p.ending] ?? -Infinity, p.late);
    const lateAllowedMs = SETTINGS.lateGraceMs;
    const late = pastWindowMs.filter((p) => p.late > lateAllowedMs).map((p) => {
      // Its story, for the failure message: each event about it, in ms from its deadline and window.
      const terms = lastViews.get(p.id)?.terms;
      const endMs = terms ? Math.max(terms.deadlineMs + terms.disputeWindowMs, chaosEndMs) : 0;
      const story = events.filter((e) => e.streamId.endsWith(p.id) || e.data.assignmentId === p.id).map((e) => `${e.type}@${e.recordedAtMs - endMs}`);
      return { ...p, story: story.join(' ') };
    });
    const openReservations = new Map<string, string>();
    for (const e of events) {
      if (e.type === 'BudgetReserved') openReservations.set(String(e.data.reservationId), String(e.data.assignmentId));
      if (e.type === 'BudgetReleased') openReservations.delete(String(e.data.reservationId));
    }
    const stillReserved = [...openReservations.values()].map((a) => `${a}${workload.assignments.has(a) ? '' : ' (not acknowledged)'}: ${events.filter((e) => e.streamId.endsWith(a)).map((e) => e.type).join(',')}`);
    const gaps = revisionGaps(logged);
    const streams = new Map<string, RecordedEvent[]>();
    for (const e of events) streams.set(e.streamId, [...(streams.get(e.streamId) ?? []), e]);
    const brokenChains = [...streams.entries()].map(([id, list]) => verifyChain(id, list, null)).filter((v) => !v.ok);
    const audit = await runAudit(dataDir, databaseUrl);

    const byKind = (kind: string) => ops.filter((o) => o.kind === kind).length;
    const report: EngineReport = {
      engine, seed,
      clients: SETTINGS.clients,
      kills: fleet.kills,
      killsDuringBoot: fleet.killsDuringBoot,
      processesKilled: fleet.processesKilled,
      killedAfterMs: killedAfterMs.join(' '),
      chaosSeconds: Math.round(chaosMs / 1000),
      settleAndRetrySeconds: Math.round(settleMs / 1000),
      totalSeconds: Math.round((Date.now() - startedMs) / 1000),
      operations: ops.length,
      kinds: ['register', 'open', 'fund', 'assign', 'invoice', 'submit', 'verdict', 'dispute'].map((k) => `${k}=${byKind(k)}`).join(' '),
      attempts: ops.reduce((s, o) => s + o.attempts.length, 0),
      ok: ops.filter((o) => finalAttempt(o)?.outcome === 'ok').length,
      definiteFailures: ops.filter((o) => finalAttempt(o)?.outcome === 'fail').length,
      unknownAttempts: ops.reduce((s, o) => s + outcomesOf(o).filter((x) => x === 'unknown').length, 0),
      indeterminate: set.indeterminate,
      lost: set.lost,
      unexpected: set.unexpected,
      duplicated: set.duplicated,
      failedButStored: set.failedButStored,
      recovered: set.recovered,
      unknownNotStored: set.unknownNotStored,
      answersUnlikeLog: answerMismatches.length,
      retried: unknownOps.length,
      retriesUnlikeFirstAnswer: retryMismatches.length,
      changedBodies: changedOps.length,
      changedBodiesNot422: changedNot422.length,
      events: events.length,
      streams: streams.size,
      revisionGaps: gaps.length,
      brokenChains: brokenChains.length,
      ledgerBalanced: ledgerBalanced ? 'yes' : 'no',
      auditExit: audit.exit ?? -1,
      auditClean: audit.report?.clean === true ? 'yes' : 'no',
      assignments: workload.assignments.size,
      notFinal: notFinal.length,
      runsStillReserved: reservedRuns,
      drainSeconds: Math.round(Math.max(0, ...[...releasedAtMs.values()].map((t) => t - chaosEndMs)) / 1000),
      releasedPastWindowMs: Object.entries(latestByEnding).map(([k, v]) => `${k}=${v}`).join(' '),
      lateAllowedMs,
      late: late.length,
      restartMs: `median ${median(fleet.startMs.slice(1))}, max ${Math.max(...fleet.startMs.slice(1))}`,
    };
    reports.push(report);
    const context = `replay with RELIABILITY_SEED=${seed}: ${JSON.stringify({ ...report, examples: set.examples, retryMismatches: retryMismatches.slice(0, 3), changedNot422: changedNot422.slice(0, 3), answerMismatches: answerMismatches.slice(0, 3).map((o) => `${o.kind} ${o.path}`), gaps: gaps.slice(0, 3), brokenChains: brokenChains.slice(0, 3), stillReserved: stillReserved.slice(0, 5), late: late.slice(0, 5), kills: fleet.killedAtMs.map((t) => t - startedMs).join(' '), notFinal: notFinal.slice(0, 3).map((id) => `${id}: ${JSON.stringify(lastViews.get(id))?.slice(0, 600)}`), audit: audit.exit === 0 ? 'clean' : { exit: audit.exit, discrepancies: (audit.report?.discrepancies ?? []).slice(0, 5), output: audit.output } })}`;
    expect(fleet.kills, context).toBeGreaterThanOrEqual(Math.min(5, SETTINGS.kills));
    expect(set.lost, context).toBe(0);
    expect(set.unexpected, context).toBe(0);
    expect(set.duplicated, context).toBe(0);
    expect(set.failedButStored, context).toBe(0);
    expect(answerMismatches.length, context).toBe(0);
    expect(retryMismatches.length, context).toBe(0);
    expect(changedNot422.length, context).toBe(0);
    expect(gaps.length, context).toBe(0);
    expect(brokenChains.length, context).toBe(0);
    expect(ledgerBalanced, context).toBe(true);
    expect(notFinal.length, context).toBe(0);
    expect(late.length, context).toBe(0);
    expect(reservedRuns, context).toBe(0);
    expect(audit.exit, context).toBe(0);
    // The run did what it claims: traffic in every command, and kills that left some outcomes unknown.
    expect(set.acknowledged, context).toBeGreaterThan(0);
    expect(Number(report.unknownAttempts), `${context}: the kills cut requests off`).toBeGreaterThan(0);
    return report;
  } catch (error) {
    throw new Error(`${(error as Error).message}\n--- server output ---\n${fleet.output().slice(-6_000)}`, { cause: error });
  } finally {
    await fleet.stop();
    rmSync(dataDir, { recursive: true, force: true });
  }
}

function median(values: readonly number[]): number {
  const sorted = [...values].sort((a, b) => a - b);
  return sorted.length === 0 ? 0 : sorted[Math.floor(sorted.length / 2)]!;
}

function eventsOf(body: string): { type: string }[] {
  try {
    const events = (JSON.parse(body) as { events?: { type: string }[] }).events;
    return Array.isArray(events) ? events : [];
  } catch {
    return [];
  }
}

afterAll(() => {
  for (const report of reports) printReport(`sigkill set (${report.engine})`, report);
});

describe.each(['pglite', 'postgres'] as const)('nothing lost under SIGKILL on %s', (engine) => {
  it(`the server killed ${SETTINGS.kills} times under ${SETTINGS.clients} clients: nothing lost, unexpected or duplicated; chains, ledger and audit clean; every assignment final; every retry answered as first`, async () => {
    await scenario(engine);
  }, TEST_TIMEOUT_MS);
});
