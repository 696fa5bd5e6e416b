// Ledger part of the audit: the trial balance is zero, and per run the budget account equals its transfers (funding = paid + held + returned + fees).

import type { Discrepancy } from './catalog.js';
import type { AuditLog } from './ports.js';

export async function checkLedger(log: AuditLog, pageSize: number, onFinding: (finding: Discrepancy) => void): Promise<{ runs: number }> {
  const trial = await log.trialBalance();
  if (trial.debitsPendingMsat !== trial.creditsPendingMsat || trial.debitsPostedMsat !== trial.creditsPostedMsat) {
    onFinding({
      code: 'LEDGER_IMBALANCE',
      subject: 'ledger',
      explanation: `the trial balance is off: posted debits ${trial.debitsPostedMsat} vs credits ${trial.creditsPostedMsat}, pending debits ${trial.debitsPendingMsat} vs credits ${trial.creditsPendingMsat} (msat)`,
      events: [],
      details: Object.fromEntries(Object.entries(trial).map(([k, v]) => [k, v.toString()])),
    });
  }
  let runs = 0;
  for (let after = ''; ; ) {
    const page = await log.runFunds(after, pageSize);
    for (const run of page) {
      runs += 1;
      // What the budget account says went out and is held must be what its transfers say; the rest is returned (unspent).
      const returnedMsat = run.accountCreditsPostedMsat - run.accountDebitsPostedMsat - run.accountDebitsPendingMsat;
      const ok =
        run.accountCreditsPostedMsat === run.fundingMsat &&
        run.accountDebitsPostedMsat === run.paidMsat + run.feesMsat &&
        run.accountDebitsPendingMsat === run.heldMsat &&
        returnedMsat >= 0n;
      if (!ok) {
        onFinding({
          code: 'RUN_FUNDS_UNRECONCILED',
          subject: run.runId,
          explanation: `run ${run.runId}: funding ${run.fundingMsat} != paid ${run.paidMsat} + held ${run.heldMsat} + returned ${returnedMsat} + fees ${run.feesMsat} (msat; the budget account says credits ${run.accountCreditsPostedMsat}, debits ${run.accountDebitsPostedMsat} posted and ${run.accountDebitsPendingMsat} pending)`,
          events: [],
          details: Object.fromEntries(Object.entries({ ...run, returnedMsat }).map(([k, v]) => [k, typeof v === 'bigint' ? v.toString() : v])),
        });
      }
    }
    if (page.length < pageSize) break;
    after = page[page.length - 1]!.runId;
  }
  return { runs };
}
