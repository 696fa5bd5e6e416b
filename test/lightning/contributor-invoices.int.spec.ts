// Production's escrow flow: contributors post their own invoices through the API's box, and one who has not yet holds up no one else.

import { randomBytes, randomUUID } from 'node:crypto';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { handleCommand } from '../../adapters/commands/command-handler.js';
import { openEventStore } from '../../adapters/event-store/open-event-store.js';
import { HoldInvoiceBox } from '../../adapters/http/hold-invoice-box.js';
import { API_CONTRIBUTOR_CHANNEL } from '../../adapters/lightning/api-contributor-channel.js';
import { DevLightningNetwork } from '../../adapters/lightning/dev/dev-lightning-network.js';
import { EscrowEngine } from '../../adapters/lightning/escrow-engine.js';
import { PreimageDeriver } from '../../adapters/lightning/preimages.js';
import type { PostgresEventStore } from '../../adapters/postgres/postgres-event-store.js';
import { assignmentDecider, assignmentStreamId, type AssignmentCommand } from '../../domain/assignment/index.js';
import { contributorDecider, contributorStreamId } from '../../domain/contributor/index.js';
import { runDecider, runStreamId, type RunCommand } from '../../domain/run/index.js';
import { assignWorkData, command, hex64, openRunData, RUN_ID, T0 } from '../domain/fixtures.js';

const BASE_MSAT = 1_000_000n;
const BONUS_MSAT = 150_000n;

let store: PostgresEventStore;
let network: DevLightningNetwork;
let box: HoldInvoiceBox;
let engine: EscrowEngine;
const preimages = new PreimageDeriver(randomBytes(32));
const newEventId = () => randomUUID();

beforeAll(async () => {
  ({ store } = await openEventStore({ engine: 'pglite' }));
  network = await DevLightningNetwork.open({ nowMs: () => T0 + 1_000, seed: randomBytes(32) });
  box = new HoldInvoiceBox(store.db, null);
  await box.prepare();
  engine = new EscrowEngine({ store, node: network.coordinator(), invoices: box, contributors: API_CONTRIBUTOR_CHANNEL, preimages, nowMs: () => T0 + 1_000, newEventId, network: 'regtest' });
  await engine.prepare();
  const run = (cmd: RunCommand) => handleCommand(store, runDecider, runStreamId(RUN_ID), cmd, { newEventId });
  await run(command<RunCommand>('OpenRun', openRunData(), T0));
  await run(command<RunCommand>('FundRun', { runId: RUN_ID, fundingId: 'f1', source: 'customer', amountMsat: 50_000_000n }, T0));
  for (const who of ['alice', 'bob']) {
    const nodeKey = await network.wallet(who).publicKey();
    await handleCommand(store, contributorDecider, contributorStreamId(who), command('RegisterContributor', { contributorId: who, signingPublicKeyHex: hex64(`${who}-signing`), lightningNodePubkeyHex: nodeKey }, T0), { newEventId });
    await assignment(`a-${who}`, command('AssignWork', assignWorkData({ assignmentId: `a-${who}`, contributorId: who, baseRewardMsat: BASE_MSAT }), T0));
  }
});
afterAll(async () => {
  await network?.close();
  await store?.close();
});

function assignment(assignmentId: string, cmd: AssignmentCommand) {
  return handleCommand(store, assignmentDecider, assignmentStreamId(assignmentId), cmd, { newEventId });
}

async function escrowEvents(assignmentId: string): Promise<string[]> {
  return (await store.readStream(`invoice-${preimages.escrow(assignmentId).paymentHash}`)).map((e) => e.type);
}

/** What a contributor's own node does: a hold invoice for the escrow hash the coordinator published. */
async function postHoldInvoice(who: string): Promise<void> {
  const { paymentHash } = preimages.escrow(`a-${who}`);
  const bolt11 = await network.wallet(who).createHoldInvoice({ paymentHash, amountMsat: BASE_MSAT, expirySec: 3600, cltvDelta: 40, description: 'escrow' });
  expect((await box.post(`a-${who}`, who, bolt11, T0)).stored).toBe(true);
}

describe('escrow with invoices contributors post themselves', () => {
  it('waits for a missing hold invoice without holding up another contributor', async () => {
    await engine.runUntilQuiet();
    expect(await escrowEvents('a-alice')).toEqual([]);
    expect(await escrowEvents('a-bob')).toEqual([]);
    await postHoldInvoice('bob');
    await engine.runUntilQuiet();
    expect(await escrowEvents('a-bob')).toEqual(['InvoiceOpened', 'InvoiceHeld']);
    expect(await escrowEvents('a-alice')).toEqual([]);
  });

  it('releases the preimage into the log for the contributor to settle with, then waits for their bonus invoice', async () => {
    await assignment('a-bob', command('SubmitGradient', { assignmentId: 'a-bob', contributorId: 'bob', gradientDigest: hex64('g-bob'), sizeBytes: 4096, encoding: 'dense-f32', claimedLoss: 1, computeTimeMs: 5 }, T0 + 10));
    await assignment('a-bob', command('AcceptSubmission', { assignmentId: 'a-bob', validatorId: 'v', qualityScore: 0.5, bonusMsat: BONUS_MSAT, evidence: {} }, T0 + 20));
    await engine.runUntilQuiet();
    const released = (await store.readStream(`invoice-${preimages.escrow('a-bob').paymentHash}`)).find((e) => e.type === 'EscrowReleaseRequested');
    expect(released?.data.preimageHex).toBe(preimages.escrow('a-bob').preimageHex);
    // The contributor's node settles with the released preimage; the coordinator's node then sees the payment succeed.
    await network.wallet('bob').settleHoldInvoice(released!.data.preimageHex as string);
    await engine.runUntilQuiet();
    expect(await escrowEvents('a-bob')).toContain('InvoiceSettled');
    const bonusOpened = (await store.readAll({ maxCount: 1_000 })).filter((e) => e.type === 'InvoiceOpened' && e.data.kind === 'bonus');
    expect(bonusOpened).toHaveLength(0);
  });

  it('pays the bonus once its invoice is posted, and opens the late escrow too', async () => {
    const { bolt11 } = await network.wallet('bob').createInvoice({ amountMsat: BONUS_MSAT, expirySec: 3600, description: 'bonus' });
    expect((await box.postPayout('a-bob', 'bonus', 0, bolt11, T0)).stored).toBe(true);
    await postHoldInvoice('alice');
    await engine.runUntilQuiet();
    const all = await store.readAll({ maxCount: 1_000 });
    const bonusHash = all.find((e) => e.type === 'InvoiceOpened' && e.data.kind === 'bonus')?.data.paymentHash;
    expect(all.filter((e) => e.type === 'PaymentSent' && e.data.paymentHash === bonusHash)).toHaveLength(1);
    expect(await escrowEvents('a-alice')).toEqual(['InvoiceOpened', 'InvoiceHeld']);
    // Nothing is left set aside, and another pass pays nothing again.
    expect(await engine.reactor.sweep()).toBe(0);
    await engine.runUntilQuiet();
    expect((await store.readAll({ maxCount: 1_000 })).filter((e) => e.type === 'PaymentSent')).toHaveLength(1);
  });
});
