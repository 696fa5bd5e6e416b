// A seeded fault injector around the real Lightning ports: errors, timeouts, replies lost after the side effect, and
// process restarts at each outbox step (create, lock, settle, cancel, pay). One seed replays the same faults in order.

import type { ContributorInvoiceSource } from '../../adapters/lightning/contributor-invoice-cache.js';
import { LightningError, type ContributorChannel, type CoordinatorNode } from '../../domain/ports/lightning.js';
import { mulberry32 } from '../support/mulberry32.js';

/** The outbox steps with a side effect, and the reads the dispatcher makes around them. */
export type FaultStep = 'create' | 'lock' | 'settle' | 'cancel' | 'pay' | 'read';
export type FaultKind = 'error' | 'timeout' | 'lost-reply' | 'restart';
export type InjectedFault = Readonly<{ step: FaultStep; kind: FaultKind; call: number }>;

/** Per-call probability of each fault while injection is on; what is left of 1 is a clean call. */
export type FaultRates = Readonly<Record<FaultKind, number>>;
export const DEFAULT_FAULT_RATES: FaultRates = Object.freeze({ error: 0.12, timeout: 0.08, 'lost-reply': 0.1, restart: 0.05 });

/**
 * Thrown where the process would have died: the side effect may have happened (a restart after it) or not. The
 * scenario replaces the escrow process when it sees one, as a supervisor restarts a killed process.
 */
export class InjectedRestart extends LightningError {
  constructor(step: FaultStep, afterEffect: boolean) {
    super('NODE_UNAVAILABLE', `injected restart at ${step} (${afterEffect ? 'after' : 'before'} the side effect)`, true);
  }
}

export class LightningFaultInjector {
  readonly injected: InjectedFault[] = [];
  /** Off, every call goes straight through: the scenario turns it off to let the reconciler converge. */
  enabled = true;
  private readonly random: () => number;
  private calls = 0;
  private restartPending = false;

  constructor(
    readonly seed: number,
    private readonly rates: FaultRates = DEFAULT_FAULT_RATES,
  ) {
    const total = Object.values(rates).reduce((a, b) => a + b, 0);
    if (!(total >= 0 && total <= 1)) throw new RangeError(`fault rates must sum to at most 1, got ${total}`);
    this.random = mulberry32(seed);
  }

  /** True once after a restart was injected: the caller restarts the escrow process. */
  takeRestart(): boolean {
    const pending = this.restartPending;
    this.restartPending = false;
    return pending;
  }

  counts(): Readonly<Record<FaultKind, number>> {
    const counts: Record<FaultKind, number> = { error: 0, timeout: 0, 'lost-reply': 0, restart: 0 };
    for (const fault of this.injected) counts[fault.kind] += 1;
    return counts;
  }

  steps(): ReadonlySet<string> {
    return new Set(this.injected.map((f) => `${f.step}:${f.kind}`));
  }

  /** Runs `effect` under one drawn fault: before it (error, timeout, restart half the time) or after it (lost reply, restart). */
  async around<T>(step: FaultStep, effect: () => Promise<T>): Promise<T> {
    const kind = this.enabled ? this.draw(step) : null;
    if (kind === null) return effect();
    this.calls += 1;
    this.injected.push({ step, kind, call: this.calls });
    switch (kind) {
      case 'error':
        throw new LightningError('NODE_UNAVAILABLE', `injected error at ${step}`, true);
      case 'timeout':
        throw new LightningError('TIMEOUT', `injected timeout at ${step}: no answer within the deadline`, true);
      case 'lost-reply':
        await effect();
        throw new LightningError('TIMEOUT', `injected lost reply at ${step}: the effect happened, its answer did not arrive`, true);
      case 'restart': {
        this.restartPending = true;
        const afterEffect = this.random() < 0.5;
        if (afterEffect) await effect();
        throw new InjectedRestart(step, afterEffect);
      }
    }
  }

  private draw(step: FaultStep): FaultKind | null {
    // Reads have no side effect: a lost reply or a restart there is the same as an error.
    const roll = this.random();
    let edge = 0;
    for (const kind of ['error', 'timeout', 'lost-reply', 'restart'] as const) {
      edge += this.rates[kind];
      if (roll < edge) return step === 'read' && (kind === 'lost-reply' || kind === 'restart') ? 'error' : kind;
    }
    return null;
  }

  /** The coordinator's node: escrow locks and payouts go through pay; lookups are reads. */
  coordinator(real: CoordinatorNode, isEscrowHash: (paymentHash: string) => boolean): CoordinatorNode {
    return Object.assign(Object.create(real) as CoordinatorNode, {
      pay: (request: Parameters<CoordinatorNode['pay']>[0]) => this.around(isEscrowHash(request.paymentHash) ? 'lock' : 'pay', () => real.pay(request)),
      paymentState: (paymentHash: string) => this.around('read', () => real.paymentState(paymentHash)),
      blockHeight: () => this.around('read', () => real.blockHeight()),
    });
  }

  /** The contributors' side: settling with the preimage and cancelling are the escrow's two endings. */
  contributors(real: ContributorChannel): ContributorChannel {
    return {
      releasePreimage: (request) => this.around('settle', () => real.releasePreimage(request)),
      requestCancel: (request) => this.around('cancel', () => real.requestCancel(request)),
    };
  }

  /** Where hold and payout invoices come from: asking for one is the outbox's create step. */
  invoices(real: ContributorInvoiceSource): ContributorInvoiceSource {
    return {
      holdInvoice: (request) => this.around('create', () => real.holdInvoice(request)),
      payoutInvoice: (request) => this.around('create', () => real.payoutInvoice(request)),
      discardInvoice: (request) => real.discardInvoice(request),
    };
  }
}
