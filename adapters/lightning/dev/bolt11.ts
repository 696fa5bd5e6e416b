// Real, signed BOLT11 requests on regtest (`lnbcrt`) for the dev network, built and parsed by the `invoices` package.

import { createRequire } from 'node:module';
import { LightningError, type DecodedInvoice } from '../../../domain/ports/lightning.js';
import { checkRequestSignature } from './bolt11-signature.js';
import { signHash, type DevKey } from './dev-keys.js';

/** The `invoices` network name for `lnbcrt`: the dev network only ever speaks regtest. */
export const DEV_NETWORK = 'regtest';
/** BOLT09 bits LND sets as required: var_onion_optin (8) and payment_secret (14). */
const REQUIRED_FEATURE_BITS = [8, 14];
const MS_PER_SECOND = 1_000;

type UnsignedRequest = { hash: string; hrp: string; tags: number[] };
type ParsedRequest = {
  id: string; destination: string; network: string; mtokens?: string;
  created_at: string; expires_at: string; cltv_delta: number; description?: string;
};
/** The slice of `invoices` (plain CommonJS, no type declarations) that this adapter uses. */
type InvoicesModule = {
  createUnsignedRequest(args: Record<string, unknown>): UnsignedRequest;
  createSignedRequest(args: { destination: string; hrp: string; signature: string; tags: number[] }): { request: string };
  parsePaymentRequest(args: { request: string }): ParsedRequest;
};
const invoices = createRequire(import.meta.url)('invoices') as InvoicesModule;

export type RequestFields = Readonly<{
  paymentHash: string;
  paymentSecretHex: string;
  amountMsat: bigint;
  createdAtMs: number;
  expirySec: number;
  cltvDelta: number;
  description: string;
}>;

/** Builds and signs a request as the payee `key`; BOLT11 timestamps are whole seconds, so createdAtMs is floored. */
export async function encodeRequest(fields: RequestFields, key: DevKey): Promise<string> {
  const createdAtSec = Math.floor(fields.createdAtMs / MS_PER_SECOND);
  const unsigned = invoices.createUnsignedRequest({
    destination: key.publicKeyHex,
    id: fields.paymentHash,
    payment: fields.paymentSecretHex,
    mtokens: fields.amountMsat.toString(),
    network: DEV_NETWORK,
    cltv_delta: fields.cltvDelta,
    created_at: new Date(createdAtSec * MS_PER_SECOND).toISOString(),
    expires_at: new Date((createdAtSec + fields.expirySec) * MS_PER_SECOND).toISOString(),
    description: fields.description,
    features: REQUIRED_FEATURE_BITS.map((bit) => ({ bit })),
  });
  const signature = await signHash(Buffer.from(unsigned.hash, 'hex'), key.secretKey);
  const signed = invoices.createSignedRequest({
    destination: key.publicKeyHex,
    hrp: unsigned.hrp,
    signature: Buffer.from(signature).toString('hex'),
    tags: unsigned.tags,
  });
  return signed.request;
}

/** Parses, checks the signature and the network; anything wrong is INVOICE_INVALID (not retryable: the string will not change). */
export async function decodeRequest(bolt11: string): Promise<DecodedInvoice> {
  if (typeof bolt11 !== 'string' || bolt11.length === 0) throw invalid('the payment request is empty');
  let parsed: ParsedRequest;
  try {
    parsed = invoices.parsePaymentRequest({ request: bolt11 });
  } catch (error) {
    // invoices 6+ checks the signature itself when the request names its destination (tag n), as ours do.
    if ((error as Error).message === 'InvalidSignatureForDestinationPublicKey') {
      throw invalid("the payment request's signature is not valid: it does not verify for the destination key the request names");
    }
    throw invalid(`the payment request does not parse as BOLT11 (${(error as Error).message})`);
  }
  const signature = await checkRequestSignature(bolt11, parsed.destination).catch((error: unknown) => ({ ok: false as const, reason: String(error) }));
  if (!signature.ok) throw invalid(`the payment request's signature is not valid: ${signature.reason}`);
  if (parsed.network !== DEV_NETWORK) throw invalid(`the payment request is for ${parsed.network}; this dev node only pays regtest (lnbcrt) requests`);
  return {
    bolt11,
    paymentHash: parsed.id,
    amountMsat: parsed.mtokens === undefined || parsed.mtokens === '0' ? null : BigInt(parsed.mtokens),
    destination: parsed.destination,
    createdAtMs: Date.parse(parsed.created_at),
    expiresAtMs: Date.parse(parsed.expires_at),
    cltvDelta: parsed.cltv_delta,
    network: parsed.network,
    description: parsed.description ?? '',
  };
}

function invalid(message: string): LightningError {
  return new LightningError('INVOICE_INVALID', `${message}. Ask the payee for a fresh request.`, false);
}
