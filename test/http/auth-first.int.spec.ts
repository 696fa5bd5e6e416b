// Authentication first, through the whole app on both engines: a request is authenticated and authorised before its
// body is read or validated and before its Idempotency-Key is looked at, and rate limits key on verified callers only.

import { randomBytes, randomUUID } from 'node:crypto';
import type { LightMyRequestResponse } from 'fastify';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { signRequest } from '../../adapters/http/auth/http-signature.js';
import { GRADIENT_ROUTE_LIMIT_BYTES } from '../../adapters/http/routes/gradients-routes.js';
import { apiHarness, type ApiHarness, type SignedContributor } from './api-harness.js';
import { expectConformant } from './openapi-conformance.js';

type Response = LightMyRequestResponse;

const PROBLEM_JSON = 'application/problem+json';
/** Small, so a test can go past a caller's budget in a handful of requests. */
const REQUESTS_PER_MINUTE = 3;
/** The IP ceiling the app derives from it (DEFAULT_IP_CEILING_FACTOR). */
const REQUESTS_PER_MINUTE_PER_IP = 4 * REQUESTS_PER_MINUTE;
const GRADIENT_URL = '/v1/assignments/a-none/gradient';
/** Not a run: no field the schema wants, one it forbids. */
const INVALID_RUN_BODY = { runId: 'has space', shards: 'none' };

function expectProblem(response: Response, status: number, code: string): void {
  expect(response.statusCode, response.body).toBe(status);
  expect(response.headers['content-type']).toContain(PROBLEM_JSON);
  expect(response.json()).toMatchObject({ status, code });
}

type SignedOptions = {
  method: 'GET' | 'POST' | 'PUT';
  url: string;
  body?: Uint8Array;
  /** The bytes the signature's Content-Digest covers, when they are not the ones sent. */
  signedBody?: Uint8Array;
  contentType?: string;
  headers?: Record<string, string>;
  keyId?: string;
  nonce?: string;
  remoteAddress?: string;
};

/** A request signed by `who` with real ed25519, sent from `remoteAddress`, with no Idempotency-Key unless given in headers. */
function signedFrom(h: ApiHarness, who: SignedContributor, o: SignedOptions): Promise<Response> {
  const body = o.body ?? new Uint8Array(0);
  const signature = signRequest({
    method: o.method, path: o.url, body: o.signedBody ?? body, keyId: o.keyId ?? who.contributorId, privateKey: who.privateKey,
    createdSec: Math.floor(h.clock.nowMs / 1000), nonce: o.nonce ?? randomBytes(18).toString('base64url'),
  });
  const headers: Record<string, string> = { ...signature, ...(o.contentType ? { 'content-type': o.contentType } : {}), ...o.headers };
  return h.app.inject({ method: o.method, url: o.url, headers, remoteAddress: o.remoteAddress ?? '127.0.0.1', ...(o.method === 'GET' ? {} : { payload: Buffer.from(body) }) });
}

function json(value: unknown): Uint8Array {
  return Buffer.from(JSON.stringify(value));
}

async function register(h: ApiHarness, who: SignedContributor): Promise<void> {
  const body = json({ contributorId: who.contributorId, signingPublicKeyHex: who.publicKeyHex, lightningNodePubkeyHex: who.nodeKeyHex });
  const registered = await signedFrom(h, who, { method: 'POST', url: '/v1/contributors', body, contentType: 'application/json', headers: { 'idempotency-key': randomUUID() } });
  expect(registered.statusCode, registered.body).toBe(201);
}

describe.each(['pglite', 'postgres'] as const)('authentication first on %s', (engine) => {
  let h: ApiHarness;
  let alice: SignedContributor;
  let mallory: SignedContributor;

  beforeAll(async () => {
    h = await apiHarness(engine);
    alice = await h.contributor('alice');
    mallory = await h.contributor('mallory');
    await register(h, alice);
  });
  afterAll(async () => h.close());

  it('answers an anonymous POST to an idempotent JSON route 401, whatever its body and without an Idempotency-Key', async () => {
    const events = await h.eventCount();
    expectProblem(await h.app.inject({ method: 'POST', url: '/v1/runs', payload: INVALID_RUN_BODY }), 401, 'AUTHENTICATION_REQUIRED');
    expectProblem(await h.app.inject({ method: 'POST', url: '/v1/runs', headers: { 'content-type': 'application/json' }, payload: '{"runId":' }), 401, 'AUTHENTICATION_REQUIRED');
    expectProblem(await h.app.inject({ method: 'POST', url: '/v1/runs', headers: { authorization: 'Bearer tl_coordinator_guess' }, payload: INVALID_RUN_BODY }), 401, 'INVALID_API_KEY');
    expect(await h.eventCount()).toBe(events);
  });

  it('answers a staff key without the route\'s scope 403, before its invalid body or missing Idempotency-Key', async () => {
    const forbidden = await h.app.inject({ method: 'POST', url: '/v1/runs', headers: { authorization: `Bearer ${h.keys.analyst}` }, payload: INVALID_RUN_BODY });
    expectProblem(forbidden, 403, 'FORBIDDEN');
    expectProblem(await h.app.inject({ method: 'GET', url: '/v1/metrics/periods?granularity=year', headers: { authorization: `Bearer ${h.keys.validator}` } }), 403, 'FORBIDDEN');
    // With the scope, the same requests reach the checks that come after authentication.
    expectProblem(await h.app.inject({ method: 'POST', url: '/v1/runs', headers: { authorization: `Bearer ${h.keys.coordinator}` }, payload: INVALID_RUN_BODY }), 400, 'IDEMPOTENCY_KEY_MISSING');
    expectProblem(await h.staff('coordinator', { method: 'POST', url: '/v1/runs', payload: INVALID_RUN_BODY }), 400, 'VALIDATION_FAILED');
  });

  it('answers an unsigned or garbled-signature gradient upload 401, before its headers, key or body are checked', async () => {
    const upload = (headers: Record<string, string>, payload: Buffer = Buffer.alloc(31_400)) =>
      h.app.inject({ method: 'POST', url: GRADIENT_URL, headers: { 'content-type': 'application/octet-stream', ...headers }, payload });
    expectProblem(await upload({}), 401, 'SIGNATURE_MISSING');
    expectProblem(await upload({ 'signature-input': 'sig1=(', signature: 'sig1=:AAAA:', 'content-digest': 'sha-256=:x' }), 401, 'SIGNATURE_MALFORMED');
    // Never read: an anonymous body over the route's limit costs a header check, not a 413.
    expectProblem(await upload({}, Buffer.alloc(GRADIENT_ROUTE_LIMIT_BYTES + 1)), 401, 'SIGNATURE_MISSING');
    const forged = await signedFrom(h, mallory, { method: 'POST', url: GRADIENT_URL, body: new Uint8Array(31_400), contentType: 'application/octet-stream', keyId: 'alice' });
    expectProblem(forged, 401, 'SIGNATURE_INVALID');
    expectProblem(await h.app.inject({ method: 'PUT', url: '/v1/checkpoints', headers: { 'content-type': 'application/octet-stream' }, payload: Buffer.alloc(64) }), 401, 'AUTHENTICATION_REQUIRED');
  });

  it('refuses a correctly signed request whose body does not match its Content-Digest (CONTENT_DIGEST_MISMATCH), before validation', async () => {
    const signedBytes = new Uint8Array(31_400);
    const sentBytes = Uint8Array.from(signedBytes, (_, i) => (i === 7 ? 1 : 0));
    // No Idempotency-Key and none of the gradient headers: the digest is settled first.
    const gradient = await signedFrom(h, alice, { method: 'POST', url: GRADIENT_URL, body: sentBytes, signedBody: signedBytes, contentType: 'application/octet-stream' });
    expectProblem(gradient, 401, 'CONTENT_DIGEST_MISMATCH');
    const dispute = await signedFrom(h, alice, { method: 'POST', url: '/v1/assignments/a-none/disputes', body: json({ disputeId: 'has space' }), signedBody: json({ disputeId: 'd-1', reason: 'x' }), contentType: 'application/json' });
    expectProblem(dispute, 401, 'CONTENT_DIGEST_MISMATCH');
    // The body that was signed gets past authentication, to the checks after it.
    const honest = await signedFrom(h, alice, { method: 'POST', url: GRADIENT_URL, body: signedBytes, contentType: 'application/octet-stream' });
    expectProblem(honest, 400, 'IDEMPOTENCY_KEY_MISSING');
    const keyed = await signedFrom(h, alice, { method: 'POST', url: GRADIENT_URL, body: signedBytes, contentType: 'application/octet-stream', headers: { 'idempotency-key': randomUUID() } });
    expectProblem(keyed, 400, 'VALIDATION_FAILED');
  });

  it('checks a self-registration\'s proof of possession before validating its body', async () => {
    const dave = await h.contributor('dave');
    const body = json({ contributorId: 'dave', signingPublicKeyHex: dave.publicKeyHex, lightningNodePubkeyHex: 'not a node key' });
    expectProblem(await h.app.inject({ method: 'POST', url: '/v1/contributors', headers: { 'content-type': 'application/json' }, payload: Buffer.from(body) }), 401, 'SIGNATURE_MISSING');
    // Signed by dave, but the body registers no key under keyid "dave": nothing to verify against.
    expectProblem(await signedFrom(h, dave, { method: 'POST', url: '/v1/contributors', body: json({ contributorId: 'eve' }), contentType: 'application/json' }), 401, 'UNKNOWN_KEY');
    expectProblem(await signedFrom(h, mallory, { method: 'POST', url: '/v1/contributors', body, contentType: 'application/json', keyId: 'dave' }), 401, 'SIGNATURE_INVALID');
    expectProblem(await signedFrom(h, dave, { method: 'POST', url: '/v1/contributors', body, contentType: 'application/json', headers: { 'idempotency-key': randomUUID() } }), 400, 'VALIDATION_FAILED');
  });

  it('burns a nonce only once the signature verified: a forgery cannot use up a contributor\'s nonce', async () => {
    const nonce = randomBytes(18).toString('base64url');
    expectProblem(await signedFrom(h, mallory, { method: 'GET', url: '/v1/assignments/a-none', keyId: 'alice', nonce }), 401, 'SIGNATURE_INVALID');
    const real = await signedFrom(h, alice, { method: 'GET', url: '/v1/assignments/a-none', nonce });
    expect(real.statusCode, real.body).not.toBe(401);
    expectProblem(await signedFrom(h, alice, { method: 'GET', url: '/v1/assignments/a-none', nonce }), 401, 'NONCE_REPLAYED');
  });
  it('answered nothing above that its OpenAPI document (/docs/json) does not describe', async () => {
    await expectConformant(h);
  });
});

describe.each(['pglite', 'postgres'] as const)('rate limits on verified callers on %s', (engine) => {
  let h: ApiHarness;
  let alice: SignedContributor;
  let mallory: SignedContributor;

  beforeAll(async () => {
    h = await apiHarness(engine, { requestsPerMinute: REQUESTS_PER_MINUTE });
    alice = await h.contributor('alice');
    mallory = await h.contributor('mallory');
    await register(h, alice);
  });
  afterAll(async () => h.close());

  const readOwnRewards = (remoteAddress: string) => signedFrom(h, alice, { method: 'GET', url: '/v1/rewards/contributors/alice', remoteAddress });

  it('does not let forged requests under a contributor\'s keyid spend her budget', async () => {
    const forgedStatuses: number[] = [];
    for (let i = 0; i < 2 * REQUESTS_PER_MINUTE; i += 1) {
      forgedStatuses.push((await signedFrom(h, mallory, { method: 'GET', url: '/v1/rewards/contributors/alice', keyId: 'alice', remoteAddress: '10.7.0.1' })).statusCode);
    }
    expect(forgedStatuses).toEqual(Array(2 * REQUESTS_PER_MINUTE).fill(401));
    // Her own budget is whole, and it is a real budget: one past it is refused.
    for (let i = 0; i < REQUESTS_PER_MINUTE; i += 1) {
      const served = await readOwnRewards('10.7.0.1');
      expect(served.statusCode, served.body).not.toBe(429);
      expect(served.statusCode, served.body).not.toBe(401);
    }
    expectProblem(await readOwnRewards('10.7.0.2'), 429, 'RATE_LIMITED');
  });

  it('limits failed authentication by IP, and never by the caller it names', async () => {
    const bad = (remoteAddress: string) => h.app.inject({ method: 'GET', url: '/v1/events', headers: { authorization: 'Bearer tl_coordinator_guess' }, remoteAddress });
    const statuses: number[] = [];
    for (let i = 0; i < REQUESTS_PER_MINUTE_PER_IP; i += 1) statuses.push((await bad('10.8.0.1')).statusCode);
    expect(statuses).toEqual(Array(REQUESTS_PER_MINUTE_PER_IP).fill(401));
    const limited = await bad('10.8.0.1');
    expectProblem(limited, 429, 'RATE_LIMITED');
    expect(Number(limited.headers['retry-after'])).toBeGreaterThan(0);
    // The ceiling holds for every request from that address, a valid key's too.
    expectProblem(await h.app.inject({ method: 'GET', url: '/v1/events', headers: { authorization: `Bearer ${h.keys.auditor}` }, remoteAddress: '10.8.0.1' }), 429, 'RATE_LIMITED');
    // Elsewhere the auditor's own budget is untouched by all of it.
    for (let i = 0; i < REQUESTS_PER_MINUTE; i += 1) {
      const served = await h.app.inject({ method: 'GET', url: '/v1/events', headers: { authorization: `Bearer ${h.keys.auditor}` }, remoteAddress: '10.8.0.2' });
      expect(served.statusCode, served.body).toBe(200);
    }
    expectProblem(await bad('10.8.0.3'), 401, 'INVALID_API_KEY');
  });

  it('answered nothing above that its OpenAPI document (/docs/json) does not describe', async () => {
    await expectConformant(h);
  });
});
