// Invoice aggregate commands: open once per payment hash, then the escrow flow (hold, settle, cancel, expire) or the payout flow (sent, failed).

import type { Command } from '../decider.js';
import { DomainError, invariant, require_ } from '../errors.js';
import { requireId, requirePaymentHashHex, requirePreimageHex } from '../ids.js';
import { MAX_BLOCK_HEIGHT, MAX_BOLT11_CHARS, MAX_INVOICE_LIFETIME_MS, MAX_REASON_CHARS, MAX_TIMESTAMP_MS } from '../limits.js';
import { requireNonNegativeMsat, requirePositiveMsat } from '../money.js';
import { requireCode, requireInt, requireNowMs, requireOneOf, requireText, sameContent } from '../validate.js';
import {
  INVOICE_KINDS,
  type InvoiceEvent,
  type InvoiceKind,
  type InvoiceRef,
  type InvoiceState,
  type InvoiceStatus,
  type InvoiceTerms,
} from './invoice.state.js';

type Ref = { paymentHash: string };

export type OpenInvoice = Command<'OpenInvoice', Omit<InvoiceTerms, 'cltvExpiryHeight'> & { cltvExpiryHeight?: number | null }>;
export type MarkInvoiceHeld = Command<'MarkInvoiceHeld', Ref>;
/** The adapter has checked sha256(preimage) == paymentHash; the domain has no hash function and checks only the shape. */
export type SettleInvoice = Command<'SettleInvoice', Ref & { preimageHex: string; feeMsat?: bigint }>;
export type CancelInvoice = Command<'CancelInvoice', Ref & { reason: string }>;
/** Outbox intent: log the decision to release the preimage before the Lightning side effect happens. */
export type RequestEscrowRelease = Command<'RequestEscrowRelease', Ref & { preimageHex: string }>;
/** Outbox intent: log the decision to ask the contributor's node to cancel before asking. */
export type RequestEscrowCancel = Command<'RequestEscrowCancel', Ref & { reason: string }>;
export type ExpireInvoice = Command<'ExpireInvoice', Ref>;
export type RecordPaymentSent = Command<'RecordPaymentSent', Ref & { feeMsat: bigint; preimageHex: string }>;
export type RecordPaymentFailed = Command<'RecordPaymentFailed', Ref & { failureCode: string }>;
/** The dispatcher's word that this payout hash will never be paid: the node says failed for good, or it expired unpaid. */
export type AbandonPayment = Command<'AbandonPayment', Ref & { code: string; message: string }>;

export type InvoiceCommand =
  | OpenInvoice
  | MarkInvoiceHeld
  | RequestEscrowRelease
  | RequestEscrowCancel
  | SettleInvoice
  | CancelInvoice
  | ExpireInvoice
  | RecordPaymentSent
  | RecordPaymentFailed
  | AbandonPayment;

export function decide(command: InvoiceCommand, state: InvoiceState): InvoiceEvent[] {
  const nowMs = requireNowMs(command.metadata);
  switch (command.type) {
    case 'OpenInvoice':
      return openInvoice(command, state, nowMs);
    case 'MarkInvoiceHeld':
      return markInvoiceHeld(command, state, nowMs);
    case 'RequestEscrowRelease':
      return requestEscrowRelease(command, state, nowMs);
    case 'RequestEscrowCancel':
      return requestEscrowCancel(command, state, nowMs);
    case 'SettleInvoice':
      return settleInvoice(command, state, nowMs);
    case 'CancelInvoice':
      return cancelInvoice(command, state, nowMs);
    case 'ExpireInvoice':
      return expireInvoice(command, state, nowMs);
    case 'RecordPaymentSent':
      return recordPaymentSent(command, state, nowMs);
    case 'RecordPaymentFailed':
      return recordPaymentFailed(command, state, nowMs);
    case 'AbandonPayment':
      return abandonPayment(command, state, nowMs);
    default: {
      const unknown: never = command;
      throw new DomainError('UNKNOWN_COMMAND', `the invoice aggregate has no command ${JSON.stringify((unknown as InvoiceCommand).type)}`);
    }
  }
}

/** 'run' lets the command through, 'noop' makes it an idempotent repeat, a code refuses it. */
type StageRule = Readonly<Partial<Record<InvoiceStatus, 'run' | 'noop' | string>>>;
const ESCROW_DONE = { settled: 'ESCROW_ALREADY_SETTLED', canceled: 'ESCROW_ALREADY_CANCELED', expired: 'ESCROW_ALREADY_CANCELED' } as const;

const STAGE_RULES = {
  // An HTLC that arrives while a cancel is requested is canceled with it; it never locked money in the log.
  MarkInvoiceHeld: { ...ESCROW_DONE, open: 'run', held: 'noop', releasing: 'noop', canceling: 'noop' },
  RequestEscrowRelease: { ...ESCROW_DONE, open: 'ESCROW_NOT_HELD', held: 'run', releasing: 'noop', canceling: 'run', settled: 'noop' },
  RequestEscrowCancel: { ...ESCROW_DONE, open: 'run', held: 'run', releasing: 'ESCROW_RELEASE_REQUESTED', canceling: 'noop', canceled: 'noop', expired: 'noop' },
  SettleInvoice: { ...ESCROW_DONE, open: 'ESCROW_NOT_HELD', held: 'run', releasing: 'run', canceling: 'ESCROW_CANCEL_REQUESTED', settled: 'noop' },
  CancelInvoice: { ...ESCROW_DONE, open: 'run', held: 'run', releasing: 'run', canceling: 'run', canceled: 'noop', expired: 'noop' },
  ExpireInvoice: { ...ESCROW_DONE, open: 'run', held: 'run', releasing: 'run', canceling: 'run', canceled: 'noop', expired: 'noop' },
  RecordPaymentSent: { open: 'run', failed: 'run', sent: 'noop', abandoned: 'PAYMENT_ABANDONED' },
  // Every failed attempt is logged: the count bounds retries and the audit sees each one.
  RecordPaymentFailed: { open: 'run', failed: 'run', sent: 'PAYMENT_ALREADY_SENT', abandoned: 'noop' },
  AbandonPayment: { open: 'run', failed: 'run', sent: 'PAYMENT_ALREADY_SENT', abandoned: 'noop' },
} as const satisfies Record<Exclude<InvoiceCommand['type'], 'OpenInvoice'>, StageRule>;

const ESCROW_COMMANDS: ReadonlySet<string> = new Set(['MarkInvoiceHeld', 'RequestEscrowRelease', 'RequestEscrowCancel', 'SettleInvoice', 'CancelInvoice', 'ExpireInvoice']);

const STAGE_ADVICE: Readonly<Record<string, string>> = {
  ESCROW_ALREADY_SETTLED: 'was already settled; the contributor has been paid and nothing can undo it',
  ESCROW_ALREADY_CANCELED: 'was already canceled or expired; the payment returned to the coordinator, so pay by compensation instead',
  ESCROW_NOT_HELD: 'is not held yet; settle only after the coordinator\'s payment is locked in the HTLC',
  PAYMENT_ALREADY_SENT: 'was already paid; a later failure report is stale and is ignored',
  ESCROW_RELEASE_REQUESTED: 'already has its preimage released; wait for the contributor to settle or for the HTLC to time out',
  ESCROW_CANCEL_REQUESTED: 'has a cancel request outstanding and its preimage was never released',
  PAYMENT_ABANDONED: 'was abandoned as never to be paid; a success report for it contradicts the node\'s earlier word',
};

/** Returns 'run' or 'noop' for a command allowed in this state; throws the refusal code otherwise. */
function stage(state: InvoiceState, paymentHash: string, command: keyof typeof STAGE_RULES): { terms: InvoiceTerms; noop: boolean } {
  const terms = state.terms;
  require_(terms !== null, 'INVOICE_NOT_FOUND', `no invoice with payment hash ${paymentHash} is recorded; open it first`, { paymentHash });
  invariant(terms.paymentHash === paymentHash, `command for invoice ${paymentHash} decided against ${terms.paymentHash}`);
  const wantsEscrow = ESCROW_COMMANDS.has(command);
  require_(
    wantsEscrow === (terms.kind === 'escrow'),
    'WRONG_INVOICE_KIND',
    `${command} applies to ${wantsEscrow ? 'escrow hold invoices' : 'bonus and compensation payouts'}, but ${paymentHash} is a ${terms.kind} invoice`,
    {
      paymentHash,
      kind: terms.kind,
    },
  );
  const rule: string | undefined = (STAGE_RULES[command] as StageRule)[state.status];
  invariant(rule !== undefined, `${terms.kind} invoice ${paymentHash} in impossible status ${state.status}`);
  if (rule === 'run' || rule === 'noop') return { terms, noop: rule === 'noop' };
  throw new DomainError(rule, `invoice ${paymentHash} ${STAGE_ADVICE[rule] ?? 'cannot take this command'}`, { paymentHash, status: state.status });
}

function refOf(terms: InvoiceTerms, atMs: number): InvoiceRef {
  const { paymentHash, kind, assignmentId, runId, contributorId, amountMsat } = terms;
  return { paymentHash, kind, assignmentId, runId, contributorId, amountMsat, atMs };
}

const BOLT11_PATTERN = /^(ln[0-9a-z]+|LN[0-9A-Z]+)$/;

function validBolt11(value: unknown): string {
  if (typeof value === 'string' && value.length <= MAX_BOLT11_CHARS && BOLT11_PATTERN.test(value)) return value;
  throw new DomainError('INVALID_BOLT11', `bolt11 must be a BOLT11 payment request (starting "ln", one letter case, at most ${MAX_BOLT11_CHARS} characters)`, { field: 'bolt11' });
}

function validCltv(kind: InvoiceKind, value: unknown): number | null {
  if (kind === 'escrow') return requireInt(value, 'cltvExpiryHeight', 1, MAX_BLOCK_HEIGHT, 'INVALID_CLTV');
  require_(
    value === undefined || value === null,
    'INVALID_CLTV',
    `a ${kind} payout carries no cltvExpiryHeight; only escrow hold invoices do`,
    { field: 'cltvExpiryHeight' },
  );
  return null;
}

function validTerms(data: OpenInvoice['data']): InvoiceTerms {
  const kind = requireOneOf(data.kind, 'kind', INVOICE_KINDS);
  requirePositiveMsat(data.amountMsat, 'amountMsat');
  return {
    paymentHash: requirePaymentHashHex(data.paymentHash),
    kind,
    assignmentId: requireId(data.assignmentId, 'assignmentId'),
    runId: requireId(data.runId, 'runId'),
    contributorId: requireId(data.contributorId, 'contributorId'),
    amountMsat: data.amountMsat,
    bolt11: validBolt11(data.bolt11),
    expiresAtMs: requireInt(data.expiresAtMs, 'expiresAtMs', 0, MAX_TIMESTAMP_MS + MAX_INVOICE_LIFETIME_MS),
    cltvExpiryHeight: validCltv(kind, data.cltvExpiryHeight),
    ...(data.maxFeeMsat === undefined ? {} : { maxFeeMsat: nonNegative(data.maxFeeMsat, 'maxFeeMsat') }),
  };
}

function nonNegative(amountMsat: bigint, field: string): bigint {
  requireNonNegativeMsat(amountMsat, field);
  return amountMsat;
}

function openInvoice(command: OpenInvoice, state: InvoiceState, nowMs: number): InvoiceEvent[] {
  const terms = validTerms(command.data);
  if (state.terms !== null) {
    // A payment hash is used once: a retry with the same terms is harmless, anything else could pay twice.
    if (sameContent(state.terms, terms)) return [];
    throw new DomainError('PAYMENT_HASH_REUSED', `payment hash ${terms.paymentHash} is already used by another invoice; every invoice needs a fresh payment hash`, {
      paymentHash: terms.paymentHash,
    });
  }
  require_(
    terms.expiresAtMs > nowMs && terms.expiresAtMs - nowMs <= MAX_INVOICE_LIFETIME_MS,
    'INVALID_EXPIRY',
    `expiresAtMs must be after now and at most ${MAX_INVOICE_LIFETIME_MS} ms ahead; ask for an invoice with a sensible expiry`,
    { paymentHash: terms.paymentHash },
  );
  return [{ type: 'InvoiceOpened', data: { ...terms, atMs: nowMs } }];
}

function markInvoiceHeld(command: MarkInvoiceHeld, state: InvoiceState, nowMs: number): InvoiceEvent[] {
  const paymentHash = requirePaymentHashHex(command.data.paymentHash);
  const { terms, noop } = stage(state, paymentHash, 'MarkInvoiceHeld');
  return noop ? [] : [{ type: 'InvoiceHeld', data: refOf(terms, nowMs) }];
}

function requestEscrowRelease(command: RequestEscrowRelease, state: InvoiceState, nowMs: number): InvoiceEvent[] {
  const paymentHash = requirePaymentHashHex(command.data.paymentHash);
  const preimageHex = requirePreimageHex(command.data.preimageHex);
  const { terms, noop } = stage(state, paymentHash, 'RequestEscrowRelease');
  if (noop) return samePreimage(state, preimageHex, paymentHash);
  // From 'canceling' only while the HTLC is still held: an escrow that never locked money cannot be released.
  require_(state.heldAtMs !== null, 'ESCROW_NOT_HELD', `invoice ${paymentHash} ${STAGE_ADVICE.ESCROW_NOT_HELD}`, { paymentHash, status: state.status });
  return [{ type: 'EscrowReleaseRequested', data: { ...refOf(terms, nowMs), preimageHex } }];
}

function requestEscrowCancel(command: RequestEscrowCancel, state: InvoiceState, nowMs: number): InvoiceEvent[] {
  const paymentHash = requirePaymentHashHex(command.data.paymentHash);
  const reason = requireText(command.data.reason, 'reason', MAX_REASON_CHARS);
  const { terms, noop } = stage(state, paymentHash, 'RequestEscrowCancel');
  return noop ? [] : [{ type: 'EscrowCancelRequested', data: { ...refOf(terms, nowMs), reason } }];
}

function settleInvoice(command: SettleInvoice, state: InvoiceState, nowMs: number): InvoiceEvent[] {
  const paymentHash = requirePaymentHashHex(command.data.paymentHash);
  const preimageHex = requirePreimageHex(command.data.preimageHex);
  const feeMsat = command.data.feeMsat ?? 0n;
  requireNonNegativeMsat(feeMsat, 'feeMsat');
  const { terms, noop } = stage(state, paymentHash, 'SettleInvoice');
  if (noop) return samePreimage(state, preimageHex, paymentHash);
  return [{ type: 'InvoiceSettled', data: { ...refOf(terms, nowMs), preimageHex, feeMsat } }];
}

/** A repeat is a no-op only with the preimage already recorded; another one means the caller's check is broken. */
function samePreimage(state: InvoiceState, preimageHex: string, paymentHash: string): InvoiceEvent[] {
  require_(
    state.preimageHex === preimageHex,
    'PREIMAGE_MISMATCH',
    `invoice ${paymentHash} was completed with another preimage; check that sha256(preimage) equals the payment hash`,
    { paymentHash },
  );
  return [];
}

function cancelInvoice(command: CancelInvoice, state: InvoiceState, nowMs: number): InvoiceEvent[] {
  const paymentHash = requirePaymentHashHex(command.data.paymentHash);
  const reason = requireText(command.data.reason, 'reason', MAX_REASON_CHARS);
  const { terms, noop } = stage(state, paymentHash, 'CancelInvoice');
  return noop ? [] : [{ type: 'InvoiceCanceled', data: { ...refOf(terms, nowMs), reason, wasHeld: state.heldAtMs !== null } }];
}

function expireInvoice(command: ExpireInvoice, state: InvoiceState, nowMs: number): InvoiceEvent[] {
  const paymentHash = requirePaymentHashHex(command.data.paymentHash);
  const { terms, noop } = stage(state, paymentHash, 'ExpireInvoice');
  if (noop) return [];
  require_(
    nowMs >= terms.expiresAtMs,
    'NOT_YET_EXPIRED',
    `invoice ${paymentHash} expires at ${terms.expiresAtMs} and it is now ${nowMs}; try again after expiry`,
    {
      paymentHash,
      expiresAtMs: terms.expiresAtMs,
    },
  );
  return [{ type: 'InvoiceExpired', data: { ...refOf(terms, nowMs), expiresAtMs: terms.expiresAtMs, wasHeld: state.heldAtMs !== null } }];
}

function recordPaymentSent(command: RecordPaymentSent, state: InvoiceState, nowMs: number): InvoiceEvent[] {
  const paymentHash = requirePaymentHashHex(command.data.paymentHash);
  const preimageHex = requirePreimageHex(command.data.preimageHex);
  const { feeMsat } = command.data;
  requireNonNegativeMsat(feeMsat, 'feeMsat');
  const { terms, noop } = stage(state, paymentHash, 'RecordPaymentSent');
  if (noop) return samePreimage(state, preimageHex, paymentHash);
  return [{ type: 'PaymentSent', data: { ...refOf(terms, nowMs), feeMsat, preimageHex } }];
}

function recordPaymentFailed(command: RecordPaymentFailed, state: InvoiceState, nowMs: number): InvoiceEvent[] {
  const paymentHash = requirePaymentHashHex(command.data.paymentHash);
  const failureCode = requireCode(command.data.failureCode, 'failureCode');
  const { terms, noop } = stage(state, paymentHash, 'RecordPaymentFailed');
  return noop ? [] : [{ type: 'PaymentFailed', data: { ...refOf(terms, nowMs), failureCode } }];
}

function abandonPayment(command: AbandonPayment, state: InvoiceState, nowMs: number): InvoiceEvent[] {
  const paymentHash = requirePaymentHashHex(command.data.paymentHash);
  const code = requireCode(command.data.code, 'code');
  const message = requireText(command.data.message, 'message', MAX_REASON_CHARS);
  const { terms, noop } = stage(state, paymentHash, 'AbandonPayment');
  return noop ? [] : [{ type: 'PaymentAbandoned', data: { ...refOf(terms, nowMs), code, message } }];
}
