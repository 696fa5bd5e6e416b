// Millisatoshi amounts: bigint in code, decimal strings on the wire, limits named once.

import { DomainError } from './errors.js';

/** 21 million BTC in msat: no amount in the system may exceed this. */
export const MAX_MONEY_MSAT = 21_000_000n * 100_000_000n * 1_000n;

const MSAT_WIRE_PATTERN = /^(0|[1-9][0-9]{0,20})$/;

/** Parses a wire amount (decimal string of msat), refusing signs, decimals and out-of-range values. */
export function parseMsat(wire: unknown, field = 'amountMsat'): bigint {
  if (typeof wire !== 'string' || !MSAT_WIRE_PATTERN.test(wire)) {
    throw new DomainError('INVALID_AMOUNT', `${field} must be a decimal string of whole millisatoshis, got ${JSON.stringify(wire)}`, { field });
  }
  const amountMsat = BigInt(wire);
  if (amountMsat > MAX_MONEY_MSAT) {
    throw new DomainError('INVALID_AMOUNT', `${field} exceeds the 21M BTC cap`, { field });
  }
  return amountMsat;
}

export function formatMsat(amountMsat: bigint): string {
  return amountMsat.toString();
}

/** Throws unless 0 < amountMsat <= MAX_MONEY_MSAT. */
export function requirePositiveMsat(amountMsat: bigint, field: string): void {
  if (typeof amountMsat !== 'bigint' || amountMsat <= 0n || amountMsat > MAX_MONEY_MSAT) {
    throw new DomainError('INVALID_AMOUNT', `${field} must be a positive whole number of millisatoshis up to 21M BTC, got ${String(amountMsat)}`, { field });
  }
}

/** Throws unless 0 <= amountMsat <= MAX_MONEY_MSAT. */
export function requireNonNegativeMsat(amountMsat: bigint, field: string): void {
  if (typeof amountMsat !== 'bigint' || amountMsat < 0n || amountMsat > MAX_MONEY_MSAT) {
    throw new DomainError('INVALID_AMOUNT', `${field} must be zero or a positive whole number of millisatoshis, got ${String(amountMsat)}`, { field });
  }
}

/**
 * The default routing-fee ceiling for one payment: a base plus parts per million of the amount.
 * Assignments record the ceiling they were reserved with (WorkTerms.maxFeeMsat) and the
 * dispatcher pays with the ceiling the invoice records, so changing these later moves no budget.
 */
export const DEFAULT_MAX_FEE_BASE_MSAT = 5_000n;
export const DEFAULT_MAX_FEE_PPM = 5_000n;

export function routingFeeLimitMsat(amountMsat: bigint, baseMsat = DEFAULT_MAX_FEE_BASE_MSAT, ppm = DEFAULT_MAX_FEE_PPM): bigint {
  return baseMsat + (amountMsat * ppm) / 1_000_000n;
}
