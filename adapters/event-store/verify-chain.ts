// Re-derives a stream's hash chain from its rows and reports the first link that does not hold.

import type { ChainVerification, RecordedEvent } from '../../domain/ports/event-store.js';
import { GENESIS_HASH, chainHash } from './hash-chain.js';

export function verifyChain(
  streamId: string,
  events: readonly RecordedEvent[],
  head: { revision: number; headHash: string } | null,
): ChainVerification {
  let prevHash = GENESIS_HASH;
  for (const [index, event] of events.entries()) {
    if (event.revision !== index) {
      return { ok: false, streamId, revision: index, problem: 'revision-gap', detail: `expected revision ${index}, found ${event.revision}` };
    }
    if (event.prevHash !== prevHash) {
      return { ok: false, streamId, revision: index, problem: 'broken-link', detail: `prev_hash ${event.prevHash} does not equal the predecessor's hash ${prevHash}` };
    }
    const recomputed = chainHash(prevHash, event);
    if (recomputed !== event.hash) {
      return { ok: false, streamId, revision: index, problem: 'hash-mismatch', detail: `stored hash ${event.hash}, content hashes to ${recomputed}` };
    }
    prevHash = event.hash;
  }
  const lastRevision = events.length - 1;
  if (head && (head.revision !== lastRevision || (events.length > 0 && head.headHash !== prevHash))) {
    return { ok: false, streamId, revision: lastRevision, problem: 'head-mismatch', detail: `stream head says revision ${head.revision} hash ${head.headHash}, events end at ${lastRevision} hash ${prevHash}` };
  }
  return { ok: true, streamsChecked: 1, eventsChecked: events.length };
}
