// The simulated network's whole state (invoices, payments, height, balance) and its JSON form, msat as decimal strings.

import type { PaymentFailureCode } from '../../../domain/ports/lightning.js';

export const DEV_STATE_VERSION = 1;

export type InvoiceStatus = 'open' | 'accepted' | 'settled' | 'canceled';
export type CancelCause = 'wallet' | 'expired' | 'htlc_timeout';

/** One invoice of one simulated wallet. */
export type DevInvoice = {
  kind: 'hold' | 'plain';
  paymentHash: string;
  bolt11: string;
  amountMsat: bigint;
  cltvDelta: number;
  createdAtMs: number;
  expiresAtMs: number;
  status: InvoiceStatus;
  /** A plain invoice's wallet-chosen preimage from the start; a hold invoice's only once settled. */
  preimageHex: string | null;
  /** Set when the HTLC is accepted: the height at which the payee's incoming HTLC times out. */
  htlcExpiryHeight: number | null;
  canceledBecause: CancelCause | null;
};

/** One outgoing payment of the coordinator, keyed by payment hash; a retry after failure replaces it (attempt + 1). */
export type DevPayment = {
  paymentHash: string;
  bolt11: string;
  walletName: string | null;
  amountMsat: bigint;
  feeMsat: bigint;
  timeoutHeight: number;
  attempt: number;
  status: 'in_flight' | 'succeeded' | 'failed';
  /** False while a fault keeps the HTLC from reaching the payee (a lost or late reply). */
  delivered: boolean;
  failureCode: PaymentFailureCode | null;
  preimageHex: string | null;
};

export type DevState = {
  seedHex: string;
  heightBlocks: number;
  /** When the clock last mined a block (only with blockIntervalMs). */
  lastBlockAtMs: number | null;
  /** The coordinator's balance after every settled payment; in-flight payments are subtracted when spending. */
  balanceMsat: bigint;
  /** Numbers plain invoices so each gets its own seed-derived preimage. */
  plainInvoiceCount: number;
  /** wallet name -> payment hash -> invoice */
  wallets: Map<string, Map<string, DevInvoice>>;
  payments: Map<string, DevPayment>;
};

type Wire<T> = { [K in keyof T]: T[K] extends bigint ? string : T[K] extends bigint | null ? string | null : T[K] };
type DevStateWire = {
  version: number;
  seedHex: string;
  heightBlocks: number;
  lastBlockAtMs: number | null;
  balanceMsat: string;
  plainInvoiceCount: number;
  wallets: Array<{ name: string; invoices: Array<Wire<DevInvoice>> }>;
  payments: Array<Wire<DevPayment>>;
};

export function toWire(state: DevState): DevStateWire {
  return {
    version: DEV_STATE_VERSION,
    seedHex: state.seedHex,
    heightBlocks: state.heightBlocks,
    lastBlockAtMs: state.lastBlockAtMs,
    balanceMsat: state.balanceMsat.toString(),
    plainInvoiceCount: state.plainInvoiceCount,
    wallets: [...state.wallets].map(([name, invoices]) => ({
      name,
      invoices: [...invoices.values()].map((invoice) => ({ ...invoice, amountMsat: invoice.amountMsat.toString() })),
    })),
    payments: [...state.payments.values()].map((payment) => ({
      ...payment,
      amountMsat: payment.amountMsat.toString(),
      feeMsat: payment.feeMsat.toString(),
    })),
  };
}

/** Restores exactly what toWire wrote; an unknown version stops the open rather than guessing. */
export function fromWire(wire: DevStateWire): DevState {
  if (wire.version !== DEV_STATE_VERSION) throw new Error(`dev-lightning.json has version ${String(wire.version)}; this build reads version ${DEV_STATE_VERSION}`);
  const wallets = new Map<string, Map<string, DevInvoice>>();
  for (const wallet of wire.wallets) {
    wallets.set(wallet.name, new Map(wallet.invoices.map((invoice) => [invoice.paymentHash, { ...invoice, amountMsat: BigInt(invoice.amountMsat) }])));
  }
  const payments = wire.payments.map((payment): DevPayment => ({ ...payment, amountMsat: BigInt(payment.amountMsat), feeMsat: BigInt(payment.feeMsat) }));
  return {
    seedHex: wire.seedHex,
    heightBlocks: wire.heightBlocks,
    lastBlockAtMs: wire.lastBlockAtMs,
    balanceMsat: BigInt(wire.balanceMsat),
    plainInvoiceCount: wire.plainInvoiceCount,
    wallets,
    payments: new Map(payments.map((payment) => [payment.paymentHash, payment])),
  };
}

export function serializeState(state: DevState): string {
  return `${JSON.stringify(toWire(state), null, 2)}\n`;
}

export function parseState(text: string): DevState {
  return fromWire(JSON.parse(text) as DevStateWire);
}
