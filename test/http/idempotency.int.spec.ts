// The Idempotency-Key plugin through fastify's inject, on PGlite and on a real PostgreSQL server: claims, replays, refusals, expiry.

import { createHash, randomUUID } from 'node:crypto';
import Fastify, { type FastifyInstance, type LightMyRequestResponse } from 'fastify';
import { Kysely, PostgresDialect, sql } from 'kysely';
import pg from 'pg';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { ConcurrencyConflictError } from '../../adapters/commands/command-handler.js';
import { DEFAULT_IN_FLIGHT_LEASE_MS, registerIdempotency, type IdempotencyOptions } from '../../adapters/http/idempotency.js';
import { instanceLockKeys } from '../../adapters/postgres/claimants.js';
import { registerProblemHandler } from '../../adapters/http/problem.js';
import { openDatabase, type DatabaseTarget, type OpenedDatabase } from '../../adapters/postgres/database.js';
import { DomainError } from '../../domain/errors.js';
import { createPostgresDatabase } from '../support/databases.js';

const TTL_MS = 60 * 60 * 1000;
/** Small enough that a test response can exceed it without megabytes of traffic. */
const MAX_KEPT_RESPONSE_BYTES = 2 * 1024;
const START_MS = 1_700_000_000_000;

type Deferred = { promise: Promise<void>; resolve: () => void };
function deferred(): Deferred {
  let resolve!: () => void;
  const promise = new Promise<void>((r) => (resolve = r));
  return { promise, resolve };
}

/** The app under test: the plugins, a principal taken from a test header, and routes that count their runs. */
class Harness {
  readonly calls = { orders: 0, blobs: 0, flaky: 0, refuse: 0, conflict: 0, big: 0 };
  nowMs = START_MS;
  /** When set, /blobs announces it started and waits for the test to let it finish. */
  hold: { entered: Deferred; release: Deferred } | null = null;
  app!: FastifyInstance;

  constructor(readonly db: Kysely<any>, readonly process: Pick<IdempotencyOptions, 'engine' | 'instanceId'> = {}) {}

  async start(): Promise<this> {
    const app = Fastify({ bodyLimit: 64 * 1024 });
    registerProblemHandler(app);
    await registerIdempotency(app, { db: this.db, nowMs: () => this.nowMs, ttlMs: TTL_MS, maxKeptResponseBytes: MAX_KEPT_RESPONSE_BYTES, ...this.process });
    app.addHook('onRequest', async (request) => {
      const principal = request.headers['x-test-principal'];
      if (typeof principal === 'string') request.principal = principal;
    });
    this.declareRoutes(app);
    await app.ready();
    this.app = app;
    return this;
  }

  private declareRoutes(app: FastifyInstance): void {
    const idempotent = { config: { idempotent: true } };
    const orderBody = { type: 'object', required: ['item'], properties: { item: { type: 'string', minLength: 1 } } };
    app.post('/orders', { ...idempotent, schema: { body: orderBody } }, async (request, reply) => {
      this.calls.orders += 1;
      const rawSha = createHash('sha256').update(request.rawBody ?? Buffer.alloc(0)).digest('hex');
      return reply.code(201).header('location', `/orders/${this.calls.orders}`).send({ orderId: `order-${this.calls.orders}`, item: (request.body as { item: string }).item, rawSha, at: randomUUID() });
    });
    app.post('/blobs', idempotent, async (request, reply) => {
      this.calls.blobs += 1;
      if (this.hold) {
        this.hold.entered.resolve();
        await this.hold.release.promise;
      }
      const bytes = request.body as Buffer;
      return reply.code(201).type('application/octet-stream').send(Buffer.concat([Buffer.from([this.calls.blobs]), createHash('sha256').update(bytes).digest()]));
    });
    app.post('/flaky', idempotent, async () => {
      this.calls.flaky += 1;
      if (this.calls.flaky === 1) throw new Error('database connection reset');
      return { attempt: this.calls.flaky };
    });
    app.post('/refuse', idempotent, async () => {
      this.calls.refuse += 1;
      throw new DomainError('INSUFFICIENT_BUDGET', `refusal number ${this.calls.refuse}`);
    });
    app.post('/conflict', idempotent, async () => {
      this.calls.conflict += 1;
      if (this.calls.conflict === 1) throw new ConcurrencyConflictError('run-1', 5);
      return { attempt: this.calls.conflict };
    });
    app.post('/big', idempotent, async () => {
      this.calls.big += 1;
      return { filler: 'x'.repeat(MAX_KEPT_RESPONSE_BYTES * 2) };
    });
    app.post('/plain', async () => ({ ok: true }));
  }

  order(key: string | undefined, item = 'apple', principal?: string): Promise<LightMyRequestResponse> {
    const headers: Record<string, string> = { ...(key === undefined ? {} : { 'idempotency-key': key }), ...(principal ? { 'x-test-principal': principal } : {}) };
    return this.app.inject({ method: 'POST', url: '/orders', headers, payload: { item } });
  }

  blob(key: string, bytes: Buffer): Promise<LightMyRequestResponse> {
    return this.app.inject({ method: 'POST', url: '/blobs', headers: { 'idempotency-key': key, 'content-type': 'application/octet-stream' }, payload: bytes });
  }

  post(url: string, key: string): Promise<LightMyRequestResponse> {
    return this.app.inject({ method: 'POST', url, headers: { 'idempotency-key': key } });
  }

  async rows(): Promise<number> {
    const result = await sql<{ n: string }>`select count(*) as n from http_idempotency`.execute(this.db);
    return Number(result.rows[0]!.n);
  }
}

function expectProblem(response: LightMyRequestResponse, status: number, code: string): void {
  expect(response.statusCode, response.body).toBe(status);
  expect(response.headers['content-type']).toContain('application/problem+json');
  expect(response.json()).toMatchObject({ status, code });
}

const engines: { name: string; target: () => Promise<DatabaseTarget> }[] = [
  { name: 'pglite', target: async () => ({ engine: 'pglite' }) },
  { name: 'postgres', target: async () => ({ engine: 'postgres', connectionString: await createPostgresDatabase('http_idem') }) },
];

/**
 * A second server process on the same database, one that can be killed mid-request: on PostgreSQL its own pool,
 * whose lock session the test terminates as the server does when a process dies; on PGlite its app, closed.
 */
async function otherProcess(where: DatabaseTarget, opened: OpenedDatabase<any>, instanceId: string): Promise<{ h: Harness; kill: () => Promise<void>; close: () => Promise<void> }> {
  if (where.engine === 'pglite') {
    const h = await new Harness(opened.db, { engine: 'pglite', instanceId }).start();
    return { h, kill: () => h.app.close(), close: async () => {} };
  }
  const pool = new pg.Pool({ connectionString: where.connectionString, max: 4 });
  // The killed session's client reports the termination as an error event: this process lives on to watch.
  pool.on('connect', (client) => client.on('error', () => {}));
  const db = new Kysely<any>({ dialect: new PostgresDialect({ pool }) });
  const h = await new Harness(db, { engine: 'postgres', instanceId }).start();
  const [high, low] = instanceLockKeys(instanceId);
  return {
    h,
    kill: async () => {
      // Waits until the backend has exited, and with it released its session locks: what a SIGKILL ends.
      const killed = await sql<{ done: boolean }>`
        select pg_terminate_backend(pid, 10000) as done from pg_locks
        where locktype = 'advisory' and granted and classid = ${high}::int4::oid and objid = ${low}::int4::oid and objsubid = 2`.execute(opened.db);
      expect(killed.rows.map((r) => r.done)).toEqual([true]);
    },
    close: async () => {
      await h.app.close();
      await db.destroy();
    },
  };
}

describe.each(engines)('Idempotency-Key on $name', ({ target }) => {
  let where: DatabaseTarget;
  let opened: OpenedDatabase<any>;
  let h: Harness;

  beforeAll(async () => {
    where = await target();
    opened = await openDatabase<any>(where);
    h = await new Harness(opened.db, { engine: opened.engine }).start();
  });

  afterAll(async () => {
    await h.app.close();
    await opened.close();
  });

  it('requires the header on an idempotent route, and only there', async () => {
    expectProblem(await h.order(undefined), 400, 'IDEMPOTENCY_KEY_MISSING');
    expect(h.calls.orders).toBe(0);
    expect((await h.app.inject({ method: 'POST', url: '/plain', payload: {} })).statusCode).toBe(200);
  });

  it('refuses a key that is not 1-255 visible ASCII characters', async () => {
    for (const key of ['', 'has space', 'k'.repeat(256), 'café', 'tab\there']) expectProblem(await h.order(key), 400, 'IDEMPOTENCY_KEY_INVALID');
    expect(h.calls.orders).toBe(0);
    expect((await h.order('k'.repeat(255))).statusCode).toBe(201);
  });

  it('replays the first outcome byte for byte, with Idempotent-Replayed, and runs the handler once', async () => {
    const key = randomUUID();
    const before = h.calls.orders;
    const first = await h.order(key);
    expect(first.statusCode).toBe(201);
    expect(first.headers['idempotent-replayed']).toBeUndefined();
    const again = await h.order(key);
    expect(again.statusCode).toBe(201);
    expect(again.rawPayload.equals(first.rawPayload)).toBe(true);
    expect(again.headers['content-type']).toBe(first.headers['content-type']);
    expect(again.headers.location).toBe(first.headers.location);
    expect(again.headers['idempotent-replayed']).toBe('true');
    expect(h.calls.orders).toBe(before + 1);
    // The structured-field form of the same key names the same claim.
    expect((await h.order(`"${key}"`)).rawPayload.equals(first.rawPayload)).toBe(true);
  });

  it('fingerprints the raw JSON bytes and exposes them as request.rawBody', async () => {
    const key = randomUUID();
    const body = '{"item":"pear"}';
    const first = await h.app.inject({ method: 'POST', url: '/orders', headers: { 'idempotency-key': key, 'content-type': 'application/json' }, payload: body });
    expect(first.json().rawSha).toBe(createHash('sha256').update(body).digest('hex'));
    // Same meaning, other bytes: a different request as far as the key is concerned.
    const spaced = await h.app.inject({ method: 'POST', url: '/orders', headers: { 'idempotency-key': key, 'content-type': 'application/json' }, payload: '{ "item": "pear" }' });
    expectProblem(spaced, 422, 'IDEMPOTENCY_KEY_REUSED');
  });

  it('refuses the same key for a different body or URL with 422 IDEMPOTENCY_KEY_REUSED', async () => {
    const key = randomUUID();
    expect((await h.order(key, 'apple')).statusCode).toBe(201);
    const before = h.calls.orders;
    expectProblem(await h.order(key, 'banana'), 422, 'IDEMPOTENCY_KEY_REUSED');
    expectProblem(await h.blob(key, Buffer.from('apple')), 422, 'IDEMPOTENCY_KEY_REUSED');
    expect(h.calls.orders).toBe(before);
  });

  it('fingerprints binary bodies by their bytes', async () => {
    const key = randomUUID();
    const bytes = Buffer.from(Array.from({ length: 300 }, (_, i) => i % 256));
    const first = await h.blob(key, bytes);
    expect(first.statusCode).toBe(201);
    expect(first.headers['content-type']).toBe('application/octet-stream');
    const replayed = await h.blob(key, Buffer.from(bytes));
    expect(replayed.headers['idempotent-replayed']).toBe('true');
    expect(replayed.rawPayload.equals(first.rawPayload)).toBe(true);
    const flipped = Buffer.from(bytes);
    flipped[299] = flipped[299]! ^ 1;
    expectProblem(await h.blob(key, flipped), 422, 'IDEMPOTENCY_KEY_REUSED');
  });

  it('answers 409 IDEMPOTENCY_REQUEST_IN_FLIGHT while the first request is held, then replays its outcome', async () => {
    const key = randomUUID();
    const bytes = Buffer.from('held upload');
    h.hold = { entered: deferred(), release: deferred() };
    const before = h.calls.blobs;
    const first = h.blob(key, bytes);
    await h.hold.entered.promise;
    const concurrent = await h.blob(key, bytes);
    expectProblem(concurrent, 409, 'IDEMPOTENCY_REQUEST_IN_FLIGHT');
    expect(concurrent.headers['retry-after']).toBe('1');
    h.hold.release.resolve();
    const done = await first;
    h.hold = null;
    expect(done.statusCode).toBe(201);
    const after = await h.blob(key, bytes);
    expect(after.headers['idempotent-replayed']).toBe('true');
    expect(after.rawPayload.equals(done.rawPayload)).toBe(true);
    expect(h.calls.blobs).toBe(before + 1);
  });

  it('lets exactly one of a burst of identical requests run', async () => {
    const key = randomUUID();
    const bytes = Buffer.from('burst');
    h.hold = { entered: deferred(), release: deferred() };
    const before = h.calls.blobs;
    const owner = h.blob(key, bytes);
    await h.hold.entered.promise;
    const burst = await Promise.all(Array.from({ length: 10 }, () => h.blob(key, bytes)));
    h.hold.release.resolve();
    expect((await owner).statusCode).toBe(201);
    h.hold = null;
    expect(burst.map((r) => r.json<{ code: string }>().code)).toEqual(Array(10).fill('IDEMPOTENCY_REQUEST_IN_FLIGHT'));
    expect(h.calls.blobs).toBe(before + 1);
  });

  it('keeps the keys of different principals apart', async () => {
    const key = randomUUID();
    const before = h.calls.orders;
    const alice = await h.order(key, 'apple', 'key:alice');
    const bob = await h.order(key, 'apple', 'key:bob');
    expect([alice.statusCode, bob.statusCode]).toEqual([201, 201]);
    expect(bob.headers['idempotent-replayed']).toBeUndefined();
    expect(h.calls.orders).toBe(before + 2);
    expect((await h.order(key, 'apple', 'key:alice')).rawPayload.equals(alice.rawPayload)).toBe(true);
  });

  it('scopes a key by the verified principal only: a credential merely presented reaches no one\'s outcomes', async () => {
    const key = randomUUID();
    const alice = await h.order(key, 'kiwi', 'contributor:alice');
    expect(alice.statusCode).toBe(201);
    // Unverified, a bearer token or a signature keyid naming alice is just an anonymous caller.
    const forged = { 'idempotency-key': key, authorization: 'Bearer alice-secret', 'signature-input': 'sig1=("@method");keyid="alice"' };
    const anonymous = await h.app.inject({ method: 'POST', url: '/orders', headers: forged, payload: { item: 'kiwi' } });
    expect(anonymous.statusCode).toBe(201);
    expect(anonymous.headers['idempotent-replayed']).toBeUndefined();
    expect(anonymous.rawPayload.equals(alice.rawPayload)).toBe(false);
    // Different made-up tokens do not mint namespaces either: anonymous is one caller.
    const otherToken = await h.app.inject({ method: 'POST', url: '/orders', headers: { ...forged, authorization: 'Bearer token-two' }, payload: { item: 'kiwi' } });
    expect(otherToken.headers['idempotent-replayed']).toBe('true');
    expect(otherToken.rawPayload.equals(anonymous.rawPayload)).toBe(true);
  });

  it('does not keep a 5xx: the retry runs the handler again', async () => {
    const key = randomUUID();
    expectProblem(await h.post('/flaky', key), 500, 'INTERNAL');
    const retry = await h.post('/flaky', key);
    expect(retry.statusCode).toBe(200);
    expect(retry.json()).toEqual({ attempt: 2 });
    expect((await h.post('/flaky', key)).headers['idempotent-replayed']).toBe('true');
    expect(h.calls.flaky).toBe(2);
  });

  it('keeps a domain refusal but not a transient concurrency conflict', async () => {
    const refused = randomUUID();
    const first = await h.post('/refuse', refused);
    expectProblem(first, 409, 'INSUFFICIENT_BUDGET');
    const replay = await h.post('/refuse', refused);
    expect(replay.headers['idempotent-replayed']).toBe('true');
    expect(replay.rawPayload.equals(first.rawPayload)).toBe(true);
    expect(h.calls.refuse).toBe(1);

    const conflicted = randomUUID();
    expectProblem(await h.post('/conflict', conflicted), 409, 'CONCURRENCY_CONFLICT');
    expect((await h.post('/conflict', conflicted)).json()).toEqual({ attempt: 2 });
  });

  it('does not claim the key for a request refused by schema validation', async () => {
    const key = randomUUID();
    const invalid = await h.app.inject({ method: 'POST', url: '/orders', headers: { 'idempotency-key': key }, payload: { item: '' } });
    expectProblem(invalid, 400, 'VALIDATION_FAILED');
    expect((await h.order(key, 'fixed')).statusCode).toBe(201);
  });

  it('answers 409 IDEMPOTENT_RESPONSE_NOT_KEPT when the first response was over the size limit', async () => {
    const key = randomUUID();
    const first = await h.post('/big', key);
    expect(first.statusCode).toBe(200);
    expect(first.rawPayload.byteLength).toBeGreaterThan(MAX_KEPT_RESPONSE_BYTES);
    const again = await h.post('/big', key);
    expectProblem(again, 409, 'IDEMPOTENT_RESPONSE_NOT_KEPT');
    expect(again.json()).toMatchObject({ originalStatus: 200 });
    expect(h.calls.big).toBe(1);
  });

  it('takes over an in-flight claim whose lease ran out, and the stale owner cannot overwrite the new outcome', async () => {
    const key = randomUUID();
    const bytes = Buffer.from('abandoned upload');
    h.hold = { entered: deferred(), release: deferred() };
    const stale = h.blob(key, bytes);
    await h.hold.entered.promise;
    const staleHold = h.hold;
    h.hold = null;
    h.nowMs += DEFAULT_IN_FLIGHT_LEASE_MS;
    const takeover = await h.blob(key, bytes);
    expect(takeover.statusCode).toBe(201);
    staleHold.release.resolve();
    await stale;
    const replay = await h.blob(key, bytes);
    expect(replay.rawPayload.equals(takeover.rawPayload)).toBe(true);
  });

  // Regression (issue 12, defect 4): a claim left by a killed process blocked every retry until the 5-minute lease ran out.
  it('takes over at once a claim whose process died mid-request, and the dead request cannot overwrite the new outcome', async () => {
    const key = randomUUID();
    const bytes = Buffer.from('killed upload');
    const first = await otherProcess(where, opened, randomUUID());
    first.h.nowMs = h.nowMs;
    try {
      first.h.hold = { entered: deferred(), release: deferred() };
      const dying = first.h.blob(key, bytes);
      await first.h.hold.entered.promise;
      // While that process lives, its claim stands, whichever process is asked.
      expectProblem(await h.blob(key, bytes), 409, 'IDEMPOTENCY_REQUEST_IN_FLIGHT');
      await first.kill();
      const before = h.calls.blobs;
      const retry = await h.blob(key, bytes);
      expect(retry.statusCode, retry.body).toBe(201);
      expect(retry.headers['idempotent-replayed']).toBeUndefined();
      expect(h.calls.blobs).toBe(before + 1);
      // The killed request's handler finishing late must not replace the outcome the retry kept.
      first.h.hold.release.resolve();
      await dying;
      const replay = await h.blob(key, bytes);
      expect(replay.headers['idempotent-replayed']).toBe('true');
      expect(replay.rawPayload.equals(retry.rawPayload)).toBe(true);
    } finally {
      await first.close();
    }
  });

  it('takes over a claim from an instance that is gone, but keeps the lease for a claim that names no instance', async () => {
    const fingerprint = (bytes: Buffer) => createHash('sha256').update('POST\n/blobs\n').update(bytes).digest('hex');
    const gone = randomUUID();
    const goneBytes = Buffer.from('from a process that ended');
    await sql`insert into http_idempotency (principal, idem_key, request_hash, status, created_at_ms, instance_id)
      values ('anonymous', ${gone}, ${fingerprint(goneBytes)}, 'in_flight', ${h.nowMs}, ${randomUUID()})`.execute(opened.db);
    expect((await h.blob(gone, goneBytes)).statusCode).toBe(201);

    const unnamed = randomUUID();
    const unnamedBytes = Buffer.from('from before claims named their instance');
    await sql`insert into http_idempotency (principal, idem_key, request_hash, status, created_at_ms)
      values ('anonymous', ${unnamed}, ${fingerprint(unnamedBytes)}, 'in_flight', ${h.nowMs})`.execute(opened.db);
    expectProblem(await h.blob(unnamed, unnamedBytes), 409, 'IDEMPOTENCY_REQUEST_IN_FLIGHT');
    h.nowMs += DEFAULT_IN_FLIGHT_LEASE_MS;
    expect((await h.blob(unnamed, unnamedBytes)).statusCode).toBe(201);
  });

  it('expires outcomes after the TTL and sweeps old rows in bounded batches', async () => {
    const key = randomUUID();
    expect((await h.order(key, 'plum')).statusCode).toBe(201);
    h.nowMs += TTL_MS;
    // Past the TTL the key is free again: another body is a new request, not a reuse.
    expect((await h.order(key, 'cherry')).headers['idempotent-replayed']).toBeUndefined();
    h.nowMs += TTL_MS + 1;
    expect((await h.order(randomUUID())).statusCode).toBe(201);
    expect(await h.rows()).toBe(1);
  });
});
