// Audit benchmark: a generated log of N assignments, then `runAudit` and a plain read-and-decode of the same events, each in its own child process for a clean peak memory.

import { spawn } from 'node:child_process';
import { sql } from 'kysely';
import { dirname, join, resolve } from 'node:path';
import { fileURLToPath } from 'node:url';
import { openEventStore } from '../../adapters/event-store/open-event-store.js';
import type { DatabaseTarget } from '../../adapters/postgres/database.js';
import { ALL_PROJECTORS } from '../../projections/index.js';
import { ProjectionRunner } from '../../projections/runner.js';
import { generateHistory } from '../projections/history.js';
import { bulkLoad } from './bulk-load.js';
import { round } from './stats.js';

const ROOT = resolve(dirname(fileURLToPath(import.meta.url)), '../..');
const ASSIGNMENTS_PER_CHUNK = 5_000;
/** The goal: the audit within three times a plain read of the same events. */
export const AUDIT_TO_READ_RATIO_GOAL = 3;

type ChildResult = { mode: string; events: number; findings: number | null; timingsMs: Record<string, number> | null; elapsedMs: number; peakRssMib: number | null; startRssMib: number | null; peakHeapMib: number };

export type AuditBenchSize = {
  assignments: number;
  events: number;
  loadMs: number;
  projectMs: number;
  read: ChildResult;
  audit: ChildResult;
  auditToReadRatio: number;
  /** The same audit without the rebuild part (integrity, settlement, ledger): what the rebuild costs. */
  auditWithoutRebuild: ChildResult;
  withoutRebuildToReadRatio: number;
  /** Per 100,000 assignments, so sizes compare. */
  auditMsPer100kAssignments: number;
};

export type AuditBenchResult = { sizes: AuditBenchSize[]; memoryFlatness: { peakRssRatio: number; peakHeapRatio: number } | null };

function child(mode: 'audit' | 'audit-no-rebuild' | 'read', target: DatabaseTarget): Promise<ChildResult> {
  return new Promise((resolveChild, reject) => {
    const proc = spawn(process.execPath, ['--import', 'tsx', join(ROOT, 'test/bench/audit-bench-child.ts'), mode, JSON.stringify(target)], { cwd: ROOT, stdio: ['ignore', 'pipe', 'inherit'] });
    let out = '';
    proc.stdout.on('data', (chunk: Buffer) => (out += chunk.toString()));
    proc.on('error', reject);
    proc.on('close', (code) => (code === 0 ? resolveChild(JSON.parse(out.trim().split('\n').pop()!) as ChildResult) : reject(new Error(`audit bench child (${mode}) exited ${code}`))));
  });
}

/** Loads `assignments` into a fresh database (`target`), projects it as a live system would have, then measures. */
export async function runAuditBenchSize(target: DatabaseTarget, assignments: number, log: (line: string) => void): Promise<AuditBenchSize> {
  const { store } = await openEventStore(target);
  let events = 0;
  const loadStart = performance.now();
  try {
    for (let chunk = 0; chunk * ASSIGNMENTS_PER_CHUNK < assignments; chunk += 1) {
      const size = Math.min(ASSIGNMENTS_PER_CHUNK, assignments - chunk * ASSIGNMENTS_PER_CHUNK);
      events += await bulkLoad(store.db, generateHistory(7_000 + chunk, { runs: 5, assignments: size }, { idPrefix: `a${chunk}-` }), Date.UTC(2026, 10, 22));
      if (chunk % 10 === 9) log(`  loaded ${(chunk + 1) * ASSIGNMENTS_PER_CHUNK} assignments, ${events} events`);
    }
    const loadMs = performance.now() - loadStart;
    const projectStart = performance.now();
    const runner = new ProjectionRunner({ store, projectors: ALL_PROJECTORS, batchSize: 1_000 });
    await runner.prepare();
    await runner.catchUp();
    const projectMs = performance.now() - projectStart;
    // Both children measure a database at rest: without this, the autovacuum and analyze that a bulk load
    // sets off (and the hint bits the first read of fresh rows writes) land on whichever child runs first
    // (measured at 30,000 assignments: 9 s of server CPU inside one settlement part, 1 s outside).
    await sql`VACUUM (ANALYZE)`.execute(store.db);
    await store.close();
    log(`  ${assignments} assignments: ${events} events loaded in ${round(loadMs / 1000)} s, projected in ${round(projectMs / 1000)} s; reading, then auditing...`);
    const read = await child('read', target);
    const audit = await child('audit', target);
    const auditWithoutRebuild = await child('audit-no-rebuild', target);
    if (read.events !== events || audit.events !== events) throw new Error(`read ${read.events} and audited ${audit.events} of ${events} events`);
    log(`  read ${round(read.elapsedMs / 1000)} s, audit ${round(audit.elapsedMs / 1000)} s, without rebuild ${round(auditWithoutRebuild.elapsedMs / 1000)} s (${audit.findings} findings in the generated log), audit peak RSS ${audit.peakRssMib} MiB`);
    return { assignments, events, loadMs: round(loadMs), projectMs: round(projectMs), read, audit, auditToReadRatio: round(audit.elapsedMs / read.elapsedMs, 3), auditWithoutRebuild, withoutRebuildToReadRatio: round(auditWithoutRebuild.elapsedMs / read.elapsedMs, 3), auditMsPer100kAssignments: round((audit.elapsedMs * 100_000) / assignments) };
  } catch (error) {
    await store.close().catch(() => {});
    throw error;
  }
}

export function auditMemoryFlatness(sizes: readonly AuditBenchSize[]): AuditBenchResult['memoryFlatness'] {
  if (sizes.length < 2) return null;
  const small = sizes[0]!;
  const large = sizes[sizes.length - 1]!;
  return { peakRssRatio: round((large.audit.peakRssMib ?? 0) / (small.audit.peakRssMib ?? 1), 3), peakHeapRatio: round(large.audit.peakHeapMib / small.audit.peakHeapMib, 3) };
}
