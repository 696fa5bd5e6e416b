// Rate limits through fastify's inject, with the idempotency plugin on PGlite: 429 problem+json with Retry-After, per verified caller and per IP.

import { randomUUID } from 'node:crypto';
import Fastify, { type FastifyInstance, type LightMyRequestResponse } from 'fastify';
import { afterAll, afterEach, beforeAll, describe, expect, it, vi } from 'vitest';
import { registerIdempotency } from '../../adapters/http/idempotency.js';
import { ApiError, registerProblemHandler } from '../../adapters/http/problem.js';
import { RATE_LIMIT_WINDOW_MS, registerRateLimits } from '../../adapters/http/rate-limit.js';
import { openDatabase, type OpenedDatabase } from '../../adapters/postgres/database.js';

const MAX_PER_MINUTE = 3;
const MAX_PER_MINUTE_PER_IP = 8;
/** Stands in for authentication (test/http/auth-first.int.spec.ts runs the real one): names the verified principal. */
const TEST_PRINCIPAL_HEADER = 'x-test-principal';

let opened: OpenedDatabase<any>;
let handled = 0;

async function buildApp(): Promise<FastifyInstance> {
  const app = Fastify();
  registerProblemHandler(app);
  await registerRateLimits(app, { maxPerMinute: MAX_PER_MINUTE, maxPerMinutePerIp: MAX_PER_MINUTE_PER_IP });
  await registerIdempotency(app, { db: opened.db });
  // Registered after the limits, as authentication is: the IP ceiling has counted the request by then.
  app.addHook('onRequest', async (request) => {
    const principal = request.headers[TEST_PRINCIPAL_HEADER];
    if (typeof principal === 'string') request.principal = principal;
  });
  app.get('/ping', async () => ({ pong: true }));
  app.get('/secure', { onRequest: async (request) => {
    if (!request.principal) throw new ApiError(401, 'AUTHENTICATION_REQUIRED', 'sign in');
  } }, async () => ({ secret: true }));
  app.post('/orders', { config: { idempotent: true } }, async () => {
    handled += 1;
    return { handled };
  });
  await app.ready();
  return app;
}

function ping(app: FastifyInstance, headers: Record<string, string> = {}, remoteAddress = '10.0.0.1', url = '/ping'): Promise<LightMyRequestResponse> {
  return app.inject({ method: 'GET', url, headers, remoteAddress });
}

const verified = (principal: string) => ({ [TEST_PRINCIPAL_HEADER]: principal });

function expectRateLimited(response: LightMyRequestResponse): void {
  expect(response.statusCode, response.body).toBe(429);
  expect(response.headers['content-type']).toContain('application/problem+json');
  expect(response.json()).toMatchObject({ status: 429, code: 'RATE_LIMITED', type: 'https://trainledger.dev/problems/rate-limited' });
  expect(Number(response.headers['retry-after'])).toBeGreaterThan(0);
}

beforeAll(async () => {
  opened = await openDatabase<any>({ engine: 'pglite' });
});

afterAll(async () => {
  await opened.close();
});

afterEach(() => {
  vi.useRealTimers();
});

describe('registerRateLimits', () => {
  it('answers 429 RATE_LIMITED with Retry-After after N requests from one verified caller, and serves it again after the window', async () => {
    vi.useFakeTimers({ toFake: ['Date'] });
    const app = await buildApp();
    const alice = verified('key:alice');
    for (let i = 0; i < MAX_PER_MINUTE; i += 1) {
      const served = await ping(app, alice);
      expect(served.statusCode).toBe(200);
      expect(served.headers['x-ratelimit-remaining']).toBe(String(MAX_PER_MINUTE - 1 - i));
    }
    expectRateLimited(await ping(app, alice));
    // Another caller from the same address has its own budget.
    expect((await ping(app, verified('key:bob'))).statusCode).toBe(200);
    vi.advanceTimersByTime(RATE_LIMIT_WINDOW_MS);
    expect((await ping(app, alice)).statusCode).toBe(200);
    await app.close();
  });

  it('keys no bucket on a credential merely presented: forged bearer tokens and keyids never spend the named caller\'s budget', async () => {
    const app = await buildApp();
    const forged = { authorization: 'Bearer alice-secret', 'signature-input': `sig1=("@method" "@path");created=1;keyid="alice";nonce="n${randomUUID()}"` };
    // From distinct addresses, so that only a credential-keyed bucket could refuse them.
    for (let i = 0; i <= 2 * MAX_PER_MINUTE; i += 1) expect((await ping(app, forged, `10.1.0.${i}`)).statusCode).toBe(200);
    for (let i = 0; i < MAX_PER_MINUTE; i += 1) expect((await ping(app, verified('contributor:alice'), '10.1.1.1')).statusCode).toBe(200);
    expectRateLimited(await ping(app, verified('contributor:alice'), '10.1.1.2'));
    await app.close();
  });

  it('counts anonymous and refused requests by IP only, up to the IP ceiling', async () => {
    const app = await buildApp();
    const refused: number[] = [];
    for (let i = 0; i < MAX_PER_MINUTE_PER_IP; i += 1) refused.push((await ping(app, { authorization: `Bearer guess-${i}` }, '10.2.0.1', '/secure')).statusCode);
    expect(refused).toEqual(Array(MAX_PER_MINUTE_PER_IP).fill(401));
    expectRateLimited(await ping(app, {}, '10.2.0.1', '/secure'));
    expectRateLimited(await ping(app, verified('key:carol'), '10.2.0.1'));
    // Another address is not affected, and no caller's own budget was touched.
    expect((await ping(app, {}, '10.2.0.2', '/secure')).statusCode).toBe(401);
    for (let i = 0; i < MAX_PER_MINUTE; i += 1) expect((await ping(app, verified('key:carol'), '10.2.0.3')).statusCode).toBe(200);
    await app.close();
  });

  it('caps one IP across verified callers too, so rotating keys buys no extra budget', async () => {
    const app = await buildApp();
    const statuses: number[] = [];
    for (let i = 0; i < MAX_PER_MINUTE_PER_IP; i += 1) statuses.push((await ping(app, verified(`key:rotated-${i}`), '10.3.0.1')).statusCode);
    expect(statuses).toEqual(Array(MAX_PER_MINUTE_PER_IP).fill(200));
    expectRateLimited(await ping(app, verified('key:rotated-fresh'), '10.3.0.1'));
    await app.close();
  });

  it('refuses before the idempotency claim, so a limited request never uses up its key', async () => {
    vi.useFakeTimers({ toFake: ['Date'] });
    const app = await buildApp();
    const caller = verified('key:carol');
    for (let i = 0; i < MAX_PER_MINUTE; i += 1) await ping(app, caller);
    const key = randomUUID();
    const before = handled;
    expectRateLimited(await app.inject({ method: 'POST', url: '/orders', headers: { ...caller, 'idempotency-key': key }, payload: {} }));
    vi.advanceTimersByTime(RATE_LIMIT_WINDOW_MS);
    const served = await app.inject({ method: 'POST', url: '/orders', headers: { ...caller, 'idempotency-key': key }, payload: {} });
    expect(served.statusCode).toBe(200);
    expect(served.headers['idempotent-replayed']).toBeUndefined();
    expect(handled).toBe(before + 1);
    await app.close();
  });
});
