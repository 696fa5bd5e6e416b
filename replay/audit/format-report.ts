// The audit report as a readable summary table for a terminal (the JSON report is the report itself).

import { DISCREPANCY_CATALOG, type DiscrepancyCode } from './catalog.js';
import type { AuditReport } from './run-audit.js';

const SHOWN_PER_CODE = 5;

export function formatAuditSummary(report: AuditReport): string {
  const p = report.parts;
  const lines = [
    `audit ${report.clean ? 'CLEAN' : 'FOUND DISCREPANCIES'}: ${report.total} finding(s) over ${report.eventsInLog} events in ${report.finishedAtMs - report.startedAtMs} ms`,
    `  integrity   ${p.integrity.streams} streams, ${p.integrity.events} events`,
    `  rebuild     ${Object.entries(p.rebuild).map(([name, r]) => `${name} ${r.identical ? 'identical' : 'DIFFERS'}`).join(', ')}`,
    `  settlement  ${p.settlement.assignments} assignments`,
    `  node        ${p.node.checked ? `${p.node.payments} node payments` : 'skipped (no node)'}`,
    `  ledger      ${p.ledger.runs} runs`,
    `  replay      ${p.replay.mode === 'none' ? 'not asked (--replay, --replay-sample N)' : `${p.replay.replayed} of ${p.replay.verdicts} verdicts re-run`}`,
    '',
    `${'code'.padEnd(34)} ${'part'.padEnd(10)} count`,
  ];
  for (const [code, count] of Object.entries(report.counts) as [DiscrepancyCode, number][]) {
    lines.push(`${code.padEnd(34)} ${DISCREPANCY_CATALOG[code].part.padEnd(10)} ${count}`);
  }
  const shown = new Map<DiscrepancyCode, number>();
  const details: string[] = [];
  for (const d of report.discrepancies) {
    const n = shown.get(d.code) ?? 0;
    shown.set(d.code, n + 1);
    if (n >= SHOWN_PER_CODE) continue;
    const where = d.events.map((e) => `${e.streamId}@${e.revision} #${e.globalPosition} ${e.eventType}`).join('; ');
    details.push(`  ${d.code} ${d.subject}: ${d.explanation}${where ? `\n      events: ${where}` : ''}`);
  }
  if (details.length > 0) lines.push('', 'findings (first few per code; all in --json):', ...details);
  if (report.truncated) lines.push(`  ... ${report.total - report.discrepancies.length} more counted but not kept`);
  return lines.join('\n');
}
