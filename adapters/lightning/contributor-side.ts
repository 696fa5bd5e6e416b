// A contributor's node or invoice source failing is that contributor's trouble: it sets aside their row, never ends the pass for everyone.

import { LightningError } from '../../domain/ports/lightning.js';

/** What a contributor's unreachable node becomes: retryable and about one row, where NODE_UNAVAILABLE means the coordinator's node. */
export const CONTRIBUTOR_UNAVAILABLE = 'CONTRIBUTOR_UNAVAILABLE';

/**
 * Runs a call that goes to a contributor's side (their wallet, their invoice source). The dispatcher and the settler
 * end a whole pass on NODE_UNAVAILABLE, since the coordinator's node being down is everyone's; the same code from one
 * contributor's wallet would let one offline contributor stop escrow for all the others, pass after pass.
 */
export async function onContributorSide<T>(contributorId: string, call: () => Promise<T>): Promise<T> {
  try {
    return await call();
  } catch (error) {
    if (error instanceof LightningError && error.code === 'NODE_UNAVAILABLE') {
      throw new LightningError(CONTRIBUTOR_UNAVAILABLE, `contributor ${contributorId}'s side is unavailable: ${error.message}`, true);
    }
    throw error;
  }
}
