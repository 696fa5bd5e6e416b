// Pages through every payment an LND node made (succeeded, in flight, failed) for the audit's node-payment check, via ln-service.

import { getFailedPayments, getPayments, getPendingPayments, type AuthenticatedLnd } from 'ln-service';
import type { NodePayment, NodePaymentPage } from '../../../replay/audit/ports.js';
import { callLnd } from './lnd-connection.js';

/** LND lists each status with its own call and its own paging token; the audit's token is "<phase>:<LND token>". */
const PHASES = ['succeeded', 'in_flight', 'failed'] as const;
type Phase = (typeof PHASES)[number];

type Listed = { payments: readonly { id: string; mtokens: string }[]; next?: string };

function listPhase(lnd: AuthenticatedLnd, phase: Phase, paging: { limit: number } | { token: string }): Promise<Listed> {
  if (phase === 'succeeded') return getPayments({ lnd, ...paging });
  if (phase === 'in_flight') return getPendingPayments({ lnd, ...paging });
  return getFailedPayments({ lnd, ...paging });
}

export async function listLndPayments(lnd: AuthenticatedLnd, timeoutMs: number, page: Readonly<{ after: string | null; limit: number }>): Promise<NodePaymentPage> {
  let phaseIndex = 0;
  let token: string | null = null;
  if (page.after !== null) {
    const split = page.after.indexOf(':');
    phaseIndex = PHASES.indexOf(page.after.slice(0, split) as Phase);
    if (split < 0 || phaseIndex < 0) throw new RangeError(`not a payment-list token: ${page.after}`);
    token = page.after.slice(split + 1) || null;
  }
  const phase = PHASES[phaseIndex]!;
  const listed = await callLnd(`list ${phase} payments`, timeoutMs, () => listPhase(lnd, phase, token === null ? { limit: page.limit } : { token }));
  const payments: NodePayment[] = listed.payments.map((p) => ({ paymentHash: p.id, status: phase, amountMsat: BigInt(p.mtokens) }));
  const next = listed.next ? `${phase}:${listed.next}` : phaseIndex + 1 < PHASES.length ? `${PHASES[phaseIndex + 1]}:` : null;
  return { payments, next };
}
