// PUT /v1/assignments/:id/payout-invoices/:kind: only what a verdict owes, only at its amount and to the registered node, once.

import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { apiHarness, type ApiHarness, type SignedContributor } from './api-harness.js';
import { expectConformant } from './openapi-conformance.js';

const BONUS_MSAT = 150_000n;
let h: ApiHarness;
let alice: SignedContributor;
let bob: SignedContributor;

beforeAll(async () => {
  h = await apiHarness();
  alice = await h.contributor('alice');
  bob = await h.contributor('bob');
  await h.seedRun('run-1', alice, 'a-1');
  const registered = await h.signed(bob, { method: 'POST', url: '/v1/contributors', json: { contributorId: 'bob', signingPublicKeyHex: bob.publicKeyHex, lightningNodePubkeyHex: bob.nodeKeyHex } });
  expect(registered.statusCode, registered.body).toBe(201);
});
afterAll(async () => h?.close());

const url = (kind: string) => `/v1/assignments/a-1/payout-invoices/${kind}`;

async function invoiceFor(who: string, amountMsat: bigint): Promise<string> {
  return (await h.network.wallet(who).createInvoice({ amountMsat, expirySec: 3600, description: 'payout' })).bolt11;
}

async function expectRefused(send: () => ReturnType<ApiHarness['signed']>, status: number, code: string): Promise<void> {
  const before = await h.eventCount();
  const response = await send();
  expect(response.statusCode, response.body).toBe(status);
  expect(response.headers['content-type']).toContain('application/problem+json');
  expect(JSON.parse(response.body).code).toBe(code);
  expect(await h.eventCount()).toBe(before);
}

describe('payout invoices', () => {
  it('refuses a payout invoice before any verdict owes one', async () => {
    await expectRefused(() => h.signed(alice, { method: 'PUT', url: url('bonus'), json: { bolt11: 'lnbcrt1xyz' } }), 409, 'NO_PAYOUT_DUE');
  });

  it('lists the bonus as due after an accepting verdict, and takes exactly one invoice for it', async () => {
    const submit = await h.signed(alice, { method: 'POST', url: '/v1/assignments/a-1/gradient', bytes: new Uint8Array(31_400), headers: { 'x-gradient-encoding': 'dense-f32', 'x-claimed-loss': '1', 'x-compute-time-ms': '5' } });
    expect(submit.statusCode, submit.body).toBe(201);
    const verdict = await h.staff('validator', { method: 'POST', url: '/v1/assignments/a-1/verdicts', payload: { verdict: 'accepted', qualityScore: 0.5, bonusMsat: String(BONUS_MSAT), evidence: {} } });
    expect(verdict.statusCode, verdict.body).toBe(201);
    const view = JSON.parse((await h.signed(alice, { method: 'GET', url: '/v1/assignments/a-1' })).body);
    // No escrow engine runs here, so no escrow was ever locked: the base reward is owed by compensation (defect: it used to be refused).
    expect(view.payouts.map((p: { kind: string; state: string; amountMsat: string }) => [p.kind, p.state, p.amountMsat])).toEqual([
      ['compensation', 'invoice-needed', '1000000'],
      ['bonus', 'invoice-needed', String(BONUS_MSAT)],
    ]);

    await expectRefused(async () => h.signed(alice, { method: 'PUT', url: url('bonus'), json: { bolt11: await invoiceFor('alice', BONUS_MSAT + 1n) } }), 422, 'INVOICE_WRONG_AMOUNT');
    await expectRefused(async () => h.signed(alice, { method: 'PUT', url: url('bonus'), json: { bolt11: await invoiceFor('mallory', BONUS_MSAT) } }), 422, 'INVOICE_WRONG_DESTINATION');
    await expectRefused(() => h.signed(alice, { method: 'PUT', url: url('bonus'), json: { bolt11: 'lnbcrt1notaninvoice' } }), 422, 'INVOICE_INVALID');
    await expectRefused(() => h.signed(bob, { method: 'PUT', url: url('bonus'), json: { bolt11: 'lnbcrt1xyz' } }), 404, 'ASSIGNMENT_NOT_FOUND');

    const posted = await h.signed(alice, { method: 'PUT', url: url('bonus'), json: { bolt11: await invoiceFor('alice', BONUS_MSAT) } });
    expect(posted.statusCode, posted.body).toBe(200);
    expect(JSON.parse(posted.body)).toEqual({ assignmentId: 'a-1', kind: 'bonus', amountMsat: String(BONUS_MSAT), attempt: 0 });
    await expectRefused(async () => h.signed(alice, { method: 'PUT', url: url('bonus'), json: { bolt11: await invoiceFor('alice', BONUS_MSAT) } }), 409, 'INVOICE_ALREADY_POSTED');
    const after = JSON.parse((await h.signed(alice, { method: 'GET', url: '/v1/assignments/a-1' })).body);
    expect(after.payouts.find((p: { kind: string }) => p.kind === 'bonus')).toMatchObject({ state: 'due', attempts: 0 });
  });

  it('takes a compensation invoice for accepted work whose escrow never locked', async () => {
    const posted = await h.signed(alice, { method: 'PUT', url: url('compensation'), json: { bolt11: await invoiceFor('alice', 1_000_000n) } });
    expect(posted.statusCode, posted.body).toBe(200);
    expect(JSON.parse(posted.body)).toMatchObject({ kind: 'compensation', amountMsat: '1000000', attempt: 0 });
    // A late hold invoice is refused: the base goes out by compensation now, never both.
    const { paymentHash } = h.preimages.escrow('a-1');
    const hold = await h.network.wallet('alice').createHoldInvoice({ paymentHash, amountMsat: 1_000_000n, expirySec: 3600, cltvDelta: 40, description: 'late' });
    await expectRefused(() => h.signed(alice, { method: 'PUT', url: '/v1/assignments/a-1/invoice', json: { bolt11: hold } }), 409, 'ESCROW_NOT_OPEN');
  });
});

it('answered nothing in this file that its OpenAPI document (/docs/json) does not describe', async () => {
  await expectConformant(h);
});
