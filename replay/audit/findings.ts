// Collects an audit's findings with bounded memory: every code is counted, only the first N findings are kept in full.

import { invariant } from '../../domain/errors.js';
import { DISCREPANCY_CODES, type Discrepancy, type DiscrepancyCode } from './catalog.js';

export const DEFAULT_MAX_FINDINGS = 1_000;

export class Findings {
  readonly kept: Discrepancy[] = [];
  readonly counts: Record<DiscrepancyCode, number> = Object.fromEntries(DISCREPANCY_CODES.map((code) => [code, 0])) as Record<DiscrepancyCode, number>;
  total = 0;

  constructor(readonly maxKept: number = DEFAULT_MAX_FINDINGS) {
    invariant(Number.isSafeInteger(maxKept) && maxKept >= 0, 'max findings must be a whole number');
  }

  add(finding: Discrepancy): void {
    this.counts[finding.code] += 1;
    this.total += 1;
    if (this.kept.length < this.maxKept) this.kept.push(finding);
  }

  addAll(findings: readonly Discrepancy[]): void {
    for (const finding of findings) this.add(finding);
  }
}
