// Node part of the audit: what the Lightning node reports for an assignment's payment hashes, and payments the node made that the log never recorded.

import type { Discrepancy } from './catalog.js';
import type { AuditLog, NodePaymentLedger } from './ports.js';
import type { SettlementDerivation } from './settlement.js';

const HELD_IN_LOG: readonly string[] = ['held', 'releasing', 'canceling'];

/** Asks the node about the assignment's escrow and the payouts the log says went out. */
export async function nodeDiscrepancies(node: NodePaymentLedger, d: SettlementDerivation): Promise<Discrepancy[]> {
  const found: Discrepancy[] = [];
  const escrow = d.escrow;
  if (escrow !== null && escrow.state.terms !== null) {
    const hash = escrow.state.terms.paymentHash;
    const held = HELD_IN_LOG.includes(escrow.state.status) && escrow.state.heldAtMs !== null;
    if (held || escrow.state.status === 'settled') {
      const state = await node.paymentState(hash);
      if (held && state.status === 'failed') {
        found.push({ code: 'ESCROW_HELD_NODE_VOIDED', subject: hash, explanation: `assignment ${d.assignmentId}: the log holds escrow ${hash} (${escrow.state.status}), but the node says the payment failed (${state.failureCode}): it was canceled or expired`, events: escrow.events.slice(-1), details: { assignmentId: d.assignmentId, failureCode: state.failureCode } });
      } else if (escrow.state.status === 'settled' && state.status !== 'succeeded') {
        found.push({ code: 'NODE_DISAGREES_PAID', subject: hash, explanation: `assignment ${d.assignmentId}: the log says escrow ${hash} settled, the node says '${state.status}'`, events: escrow.events.slice(-1), details: { assignmentId: d.assignmentId, nodeStatus: state.status } });
      }
    }
  }
  for (const payout of [...d.attempts.bonus, ...d.attempts.compensation]) {
    if (payout.state.status !== 'sent' || payout.state.terms === null) continue;
    const state = await node.paymentState(payout.state.terms.paymentHash);
    if (state.status !== 'succeeded') {
      found.push({ code: 'NODE_DISAGREES_PAID', subject: payout.state.terms.paymentHash, explanation: `assignment ${d.assignmentId}: the log says the ${payout.state.terms.kind} payment was sent, the node says '${state.status}'`, events: payout.events.slice(-1), details: { assignmentId: d.assignmentId, nodeStatus: state.status } });
    }
  }
  return found;
}

/** Streams the node's payments page by page and looks each page's hashes up in the log's index. */
export async function checkNodePayments(node: NodePaymentLedger, log: AuditLog, pageSize: number, onFinding: (finding: Discrepancy) => void): Promise<{ payments: number }> {
  let payments = 0;
  for (let after: string | null = null; ; ) {
    const page = await node.listPayments({ after, limit: pageSize });
    payments += page.payments.length;
    const known = await log.knownPaymentHashes(page.payments.map((p) => p.paymentHash));
    for (const payment of page.payments) {
      if (known.has(payment.paymentHash)) continue;
      onFinding({ code: 'NODE_PAYMENT_WITHOUT_EVENT', subject: payment.paymentHash, explanation: `the node has a ${payment.status} payment of ${payment.amountMsat} msat for ${payment.paymentHash}, and the log has no invoice for it`, events: [], details: { status: payment.status, amountMsat: payment.amountMsat.toString() } });
    }
    if (page.next === null) break;
    after = page.next;
  }
  return { payments };
}
