// What the simulated nodes share inside one DevLightningNetwork: state, keys, faults, the chain, one call at a time.

import type { ChainConfig } from './dev-chain.js';
import type { DevFaults, DevNodeRef } from './dev-faults.js';
import type { DevKeyring } from './dev-keys.js';
import type { DevState } from './dev-state.js';
import type { DevUpdateHub } from './dev-updates.js';

/**
 * 'read' promises the job changes nothing: then, unless the chain itself moved, the call skips
 * re-checking invariants and re-serialising the state, both of which grow with the network's history.
 */
export type DevAccess = 'read' | 'write';

export interface DevRuntime {
  readonly state: DevState;
  readonly keys: DevKeyring;
  readonly faults: DevFaults;
  readonly chain: ChainConfig;
  /** Update streams; the network publishes every touched hash after each call. */
  readonly updates: DevUpdateHub;
  /**
   * Runs one call alone against the whole network, so two calls never interleave between a check
   * and its effect (no double send). Applies time and height before and after, then persists.
   * Throws NODE_UNAVAILABLE when `node` is down (injected) or the network is closed.
   */
  exclusive<T>(node: DevNodeRef | null, job: () => Promise<T> | T, access?: DevAccess): Promise<T>;
  /** The dev wallet with this node key, or null. */
  walletNameOf(publicKeyHex: string): string | null;
}

/** A promise chain: each job starts after the previous one settled, whether it failed or not. */
export class SerialQueue {
  private tail: Promise<unknown> = Promise.resolve();

  run<T>(job: () => Promise<T> | T): Promise<T> {
    const result = this.tail.then(job);
    this.tail = result.catch(() => undefined);
    return result;
  }
}
