// What every API route group needs: the store, blobs, auth, clocks and ids, and one way to run a command for a request.

import { createHash } from 'node:crypto';
import type { FastifyRequest } from 'fastify';
import type { Kysely } from 'kysely';
import type { Command, Decider, Event } from '../../domain/decider.js';
import { toWire } from '../../domain/codec.js';
import type { LedgerStore } from '../event-store/ledger-store.js';
import { handleCommand, handleCommandsAtomically, type CommandOutcome } from '../commands/command-handler.js';
import type { PreimageDeriver } from '../lightning/preimages.js';
import type { BlobStore } from '../../replay/ports/blob-store.js';
import type { AuthDeps } from './auth/authenticate.js';
import type { ApiKeyStore } from './auth/api-keys.js';
import type { NonceStore } from './auth/nonce-store.js';
import type { HoldInvoiceBox } from './hold-invoice-box.js';
import type { CoordinatorNode } from '../../domain/ports/lightning.js';

export type ApiLimits = Readonly<{
  /** JSON bodies of every route but gradient and checkpoint uploads. */
  jsonBodyLimitBytes: number;
  /** Checkpoint uploads: the largest reference checkpoint with room to spare. */
  blobBodyLimitBytes: number;
  /** Requests per minute per verified API key or contributor (each IP gets four times this, counted before authentication). */
  requestsPerMinute: number;
  /** How far a signature's `created` may be from the server clock. */
  signatureMaxSkewSec: number;
  /** Events per page of the NDJSON export. */
  exportMaxEvents: number;
}>;

export const DEFAULT_API_LIMITS: ApiLimits = Object.freeze({
  jsonBodyLimitBytes: 64 * 1024,
  blobBodyLimitBytes: 1024 * 1024,
  requestsPerMinute: 6_000,
  signatureMaxSkewSec: 300,
  exportMaxEvents: 10_000,
});

export type ApiDeps = Readonly<{
  store: LedgerStore;
  db: Kysely<any>;
  /**
   * Where HTTP idempotency records go: on PostgreSQL a pool with asynchronous commit (see
   * openAsyncCommitDatabase), so a request waits for one WAL flush, its append's; else `db`.
   */
  asyncCommitDb?: Kysely<any>;
  blobs: BlobStore;
  apiKeys: ApiKeyStore;
  nonces: NonceStore;
  preimages: PreimageDeriver;
  holdInvoices: HoldInvoiceBox;
  /** The coordinator's node decodes contributors' invoices; `network` is what they must be for. */
  lightning: Readonly<{ node: CoordinatorNode; network: string }>;
  nowMs: () => number;
  newEventId: () => string;
  limits: ApiLimits;
  /** Development network only: a contributor id's simulated node key, so simulations can register. */
  devNodeKey?: (contributorId: string) => Promise<string>;
}>;

export function authDeps(deps: ApiDeps): AuthDeps {
  return { store: deps.store, apiKeys: deps.apiKeys, nonces: deps.nonces, nowMs: deps.nowMs, maxSkewSec: deps.limits.signatureMaxSkewSec };
}

/**
 * Runs one command for a request. The command-level idempotency key is derived from the caller
 * and their Idempotency-Key header, so a retried request can never append twice even if the
 * HTTP-level record were lost: the key is written in the same transaction as the events.
 */
export async function runCommand<C extends Command, E extends Event, S>(
  deps: ApiDeps,
  request: FastifyRequest,
  decider: Decider<C, E, S>,
  streamId: string,
  type: C['type'],
  data: C['data'],
  options: Readonly<{ loaded?: Readonly<{ state: S; lastRevision: number | null }> }> = {},
): Promise<CommandOutcome<E>> {
  const key = commandKey(request, type);
  const command = { type, data, metadata: { nowMs: deps.nowMs() } } as unknown as C;
  return handleCommand(deps.store, decider, streamId, command, { newEventId: deps.newEventId, ...(key ? { idempotencyKey: key } : {}), ...(options.loaded ? { loaded: options.loaded } : {}) });
}

/** The command-level idempotency key of a request: its caller and Idempotency-Key header, per command type. */
function commandKey(request: FastifyRequest, type: string): string | undefined {
  const header = request.headers['idempotency-key'];
  // Hashed: caller and header together can exceed the store's key length; the hash cannot.
  return typeof header === 'string' ? `http:${createHash('sha256').update(`${request.principal ?? 'anonymous'}\n${header}`).digest('hex')}:${type}` : undefined;
}

export type RequestPart = Readonly<{ decider: Decider<any, any, any>; streamId: string; type: string; data: object; loaded?: Readonly<{ state: unknown; lastRevision: number | null }> }>;

/** Several commands of one request, appended all or nothing (see handleCommandsAtomically), each under its own derived key. */
export async function runCommandsAtomically(deps: ApiDeps, request: FastifyRequest, parts: readonly RequestPart[]): Promise<CommandOutcome<Event>[]> {
  const nowMs = deps.nowMs();
  return handleCommandsAtomically(
    deps.store,
    parts.map((part) => {
      const key = commandKey(request, part.type);
      return { decider: part.decider, streamId: part.streamId, command: { type: part.type, data: part.data, metadata: { nowMs } }, ...(key ? { idempotencyKey: key } : {}), ...(part.loaded ? { loaded: part.loaded } : {}) };
    }),
    { newEventId: deps.newEventId },
  );
}

/** Events as the API shows them: amounts as decimal strings, like the log. */
export function eventsView(outcome: CommandOutcome<Event>): { type: string; data: Record<string, unknown> }[] {
  return outcome.events.map((e) => ({ type: e.type, data: toWire(e.data) as Record<string, unknown> }));
}

/** Money goes out as decimal strings: JSON numbers cannot carry every msat amount exactly. */
export function wire<T>(value: T): unknown {
  return toWire(value);
}
