// The double-entry book in memory for one batch: accounts and two-phase transfers, invariants asserted per event.

import type { DomainEvent } from '../../domain/events.js';
import { invariant } from '../../domain/errors.js';

export type AccountKind = 'customer_revenue' | 'subsidy_pool' | 'run_budget' | 'contributor' | 'routing_fees';
export type TransferKind = 'funding' | 'escrow' | 'bonus' | 'compensation' | 'fee';
export type TransferStatus = 'pending' | 'posted' | 'voided';

export type Account = {
  accountId: string;
  kind: AccountKind;
  runId: string | null;
  contributorId: string | null;
  debitsPendingMsat: bigint;
  debitsPostedMsat: bigint;
  creditsPendingMsat: bigint;
  creditsPostedMsat: bigint;
};

/** An account's four running sums. */
export type AccountBalances = Readonly<Pick<Account, 'debitsPendingMsat' | 'debitsPostedMsat' | 'creditsPendingMsat' | 'creditsPostedMsat'>>;

export function balancesOf(a: AccountBalances): AccountBalances {
  return { debitsPendingMsat: a.debitsPendingMsat, debitsPostedMsat: a.debitsPostedMsat, creditsPendingMsat: a.creditsPendingMsat, creditsPostedMsat: a.creditsPostedMsat };
}

const ZERO_BALANCES: AccountBalances = { debitsPendingMsat: 0n, debitsPostedMsat: 0n, creditsPendingMsat: 0n, creditsPostedMsat: 0n };

/**
 * How the accounts in `after` moved from `opening` (an account missing there opened at zero), summed: a
 * batch that keeps the ledger balanced moves debits and credits by the same amount, pending and posted.
 */
export function balanceChange(opening: ReadonlyMap<string, AccountBalances>, after: ReadonlyMap<string, AccountBalances>): AccountBalances {
  let debitsPendingMsat = 0n;
  let debitsPostedMsat = 0n;
  let creditsPendingMsat = 0n;
  let creditsPostedMsat = 0n;
  for (const [accountId, now] of after) {
    const was = opening.get(accountId) ?? ZERO_BALANCES;
    debitsPendingMsat += now.debitsPendingMsat - was.debitsPendingMsat;
    debitsPostedMsat += now.debitsPostedMsat - was.debitsPostedMsat;
    creditsPendingMsat += now.creditsPendingMsat - was.creditsPendingMsat;
    creditsPostedMsat += now.creditsPostedMsat - was.creditsPostedMsat;
  }
  return { debitsPendingMsat, debitsPostedMsat, creditsPendingMsat, creditsPostedMsat };
}

export type Transfer = {
  transferId: string;
  kind: TransferKind;
  debitAccountId: string;
  creditAccountId: string;
  amountMsat: bigint;
  status: TransferStatus;
  runId: string;
  assignmentId: string | null;
  paymentHash: string | null;
  createdAtMs: number;
  resolvedAtMs: number | null;
};

export type LedgerInvoice = { paymentHash: string; kind: string; runId: string; contributorId: string; assignmentId: string; amountMsat: bigint };

export const CUSTOMER_REVENUE_ACCOUNT = 'customer-revenue';
export const SUBSIDY_POOL_ACCOUNT = 'subsidy-pool';
export const ROUTING_FEES_ACCOUNT = 'routing-fees';
export const runAccountId = (runId: string): string => `run:${runId}`;
export const contributorAccountId = (contributorId: string): string => `contributor:${contributorId}`;

type NewTransfer = Omit<Transfer, 'status' | 'resolvedAtMs'>;

/**
 * Holds the accounts, transfers and invoices one batch touches. The projector
 * loads them, applies events here, and writes back whatever became dirty.
 */
export class LedgerBook {
  readonly dirtyAccounts = new Set<string>();
  readonly dirtyTransfers = new Set<string>();
  readonly newInvoices = new Set<string>();

  constructor(
    readonly accounts: Map<string, Account>,
    readonly transfers: Map<string, Transfer>,
    readonly invoices: Map<string, LedgerInvoice>,
  ) {}

  apply(event: DomainEvent): void {
    switch (event.type) {
      case 'RunFunded': {
        const { runId, fundingId, source, amountMsat, atMs } = event.data;
        const from =
          source === 'customer'
            ? this.ensure(CUSTOMER_REVENUE_ACCOUNT, 'customer_revenue', null, null)
            : this.ensure(SUBSIDY_POOL_ACCOUNT, 'subsidy_pool', null, null);
        this.postTransfer({ transferId: `funding:${runId}:${fundingId}`, kind: 'funding', debitAccountId: from, creditAccountId: this.run(runId), amountMsat, runId, assignmentId: null, paymentHash: null, createdAtMs: atMs });
        return;
      }
      case 'InvoiceOpened': {
        const d = event.data;
        invariant(!this.invoices.has(d.paymentHash), `invoice ${d.paymentHash} opened twice in the ledger`);
        this.invoices.set(d.paymentHash, { paymentHash: d.paymentHash, kind: d.kind, runId: d.runId, contributorId: d.contributorId, assignmentId: d.assignmentId, amountMsat: d.amountMsat });
        this.newInvoices.add(d.paymentHash);
        return;
      }
      case 'InvoiceHeld': {
        const invoice = this.invoice(event.data.paymentHash);
        invariant(invoice.kind === 'escrow', `only escrow invoices are held, ${invoice.paymentHash} is ${invoice.kind}`);
        this.pendingTransfer(escrowTransfer(invoice, this.run(invoice.runId), this.contributor(invoice.contributorId), event.data.atMs));
        return;
      }
      case 'InvoiceSettled': {
        this.postPending(`escrow:${event.data.paymentHash}`, event.data.atMs);
        // The fee to lock the HTLC is paid once it settles; settlements logged before fees were recorded carry none.
        const feeMsat = event.data.feeMsat ?? 0n;
        if (feeMsat > 0n) this.postFee(this.invoice(event.data.paymentHash), feeMsat, event.data.atMs);
        return;
      }
      case 'InvoiceCanceled':
      case 'InvoiceExpired': {
        const transferId = `escrow:${event.data.paymentHash}`;
        // An escrow that was never held locked no money: there is nothing to void.
        invariant(this.transfers.has(transferId) === event.data.wasHeld, `escrow ${transferId} held=${event.data.wasHeld} disagrees with the ledger`);
        if (event.data.wasHeld) this.voidPending(transferId, event.data.atMs);
        return;
      }
      case 'PaymentSent':
        this.payout(event.data.paymentHash, event.data.feeMsat, event.data.atMs);
        return;
      default:
        return;
    }
  }

  /** Σ debits = Σ credits over the given accounts, pending and posted alike. */
  static assertBalanced(totals: { debitsPendingMsat: bigint; creditsPendingMsat: bigint; debitsPostedMsat: bigint; creditsPostedMsat: bigint }): void {
    invariant(totals.debitsPendingMsat === totals.creditsPendingMsat, `ledger out of balance: pending debits ${totals.debitsPendingMsat} != pending credits ${totals.creditsPendingMsat}`);
    invariant(totals.debitsPostedMsat === totals.creditsPostedMsat, `ledger out of balance: posted debits ${totals.debitsPostedMsat} != posted credits ${totals.creditsPostedMsat}`);
  }

  private payout(paymentHash: string, feeMsat: bigint, atMs: number): void {
    const invoice = this.invoice(paymentHash);
    invariant(invoice.kind === 'bonus' || invoice.kind === 'compensation', `PaymentSent on ${invoice.kind} invoice ${paymentHash}`);
    const run = this.run(invoice.runId);
    const common = { runId: invoice.runId, assignmentId: invoice.assignmentId, paymentHash, createdAtMs: atMs };
    this.postTransfer({ ...common, transferId: `payout:${paymentHash}`, kind: invoice.kind, debitAccountId: run, creditAccountId: this.contributor(invoice.contributorId), amountMsat: invoice.amountMsat });
    if (feeMsat > 0n) this.postFee(invoice, feeMsat, atMs);
  }

  private postFee(invoice: LedgerInvoice, feeMsat: bigint, atMs: number): void {
    const common = { runId: invoice.runId, assignmentId: invoice.assignmentId, paymentHash: invoice.paymentHash, createdAtMs: atMs };
    this.postTransfer({ ...common, transferId: `fee:${invoice.paymentHash}`, kind: 'fee', debitAccountId: this.run(invoice.runId), creditAccountId: this.fees(), amountMsat: feeMsat });
  }

  private postTransfer(transfer: NewTransfer): void {
    this.createTransfer(transfer, 'posted');
    this.account(transfer.debitAccountId).debitsPostedMsat += transfer.amountMsat;
    this.account(transfer.creditAccountId).creditsPostedMsat += transfer.amountMsat;
    this.assertRunBudget(transfer.debitAccountId);
  }

  private pendingTransfer(transfer: NewTransfer): void {
    this.createTransfer(transfer, 'pending');
    this.account(transfer.debitAccountId).debitsPendingMsat += transfer.amountMsat;
    this.account(transfer.creditAccountId).creditsPendingMsat += transfer.amountMsat;
    this.assertRunBudget(transfer.debitAccountId);
  }

  private postPending(transferId: string, atMs: number): void {
    const transfer = this.resolvePending(transferId, 'posted', atMs);
    const debit = this.account(transfer.debitAccountId);
    const credit = this.account(transfer.creditAccountId);
    debit.debitsPendingMsat -= transfer.amountMsat;
    debit.debitsPostedMsat += transfer.amountMsat;
    credit.creditsPendingMsat -= transfer.amountMsat;
    credit.creditsPostedMsat += transfer.amountMsat;
    this.assertRunBudget(transfer.debitAccountId);
  }

  private voidPending(transferId: string, atMs: number): void {
    const transfer = this.resolvePending(transferId, 'voided', atMs);
    this.account(transfer.debitAccountId).debitsPendingMsat -= transfer.amountMsat;
    this.account(transfer.creditAccountId).creditsPendingMsat -= transfer.amountMsat;
  }

  private createTransfer(transfer: NewTransfer, status: TransferStatus): void {
    invariant(transfer.amountMsat > 0n, `transfer ${transfer.transferId} must move a positive amount, got ${transfer.amountMsat}`);
    invariant(transfer.debitAccountId !== transfer.creditAccountId, `transfer ${transfer.transferId} debits and credits the same account`);
    // A second creation means an event was applied twice: exactly what must never happen.
    invariant(!this.transfers.has(transfer.transferId), `transfer ${transfer.transferId} already exists`);
    this.transfers.set(transfer.transferId, { ...transfer, status, resolvedAtMs: null });
    this.dirtyTransfers.add(transfer.transferId);
  }

  private resolvePending(transferId: string, status: 'posted' | 'voided', atMs: number): Transfer {
    const transfer = this.transfers.get(transferId);
    invariant(transfer !== undefined, `no pending transfer ${transferId} to ${status === 'posted' ? 'post' : 'void'}`);
    invariant(transfer.status === 'pending', `transfer ${transferId} is ${transfer.status}, it cannot become ${status}`);
    transfer.status = status;
    transfer.resolvedAtMs = atMs;
    this.dirtyTransfers.add(transferId);
    return transfer;
  }

  /** TigerBeetle's debits-must-not-exceed-credits, on run budgets: posted and pending debits both count. */
  private assertRunBudget(accountId: string): void {
    const account = this.account(accountId);
    if (account.kind !== 'run_budget') return;
    const availableMsat = account.creditsPostedMsat - account.debitsPostedMsat - account.debitsPendingMsat;
    invariant(availableMsat >= 0n, `run budget ${accountId} would go below zero (${availableMsat} msat)`);
  }

  private invoice(paymentHash: string): LedgerInvoice {
    const invoice = this.invoices.get(paymentHash);
    invariant(invoice !== undefined, `invoice ${paymentHash} has events but was never opened`);
    return invoice;
  }

  private account(accountId: string): Account {
    const account = this.accounts.get(accountId);
    invariant(account !== undefined, `account ${accountId} was not loaded for this batch`);
    this.dirtyAccounts.add(accountId);
    return account;
  }

  private run(runId: string): string {
    return this.ensure(runAccountId(runId), 'run_budget', runId, null);
  }
  private contributor(contributorId: string): string {
    return this.ensure(contributorAccountId(contributorId), 'contributor', null, contributorId);
  }
  private fees(): string {
    return this.ensure(ROUTING_FEES_ACCOUNT, 'routing_fees', null, null);
  }

  ensure(accountId: string, kind: AccountKind, runId: string | null, contributorId: string | null): string {
    if (!this.accounts.has(accountId)) {
      this.accounts.set(accountId, { accountId, kind, runId, contributorId, debitsPendingMsat: 0n, debitsPostedMsat: 0n, creditsPendingMsat: 0n, creditsPostedMsat: 0n });
      this.dirtyAccounts.add(accountId);
    }
    return accountId;
  }
}

function escrowTransfer(invoice: LedgerInvoice, run: string, contributor: string, atMs: number): NewTransfer {
  return {
    transferId: `escrow:${invoice.paymentHash}`,
    kind: 'escrow',
    debitAccountId: run,
    creditAccountId: contributor,
    amountMsat: invoice.amountMsat,
    runId: invoice.runId,
    assignmentId: invoice.assignmentId,
    paymentHash: invoice.paymentHash,
    createdAtMs: atMs,
  };
}
