// A money-path world for regression tests on either engine: a funded run, contributors who post invoices through the API's box (or the dev wallets answer), budgets reserved as the API reserves them, and escrow engines standing for processes.

import { randomBytes, randomUUID } from 'node:crypto';
import { handleCommand, loadAggregate } from '../../adapters/commands/command-handler.js';
import { openEventStore, openSplitStore, type OpenedLedgerStore } from '../../adapters/event-store/open-event-store.js';
import { HoldInvoiceBox } from '../../adapters/http/hold-invoice-box.js';
import { DevContributors } from '../../adapters/lightning/dev-contributors.js';
import { DevLightningNetwork } from '../../adapters/lightning/dev/dev-lightning-network.js';
import type { ContributorInvoiceSource } from '../../adapters/lightning/contributor-invoice-cache.js';
import type { DispatcherLimits } from '../../adapters/lightning/dispatcher-limits.js';
import { EscrowEngine } from '../../adapters/lightning/escrow-engine.js';
import { leaseFor } from '../../adapters/lightning/escrow-lease.js';
import { PreimageDeriver } from '../../adapters/lightning/preimages.js';
import { assignmentDecider, assignmentStreamId, worstCaseCostMsat, type AssignmentCommand, type AssignmentState } from '../../domain/assignment/index.js';
import { contributorDecider, contributorStreamId } from '../../domain/contributor/index.js';
import type { Command } from '../../domain/decider.js';
import type { ContributorChannel, CoordinatorNode } from '../../domain/ports/lightning.js';
import type { SweepOptions } from '../../adapters/lightning/dispatcher.js';
import type { DomainError } from '../../domain/errors.js';
import { assignmentReservationId } from '../../domain/reactions/payouts.js';
import { runDecider, runStreamId, type ActiveRunState, type RunCommand } from '../../domain/run/index.js';
import { createPostgresDatabase } from '../support/databases.js';
import { SQL_SPLIT_LOG, type SplitLog } from '../support/split-logs.js';
import { assignWorkData, command, hex64, openRunData, RUN_ID, T0 } from '../domain/fixtures.js';

/** 'split': the split composition (the log behind the plain port, options.splitLog; everything else in PGlite). */
export type MoneyEngine = 'pglite' | 'postgres' | 'split';
export const MONEY_ENGINES: readonly MoneyEngine[] = ['pglite', 'postgres'];
export const BASE_MSAT = 1_000_000n;
export const MAX_BONUS_MSAT = 500_000n;
export const FEE_CEILING_MSAT = 10_000n;

export type MoneyWorld = Awaited<ReturnType<typeof moneyWorld>>;

/**
 * `devAnswers` lists the contributors whose dev wallets answer for them when they posted
 * nothing; everyone else posts through the box, as production contributors do.
 */
export async function moneyWorld(engine: MoneyEngine, options: { devAnswers?: readonly string[]; fundingMsat?: bigint; splitLog?: SplitLog } = {}) {
  const target = engine !== 'postgres' ? ({ engine: 'pglite' } as const) : ({ engine: 'postgres', connectionString: await createPostgresDatabase('money') } as const);
  const opened: OpenedLedgerStore = engine === 'split' ? await openSplitStore(await (options.splitLog ?? SQL_SPLIT_LOG).open(), target) : await openEventStore(target);
  const { store, db } = opened;
  const clock = { nowMs: T0 + 500 };
  const nowMs = () => clock.nowMs;
  const network = await DevLightningNetwork.open({ nowMs, seed: randomBytes(32) });
  const preimages = new PreimageDeriver(randomBytes(32));
  const devAnswers = new Set(options.devAnswers ?? []);
  const declining = new Set<string>();
  const dev = new DevContributors(network, { declinesCancel: (id) => declining.has(id) });
  // The dev wallets stand in only for the named contributors; the rest must post their own invoices.
  const fallback = {
    holdInvoice: (r: Parameters<DevContributors['holdInvoice']>[0]) => (devAnswers.has(r.contributorId) ? dev.holdInvoice(r) : Promise.resolve(null)),
    payoutInvoice: (r: Parameters<DevContributors['payoutInvoice']>[0]) => (devAnswers.has(r.contributorId) ? dev.payoutInvoice(r) : Promise.resolve(null)),
    discardInvoice: (r: Parameters<DevContributors['discardInvoice']>[0]) => dev.discardInvoice(r),
  };
  const box = new HoldInvoiceBox(db, fallback);
  await box.prepare();
  const refused: { command: Command; error: DomainError }[] = [];
  const newEventId = () => randomUUID();
  const run = (cmd: RunCommand) => handleCommand(store, runDecider, runStreamId(RUN_ID), cmd, { newEventId });
  await run(command<RunCommand>('OpenRun', openRunData({ rewardPolicy: { baseRewardMsat: BASE_MSAT, maxBonusMsat: MAX_BONUS_MSAT } }), T0));
  await run(command<RunCommand>('FundRun', { runId: RUN_ID, fundingId: 'f1', source: 'customer', amountMsat: options.fundingMsat ?? 50_000_000n }, T0));

  async function register(contributorId: string): Promise<void> {
    const nodeKey = await network.wallet(contributorId).publicKey();
    await handleCommand(store, contributorDecider, contributorStreamId(contributorId), command('RegisterContributor', { contributorId, signingPublicKeyHex: hex64(`${contributorId}-signing`), lightningNodePubkeyHex: nodeKey }, T0), { newEventId });
  }

  /** Reserves the worst case and assigns, as POST /v1/assignments does. */
  async function assign(assignmentId: string, contributorId: string, overrides: Partial<Parameters<typeof assignWorkData>[0]> = {}): Promise<void> {
    const data = assignWorkData({ assignmentId, contributorId, baseRewardMsat: BASE_MSAT, maxBonusMsat: MAX_BONUS_MSAT, maxFeeMsat: FEE_CEILING_MSAT, deadlineMs: clock.nowMs + 3_600_000, ...overrides });
    await run(command<RunCommand>('ReserveBudget', { runId: RUN_ID, reservationId: assignmentReservationId(assignmentId), assignmentId, amountMsat: worstCaseCostMsat(data) }, clock.nowMs));
    await assignment(assignmentId, command<AssignmentCommand>('AssignWork', data, clock.nowMs));
  }

  function assignment(assignmentId: string, cmd: AssignmentCommand) {
    return handleCommand(store, assignmentDecider, assignmentStreamId(assignmentId), { ...cmd, metadata: { nowMs: clock.nowMs } } as AssignmentCommand, { newEventId });
  }

  const submit = (assignmentId: string, contributorId: string) =>
    assignment(assignmentId, command('SubmitGradient', { assignmentId, contributorId, gradientDigest: hex64(`g-${assignmentId}`), sizeBytes: 4096, encoding: 'dense-f32', claimedLoss: 1, computeTimeMs: 5 }));
  const accept = (assignmentId: string, bonusMsat: bigint) =>
    assignment(assignmentId, command('AcceptSubmission', { assignmentId, validatorId: 'v', qualityScore: 0.5, bonusMsat, evidence: {} }));
  const reject = (assignmentId: string) => assignment(assignmentId, command('RejectSubmission', { assignmentId, validatorId: 'v', reasonCode: 'NORM_TOO_LARGE', evidence: {} }));

  /** Each engine stands for one process: making another ends the last one, as a restart does. */
  const engines: EscrowEngine[] = [];
  async function escrowEngine(
    opts: { limits?: DispatcherLimits; keepPrevious?: boolean; sweepBatchSize?: number; node?: CoordinatorNode; contributors?: ContributorChannel; invoices?: ContributorInvoiceSource; subscribe?: boolean; sweep?: SweepOptions; log?: (line: string) => void } = {},
  ): Promise<EscrowEngine> {
    if (!opts.keepPrevious) for (const previous of engines.splice(0)) await previous.close();
    const built = new EscrowEngine({
      store, node: opts.node ?? network.coordinator(), invoices: opts.invoices ?? box, contributors: opts.contributors ?? dev, preimages, nowMs, newEventId, network: 'regtest',
      ...(opts.subscribe === undefined ? {} : { subscribe: opts.subscribe }),
      ...(opts.sweep ? { sweep: opts.sweep } : {}),
      ...(opts.log ? { log: opts.log } : {}),
      lease: leaseFor(db, target.engine),
      onRefused: (cmd, error) => refused.push({ command: cmd, error }),
      ...(opts.limits ? { limits: opts.limits } : {}),
      ...(opts.sweepBatchSize ? { sweepBatchSize: opts.sweepBatchSize } : {}),
    });
    await built.prepare();
    engines.push(built);
    return built;
  }

  const events = async (type?: string) => (await store.readAll({ maxCount: 10_000 })).filter((e) => type === undefined || e.type === type);
  const streamTypes = async (streamId: string) => (await store.readStream(streamId)).map((e) => e.type);
  const assignmentState = async (assignmentId: string): Promise<AssignmentState> => (await loadAggregate(store, assignmentDecider, assignmentStreamId(assignmentId))).state;
  const runState = async () => (await loadAggregate(store, runDecider, runStreamId(RUN_ID))).state as ActiveRunState;
  const escrowHash = (assignmentId: string) => preimages.escrow(assignmentId).paymentHash;

  /** What a contributor's own node does: a hold invoice for the escrow hash the coordinator published, posted to the API's box. */
  async function postHoldInvoice(assignmentId: string, contributorId: string, expirySec = 3_600): Promise<string> {
    const bolt11 = await network.wallet(contributorId).createHoldInvoice({ paymentHash: escrowHash(assignmentId), amountMsat: BASE_MSAT, expirySec, cltvDelta: 40, description: 'escrow' });
    await box.post(assignmentId, contributorId, bolt11, clock.nowMs);
    return bolt11;
  }

  async function postPayoutInvoice(assignmentId: string, contributorId: string, kind: 'bonus' | 'compensation', amountMsat: bigint, attempt: number, expirySec = 3_600): Promise<string> {
    const { bolt11 } = await network.wallet(contributorId).createInvoice({ amountMsat, expirySec, description: kind });
    const { stored } = await box.postPayout(assignmentId, kind, attempt, bolt11, clock.nowMs);
    if (!stored) throw new Error(`the box already holds a ${kind} invoice for attempt ${attempt}`);
    return bolt11;
  }

  return {
    store, db, network, preimages, box, dev, clock, refused, declining, register, assign, assignment, submit, accept, reject, escrowEngine,
    events, streamTypes, assignmentState, runState, escrowHash, postHoldInvoice, postPayoutInvoice,
    close: async () => {
      for (const previous of engines.splice(0)) await previous.close();
      await network.close();
      await store.close();
    },
  };
}
