// The problem handler through fastify's inject on a real PGlite store: every mapping, and no request content ever gets a 5xx.

import { randomUUID } from 'node:crypto';
import Fastify, { type FastifyInstance, type LightMyRequestResponse } from 'fastify';
import fc from 'fast-check';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { ConcurrencyConflictError } from '../../adapters/commands/command-handler.js';
import { openEventStore, type OpenedEventStore } from '../../adapters/event-store/open-event-store.js';
import { registerRawBody } from '../../adapters/http/idempotency.js';
import { ApiError, DOMAIN_CODE_STATUS, domainStatus, frameworkErrorsAsProblems, registerProblemHandler } from '../../adapters/http/problem.js';
import { DomainError } from '../../domain/errors.js';
import { LightningError } from '../../domain/ports/lightning.js';
import { BlobStoreError } from '../../replay/ports/blob-store.js';
import { GradientDecodeError } from '../../replay/encoding/gradient-decode-error.js';

const BODY_LIMIT_BYTES = 4 * 1024;
const SECRET = 'password=hunter2 at db.internal:5432';
/** Generated requests per property run; each is one inject against the real store. */
const FUZZ_RUNS = 300;

let opened: OpenedEventStore;
let app: FastifyInstance;

beforeAll(async () => {
  opened = await openEventStore({ engine: 'pglite' });
  app = Fastify({ bodyLimit: BODY_LIMIT_BYTES, frameworkErrors: frameworkErrorsAsProblems });
  registerProblemHandler(app);
  registerRawBody(app);
  declareRoutes(app, opened);
  await app.ready();
});

afterAll(async () => {
  await app.close();
  await opened.store.close();
});

function declareRoutes(instance: FastifyInstance, { store }: OpenedEventStore): void {
  const thingSchema = { type: 'object', required: ['name', 'count'], additionalProperties: false, properties: { name: { type: 'string', minLength: 1 }, count: { type: 'integer', minimum: 0 } } };
  instance.post('/things', { schema: { body: thingSchema } }, async (_request, reply) => reply.code(201).send({ ok: true }));
  instance.get('/things/:id', { schema: { params: { type: 'object', properties: { id: { type: 'string', pattern: '^[a-z]+$' } } } } }, async (request) => ({ id: (request.params as { id: string }).id }));
  // Checks its own input like a real route: a JSON body (even `null`) is the caller's mistake, not a fault.
  instance.put('/blobs', async (request) => {
    if (!Buffer.isBuffer(request.body)) throw new ApiError(415, 'UNSUPPORTED_MEDIA_TYPE', 'send bytes as application/octet-stream');
    return { bytes: request.body.byteLength };
  });
  // A real append: the stream id and expected revision come straight from the request.
  instance.post('/streams/:streamId', async (request) => {
    const { expectedRevision } = (request.body ?? {}) as { expectedRevision?: number | 'no_stream' | 'any' };
    const streamId = (request.params as { streamId: string }).streamId;
    const result = await store.append(streamId, [{ eventId: randomUUID(), type: 'Probed', data: {} }], { expectedRevision: expectedRevision ?? 'any' });
    return { lastRevision: result.lastRevision };
  });
  instance.post('/keyed/:key', async (request) => {
    const digest = ((request.body ?? {}) as { digest?: string }).digest ?? '0'.repeat(64);
    const key = (request.params as { key: string }).key;
    await store.append(`keyed-${key}`, [{ eventId: randomUUID(), type: 'Keyed', data: {} }], { expectedRevision: 'any', idempotency: { key, requestDigest: digest } });
    return { ok: true };
  });
  instance.get('/throw/api', async () => {
    throw new ApiError(402, 'PAYMENT_NEEDED', 'pay first', { priceMsat: '1000', status: 999 });
  });
  instance.get('/throw/api-bad-status', async () => {
    throw new ApiError(200, 'NOT_AN_ERROR', 'a handler bug');
  });
  instance.get('/throw/domain/:code', async (request) => {
    throw new DomainError((request.params as { code: string }).code, 'refused by the domain', { runId: 'run-1', availableMsat: 5n });
  });
  instance.get('/throw/plain', async () => {
    throw new Error(SECRET);
  });
  instance.get('/throw/non-error', async () => {
    throw SECRET as unknown as Error;
  });
  instance.get('/throw/gradient', async () => {
    throw new GradientDecodeError('GRADIENT_TRUNCATED', 'tensor fc1.weight ends at byte 12 of 40');
  });
  instance.get('/throw/concurrency', async () => {
    throw new ConcurrencyConflictError('run-1', 5);
  });
  instance.get('/throw/lightning/:code', async (request) => {
    throw new LightningError((request.params as { code: string }).code, SECRET, true);
  });
  instance.get('/throw/blob/:code', async (request) => {
    throw new BlobStoreError((request.params as { code: 'BLOB_TOO_LARGE' | 'BLOB_CORRUPT' }).code, 'blob refused');
  });
}

function expectProblem(response: LightMyRequestResponse, status: number, code: string): Record<string, unknown> {
  expect(response.statusCode, response.body).toBe(status);
  expect(response.headers['content-type']).toContain('application/problem+json');
  const body = response.json() as Record<string, unknown>;
  expect(body).toMatchObject({ status, code, type: `https://trainledger.dev/problems/${code.toLowerCase().replace(/_/g, '-')}` });
  expect(typeof body.title).toBe('string');
  expect(typeof body.detail).toBe('string');
  return body;
}

describe('problem+json for framework errors', () => {
  it('answers an unknown route with 404 ROUTE_NOT_FOUND', async () => {
    const body = expectProblem(await app.inject({ method: 'GET', url: '/nowhere?x=1' }), 404, 'ROUTE_NOT_FOUND');
    expect(body.detail).toContain('GET /nowhere');
  });

  it('names the failing field of a schema validation error (400 VALIDATION_FAILED)', async () => {
    const body = expectProblem(await app.inject({ method: 'POST', url: '/things', payload: { name: 'a', count: -1 } }), 400, 'VALIDATION_FAILED');
    expect(body.detail).toContain('body/count');
    const missing = expectProblem(await app.inject({ method: 'POST', url: '/things', payload: { count: 1 } }), 400, 'VALIDATION_FAILED');
    expect(missing.detail).toContain('body/name');
    expect(missing.errors).toEqual([expect.objectContaining({ field: 'body/name' })]);
    expectProblem(await app.inject({ method: 'GET', url: '/things/ABC' }), 400, 'VALIDATION_FAILED');
  });

  it('refuses a body over the limit with 413 BODY_TOO_LARGE, by header and by bytes', async () => {
    const huge = JSON.stringify({ name: 'x'.repeat(BODY_LIMIT_BYTES * 4), count: 1 });
    expectProblem(await app.inject({ method: 'POST', url: '/things', headers: { 'content-type': 'application/json' }, payload: huge }), 413, 'BODY_TOO_LARGE');
    expectProblem(await app.inject({ method: 'PUT', url: '/blobs', headers: { 'content-type': 'application/octet-stream' }, payload: Buffer.alloc(BODY_LIMIT_BYTES + 1) }), 413, 'BODY_TOO_LARGE');
  });

  it('answers invalid, empty and prototype-poisoning JSON with 400 INVALID_JSON', async () => {
    const json = { 'content-type': 'application/json' };
    expectProblem(await app.inject({ method: 'POST', url: '/things', headers: json, payload: '{"name": "a",' }), 400, 'INVALID_JSON');
    expectProblem(await app.inject({ method: 'POST', url: '/things', headers: json, payload: '' }), 400, 'INVALID_JSON');
    expectProblem(await app.inject({ method: 'POST', url: '/things', headers: json, payload: '{"__proto__": {"admin": true}}' }), 400, 'INVALID_JSON');
  });

  it('answers a content type without a parser with 415 UNSUPPORTED_MEDIA_TYPE', async () => {
    expectProblem(await app.inject({ method: 'POST', url: '/things', headers: { 'content-type': 'application/xml' }, payload: '<a/>' }), 415, 'UNSUPPORTED_MEDIA_TYPE');
  });

  it('answers an undecodable path parameter with 400 INVALID_URL (through frameworkErrors)', async () => {
    expectProblem(await app.inject({ method: 'GET', url: '/things/%E0%A4%A' }), 400, 'INVALID_URL');
  });
});

describe('problem+json for thrown errors', () => {
  it('sends an ApiError with its status, code and extensions, never letting them overwrite the standard members', async () => {
    const body = expectProblem(await app.inject({ method: 'GET', url: '/throw/api' }), 402, 'PAYMENT_NEEDED');
    expect(body).toMatchObject({ detail: 'pay first', priceMsat: '1000', title: 'Payment needed' });
  });

  it('maps a DomainError by its code, with its details (bigints as strings)', async () => {
    const cases: [string, number][] = [
      ['RUN_NOT_FOUND', 404], ['INSUFFICIENT_BUDGET', 409], ['RUN_CLOSED', 409], ['DISPUTE_WINDOW_CLOSED', 409],
      ['INVALID_AMOUNT', 422], ['NOT_YOUR_ASSIGNMENT', 403], ['SOMETHING_NOT_FOUND', 404], ['INVALID_FUTURE_FIELD', 422], ['SOME_NEW_REFUSAL', 409],
    ];
    for (const [code, status] of cases) {
      const body = expectProblem(await app.inject({ method: 'GET', url: `/throw/domain/${code}` }), status, code);
      expect(body).toMatchObject({ detail: 'refused by the domain', runId: 'run-1', availableMsat: '5' });
    }
  });

  it('gives every listed domain code a 4xx status', () => {
    for (const [code, status] of DOMAIN_CODE_STATUS) {
      expect(domainStatus(code)).toBe(status);
      expect([403, 404, 409, 422]).toContain(status);
    }
  });

  it('maps the event store refusals from a real store: WRONG_EXPECTED_REVISION 409, IDEMPOTENCY_KEY_REUSED 422, INVALID_APPEND 422', async () => {
    const stream = `s-${randomUUID()}`;
    expect((await app.inject({ method: 'POST', url: `/streams/${stream}`, payload: { expectedRevision: 'no_stream' } })).statusCode).toBe(200);
    expectProblem(await app.inject({ method: 'POST', url: `/streams/${stream}`, payload: { expectedRevision: 'no_stream' } }), 409, 'WRONG_EXPECTED_REVISION');
    const key = `k-${randomUUID()}`;
    expect((await app.inject({ method: 'POST', url: `/keyed/${key}`, payload: { digest: 'a'.repeat(64) } })).statusCode).toBe(200);
    expectProblem(await app.inject({ method: 'POST', url: `/keyed/${key}`, payload: { digest: 'b'.repeat(64) } }), 422, 'IDEMPOTENCY_KEY_REUSED');
    expectProblem(await app.inject({ method: 'POST', url: '/streams/has%20space', payload: {} }), 422, 'INVALID_APPEND');
    expectProblem(await app.inject({ method: 'POST', url: `/streams/${stream}`, payload: { expectedRevision: -5 } }), 422, 'INVALID_APPEND');
    expectProblem(await app.inject({ method: 'POST', url: `/streams/${'x'.repeat(300)}`, payload: {} }), 414, 'URI_TOO_LONG');
    expectProblem(await app.inject({ method: 'GET', url: '/throw/concurrency' }), 409, 'CONCURRENCY_CONFLICT');
  });

  it('maps GradientDecodeError to 422 with its code and detail', async () => {
    const body = expectProblem(await app.inject({ method: 'GET', url: '/throw/gradient' }), 422, 'GRADIENT_TRUNCATED');
    expect(body.detail).toBe('tensor fc1.weight ends at byte 12 of 40');
  });

  it('maps blob and Lightning refusals, and hides a failing node behind a generic 503', async () => {
    expectProblem(await app.inject({ method: 'GET', url: '/throw/blob/BLOB_TOO_LARGE' }), 413, 'BLOB_TOO_LARGE');
    expectProblem(await app.inject({ method: 'GET', url: '/throw/lightning/INVOICE_INVALID' }), 422, 'INVOICE_INVALID');
    const down = await app.inject({ method: 'GET', url: '/throw/lightning/NODE_UNAVAILABLE' });
    expectProblem(down, 503, 'NODE_UNAVAILABLE');
    expect(down.body).not.toContain('hunter2');
  });

  it('answers any other error with 500 INTERNAL and a generic detail that never leaks the message', async () => {
    for (const url of ['/throw/plain', '/throw/non-error', '/throw/blob/BLOB_CORRUPT', '/throw/api-bad-status']) {
      const response = await app.inject({ method: 'GET', url });
      expectProblem(response, 500, 'INTERNAL');
      expect(response.body).not.toContain('hunter2');
      expect(response.body).not.toContain('blob refused');
    }
  });
});

describe('no request content produces a 5xx', () => {
  const fuzzRoutes = ['/things', '/things/abc', '/things/%ZZ', '/blobs', '/streams/', '/keyed/', '/nowhere', '/'];
  const contentTypes = ['application/json', 'application/json; charset=utf-8', 'application/octet-stream', 'text/plain', 'application/xml', 'multipart/form-data; boundary=x', ';;;', 'application/json; charset=latin-99'];
  const methods = ['GET', 'POST', 'PUT', 'DELETE', 'PATCH', 'OPTIONS', 'HEAD'] as const;
  const bodies = fc.oneof(
    fc.string({ maxLength: 64 }),
    fc.json({ maxDepth: 4 }),
    fc.uint8Array({ maxLength: 256 }).map((bytes) => Buffer.from(bytes)),
    fc.constantFrom('{"expectedRevision": 7}', '{"expectedRevision": "no_stream"}', '{"digest": "zz"}', '{"__proto__": {}}', '[[[[[[[[[[]]]]]]]]]]', `{"a":${'['.repeat(5000)}${']'.repeat(5000)}}`),
  );

  it('answers every generated request below 500, as problem+json when it fails', async () => {
    await fc.assert(
      fc.asyncProperty(fc.constantFrom(...methods), fc.constantFrom(...fuzzRoutes), fc.string({ maxLength: 40 }), fc.constantFrom(...contentTypes), bodies, async (method, route, suffix, contentType, body) => {
        const url = route.endsWith('/') ? `${route}${encodeURIComponent(suffix)}` : route;
        const withBody = method !== 'GET' && method !== 'HEAD';
        const response = await app.inject({ method, url, ...(withBody ? { headers: { 'content-type': contentType }, payload: body } : {}) });
        expect(response.statusCode, `${method} ${url} ${contentType}: ${response.body}`).toBeLessThan(500);
        if (response.statusCode >= 400 && method !== 'HEAD') expect(response.headers['content-type']).toContain('application/problem+json');
      }),
      { numRuns: FUZZ_RUNS },
    );
  });
});
