// Maps LND's decoded payment request (via ln-service) to the port's DecodedInvoice, msat as bigint.

import type { DecodePaymentRequestResult } from 'ln-service';
import { LightningError, type DecodedInvoice } from '../../../domain/ports/lightning.js';

/** BOLT 11's default min_final_cltv_expiry, for a request that does not state one. */
export const BOLT11_DEFAULT_CLTV_DELTA = 18;

/** BOLT 11 currency prefixes, named as ln-service's `invoices` package names networks. */
const NETWORKS: Readonly<Record<string, string>> = Object.freeze({ bc: 'bitcoin', bcrt: 'regtest', tb: 'testnet', tbs: 'signet', sb: 'simnet' });

/** ln-service's typings omit created_at, which its decoder always sets. */
export type LndDecodedRequest = DecodePaymentRequestResult & { created_at?: string };

export function decodedInvoiceFrom(bolt11: string, decoded: LndDecodedRequest): DecodedInvoice {
  const createdAtMs = Date.parse(decoded.created_at ?? '');
  const expiresAtMs = Date.parse(decoded.expires_at);
  if (!Number.isFinite(createdAtMs) || !Number.isFinite(expiresAtMs)) {
    throw new LightningError('LND_UNEXPECTED_RESPONSE', `LND decoded the payment request without valid created/expiry dates (${decoded.created_at}, ${decoded.expires_at})`, true);
  }
  // LND reports an amountless request as 0 msat; a real request can never ask for 0.
  const amountMsat = BigInt(decoded.mtokens || '0');
  return {
    bolt11,
    paymentHash: decoded.id.toLowerCase(),
    amountMsat: amountMsat === 0n ? null : amountMsat,
    destination: decoded.destination.toLowerCase(),
    createdAtMs,
    expiresAtMs,
    cltvDelta: decoded.cltv_delta ?? BOLT11_DEFAULT_CLTV_DELTA,
    network: networkOfBolt11(bolt11),
    description: decoded.description ?? '',
  };
}

/**
 * The network from the request's human-readable part, `ln` + currency + optional amount (lnbcrt10u1...):
 * LND's decoder does not report it, and LND has already refused a request for another network.
 */
export function networkOfBolt11(bolt11: string): string {
  const text = bolt11.trim().toLowerCase().replace(/^lightning:/, '');
  const hrp = text.slice(0, text.lastIndexOf('1'));
  const currency = /^ln([a-z]+?)(?:\d+[munp]?)?$/.exec(hrp)?.[1];
  const network = currency === undefined ? undefined : NETWORKS[currency];
  if (network === undefined) throw new LightningError('INVOICE_INVALID', `the payment request's prefix ${JSON.stringify(hrp)} names no known network; expected lnbc, lntb, lntbs, lnbcrt or lnsb`, false);
  return network;
}
