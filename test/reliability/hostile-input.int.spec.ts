// Hostile input (reliability suite, part 3): every route fuzzed in its path, query, headers and body with fast-check,
// a corpus of malformed gradients and of signature attacks, and raw-socket header abuse. In every case: a 4xx with a
// stable code, authentication decided before the body, nothing appended, no blob kept, no 5xx, and a healthy server.

import { randomBytes, randomUUID } from 'node:crypto';
import { readdirSync } from 'node:fs';
import { connect } from 'node:net';
import { join } from 'node:path';
import fc from 'fast-check';
import type { LightMyRequestResponse } from 'fastify';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { signRequest } from '../../adapters/http/auth/http-signature.js';
import { GRADIENT_ROUTE_LIMIT_BYTES } from '../../adapters/http/routes/gradients-routes.js';
import { ALL_PROJECTORS } from '../../projections/index.js';
import { ProjectionRunner } from '../../projections/runner.js';
import { encodeDense } from '../../replay/encoding/dense-f32.js';
import { encodeSparseLoco, SPARSELOCO_FILE_HEADER_SIZE_BYTES } from '../../replay/encoding/sparseloco.js';
import { referenceStep } from '../../replay/graphs/reference-steps.js';
import { elementCount, type ParameterSet } from '../../replay/model/model-spec.js';
import { apiHarness, type ApiHarness, type SignedContributor } from '../http/api-harness.js';
import { reliabilityRuns } from './reliability-settings.js';

type Response = LightMyRequestResponse;
type Method = 'GET' | 'POST' | 'PUT';
type Route = Readonly<{ method: Method; pattern: string; params: readonly string[]; public: boolean }>;

/** A stable code: what clients branch on, never a sentence. */
const STABLE_CODE = /^[A-Z][A-Z0-9_]{2,63}$/;
const RUNS = reliabilityRuns();
const STEP = referenceStep('softmax-regression');
const GRADIENT_HEADERS = { 'x-gradient-encoding': 'dense-f32', 'x-claimed-loss': '2.30', 'x-compute-time-ms': '1500' } as const;

let h: ApiHarness;
let alice: SignedContributor;
let bob: SignedContributor;
let routes: Route[];

beforeAll(async () => {
  // A budget no fuzz run reaches: rate limits have their own suite, and here a 429 would hide what the route decides.
  h = await apiHarness('pglite', { requestsPerMinute: 10_000_000 });
  alice = await h.contributor('alice');
  bob = await h.contributor('bob');
  await h.seedRun('run-1', alice, 'a-alice');
  const registered = await h.signed(bob, { method: 'POST', url: '/v1/contributors', json: { contributorId: 'bob', signingPublicKeyHex: bob.publicKeyHex, lightningNodePubkeyHex: bob.nodeKeyHex } });
  expect(registered.statusCode, registered.body).toBe(201);
  // As `trainledger start` does before serving: the read models exist, so a read route answers from them.
  const projections = new ProjectionRunner({ store: h.store, projectors: ALL_PROJECTORS });
  await projections.prepare();
  await projections.catchUp();
  await h.app.ready();
  routes = documentedRoutes(h.app.swagger() as { paths: Record<string, Record<string, { security?: unknown[] }>> });
  expect(routes.length, 'the OpenAPI document lists the routes to fuzz').toBeGreaterThan(25);
});

afterAll(async () => h?.close());

/** Every documented operation; public are those whose document declares no security (the reference data, /health, /metrics). */
function documentedRoutes(document: { paths: Record<string, Record<string, { security?: unknown[] }>> }): Route[] {
  return Object.entries(document.paths).flatMap(([path, operations]) =>
    Object.entries(operations)
      .filter(([method]) => method === 'get' || method === 'post' || method === 'put')
      .map(([method, operation]) => ({
        method: method.toUpperCase() as Method, pattern: path, params: [...path.matchAll(/\{([^}]+)\}/g)].map((m) => m[1]!), public: (operation.security ?? []).length === 0,
      })),
  );
}

function urlOf(route: Route, segments: readonly string[], query: string): string {
  let index = 0;
  const path = route.pattern.replace(/\{[^}]+\}/g, () => encodeURIComponent(segments[index++ % segments.length] ?? 'x'));
  return query === '' ? path : `${path}?${query}`;
}

function blobCount(): number {
  const dirs = readdirSync(h.blobDir, { withFileTypes: true }).filter((d) => d.isDirectory());
  return dirs.reduce((sum, d) => sum + readdirSync(join(h.blobDir, d.name)).length, 0);
}

/** The five checks every hostile request must pass; returns the problem's code. */
async function expectRefusedHarmlessly(send: () => Promise<Response>, label: string): Promise<string> {
  const events = await h.eventCount();
  const blobs = blobCount();
  const response = await send();
  expect(response.statusCode, `${label}: ${response.body.slice(0, 300)}`).toBeGreaterThanOrEqual(400);
  expect(response.statusCode, `${label}: ${response.body.slice(0, 300)}`).toBeLessThan(500);
  expect(response.headers['content-type'], label).toContain('application/problem+json');
  const code = (response.json() as { code?: unknown }).code;
  expect(code, `${label}: ${response.body.slice(0, 300)}`).toMatch(STABLE_CODE);
  expect(await h.eventCount(), `${label}: a refused request appended an event`).toBe(events);
  expect(blobCount(), `${label}: a refused request kept a blob`).toBe(blobs);
  return code as string;
}

async function expectHealthy(): Promise<void> {
  const health = await h.app.inject({ method: 'GET', url: '/health' });
  expect(health.statusCode, health.body).toBe(200);
}

// ---------------------------------------------------------------------------------------------------- arbitraries

const printable = (maxLength: number) => fc.string({ unit: fc.integer({ min: 0x20, max: 0x7e }).map((c) => String.fromCharCode(c)), maxLength });
const segmentArb = fc.oneof(
  fc.string({ minLength: 1, maxLength: 40 }),
  fc.stringMatching(/^[a-z0-9-]{1,24}$/),
  fc.constantFrom('..', '%00', '\u0000', 'a'.repeat(300), '💥', ' ', 'a-alice', 'run-1', 'alice', 'escrow', 'bonus', '-1', '0x10'),
);
const queryArb = fc.oneof(
  fc.constant(''),
  fc.dictionary(fc.constantFrom('runId', 'limit', 'after', 'granularity', 'from', 'to', 'kind', 'x', '__proto__'), printable(30), { maxKeys: 4 })
    .map((q) => new URLSearchParams(q).toString()),
);
const headerArb = fc.dictionary(
  fc.constantFrom('idempotency-key', 'x-gradient-encoding', 'x-claimed-loss', 'x-compute-time-ms', 'signature', 'signature-input', 'content-digest', 'accept', 'x-forwarded-for', 'x-request-id'),
  fc.oneof(printable(80), fc.constantFrom('dense-f32', 'sparseloco', 'NaN', '-1', '1e309', 'sig1=:AAAA:', 'sha-256=:47DEQpj8HBSa+/TImW+5JCeuQeRkm5NMpJWZG3hSuFU=:', 'x'.repeat(5000))),
  { maxKeys: 5 },
);
const contentTypeArb = fc.option(fc.constantFrom('application/json', 'application/octet-stream', 'text/plain', 'application/json; charset=utf-16', 'multipart/form-data; boundary=x', 'application/problem+json', 'application/x-www-form-urlencoded'), { nil: undefined });
const bodyArb: fc.Arbitrary<Buffer> = fc.oneof(
  fc.jsonValue({ maxDepth: 3 }).map((v) => Buffer.from(JSON.stringify(v) ?? 'null')),
  fc.uint8Array({ maxLength: 2048 }).map((b) => Buffer.from(b)),
  fc.constantFrom('', '{', '{"runId":', '[]', 'null', '{"__proto__":{"admin":true}}', '{"constructor":{"prototype":{"x":1}}}', '{"amountMsat":"-1"}').map((s) => Buffer.from(s)),
  fc.record({ runId: segmentArb, amountMsat: fc.oneof(fc.bigInt().map(String), printable(12)), note: printable(10) }).map((v) => Buffer.from(JSON.stringify(v))),
);
/**
 * The router's own refusals: a URL it cannot decode or a parameter over its length limit matches no route, so it is
 * refused before any route's authentication, and its body is never read. Every other answer comes after authentication.
 */
const ROUTER_CODES = ['URI_TOO_LONG', 'INVALID_URL'];
/** A '.' or '..' segment is not a parameter: the URL resolves to another path, which may be no route at all. */
const parameterArb = segmentArb.filter((s) => s !== '.' && s !== '..');
const hostileArb = fc.record({ segments: fc.array(segmentArb, { minLength: 1, maxLength: 3 }), query: queryArb, headers: headerArb, contentType: contentTypeArb, body: bodyArb });
/** The same, with every path segment a parameter of the route: what the authentication properties need. */
const routedHostileArb = hostileArb.chain((input) => fc.array(parameterArb, { minLength: 1, maxLength: 3 }).map((segments) => ({ ...input, segments })));
type Hostile = Readonly<{ segments: readonly string[]; query: string; headers: Readonly<Record<string, string>>; contentType: string | undefined; body: Buffer }>;

function send(route: Route, input: Hostile, auth: Record<string, string>): Promise<Response> {
  const headers: Record<string, string> = { ...input.headers, ...auth, ...(input.contentType ? { 'content-type': input.contentType } : {}) };
  return h.app.inject({ method: route.method, url: urlOf(route, input.segments, input.query), headers, ...(route.method === 'GET' ? {} : { payload: input.body }), remoteAddress: '10.9.0.1' });
}

function signedAs(who: SignedContributor, route: Route, input: Hostile): Promise<Response> {
  const url = urlOf(route, input.segments, input.query);
  const body = route.method === 'GET' ? new Uint8Array(0) : input.body;
  const signature = signRequest({ method: route.method, path: url, body, keyId: who.contributorId, privateKey: who.privateKey, createdSec: Math.floor(h.clock.nowMs / 1000), nonce: randomBytes(18).toString('base64url') });
  return send(route, input, { ...signature, 'idempotency-key': input.headers['idempotency-key'] ?? randomUUID() });
}

// ---------------------------------------------------------------------------------------------------- fuzz

describe('every route, fuzzed', () => {
  it('refuses an anonymous request 401 whatever its path, query, headers and body (authentication before anything else)', async () => {
    const protectedRoutes = () => routes.filter((r) => !r.public);
    await fc.assert(
      fc.asyncProperty(fc.constantFrom(...protectedRoutes()), routedHostileArb, fc.constantFrom<Record<string, string>>({}, { authorization: 'Bearer tl_coordinator_guess' }, { authorization: 'Basic YTpi' }), async (route, input, auth) => {
        const code = await expectRefusedHarmlessly(() => send(route, input, auth), `${route.method} ${route.pattern}`);
        expect(['AUTHENTICATION_REQUIRED', 'INVALID_API_KEY', 'SIGNATURE_MISSING', 'SIGNATURE_MALFORMED', 'CONTENT_DIGEST_MISSING', 'CONTENT_DIGEST_MISMATCH', 'UNKNOWN_KEY', 'SIGNATURE_INVALID', 'SIGNATURE_EXPIRED', ...ROUTER_CODES], `${route.method} ${route.pattern}`).toContain(code);
      }),
      { numRuns: RUNS.fuzz, seed: RUNS.seed },
    );
    await expectHealthy();
  });

  it('refuses a staff key without the route\'s scope 403 whatever the request carries', async () => {
    // Which roles a route forbids is read from the app itself, with a request that carries nothing.
    const forbidden: { route: Route; role: keyof ApiHarness['keys'] }[] = [];
    for (const route of routes.filter((r) => !r.public)) {
      for (const role of ['coordinator', 'validator', 'analyst', 'auditor'] as const) {
        const probe = await h.app.inject({ method: route.method, url: urlOf(route, ['probe'], ''), headers: { authorization: `Bearer ${h.keys[role]}` } });
        if (probe.statusCode === 403) forbidden.push({ route, role });
      }
    }
    expect(forbidden.length, 'some roles are forbidden some routes').toBeGreaterThan(20);
    await fc.assert(
      fc.asyncProperty(fc.constantFrom(...forbidden), routedHostileArb, async ({ route, role }, input) => {
        const code = await expectRefusedHarmlessly(() => send(route, input, { authorization: `Bearer ${h.keys[role]}` }), `${role} ${route.method} ${route.pattern}`);
        expect(['FORBIDDEN', ...ROUTER_CODES]).toContain(code);
      }),
      { numRuns: RUNS.fuzz, seed: RUNS.seed },
    );
  });

  it('answers a coordinator\'s hostile requests with a 4xx and a stable code, never a 5xx, appending nothing it refuses', async () => {
    await fc.assert(
      fc.asyncProperty(fc.constantFrom(...routes), hostileArb, async (route, input) => {
        const events = await h.eventCount();
        const response = await send(route, input, { authorization: `Bearer ${h.keys.coordinator}`, 'idempotency-key': input.headers['idempotency-key'] ?? randomUUID() });
        expect(response.statusCode, `${route.method} ${urlOf(route, input.segments, input.query)}: ${response.body.slice(0, 300)}`).toBeLessThan(500);
        if (response.statusCode >= 400) {
          expect(response.headers['content-type']).toContain('application/problem+json');
          expect((response.json() as { code: string }).code).toMatch(STABLE_CODE);
          expect(await h.eventCount()).toBe(events);
        }
      }),
      { numRuns: RUNS.fuzz, seed: RUNS.seed },
    );
    await expectHealthy();
  });

  it('answers a signing contributor\'s hostile requests, signed over exactly what was sent, with a 4xx and a stable code', async () => {
    await fc.assert(
      fc.asyncProperty(fc.constantFrom(...routes), hostileArb, fc.constantFrom(alice, bob), async (route, input, who) => {
        const events = await h.eventCount();
        const response = await signedAs(who, route, input);
        expect(response.statusCode, `${route.method} ${urlOf(route, input.segments, input.query)}: ${response.body.slice(0, 300)}`).toBeLessThan(500);
        if (response.statusCode >= 400) {
          expect(response.headers['content-type']).toContain('application/problem+json');
          expect((response.json() as { code: string }).code).toMatch(STABLE_CODE);
          expect(await h.eventCount()).toBe(events);
        }
      }),
      { numRuns: RUNS.fuzz, seed: RUNS.seed },
    );
    await expectHealthy();
  });
});

// ---------------------------------------------------------------------------------------------------- gradients

/** Deterministic small gradients for the softmax-regression model: a real body the route would take. */
function gradients(): ParameterSet {
  return STEP.model.parameters.map((tensor, t) => Float32Array.from({ length: elementCount(tensor) }, (_, i) => Math.sin(i * 0.37 + t) * 1e-3)) as unknown as ParameterSet;
}

function withFloatAt(bytes: Uint8Array, index: number, value: number): Uint8Array {
  const copy = Uint8Array.from(bytes);
  new DataView(copy.buffer).setFloat32(index * 4, value, true);
  return copy;
}

/** The first tensor's first packed index pair (a | b << 12, little-endian), rewritten. */
function withFirstIndexPair(bytes: Uint8Array, a: number, b: number): Uint8Array {
  const copy = Uint8Array.from(bytes);
  const at = SPARSELOCO_FILE_HEADER_SIZE_BYTES + 28;
  const packed = a | (b << 12);
  copy[at] = packed & 0xff;
  copy[at + 1] = (packed >> 8) & 0xff;
  copy[at + 2] = (packed >> 16) & 0xff;
  return copy;
}

function withU32At(bytes: Uint8Array, offset: number, value: number): Uint8Array {
  const copy = Uint8Array.from(bytes);
  new DataView(copy.buffer).setUint32(offset, value, true);
  return copy;
}

function withU16At(bytes: Uint8Array, offset: number, value: number): Uint8Array {
  const copy = Uint8Array.from(bytes);
  new DataView(copy.buffer).setUint16(offset, value, true);
  return copy;
}

describe('a corpus of malformed gradients', () => {
  const dense = encodeDense(STEP.model, gradients());
  const sparse = encodeSparseLoco(STEP.model, gradients(), { chunkSize: 64, topK: 4 });
  const tensorHeaderAt = SPARSELOCO_FILE_HEADER_SIZE_BYTES;
  type Case = Readonly<{ name: string; bytes: Uint8Array; headers?: Record<string, string>; status: number; code: string }>;
  const corpus: Case[] = [
    { name: 'empty', bytes: new Uint8Array(0), status: 422, code: 'GRADIENT_EMPTY' },
    { name: 'truncated dense', bytes: dense.slice(0, dense.length - 3), status: 422, code: 'GRADIENT_TRUNCATED' },
    { name: 'truncated to half', bytes: dense.slice(0, dense.length / 2), status: 422, code: 'GRADIENT_TRUNCATED' },
    { name: 'dense with trailing bytes', bytes: Uint8Array.from([...dense, 0, 0, 0, 0]), status: 413, code: 'GRADIENT_TOO_LARGE' },
    { name: 'NaN', bytes: withFloatAt(dense, 17, Number.NaN), status: 422, code: 'GRADIENT_NON_FINITE' },
    { name: '+Inf', bytes: withFloatAt(dense, 0, Number.POSITIVE_INFINITY), status: 422, code: 'GRADIENT_NON_FINITE' },
    { name: '-Inf, last element', bytes: withFloatAt(dense, dense.length / 4 - 1, Number.NEGATIVE_INFINITY), status: 422, code: 'GRADIENT_NON_FINITE' },
    { name: 'sparse index out of its chunk', bytes: withFirstIndexPair(sparse, 100, 101), headers: { 'x-gradient-encoding': 'sparseloco' }, status: 422, code: 'GRADIENT_INDEX_OUT_OF_RANGE' },
    { name: 'sparse index repeated', bytes: withFirstIndexPair(sparse, 5, 5), headers: { 'x-gradient-encoding': 'sparseloco' }, status: 422, code: 'GRADIENT_INDEX_NOT_INCREASING' },
    { name: 'sparse indices decreasing', bytes: withFirstIndexPair(sparse, 9, 3), headers: { 'x-gradient-encoding': 'sparseloco' }, status: 422, code: 'GRADIENT_INDEX_NOT_INCREASING' },
    { name: 'absurd tensor count', bytes: withU16At(sparse, 5, 0xffff), headers: { 'x-gradient-encoding': 'sparseloco' }, status: 422, code: 'GRADIENT_SHAPE_MISMATCH' },
    { name: 'absurd element count', bytes: withU32At(sparse, tensorHeaderAt, 0xffffffff), headers: { 'x-gradient-encoding': 'sparseloco' }, status: 422, code: 'GRADIENT_SHAPE_MISMATCH' },
    { name: 'zero chunk size', bytes: withU16At(sparse, tensorHeaderAt + 4, 0), headers: { 'x-gradient-encoding': 'sparseloco' }, status: 422, code: 'GRADIENT_BAD_CHUNKING' },
    { name: 'top-k above the chunk', bytes: withU16At(sparse, tensorHeaderAt + 6, 65), headers: { 'x-gradient-encoding': 'sparseloco' }, status: 422, code: 'GRADIENT_BAD_CHUNKING' },
    { name: 'over the model\'s limit, under the route\'s', bytes: new Uint8Array(dense.length * 2), status: 413, code: 'GRADIENT_TOO_LARGE' },
    { name: 'over the route\'s limit', bytes: new Uint8Array(GRADIENT_ROUTE_LIMIT_BYTES + 1), status: 413, code: 'BODY_TOO_LARGE' },
    { name: 'a dense body sent as sparseloco (larger than any sparse body)', bytes: dense, headers: { 'x-gradient-encoding': 'sparseloco' }, status: 413, code: 'GRADIENT_TOO_LARGE' },
    { name: 'a sparse body with a wrong magic', bytes: Uint8Array.from(sparse, (b, i) => (i === 0 ? 0x00 : b)), headers: { 'x-gradient-encoding': 'sparseloco' }, status: 422, code: 'GRADIENT_BAD_MAGIC' },
    { name: 'a sparse body of an unknown version', bytes: Uint8Array.from(sparse, (b, i) => (i === 4 ? 9 : b)), headers: { 'x-gradient-encoding': 'sparseloco' }, status: 422, code: 'GRADIENT_BAD_VERSION' },
    { name: 'a sparse body sent as dense', bytes: sparse, status: 422, code: 'GRADIENT_TRUNCATED' },
    { name: 'an unknown encoding', bytes: dense, headers: { 'x-gradient-encoding': 'dense-f16' }, status: 400, code: 'VALIDATION_FAILED' },
    { name: 'a claimed loss that overflows', bytes: dense, headers: { 'x-claimed-loss': '1e309' }, status: 400, code: 'VALIDATION_FAILED' },
    { name: 'a negative compute time', bytes: dense, headers: { 'x-compute-time-ms': '-5' }, status: 400, code: 'VALIDATION_FAILED' },
    { name: 'an absurd compute time', bytes: dense, headers: { 'x-compute-time-ms': '999999999999' }, status: 400, code: 'VALIDATION_FAILED' },
  ];

  it.each(corpus)('refuses $name with $status $code, keeps no blob and appends nothing', async ({ bytes, headers, status, code }) => {
    const refused = await expectRefusedHarmlessly(
      () => h.signed(alice, { method: 'POST', url: '/v1/assignments/a-alice/gradient', bytes, headers: { ...GRADIENT_HEADERS, ...headers } }),
      code,
    );
    expect(refused).toBe(code);
    const again = await h.signed(alice, { method: 'POST', url: '/v1/assignments/a-alice/gradient', bytes, headers: { ...GRADIENT_HEADERS, ...headers } });
    expect(again.statusCode).toBe(status);
  });

  it('still takes the honest gradient after the whole corpus: the assignment was not harmed', async () => {
    const accepted = await h.signed(alice, { method: 'POST', url: '/v1/assignments/a-alice/gradient', bytes: dense, headers: GRADIENT_HEADERS });
    expect(accepted.statusCode, accepted.body).toBe(201);
    expect((accepted.json() as { events: { type: string }[] }).events.map((e) => e.type)).toEqual(['GradientSubmitted']);
    await expectHealthy();
  });
});

// ---------------------------------------------------------------------------------------------------- signatures

describe('signature attacks', () => {
  const url = '/v1/assignments/a-alice';
  const signedGet = (who: SignedContributor, o: { keyId?: string; createdSec?: number; nonce?: string; path?: string } = {}) => {
    const signature = signRequest({ method: 'GET', path: o.path ?? url, body: new Uint8Array(0), keyId: o.keyId ?? who.contributorId, privateKey: who.privateKey, createdSec: o.createdSec ?? Math.floor(h.clock.nowMs / 1000), nonce: o.nonce ?? randomBytes(18).toString('base64url') });
    return { signature, send: () => h.app.inject({ method: 'GET', url, headers: signature }) };
  };
  const nowSec = () => Math.floor(h.clock.nowMs / 1000);

  it.each([
    ['forged: bob signs under alice\'s keyid', () => signedGet(bob, { keyId: 'alice' }).send(), 'SIGNATURE_INVALID'],
    ['an unknown keyid', () => signedGet(bob, { keyId: 'nobody' }).send(), 'UNKNOWN_KEY'],
    ['expired: created an hour ago', () => signedGet(alice, { createdSec: nowSec() - 3600 }).send(), 'SIGNATURE_EXPIRED'],
    ['from the future: created an hour ahead', () => signedGet(alice, { createdSec: nowSec() + 3600 }).send(), 'SIGNATURE_FROM_FUTURE'],
    ['signed for another path', () => signedGet(alice, { path: '/v1/assignments/a-other' }).send(), 'SIGNATURE_INVALID'],
    ['a signature with its bytes flipped', () => {
      const { signature } = signedGet(alice);
      const flipped = signature.signature.replace(/:(.)/, (_, c: string) => `:${c === 'A' ? 'B' : 'A'}`);
      return h.app.inject({ method: 'GET', url, headers: { ...signature, signature: flipped } });
    }, 'SIGNATURE_INVALID'],
  ] as const)('refuses %s', async (_name, attempt, code) => {
    expect(await expectRefusedHarmlessly(attempt, code)).toBe(code);
  });

  it('refuses a replayed request, byte for byte the same, with NONCE_REPLAYED', async () => {
    const { signature } = signedGet(alice);
    const first = await h.app.inject({ method: 'GET', url, headers: signature });
    expect(first.statusCode, first.body).toBe(200);
    expect(await expectRefusedHarmlessly(() => h.app.inject({ method: 'GET', url, headers: signature }), 'replay')).toBe('NONCE_REPLAYED');
  });

  it('refuses a replayed signed write with NONCE_REPLAYED before its Idempotency-Key is looked at', async () => {
    const body = Buffer.from(JSON.stringify({ disputeId: 'd-replay', reason: 'replayed' }));
    const signature = signRequest({ method: 'POST', path: '/v1/assignments/a-alice/disputes', body, keyId: 'alice', privateKey: alice.privateKey, createdSec: nowSec(), nonce: randomBytes(18).toString('base64url') });
    const headers = { ...signature, 'content-type': 'application/json', 'idempotency-key': randomUUID() };
    const first = await h.app.inject({ method: 'POST', url: '/v1/assignments/a-alice/disputes', headers, payload: body });
    expect(first.statusCode).toBeLessThan(500);
    expect(await expectRefusedHarmlessly(() => h.app.inject({ method: 'POST', url: '/v1/assignments/a-alice/disputes', headers, payload: body }), 'replayed write')).toBe('NONCE_REPLAYED');
  });

  it('refuses a contributor on another contributor\'s assignment and rewards, and on staff routes', async () => {
    const bobOnAlice = await expectRefusedHarmlessly(() => h.signed(bob, { method: 'POST', url: '/v1/assignments/a-alice/gradient', bytes: encodeDense(STEP.model, gradients()), headers: GRADIENT_HEADERS }), 'bob submits for alice');
    expect(['FORBIDDEN', 'ASSIGNMENT_NOT_FOUND']).toContain(bobOnAlice);
    expect(['FORBIDDEN', 'ASSIGNMENT_NOT_FOUND']).toContain(await expectRefusedHarmlessly(() => h.signed(bob, { method: 'GET', url: '/v1/assignments/a-alice' }), 'bob reads alice'));
    expect(await expectRefusedHarmlessly(() => h.signed(bob, { method: 'GET', url: '/v1/rewards/contributors/alice' }), 'bob reads alice\'s rewards')).toBe('FORBIDDEN');
    // A signature is not a staff credential: staff routes ask for a bearer key.
    expect(await expectRefusedHarmlessly(() => h.signed(alice, { method: 'POST', url: '/v1/runs', json: { runId: 'mine' } }), 'alice opens a run')).toBe('AUTHENTICATION_REQUIRED');
    expect(await expectRefusedHarmlessly(() => h.signed(alice, { method: 'POST', url: '/v1/assignments/a-alice/verdicts', json: { verdict: 'accepted' } }), 'alice judges herself')).toBe('AUTHENTICATION_REQUIRED');
  });

  it('refuses staff keys of the wrong role on the contributor\'s own routes', async () => {
    for (const role of ['validator', 'analyst', 'auditor'] as const) {
      const code = await expectRefusedHarmlessly(() => h.staff(role, { method: 'POST', url: '/v1/assignments/a-alice/gradient', payload: Buffer.alloc(64), headers: { 'content-type': 'application/octet-stream', ...GRADIENT_HEADERS } }), `${role} submits`);
      expect(['FORBIDDEN', 'SIGNATURE_MISSING']).toContain(code);
    }
  });
});

// ---------------------------------------------------------------------------------------------------- raw sockets

describe('header abuse over a real socket', () => {
  let port: number;

  beforeAll(async () => {
    await h.app.listen({ host: '127.0.0.1', port: 0 });
    port = (h.app.server.address() as { port: number }).port;
  });

  /** Sends raw bytes and resolves with the whole response once the server closes or finishes it. */
  function raw(request: string): Promise<{ status: number; contentType: string; body: string }> {
    return new Promise((resolve, reject) => {
      const socket = connect({ host: '127.0.0.1', port }, () => socket.end(request));
      const chunks: Buffer[] = [];
      socket.on('data', (chunk) => chunks.push(chunk));
      socket.on('error', reject);
      socket.on('close', () => {
        const text = Buffer.concat(chunks).toString('latin1');
        const [head = '', ...rest] = text.split('\r\n\r\n');
        resolve({ status: Number(/^HTTP\/1\.1 (\d{3})/.exec(head)?.[1] ?? 0), contentType: /content-type: ([^\r\n]+)/i.exec(head)?.[1] ?? '', body: rest.join('\r\n\r\n') });
      });
    });
  }

  async function expectRawRefused(request: string, status: number, code: string): Promise<void> {
    const events = await h.eventCount();
    const response = await raw(request);
    expect(response.status, response.body).toBe(status);
    expect(response.contentType).toContain('application/problem+json');
    expect(JSON.parse(response.body.replace(/^[0-9a-f]+\r\n/, '').replace(/\r\n0\r\n$/, '').trim())).toMatchObject({ status, code });
    expect(await h.eventCount()).toBe(events);
  }

  it('answers headers over the server\'s limit 431 with a stable code', async () => {
    await expectRawRefused(`GET /v1/events HTTP/1.1\r\nhost: x\r\nauthorization: Bearer ${'a'.repeat(20_000)}\r\nconnection: close\r\n\r\n`, 431, 'HEADERS_TOO_LARGE');
  });

  it('answers a request the HTTP parser refuses (two different Content-Lengths) 400 with a stable code', async () => {
    await expectRawRefused('POST /v1/runs HTTP/1.1\r\nhost: x\r\ncontent-length: 2\r\ncontent-length: 5\r\nconnection: close\r\n\r\n{}', 400, 'MALFORMED_REQUEST');
  });

  it('refuses duplicated signature headers rather than verify one of them', async () => {
    const signature = signRequest({ method: 'GET', path: '/v1/assignments/a-alice', body: new Uint8Array(0), keyId: 'alice', privateKey: alice.privateKey, createdSec: Math.floor(h.clock.nowMs / 1000), nonce: randomBytes(18).toString('base64url') });
    const twice = (name: string, value: string) => `${name}: ${value}\r\n${name}: ${value}\r\n`;
    const head = (extra: string) => `GET /v1/assignments/a-alice HTTP/1.1\r\nhost: x\r\ncontent-digest: ${signature['content-digest']}\r\n${extra}connection: close\r\n\r\n`;
    await expectRawRefused(head(`${twice('signature', signature.signature)}signature-input: ${signature['signature-input']}\r\n`), 401, 'SIGNATURE_MALFORMED');
    await expectRawRefused(head(`signature: ${signature.signature}\r\n${twice('signature-input', signature['signature-input'])}`), 401, 'SIGNATURE_MALFORMED');
  });

  it('refuses a duplicated Idempotency-Key on a write', async () => {
    const body = '{}';
    await expectRawRefused(`POST /v1/runs HTTP/1.1\r\nhost: x\r\nauthorization: Bearer ${h.keys.coordinator}\r\ncontent-type: application/json\r\nidempotency-key: k-1\r\nidempotency-key: k-2\r\ncontent-length: ${body.length}\r\nconnection: close\r\n\r\n${body}`, 400, 'IDEMPOTENCY_KEY_INVALID');
  });

  it('stays healthy over the socket after all of it', async () => {
    const health = await raw('GET /health HTTP/1.1\r\nhost: x\r\nconnection: close\r\n\r\n');
    expect(health.status).toBe(200);
  });
});

// ---------------------------------------------------------------------------------------------------- found on the way

describe('a read route before the projections part has created its tables (found by the fuzz: it answered 500)', () => {
  let bare: ApiHarness;
  beforeAll(async () => {
    bare = await apiHarness('pglite');
  });
  afterAll(async () => bare?.close());

  it('answers 503 READ_MODEL_NOT_READY, naming what to start, rather than 500 INTERNAL', async () => {
    const response = await bare.staff('analyst', { method: 'GET', url: '/v1/rewards/contributors' });
    expect(response.statusCode, response.body).toBe(503);
    expect(response.json()).toMatchObject({ code: 'READ_MODEL_NOT_READY' });
    expect((response.json() as { detail: string }).detail).toContain('--parts projections');
  });
});
