// Shared setup for the dev Lightning unit tests: a hand-driven clock, a fixed seed, and a paid-hold-invoice helper.

import { createHash } from 'node:crypto';
import { DevLightningNetwork, type DevLightningOptions } from '../../adapters/lightning/dev/index.js';
import type { ContributorWallet, PayRequest } from '../../domain/ports/lightning.js';

export const START_MS = Date.UTC(2026, 0, 1);
export const SEED = new Uint8Array(32).fill(42);
export const AMOUNT_MSAT = 2_000_000n;
export const CLTV_DELTA = 40;

export class ManualClock {
  constructor(public nowMs = START_MS) {}
  readonly read = (): number => this.nowMs;
  advance(ms: number): void {
    this.nowMs += ms;
  }
}

export async function openDev(clock: ManualClock, options: Partial<DevLightningOptions> = {}): Promise<DevLightningNetwork> {
  return DevLightningNetwork.open({ nowMs: clock.read, seed: SEED, ...options });
}

/** Deterministic secrets by label, so failures replay. */
export function secret(label: string): { preimageHex: string; paymentHash: string } {
  const preimage = createHash('sha256').update(`test-preimage/${label}`).digest();
  return { preimageHex: preimage.toString('hex'), paymentHash: createHash('sha256').update(preimage).digest('hex') };
}

export async function holdInvoice(wallet: ContributorWallet, label: string, overrides: { amountMsat?: bigint; expirySec?: number; cltvDelta?: number } = {}) {
  const s = secret(label);
  const bolt11 = await wallet.createHoldInvoice({
    paymentHash: s.paymentHash,
    amountMsat: overrides.amountMsat ?? AMOUNT_MSAT,
    expirySec: overrides.expirySec ?? 600,
    cltvDelta: overrides.cltvDelta ?? CLTV_DELTA,
    description: `escrow ${label}`,
  });
  return { ...s, bolt11 };
}

export function payRequest(bolt11: string, paymentHash: string, overrides: Partial<PayRequest> = {}): PayRequest {
  return { bolt11, paymentHash, amountMsat: AMOUNT_MSAT, maxFeeMsat: 10_000n, maxTimeoutHeight: 1_000_000, ...overrides };
}
