// The simulated chain: block height (by hand or by the injected clock) and what time and height expire.

import { cancelInvoice, failPayment } from './dev-htlc.js';
import type { DevState } from './dev-state.js';

export type ChainConfig = Readonly<{
  nowMs: () => number;
  /** LND cancels a held HTLC this many blocks before it expires, so the payee never races the timeout on chain. */
  safetyMarginBlocks: number;
  /** When set, one block is mined per interval of the injected clock; otherwise only advanceBlocks mines. */
  blockIntervalMs: number | null;
}>;

export function mineBlocks(state: DevState, blocks: number): void {
  if (!Number.isSafeInteger(blocks) || blocks < 0) throw new RangeError(`advanceBlocks needs a whole number of blocks >= 0, got ${blocks}`);
  state.heightBlocks += blocks;
}

/** Catches the height up with the clock; a clock that goes backwards mines nothing. Returns whether the state changed. */
export function mineByClock(state: DevState, config: ChainConfig): boolean {
  if (config.blockIntervalMs === null) return false;
  const nowMs = config.nowMs();
  if (state.lastBlockAtMs === null) {
    state.lastBlockAtMs = nowMs;
    return true;
  }
  const blocks = Math.floor((nowMs - state.lastBlockAtMs) / config.blockIntervalMs);
  if (blocks <= 0) return false;
  state.heightBlocks += blocks;
  state.lastBlockAtMs += blocks * config.blockIntervalMs;
  return true;
}

/**
 * Applies what the current time and height imply, as LND would by now: open invoices past their
 * expiry are canceled; held HTLCs within the safety margin of their expiry are canceled (the
 * coordinator's payment fails with TIMEOUT); HTLCs a fault kept from the payee fail at their timeout height.
 * Returns how many invoices and payments it changed.
 */
export function sweep(state: DevState, config: ChainConfig): number {
  const nowMs = config.nowMs();
  let changed = 0;
  for (const [walletName, invoices] of state.wallets) {
    for (const invoice of invoices.values()) {
      if (invoice.status === 'open' && nowMs >= invoice.expiresAtMs) {
        cancelInvoice(state, walletName, invoice, 'expired');
        changed += 1;
      } else if (invoice.status === 'accepted' && state.heightBlocks >= invoice.htlcExpiryHeight! - config.safetyMarginBlocks) {
        cancelInvoice(state, walletName, invoice, 'htlc_timeout');
        changed += 1;
      }
    }
  }
  for (const payment of state.payments.values()) {
    if (payment.status === 'in_flight' && !payment.delivered && state.heightBlocks >= payment.timeoutHeight) {
      failPayment(state, payment, 'TIMEOUT');
      changed += 1;
    }
  }
  return changed;
}
