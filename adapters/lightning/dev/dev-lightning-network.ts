// DevLightningNetwork: a SIMULATED Lightning network for development and tests (regtest `lnbcrt` requests, never real money).

import { LightningError, type ContributorWallet, type CoordinatorNode } from '../../../domain/ports/lightning.js';
import { mineBlocks, mineByClock, sweep, type ChainConfig } from './dev-chain.js';
import { DevCoordinatorNode } from './dev-coordinator.js';
import { DevFaults, type DevNodeRef } from './dev-faults.js';
import { assertInvariants, drainTouched, pendingMsat } from './dev-htlc.js';
import { DevKeyring, DEV_SEED_BYTES, randomDevSeed } from './dev-keys.js';
import { releaseUnresolved, routingFeeMsat, startPayment } from './dev-payments.js';
import { DEV_NETWORK } from './bolt11.js';
import { SerialQueue, type DevAccess, type DevRuntime } from './dev-runtime.js';
import type { DevState } from './dev-state.js';
import { openDevStore, type DevStore } from './dev-store.js';
import { DevContributorWallet } from './dev-wallet.js';
import { DevUpdateHub, streamOf } from './dev-updates.js';

/** Defaults, each named once with its unit. */
export const DEV_LIGHTNING_DEFAULTS = Object.freeze({
  safetyMarginBlocks: 10,
  startHeightBlocks: 1_000,
  /** 10 BTC of pretend money: large enough that only tests that mean to run out do. */
  coordinatorBalanceMsat: 10n * 100_000_000n * 1_000n,
});
/** Wide enough for every domain id (domain/ids.ts: 128 of [A-Za-z0-9._:-]), since contributor ids name dev wallets. */
const WALLET_NAME_PATTERN = /^[A-Za-z0-9._:@-]{1,128}$/;

export type DevLightningOptions = Readonly<{
  /** Where dev-lightning.json lives; without it the network is in memory only. */
  dataDir?: string;
  nowMs: () => number;
  safetyMarginBlocks?: number;
  /** Mine one block per this many ms of the injected clock; without it, blocks come only from advanceBlocks. */
  blockIntervalMs?: number;
  /** 32 bytes every key and wallet secret derives from; random when absent. A stored seed always wins, and must match. */
  seed?: Uint8Array;
  /** Used only when the network is first created; a reopened network keeps its stored height and balance. */
  startHeightBlocks?: number;
  coordinatorBalanceMsat?: bigint;
}>;

export type DevFunds = Readonly<{ balanceMsat: bigint; pendingMsat: bigint; spendableMsat: bigint }>;

/**
 * A simulation of the coordinator's Lightning node and any number of contributor wallets, in one
 * process, for development and tests only. Requests are real signed BOLT11 on regtest; the money,
 * the channels and the chain are pretend. Persisted after every change when given a dataDir.
 */
export class DevLightningNetwork {
  readonly faults: DevFaults;
  readonly updates = new DevUpdateHub();
  private readonly runtime: DevRuntime;
  private readonly queue = new SerialQueue();
  private readonly walletsByKey = new Map<string, string>();
  private readonly walletHandles = new Map<string, DevContributorWallet>();
  private coordinatorHandle: DevCoordinatorNode | null = null;
  private closed = false;

  private constructor(
    private readonly state: DevState,
    private readonly store: DevStore,
    private readonly chain: ChainConfig,
  ) {
    const unavailable = (retryable: boolean) => new LightningError('NODE_UNAVAILABLE', 'the dev node restarted or went down (injected fault); subscribe again', retryable);
    this.faults = new DevFaults(
      (outcome) => this.exclusive(null, () => releaseUnresolved(this.state, outcome)),
      (node) => this.updates.drop((stream) => node === null || streamOf(stream, node), unavailable(true)),
    );
    const keys = new DevKeyring(Buffer.from(state.seedHex, 'hex'));
    this.runtime = {
      state,
      keys,
      faults: this.faults,
      chain,
      updates: this.updates,
      exclusive: (node, job, access) => this.exclusive(node, job, access),
      walletNameOf: (publicKeyHex) => this.walletsByKey.get(publicKeyHex) ?? null,
    };
    for (const name of state.wallets.keys()) this.walletsByKey.set(keys.wallet(name).publicKeyHex, name);
  }

  static async open(options: DevLightningOptions): Promise<DevLightningNetwork> {
    const chain = chainConfig(options);
    const store = openDevStore(options.dataDir);
    const stored = store.load();
    const seedHex = options.seed === undefined ? undefined : Buffer.from(options.seed).toString('hex');
    if (stored && seedHex !== undefined && stored.seedHex !== seedHex) {
      throw new Error('the seed option differs from the seed stored in dev-lightning.json; drop the option or use another dataDir');
    }
    const state = stored ?? freshState(options, seedHex);
    const network = new DevLightningNetwork(state, store, chain);
    await network.exclusive(null, () => undefined);
    return network;
  }

  /** The coordinator's node. Closing the handle closes only it; the next call here gives a fresh one. */
  coordinator(): CoordinatorNode {
    if (this.coordinatorHandle === null || this.coordinatorHandle.isClosed) this.coordinatorHandle = new DevCoordinatorNode(this.runtime);
    return this.coordinatorHandle;
  }

  /** The named wallet, created on first use (with its own key from the seed) and restored on reopen. */
  wallet(name: string): ContributorWallet {
    if (typeof name !== 'string' || !WALLET_NAME_PATTERN.test(name)) {
      throw new LightningError('INVALID_REQUEST', `a dev wallet name must match ${WALLET_NAME_PATTERN}, got ${JSON.stringify(name)}`, false);
    }
    const existing = this.walletHandles.get(name);
    if (existing) return existing;
    if (!this.state.wallets.has(name)) {
      this.state.wallets.set(name, new Map());
      if (!this.closed) this.store.save(this.state);
    }
    this.walletsByKey.set(this.runtime.keys.wallet(name).publicKeyHex, name);
    const wallet = new DevContributorWallet(this.runtime, name);
    this.walletHandles.set(name, wallet);
    return wallet;
  }

  /**
   * Bench and test seeding: for each request, the hold invoice its wallet would create and the
   * coordinator's payment that holds it, exactly as createHoldInvoice then pay would leave them
   * (signed BOLT11, HTLC accepted at the payee), but in one call: one chain sweep and one
   * invariant check for the lot instead of two calls each, whose cost grows with the network.
   * Returns each request's BOLT11 and the state of its payment.
   */
  seedHeldInvoices(requests: readonly Readonly<{ walletName: string; paymentHash: string; amountMsat: bigint; expirySec: number; cltvDelta: number; description: string }>[]): Promise<Array<{ bolt11: string; status: string }>> {
    const wallets = requests.map((request) => this.wallet(request.walletName) as DevContributorWallet);
    return this.exclusive(null, async () => {
      const out: Array<{ bolt11: string; status: string }> = [];
      for (const [index, request] of requests.entries()) {
        const wallet = wallets[index]!;
        const bolt11 = await wallet.holdInvoiceNow(request);
        const invoice = this.state.wallets.get(request.walletName)!.get(request.paymentHash)!;
        const decoded = {
          bolt11, paymentHash: request.paymentHash, amountMsat: request.amountMsat, destination: this.runtime.keys.wallet(request.walletName).publicKeyHex,
          createdAtMs: invoice.createdAtMs, expiresAtMs: invoice.expiresAtMs, cltvDelta: request.cltvDelta, network: DEV_NETWORK, description: request.description,
        };
        const pay = { bolt11, paymentHash: request.paymentHash, amountMsat: request.amountMsat, maxFeeMsat: routingFeeMsat(request.amountMsat), maxTimeoutHeight: Number.MAX_SAFE_INTEGER };
        const context = { state: this.state, faults: this.faults, nowMs: this.chain.nowMs(), walletNameOf: (key: string) => this.runtime.walletNameOf(key) };
        out.push({ bolt11, status: startPayment(context, pay, decoded).status });
      }
      return out;
    });
  }

  /** Mines `blocks` blocks, then cancels what the new height expires. Returns the new height. */
  advanceBlocks(blocks: number): Promise<number> {
    return this.exclusive(null, () => {
      mineBlocks(this.state, blocks);
      return this.state.heightBlocks;
    });
  }

  blockHeight(): Promise<number> {
    return this.exclusive(null, () => this.state.heightBlocks, 'read');
  }

  /** The coordinator's pretend money: its balance, what in-flight HTLCs hold, and what it can still send. */
  coordinatorFunds(): Promise<DevFunds> {
    return this.exclusive(null, () => {
      const pending = pendingMsat(this.state);
      return { balanceMsat: this.state.balanceMsat, pendingMsat: pending, spendableMsat: this.state.balanceMsat - pending };
    }, 'read');
  }

  /** Waits for calls in progress, writes the state a last time, and refuses every later call. */
  async close(): Promise<void> {
    if (this.closed) return;
    await this.queue.run(() => {
      this.store.save(this.state);
      this.closed = true;
    });
    this.updates.drop(() => true, new LightningError('NODE_UNAVAILABLE', 'the dev Lightning network is closed', false));
  }

  private exclusive<T>(node: DevNodeRef | null, job: () => Promise<T> | T, access: DevAccess = 'write'): Promise<T> {
    return this.queue.run(async () => {
      if (this.closed) throw new LightningError('NODE_UNAVAILABLE', 'the dev Lightning network is closed; open it again', false);
      if (node !== null) this.faults.assertAvailable(node);
      let changed = this.applyChain();
      try {
        return await job();
      } finally {
        changed = this.applyChain() || changed;
        if (access === 'write' || changed) {
          assertInvariants(this.state);
          this.store.save(this.state);
        }
        // Published once the state is saved, as a node announces only what it committed.
        this.updates.publish(this.state, drainTouched(this.state));
      }
    });
  }

  /** Whether time or height changed anything. */
  private applyChain(): boolean {
    const mined = mineByClock(this.state, this.chain);
    return sweep(this.state, this.chain) > 0 || mined;
  }
}

function chainConfig(options: DevLightningOptions): ChainConfig {
  if (typeof options.nowMs !== 'function') throw new TypeError('DevLightningNetwork.open needs a nowMs clock');
  const safetyMarginBlocks = options.safetyMarginBlocks ?? DEV_LIGHTNING_DEFAULTS.safetyMarginBlocks;
  if (!Number.isSafeInteger(safetyMarginBlocks) || safetyMarginBlocks < 0) throw new RangeError(`safetyMarginBlocks must be a whole number >= 0, got ${safetyMarginBlocks}`);
  const blockIntervalMs = options.blockIntervalMs ?? null;
  if (blockIntervalMs !== null && !(Number.isSafeInteger(blockIntervalMs) && blockIntervalMs > 0)) {
    throw new RangeError(`blockIntervalMs must be a whole number of ms > 0, got ${blockIntervalMs}`);
  }
  return { nowMs: options.nowMs, safetyMarginBlocks, blockIntervalMs };
}

function freshState(options: DevLightningOptions, seedHex: string | undefined): DevState {
  const startHeightBlocks = options.startHeightBlocks ?? DEV_LIGHTNING_DEFAULTS.startHeightBlocks;
  const balanceMsat = options.coordinatorBalanceMsat ?? DEV_LIGHTNING_DEFAULTS.coordinatorBalanceMsat;
  if (!Number.isSafeInteger(startHeightBlocks) || startHeightBlocks < 0) throw new RangeError(`startHeightBlocks must be a whole number >= 0, got ${startHeightBlocks}`);
  if (typeof balanceMsat !== 'bigint' || balanceMsat < 0n) throw new RangeError('coordinatorBalanceMsat must be a bigint >= 0');
  if (options.seed !== undefined && options.seed.length !== DEV_SEED_BYTES) throw new RangeError(`seed must be ${DEV_SEED_BYTES} bytes`);
  return {
    seedHex: seedHex ?? Buffer.from(randomDevSeed()).toString('hex'),
    heightBlocks: startHeightBlocks,
    lastBlockAtMs: null,
    balanceMsat,
    plainInvoiceCount: 0,
    wallets: new Map(),
    payments: new Map(),
  };
}
