// Rate limits through fastify's inject, with the idempotency plugin on PGlite: 429 problem+json with Retry-After, per caller.

import { randomUUID } from 'node:crypto';
import Fastify, { type FastifyInstance, type LightMyRequestResponse } from 'fastify';
import { afterAll, afterEach, beforeAll, describe, expect, it, vi } from 'vitest';
import { registerIdempotency } from '../../adapters/http/idempotency.js';
import { registerProblemHandler } from '../../adapters/http/problem.js';
import { RATE_LIMIT_WINDOW_MS, registerRateLimits } from '../../adapters/http/rate-limit.js';
import { openDatabase, type OpenedDatabase } from '../../adapters/postgres/database.js';

const MAX_PER_MINUTE = 3;
const MAX_PER_MINUTE_PER_IP = 8;

let opened: OpenedDatabase<any>;
let handled = 0;

async function buildApp(): Promise<FastifyInstance> {
  const app = Fastify();
  registerProblemHandler(app);
  await registerRateLimits(app, { maxPerMinute: MAX_PER_MINUTE, maxPerMinutePerIp: MAX_PER_MINUTE_PER_IP });
  await registerIdempotency(app, { db: opened.db });
  app.get('/ping', async () => ({ pong: true }));
  app.post('/orders', { config: { idempotent: true } }, async () => {
    handled += 1;
    return { handled };
  });
  await app.ready();
  return app;
}

function ping(app: FastifyInstance, headers: Record<string, string> = {}, remoteAddress = '10.0.0.1'): Promise<LightMyRequestResponse> {
  return app.inject({ method: 'GET', url: '/ping', headers, remoteAddress });
}

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
  it('answers 429 RATE_LIMITED with Retry-After after N requests from one API key, and serves it again after the window', async () => {
    vi.useFakeTimers({ toFake: ['Date'] });
    const app = await buildApp();
    const alice = { authorization: 'Bearer alice-secret' };
    for (let i = 0; i < MAX_PER_MINUTE; i += 1) expect((await ping(app, alice)).statusCode).toBe(200);
    const limited = await ping(app, alice);
    expectRateLimited(limited);
    expect(limited.body).not.toContain('alice-secret');
    // Another key from the same address has its own budget.
    expect((await ping(app, { authorization: 'Bearer bob-secret' })).statusCode).toBe(200);
    vi.advanceTimersByTime(RATE_LIMIT_WINDOW_MS);
    expect((await ping(app, alice)).statusCode).toBe(200);
    await app.close();
  });

  it('counts a signed contributor by its keyid, and an anonymous caller by its IP', async () => {
    const app = await buildApp();
    const signed = (keyId: string, ip: string) => ping(app, { 'signature-input': `sig1=("@method" "@path");created=1;keyid="${keyId}";nonce="n${randomUUID()}"` }, ip);
    for (let i = 0; i < MAX_PER_MINUTE; i += 1) expect((await signed('contributor-1', `10.1.0.${i}`)).statusCode).toBe(200);
    expectRateLimited(await signed('contributor-1', '10.1.0.99'));
    expect((await signed('contributor-2', '10.1.0.99')).statusCode).toBe(200);

    for (let i = 0; i < MAX_PER_MINUTE; i += 1) expect((await ping(app, {}, '10.2.0.1')).statusCode).toBe(200);
    expectRateLimited(await ping(app, {}, '10.2.0.1'));
    expect((await ping(app, {}, '10.2.0.2')).statusCode).toBe(200);
    await app.close();
  });

  it('caps one IP across made-up credentials, so rotating keys buys no extra budget', async () => {
    const app = await buildApp();
    const statuses: number[] = [];
    for (let i = 0; i <= MAX_PER_MINUTE_PER_IP; i += 1) statuses.push((await ping(app, { authorization: `Bearer rotated-${i}` }, '10.3.0.1')).statusCode);
    expect(statuses.slice(0, MAX_PER_MINUTE_PER_IP).every((s) => s === 200)).toBe(true);
    expectRateLimited(await ping(app, { authorization: 'Bearer rotated-fresh' }, '10.3.0.1'));
    await app.close();
  });

  it('refuses before the idempotency claim, so a limited request never uses up its key', async () => {
    vi.useFakeTimers({ toFake: ['Date'] });
    const app = await buildApp();
    const caller = { authorization: 'Bearer carol-secret' };
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
