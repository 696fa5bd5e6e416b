// Production's channel to contributors: nothing is pushed to their nodes; they read released preimages and cancel requests from the API.

import type { ContributorChannel } from '../../domain/ports/lightning.js';

/**
 * With real contributors the coordinator cannot reach into their nodes. A released preimage is
 * in the log (EscrowReleaseRequested) and served by GET /v1/assignments/:id, and a cancel request
 * shows there as escrow status `canceling`; the contributor's node settles or cancels itself, and
 * the coordinator's node reports the outcome. So both calls have nothing to do here.
 */
export const API_CONTRIBUTOR_CHANNEL: ContributorChannel = Object.freeze({
  releasePreimage: async () => {},
  requestCancel: async () => {},
});
