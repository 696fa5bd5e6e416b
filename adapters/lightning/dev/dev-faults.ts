// Test-only fault switches for the dev network: failed payments, HTLCs that never arrive, nodes that are down.

import { LightningError, type PaymentFailureCode } from '../../../domain/ports/lightning.js';

/** Which simulated node a call goes to: the coordinator's, or a wallet's by name. */
export type DevNodeRef = Readonly<{ kind: 'coordinator' } | { kind: 'wallet'; name: string }>;
export const COORDINATOR_NODE: DevNodeRef = Object.freeze({ kind: 'coordinator' });

export type UnresolvedOutcome = 'deliver' | 'fail';

/** Faults live in memory only: a reopened network starts healthy (the state they caused is persisted). */
export class DevFaults {
  private failures: Array<PaymentFailureCode> = [];
  private unresolvedRemaining = 0;
  private readonly down = new Set<string>();

  constructor(
    private readonly releaseUnresolvedPayments: (outcome: UnresolvedOutcome) => Promise<number>,
    /** Ends the update streams of a node that goes down (or of every node when `node` is null); returns how many. */
    private readonly dropStreams: (node: DevNodeRef | null) => number = () => 0,
  ) {}

  /**
   * Ends every update stream now, as a node restart does: each subscriber hears onDrop once and
   * must subscribe again; what changes before it does reaches it only through a lookup. Returns how many ended.
   */
  dropSubscriptions(): number {
    return this.dropStreams(null);
  }

  /** The next `n` sends fail with `code` without reaching the payee, after the request was checked. */
  failNextPayments(n: number, code: PaymentFailureCode): void {
    requireCount(n);
    this.failures.push(...Array.from({ length: n }, () => code));
  }

  /** The next `n` sends stay in flight and never reach the payee, as when the reply is lost or late. */
  holdNextPaymentsUnresolved(n: number): void {
    requireCount(n);
    this.unresolvedRemaining += n;
  }

  /**
   * Ends every payment a fault left unresolved: `deliver` lets the HTLC reach the payee now (a late
   * reply), `fail` fails it with TIMEOUT. Without this they fail at their timeout height. Returns how many.
   */
  releaseUnresolved(outcome: UnresolvedOutcome): Promise<number> {
    return this.releaseUnresolvedPayments(outcome);
  }

  /** While down, every call to the coordinator's node (or to the named wallet) throws NODE_UNAVAILABLE, retryable. */
  setUnavailable(unavailable: boolean, walletName?: string): void {
    const node = walletName === undefined ? COORDINATOR_NODE : { kind: 'wallet' as const, name: walletName };
    if (unavailable) {
      this.down.add(nodeKey(node));
      // A node that is down streams nothing: its subscribers are dropped and cannot subscribe until it is back.
      this.dropStreams(node);
    } else this.down.delete(nodeKey(node));
  }

  /** @internal Throws when `node` is down. */
  assertAvailable(node: DevNodeRef): void {
    if (this.down.has(nodeKey(node))) {
      const who = node.kind === 'coordinator' ? "the coordinator's dev node" : `dev wallet ${node.name}`;
      throw new LightningError('NODE_UNAVAILABLE', `${who} is unavailable (injected fault); retry later`, true);
    }
  }

  /** @internal Consumes one injected failure, if any. */
  takeFailure(): PaymentFailureCode | null {
    return this.failures.shift() ?? null;
  }

  /** @internal Consumes one "stay unresolved", if any. */
  takeUnresolved(): boolean {
    if (this.unresolvedRemaining === 0) return false;
    this.unresolvedRemaining -= 1;
    return true;
  }
}

function nodeKey(node: DevNodeRef): string {
  return node.kind === 'coordinator' ? 'coordinator' : `wallet/${node.name}`;
}

function requireCount(n: number): void {
  if (!Number.isSafeInteger(n) || n < 0) throw new RangeError(`a fault count must be a whole number >= 0, got ${n}`);
}
