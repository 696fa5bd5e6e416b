// A whole escrow world for tests: PGlite log, the dev Lightning network, a contributor, a funded run, and the engine.

import { randomUUID } from 'node:crypto';
import { openEventStore } from '../../adapters/event-store/open-event-store.js';
import { handleCommand } from '../../adapters/commands/command-handler.js';
import type { PostgresEventStore } from '../../adapters/postgres/postgres-event-store.js';
import { DevLightningNetwork } from '../../adapters/lightning/dev/dev-lightning-network.js';
import { DevContributors } from '../../adapters/lightning/dev-contributors.js';
import { EscrowEngine } from '../../adapters/lightning/escrow-engine.js';
import type { DispatchStep } from '../../adapters/lightning/dispatcher.js';
import { PreimageDeriver } from '../../adapters/lightning/preimages.js';
import { assignmentDecider, assignmentStreamId, type AssignmentCommand } from '../../domain/assignment/index.js';
import { contributorDecider, contributorStreamId } from '../../domain/contributor/index.js';
import type { DomainError } from '../../domain/errors.js';
import type { Command } from '../../domain/decider.js';
import { runDecider, runStreamId, type RunCommand } from '../../domain/run/index.js';
import { ASSIGNMENT_ID, CONTRIBUTOR_ID, RUN_ID, T0, assignmentCommands as c, command, hex64, openRunData } from '../domain/fixtures.js';

export { c, ASSIGNMENT_ID, CONTRIBUTOR_ID };
export const BASE_REWARD_MSAT = 1_000_000n;

export type EscrowWorld = {
  store: PostgresEventStore;
  network: DevLightningNetwork;
  preimages: PreimageDeriver;
  clock: { nowMs: number };
  declining: Set<string>;
  refused: { command: Command; error: DomainError }[];
  engine: (afterEffect?: (step: DispatchStep, hash: string) => void) => Promise<EscrowEngine>;
  assignment: (cmd: AssignmentCommand) => Promise<void>;
  escrowHash: string;
  invoiceEvents: (paymentHash: string) => Promise<string[]>;
  close: () => Promise<void>;
};

export async function escrowWorld(): Promise<EscrowWorld> {
  const { store } = await openEventStore({ engine: 'pglite' });
  const clock = { nowMs: T0 + 500 };
  const nowMs = () => clock.nowMs;
  const network = await DevLightningNetwork.open({ nowMs, seed: Buffer.alloc(32, 7) });
  const preimages = new PreimageDeriver(Buffer.alloc(32, 9));
  const declining = new Set<string>();
  const contributors = new DevContributors(network, { declinesCancel: (id) => declining.has(id) });
  const refused: EscrowWorld['refused'] = [];
  const newEventId = () => randomUUID();
  const run = (cmd: RunCommand) => handleCommand(store, runDecider, runStreamId(RUN_ID), cmd, { newEventId });
  await run(command<RunCommand>('OpenRun', openRunData(), T0));
  await run(command<RunCommand>('FundRun', { runId: RUN_ID, fundingId: 'f1', source: 'customer', amountMsat: 50_000_000n }, T0));
  const nodeKey = await network.wallet(CONTRIBUTOR_ID).publicKey();
  await handleCommand(store, contributorDecider, contributorStreamId(CONTRIBUTOR_ID), command('RegisterContributor', { contributorId: CONTRIBUTOR_ID, signingPublicKeyHex: hex64('alice-signing'), lightningNodePubkeyHex: nodeKey }, T0), { newEventId });

  // Each engine stands for one process: making a new one ends the last one, as a restart does (its lease goes with it).
  let last: EscrowEngine | null = null;
  const engine = async (afterEffect?: (step: DispatchStep, hash: string) => void) => {
    await last?.close();
    const built = new EscrowEngine({
      store,
      node: network.coordinator(),
      invoices: contributors,
      contributors,
      preimages,
      nowMs,
      newEventId,
      network: 'regtest',
      onRefused: (cmd, error) => refused.push({ command: cmd, error }),
      ...(afterEffect ? { afterEffect } : {}),
    });
    await built.prepare();
    last = built;
    return built;
  };
  const invoiceEvents = async (paymentHash: string) => (await store.readStream(`invoice-${paymentHash}`)).map((e) => e.type);
  return {
    store,
    network,
    preimages,
    clock,
    declining,
    refused,
    engine,
    assignment: async (cmd) => void (await handleCommand(store, assignmentDecider, assignmentStreamId(ASSIGNMENT_ID), cmd, { newEventId })),
    escrowHash: preimages.escrow(ASSIGNMENT_ID).paymentHash,
    invoiceEvents,
    close: async () => {
      await network.close();
      await store.close();
    },
  };
}
