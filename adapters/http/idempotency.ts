// The IETF Idempotency-Key header for state-changing routes: one kept outcome per (caller, key), replayed byte for byte.

import { createHash, randomUUID } from 'node:crypto';
import type { FastifyInstance, FastifyReply, FastifyRequest } from 'fastify';
import { sql, type ColumnType, type Kysely } from 'kysely';
import type { Migration } from 'kysely/migration';
import { claimantsFor, type ClaimantEngine, type Claimants } from '../postgres/claimants.js';
import { migrateToLatest } from '../postgres/database.js';
import { ApiError, problemOf } from './problem.js';

declare module 'fastify' {
  interface FastifyRequest {
    /** Who is calling, as the auth layer names them (`key:<id>`, `contributor:<id>`); scopes idempotency keys and rate limits. */
    principal?: string;
    /** The body exactly as received, for JSON and octet-stream bodies: signatures and fingerprints need bytes, not the parse. */
    rawBody?: Buffer;
  }
  interface FastifyContextConfig {
    /** The route changes state and takes an Idempotency-Key header (IETF draft-ietf-httpapi-idempotency-key-header). */
    idempotent?: boolean;
  }
}

export const IDEMPOTENCY_KEY_HEADER = 'idempotency-key';
export const IDEMPOTENT_REPLAYED_HEADER = 'idempotent-replayed';
export const DEFAULT_IDEMPOTENCY_TTL_MS = 24 * 60 * 60 * 1000;
/**
 * The last resort: an in-flight claim older than this is taken to be abandoned and may be claimed again. A claim
 * whose process is known to be gone (see Claimants) is taken over at once; this covers claims whose process cannot be
 * told, such as rows written before claims named their instance.
 */
export const DEFAULT_IN_FLIGHT_LEASE_MS = 5 * 60 * 1000;
/** Larger response bodies are not kept: a replay then answers 409 IDEMPOTENT_RESPONSE_NOT_KEPT. */
export const MAX_KEPT_RESPONSE_BYTES = 1024 * 1024;
export const MAX_IDEMPOTENCY_KEY_CHARS = 255;
/** Response headers kept with the outcome and replayed; the rest are per-response (dates, lengths, rate limits). */
export const REPLAYED_HEADER_NAMES = ['content-type', 'location', 'content-location', 'etag', 'last-modified', 'cache-control'] as const;
/** Outcomes a retry should redo rather than replay: a server fault, an auth refusal, a timeout, a rate limit. */
export const UNKEPT_STATUSES: ReadonlySet<number> = new Set([401, 403, 408, 429]);
/** Problem codes meaning "nothing happened, try again": keeping them would pin the key to a transient answer. */
export const UNKEPT_PROBLEM_CODES: ReadonlySet<string> = new Set(['CONCURRENCY_CONFLICT', 'WRONG_EXPECTED_REVISION']);
/** Expired rows deleted per sweep, and how often a sweep may run: expiry stays a bounded, lazy chore. */
const EXPIRY_SWEEP_BATCH_ROWS = 500;
const EXPIRY_SWEEP_INTERVAL_MS = 60 * 1000;
/** Claim races (the row vanishing between insert and read) retried before answering 409. */
const MAX_CLAIM_ATTEMPTS = 3;
/** The one namespace of keys sent to routes without authentication (every /v1 state-changing route authenticates). */
const ANONYMOUS_PRINCIPAL = 'anonymous';
const VISIBLE_ASCII_KEY = new RegExp(`^[\\x21-\\x7e]{1,${MAX_IDEMPOTENCY_KEY_CHARS}}$`);
/** The draft sends the key as a structured-field string ("..."); a bare token is accepted too. */
const SF_STRING = /^"([\x20\x21\x23-\x5b\x5d-\x7e]*)"$/;
const RAW_BODY_CONTENT_TYPES = ['application/json', 'application/octet-stream'] as const;

export type IdempotencyOptions = {
  db: Kysely<any>;
  nowMs?: () => number;
  ttlMs?: number;
  inFlightLeaseMs?: number;
  maxKeptResponseBytes?: number;
  /**
   * How to tell that the process behind an in-flight claim is gone: 'postgres', its session advisory lock is free;
   * 'pglite', it is not a live instance of this process (one process opens a PGlite database). Absent: the lease alone.
   */
  engine?: ClaimantEngine;
  /** This process's claimant id, recorded on its claims; random by default. */
  instanceId?: string;
};

type StoredHeaders = Record<string, string | string[]>;
type IdempotencyTables = {
  http_idempotency: {
    principal: string;
    idem_key: string;
    request_hash: string;
    status: 'in_flight' | 'done';
    response_status: number | null;
    response_headers: ColumnType<StoredHeaders | null, string | null, string | null>;
    response_body: ColumnType<Uint8Array | null, Buffer | null, Buffer | null>;
    /** int8 comes back as a decimal string from both engines; read it through Number(). */
    created_at_ms: ColumnType<string | number, number, number>;
    /** The instance (server process) that made the claim; null on rows from before migration 0002. */
    instance_id: string | null;
  };
};
type Row = IdempotencyTables['http_idempotency'] & { response_headers: StoredHeaders | null; response_body: Uint8Array | null; created_at_ms: string | number };
type Claim = { principal: string; key: string; fingerprint: string; createdAtMs: number; instanceId: string; state: 'owner' | 'finished' };
type WantedClaim = Omit<Claim, 'createdAtMs' | 'instanceId' | 'state'>;

export const IDEMPOTENCY_MIGRATIONS: Readonly<Record<string, Migration>> = {
  '0001_http_idempotency': {
    async up(db: Kysely<any>): Promise<void> {
      await db.schema
        .createTable('http_idempotency')
        .addColumn('principal', 'text', (c) => c.notNull())
        .addColumn('idem_key', 'text', (c) => c.notNull())
        .addColumn('request_hash', 'text', (c) => c.notNull())
        .addColumn('status', 'text', (c) => c.notNull().check(sql`status in ('in_flight', 'done')`))
        .addColumn('response_status', 'integer')
        .addColumn('response_headers', 'jsonb')
        .addColumn('response_body', 'bytea')
        .addColumn('created_at_ms', 'int8', (c) => c.notNull())
        .addPrimaryKeyConstraint('http_idempotency_pk', ['principal', 'idem_key'])
        .addCheckConstraint('http_idempotency_done_has_status', sql`status = 'in_flight' or response_status is not null`)
        .execute();
      await db.schema.createIndex('http_idempotency_created_at_ms_idx').on('http_idempotency').column('created_at_ms').execute();
    },
  },
  '0002_http_idempotency_instance': {
    async up(db: Kysely<any>): Promise<void> {
      await db.schema.alterTable('http_idempotency').addColumn('instance_id', 'text').execute();
    },
  },
};

/**
 * Keeps every JSON and octet-stream body's bytes on `request.rawBody`. Both parsers read the body
 * as one Buffer (within the route's bodyLimit); JSON is then parsed by fastify's own secure parser,
 * and an octet-stream body IS that Buffer. Replaces any parser already set for those two types.
 */
export function registerRawBody(app: FastifyInstance): void {
  const parseJson = app.getDefaultJsonParser(app.initialConfig.onProtoPoisoning ?? 'error', app.initialConfig.onConstructorPoisoning ?? 'error');
  for (const type of RAW_BODY_CONTENT_TYPES) if (app.hasContentTypeParser(type)) app.removeContentTypeParser(type);
  app.addContentTypeParser('application/json', { parseAs: 'buffer' }, (request, body, done) => {
    request.rawBody = body as Buffer;
    parseJson(request, (body as Buffer).toString('utf8'), done);
  });
  app.addContentTypeParser('application/octet-stream', { parseAs: 'buffer' }, (request, body, done) => {
    request.rawBody = body as Buffer;
    done(null, body);
  });
}

/**
 * Creates the table, installs the raw-body parsers and hooks every route declared AFTER this call
 * whose config says `idempotent: true`. Call it on the root instance before the routes. The instance
 * starts claiming (on PostgreSQL, takes its lock) when the app is ready, and lets go when it closes.
 */
export async function registerIdempotency(app: FastifyInstance, options: IdempotencyOptions): Promise<void> {
  const settings = {
    nowMs: options.nowMs ?? Date.now,
    ttlMs: options.ttlMs ?? DEFAULT_IDEMPOTENCY_TTL_MS,
    leaseMs: Math.min(options.inFlightLeaseMs ?? DEFAULT_IN_FLIGHT_LEASE_MS, options.ttlMs ?? DEFAULT_IDEMPOTENCY_TTL_MS),
    maxKeptBytes: options.maxKeptResponseBytes ?? MAX_KEPT_RESPONSE_BYTES,
  };
  await migrateToLatest(options.db, IDEMPOTENCY_MIGRATIONS, 'http_idempotency_migrations');
  registerRawBody(app);
  const ledger = new IdempotencyLedger(options.db as Kysely<IdempotencyTables>, settings.nowMs, settings.ttlMs);
  const claimants = claimantsFor(options.db, options.engine, options.instanceId ?? randomUUID());
  app.addHook('onReady', async () => claimants.start());
  app.addHook('onClose', async () => claimants.close());
  const claims = new WeakMap<FastifyRequest, Claim>();
  const hooks = idempotencyHooks(ledger, claimants, claims, settings);
  app.addHook('onRoute', (route) => {
    if (route.config?.idempotent !== true) return;
    // The key is checked before schema validation (so a missing key is named as such) but after authentication,
    // which runs in onRequest (registerAuthFirst); the claim is made after the route's own preHandlers, under the
    // verified principal. Only a verified principal scopes a key: a credential merely presented never does.
    const r = route as unknown as Record<string, unknown>;
    r.preValidation = [hooks.requireKey, ...hookList(r.preValidation)];
    r.preHandler = [...hookList(r.preHandler), hooks.claim];
    r.onSend = [hooks.keepOutcome, ...hookList(r.onSend)];
    r.onResponse = [...hookList(r.onResponse), hooks.releaseUnfinished];
  });
}

function hookList(value: unknown): unknown[] {
  if (value === undefined || value === null) return [];
  return Array.isArray(value) ? value : [value];
}

type Settings = { nowMs: () => number; ttlMs: number; leaseMs: number; maxKeptBytes: number };

function idempotencyHooks(ledger: IdempotencyLedger, claimants: Claimants, claims: WeakMap<FastifyRequest, Claim>, settings: Settings) {
  const keys = new WeakMap<FastifyRequest, string>();
  return {
    requireKey: async (request: FastifyRequest) => {
      keys.set(request, idempotencyKeyOf(request));
    },
    claim: async (request: FastifyRequest, reply: FastifyReply) => {
      const key = keys.get(request) ?? idempotencyKeyOf(request);
      const principal = request.principal ?? ANONYMOUS_PRINCIPAL;
      const claim = await claimOrReplay(ledger, claimants, settings, reply, { principal, key, fingerprint: fingerprintOf(request) });
      if (claim) claims.set(request, claim);
      else return reply;
    },
    keepOutcome: async (request: FastifyRequest, reply: FastifyReply, payload: unknown) => {
      const claim = claims.get(request);
      if (!claim || claim.state !== 'owner') return payload;
      claim.state = 'finished';
      await settle(ledger, claim, reply, payload, settings.maxKeptBytes).catch(async (error: unknown) => {
        // The client still gets its answer; a retry then redoes the work, and the command layer's own key dedupes it.
        request.log.error({ err: error, idempotencyKey: claim.key }, 'could not keep an idempotent outcome');
        await ledger.release(claim).catch(() => undefined);
      });
      return payload;
    },
    releaseUnfinished: async (request: FastifyRequest) => {
      const claim = claims.get(request);
      if (!claim || claim.state !== 'owner') return;
      // The response left without passing onSend (a failing error handler, say): free the key for a retry.
      claim.state = 'finished';
      await ledger.release(claim).catch((error: unknown) => request.log.error({ err: error }, 'could not release an idempotency claim'));
    },
  };
}

/** The Idempotency-Key header, or a 400 problem naming what is wrong with it. */
export function idempotencyKeyOf(request: FastifyRequest): string {
  const raw = request.headers[IDEMPOTENCY_KEY_HEADER];
  if (raw === undefined) {
    throw new ApiError(400, 'IDEMPOTENCY_KEY_MISSING', 'this route changes state: send an Idempotency-Key header (a fresh UUID per operation) so a retry cannot do it twice');
  }
  const value = typeof raw === 'string' ? (SF_STRING.exec(raw)?.[1] ?? raw) : '';
  if (!VISIBLE_ASCII_KEY.test(value)) {
    throw new ApiError(400, 'IDEMPOTENCY_KEY_INVALID', `the Idempotency-Key header must be 1-${MAX_IDEMPOTENCY_KEY_CHARS} visible ASCII characters (one header, no spaces)`);
  }
  return value;
}

/** SHA-256 over method, URL and the body's raw bytes: the same request, whatever its content type. */
export function fingerprintOf(request: FastifyRequest): string {
  if (request.body !== undefined && request.body !== null && request.rawBody === undefined) {
    throw new ApiError(415, 'UNSUPPORTED_MEDIA_TYPE', `idempotent routes take ${RAW_BODY_CONTENT_TYPES.join(' or ')} bodies`);
  }
  const hash = createHash('sha256').update(`${request.method}\n${request.url}\n`);
  if (request.rawBody) hash.update(request.rawBody);
  return hash.digest('hex');
}

/** Claims the key (returning the claim), or answers on `reply` with the kept outcome, or throws 409/422. */
async function claimOrReplay(ledger: IdempotencyLedger, claimants: Claimants, settings: Settings, reply: FastifyReply, wanted: WantedClaim): Promise<Claim | null> {
  await ledger.sweepExpired();
  for (let attempt = 1; attempt <= MAX_CLAIM_ATTEMPTS; attempt += 1) {
    const claim: Claim = { ...wanted, createdAtMs: settings.nowMs(), instanceId: claimants.instanceId, state: 'owner' };
    if (await ledger.tryInsert(claim)) return claim;
    const row = await ledger.find(wanted.principal, wanted.key);
    if (!row) continue;
    const ageMs = claim.createdAtMs - Number(row.created_at_ms);
    if (ageMs >= (row.status === 'done' ? settings.ttlMs : settings.leaseMs)) {
      await ledger.deleteExact(row);
      continue;
    }
    if (row.request_hash !== wanted.fingerprint) {
      throw new ApiError(422, 'IDEMPOTENCY_KEY_REUSED', 'this Idempotency-Key was already used for a different request (method, URL or body); use a fresh key for a new operation');
    }
    if (row.status === 'in_flight') {
      // Its process died mid-request: the retry takes the claim over now. Whatever that request had committed, the
      // command-level key (derived from the same caller and header) replays instead of doing it again.
      if (row.instance_id !== null && (await claimants.isGone(row.instance_id))) {
        await ledger.deleteExact(row);
        continue;
      }
      reply.header('retry-after', 1);
      throw new ApiError(409, 'IDEMPOTENCY_REQUEST_IN_FLIGHT', 'the first request with this Idempotency-Key is still being processed; retry shortly for its outcome');
    }
    replay(reply, row);
    return null;
  }
  throw new ApiError(409, 'IDEMPOTENCY_REQUEST_IN_FLIGHT', 'this Idempotency-Key is contended by concurrent requests; retry shortly');
}

function replay(reply: FastifyReply, row: Row): void {
  reply.header(IDEMPOTENT_REPLAYED_HEADER, 'true');
  if (row.response_body === null) {
    const status = row.response_status ?? 0;
    throw new ApiError(409, 'IDEMPOTENT_RESPONSE_NOT_KEPT', `the request with this Idempotency-Key completed with status ${status}, but its response was too large (or streamed) to keep; read the resource instead`, { originalStatus: status });
  }
  const body = row.response_body;
  reply.code(row.response_status ?? 200).headers(row.response_headers ?? {});
  void reply.send(Buffer.from(body.buffer, body.byteOffset, body.byteLength));
}

/** Keeps the outcome as 'done', or deletes the claim when a retry should run the handler again. */
async function settle(ledger: IdempotencyLedger, claim: Claim, reply: FastifyReply, payload: unknown, maxKeptBytes: number): Promise<void> {
  const status = reply.statusCode;
  const problemCode = problemOf(reply)?.code;
  if (status >= 500 || UNKEPT_STATUSES.has(status) || (problemCode !== undefined && UNKEPT_PROBLEM_CODES.has(problemCode))) {
    await ledger.release(claim);
    return;
  }
  const body = payloadBytes(payload);
  const headers: StoredHeaders = {};
  for (const name of REPLAYED_HEADER_NAMES) {
    const value = reply.getHeader(name);
    if (value !== undefined) headers[name] = Array.isArray(value) ? value.map(String) : String(value);
  }
  await ledger.complete(claim, status, headers, body !== null && body.byteLength <= maxKeptBytes ? body : null);
}

/** The bytes fastify is about to send, or null for a stream (which cannot be kept without buffering it). */
function payloadBytes(payload: unknown): Buffer | null {
  if (payload === undefined || payload === null) return Buffer.alloc(0);
  if (typeof payload === 'string') return Buffer.from(payload, 'utf8');
  if (Buffer.isBuffer(payload)) return payload;
  if (payload instanceof Uint8Array) return Buffer.from(payload.buffer, payload.byteOffset, payload.byteLength);
  return null;
}

/** The table's few statements; each keyed by (principal, idem_key), the claim's creation time guarding against a newer owner. */
class IdempotencyLedger {
  private lastSweepMs = Number.NEGATIVE_INFINITY;

  constructor(
    private readonly db: Kysely<IdempotencyTables>,
    private readonly nowMs: () => number,
    private readonly ttlMs: number,
  ) {}

  async tryInsert(claim: Claim): Promise<boolean> {
    const inserted = await this.db
      .insertInto('http_idempotency')
      .values({
        principal: claim.principal, idem_key: claim.key, request_hash: claim.fingerprint, status: 'in_flight',
        response_status: null, response_headers: null, response_body: null, created_at_ms: claim.createdAtMs, instance_id: claim.instanceId,
      })
      .onConflict((oc) => oc.columns(['principal', 'idem_key']).doNothing())
      .returning('principal')
      .executeTakeFirst();
    return inserted !== undefined;
  }

  async find(principal: string, key: string): Promise<Row | undefined> {
    return (await this.db.selectFrom('http_idempotency').selectAll().where('principal', '=', principal).where('idem_key', '=', key).executeTakeFirst()) as Row | undefined;
  }

  async complete(claim: Claim, status: number, headers: StoredHeaders, body: Buffer | null): Promise<void> {
    await this.db
      .updateTable('http_idempotency')
      .set({ status: 'done', response_status: status, response_headers: JSON.stringify(headers), response_body: body })
      .where('principal', '=', claim.principal)
      .where('idem_key', '=', claim.key)
      .where('created_at_ms', '=', claim.createdAtMs)
      .where('instance_id', '=', claim.instanceId)
      .where('status', '=', 'in_flight')
      .execute();
  }

  async release(claim: Claim): Promise<void> {
    await this.deleteWhere(claim.principal, claim.key, claim.createdAtMs, claim.instanceId, 'in_flight');
  }

  async deleteExact(row: Row): Promise<void> {
    await this.deleteWhere(row.principal, row.idem_key, Number(row.created_at_ms), row.instance_id, row.status);
  }

  /** At most one bounded delete per interval, so expiry never costs a request more than one small statement. */
  async sweepExpired(): Promise<void> {
    const nowMs = this.nowMs();
    if (nowMs - this.lastSweepMs < EXPIRY_SWEEP_INTERVAL_MS) return;
    this.lastSweepMs = nowMs;
    const cutoffMs = nowMs - this.ttlMs;
    await sql`
      delete from http_idempotency where (principal, idem_key) in (
        select principal, idem_key from http_idempotency where created_at_ms < ${cutoffMs} order by created_at_ms limit ${EXPIRY_SWEEP_BATCH_ROWS})`.execute(this.db);
  }

  private async deleteWhere(principal: string, key: string, createdAtMs: number, instanceId: string | null, status: Row['status']): Promise<void> {
    await this.db
      .deleteFrom('http_idempotency')
      .where('principal', '=', principal)
      .where('idem_key', '=', key)
      .where('created_at_ms', '=', createdAtMs)
      .where('instance_id', instanceId === null ? 'is' : '=', instanceId)
      .where('status', '=', status)
      .execute();
  }
}
