// The Lightning ports: the coordinator's node (check, pay, track) and a contributor's wallet (hold invoices).

/** A BOLT11 payment request as decoded and signature-checked by the node. */
export type DecodedInvoice = Readonly<{
  bolt11: string;
  paymentHash: string;
  /** null for an amountless request: escrow and payouts always refuse those. */
  amountMsat: bigint | null;
  /** The payee's node public key (66 hex), recovered from the request's signature. */
  destination: string;
  createdAtMs: number;
  expiresAtMs: number;
  /** min_final_cltv_expiry: blocks the payee asks for on the last hop. */
  cltvDelta: number;
  network: string;
  description: string;
}>;

/** What the coordinator's node knows about one outgoing payment, keyed by payment hash. */
export type PaymentState =
  | Readonly<{ status: 'unknown' }>
  /** HTLCs are out. For a hold invoice this is "escrow locked": the payee holds them. */
  | Readonly<{ status: 'in_flight'; amountMsat: bigint; timeoutHeight: number }>
  | Readonly<{ status: 'succeeded'; amountMsat: bigint; feeMsat: bigint; preimageHex: string }>
  | Readonly<{ status: 'failed'; failureCode: PaymentFailureCode }>;

export type PaymentFailureCode =
  | 'NO_ROUTE'
  | 'INSUFFICIENT_BALANCE'
  | 'PAYEE_REJECTED'
  | 'TIMEOUT'
  | 'INVOICE_EXPIRED'
  | 'FEE_LIMIT_EXCEEDED';

export type PayRequest = Readonly<{
  bolt11: string;
  /** Must equal the request's hash: the node refuses to pay anything else. */
  paymentHash: string;
  amountMsat: bigint;
  /** Upper bound on routing fees. */
  maxFeeMsat: bigint;
  /** No HTLC of this payment may time out later than this block height: bounds how long funds can be locked. */
  maxTimeoutHeight: number;
}>;

/** The coordinator's own node. Every method is idempotent per payment hash. */
export interface CoordinatorNode {
  /** The coordinator node's public key. */
  publicKey(): Promise<string>;
  blockHeight(): Promise<number>;
  decodeInvoice(bolt11: string): Promise<DecodedInvoice>;
  /**
   * Starts paying and returns once the payment is in flight or final. Paying a
   * hash that is already in flight or succeeded returns its state; it never
   * sends a second payment for the same hash.
   */
  pay(request: PayRequest): Promise<PaymentState>;
  paymentState(paymentHash: string): Promise<PaymentState>;
  /**
   * Streams a hint each time one of this node's outgoing payments changes (an HTLC out and held
   * at the payee, succeeded because the payee settled, failed because it canceled or timed out).
   * For a hold invoice this is the coordinator's view of the escrow invoice's updates (LND:
   * ln-service's subscribeToPayments, routerrpc TrackPayments). Resolves once subscribed; the
   * stream may end at any time (a node restart), and then `onDrop` is called once and nothing more.
   */
  subscribeToPayments(listener: UpdateListener): Promise<UpdateSubscription>;
  close(): Promise<void>;
}

/**
 * What a node says changed about one payment hash. Only a hint: it may come late, twice, out of
 * order, or be forged by whatever sits between the node and us. A receiver never decides from it;
 * it asks the node about that one hash (paymentState, holdInvoiceState) and decides from that
 * answer and the log.
 */
export type InvoiceUpdate = Readonly<{
  paymentHash: string;
  /** What the source claims the state now is: a payment's (coordinator) or an invoice's (wallet) status. */
  status: PaymentState['status'] | HoldInvoiceState['status'];
}>;

export type UpdateListener = Readonly<{
  onUpdate: (update: InvoiceUpdate) => void;
  /** The stream ended (node restart, network, the node closed). Called at most once; subscribe again to resume. */
  onDrop: (error: LightningError) => void;
}>;

export interface UpdateSubscription {
  /** Ends the stream; onDrop is not called for a close the subscriber asked for. Closing twice is a no-op. */
  close(): Promise<void>;
}

export type HoldInvoiceState =
  | Readonly<{ status: 'open' }>
  /** The HTLC arrived and is held: the coordinator's money is committed. */
  | Readonly<{ status: 'accepted'; amountMsat: bigint; htlcExpiryHeight: number }>
  | Readonly<{ status: 'settled'; preimageHex: string }>
  | Readonly<{ status: 'canceled' }>
  | Readonly<{ status: 'unknown' }>;

/** A contributor's wallet as the protocol needs it; the coordinator never holds this for real money. */
export interface ContributorWallet {
  publicKey(): Promise<string>;
  /** A hold invoice for a hash the coordinator chose; the wallet never sees the preimage until release. */
  createHoldInvoice(request: Readonly<{ paymentHash: string; amountMsat: bigint; expirySec: number; cltvDelta: number; description: string }>): Promise<string>;
  /** A plain invoice (the wallet picks the preimage), for bonus and compensation payouts. */
  createInvoice(request: Readonly<{ amountMsat: bigint; expirySec: number; description: string }>): Promise<{ bolt11: string; paymentHash: string }>;
  holdInvoiceState(paymentHash: string): Promise<HoldInvoiceState>;
  /** Settles a held HTLC with the released preimage; settling twice is a no-op. */
  settleHoldInvoice(preimageHex: string): Promise<void>;
  /** Cancels an open or held hold invoice; canceling twice is a no-op. */
  cancelHoldInvoice(paymentHash: string): Promise<void>;
  /**
   * Every state change of one invoice: open, accepted (the HTLC is held), settled, canceled
   * (by the wallet, at expiry, or at the HTLC's timeout). LND: ln-service's subscribeToInvoice.
   */
  subscribeToInvoice(paymentHash: string, listener: UpdateListener): Promise<UpdateSubscription>;
  /**
   * Changes of any of this wallet's invoices. LND (ln-service's subscribeToInvoices) sends only
   * additions and settlements here; a held or canceled hold invoice shows on subscribeToInvoice.
   */
  subscribeToInvoices(listener: UpdateListener): Promise<UpdateSubscription>;
}

export class LightningError extends Error {
  override readonly name = 'LightningError';
  constructor(
    /** Stable code: NODE_UNAVAILABLE, INVOICE_INVALID, INVOICE_MISMATCH, PAYMENT_HASH_REUSED, TIMEOUT, ... */
    readonly code: string,
    message: string,
    readonly retryable: boolean,
  ) {
    super(message);
  }
}

/**
 * How the coordinator reaches a contributor about one escrow. In production the released
 * preimage is in the log and the contributor fetches it over the API; the development
 * network settles and cancels through its simulated wallets.
 */
export interface ContributorChannel {
  /** Hands the preimage to the contributor so their node can settle the held HTLC. */
  releasePreimage(request: Readonly<{ contributorId: string; paymentHash: string; preimageHex: string }>): Promise<void>;
  /** Asks the contributor's node to cancel; only it can, and it may not. */
  requestCancel(request: Readonly<{ contributorId: string; paymentHash: string }>): Promise<void>;
}
