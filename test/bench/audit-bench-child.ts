// Child process of the audit benchmark: opens the bench database, runs the audit (or only reads and decodes the same events), and reports time and peak memory as JSON.

import { readFileSync } from 'node:fs';
import { auditOptions } from '../../adapters/audit/audit-deps.js';
import { openEventStore } from '../../adapters/event-store/open-event-store.js';
import { PostgresAuditLog } from '../../adapters/postgres/postgres-audit-log.js';
import { decodeForProjection } from '../../projections/decode.js';
import { AUDIT_LIMITS, runAudit } from '../../replay/audit/run-audit.js';

/** VmHWM (peak resident set) of this process, MiB, from /proc: what the kernel saw, WebAssembly and native memory included. */
function vmHwmMib(): number | null {
  try {
    const match = /^VmHWM:\s+(\d+) kB$/m.exec(readFileSync('/proc/self/status', 'utf8'));
    return match ? Math.round(Number(match[1]) / 102.4) / 10 : null;
  } catch {
    return null;
  }
}

async function main(): Promise<void> {
  const [mode, targetJson] = process.argv.slice(2);
  if ((mode !== 'audit' && mode !== 'audit-no-rebuild' && mode !== 'read') || targetJson === undefined) throw new Error('usage: audit-bench-child.ts audit|audit-no-rebuild|read <database target JSON>');
  const { store } = await openEventStore(JSON.parse(targetJson));
  let peakHeapBytes = 0;
  const sampler = setInterval(() => (peakHeapBytes = Math.max(peakHeapBytes, process.memoryUsage().heapUsed)), 20);
  const baseline = { rssMib: vmHwmMib(), heapMib: process.memoryUsage().heapUsed / 2 ** 20 };
  const start = performance.now();
  let events = 0;
  let findings: number | null = null;
  let timingsMs: Record<string, number> | null = null;
  if (mode === 'read') {
    // The same keyset pages the integrity walk reads, decoded as the projectors decode them: no audit work.
    const log = new PostgresAuditLog(store.db);
    for (let after: { streamId: string; revision: number } | null = null; ; ) {
      const page = await log.eventsInStreamOrder(after, AUDIT_LIMITS.pageSize);
      for (const event of page) decodeForProjection(event);
      events += page.length;
      if (page.length < AUDIT_LIMITS.pageSize) break;
      after = { streamId: page[page.length - 1]!.streamId, revision: page[page.length - 1]!.revision };
    }
  } else {
    const parts = mode === 'audit' ? undefined : (['integrity', 'settlement', 'ledger'] as const);
    const report = await runAudit(auditOptions(store, null, undefined, Date.now, parts ? { parts } : {}));
    events = report.eventsInLog;
    findings = report.total;
    timingsMs = { ...report.timingsMs };
  }
  const elapsedMs = performance.now() - start;
  clearInterval(sampler);
  peakHeapBytes = Math.max(peakHeapBytes, process.memoryUsage().heapUsed);
  await store.close();
  process.stdout.write(`${JSON.stringify({ mode, events, findings, timingsMs, elapsedMs, peakRssMib: vmHwmMib(), startRssMib: baseline.rssMib, peakHeapMib: Math.round((peakHeapBytes / 2 ** 20) * 10) / 10 })}\n`);
}

main().catch((error: unknown) => {
  console.error(error);
  process.exit(1);
});
