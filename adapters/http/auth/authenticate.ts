// Who is calling: staff by bearer API key (role and scopes), contributors by an RFC 9421 signature with their registered key.

import type { FastifyRequest } from 'fastify';
import { loadAggregate } from '../../commands/command-handler.js';
import { contributorDecider, contributorStreamId } from '../../../domain/contributor/index.js';
import type { EventStore } from '../../../domain/ports/event-store.js';
import { ApiError } from '../problem.js';
import type { ApiKeyStore } from './api-keys.js';
import { verifyRequest } from './http-signature.js';
import type { NonceStore } from './nonce-store.js';

export type StaffCaller = Readonly<{ kind: 'staff'; keyId: string; role: string; scopes: readonly string[] }>;
export type ContributorCaller = Readonly<{ kind: 'contributor'; contributorId: string }>;
export type Caller = StaffCaller | ContributorCaller;
/** One scope, or several of which any one suffices. */
export type Scope = string | readonly string[];

export type AuthDeps = Readonly<{
  store: EventStore;
  apiKeys: ApiKeyStore;
  nonces: NonceStore;
  nowMs: () => number;
  /** How far a signature's `created` may be from the server clock. */
  maxSkewSec: number;
}>;

declare module 'fastify' {
  interface FastifyRequest {
    caller?: Caller;
  }
}

/** A staff caller holding `scope` (or any one of several), or a 401/403 problem. */
export async function requireStaff(request: FastifyRequest, deps: AuthDeps, scope: Scope): Promise<StaffCaller> {
  const header = request.headers.authorization;
  if (!header) throw new ApiError(401, 'AUTHENTICATION_REQUIRED', `this route needs a staff API key with scope ${String(scope)}: send Authorization: Bearer <key>`);
  const match = /^Bearer ([A-Za-z0-9_-]{1,200})$/.exec(header);
  const key = match ? await deps.apiKeys.authenticate(match[1]!) : null;
  if (!key) throw new ApiError(401, 'INVALID_API_KEY', 'the API key is malformed, unknown or revoked');
  const accepted = typeof scope === 'string' ? [scope] : scope;
  if (!accepted.some((s) => key.scopes.includes(s))) throw new ApiError(403, 'FORBIDDEN', `a ${key.role} key holds none of the scopes this route accepts (${accepted.join(', ')})`);
  const caller: StaffCaller = { kind: 'staff', keyId: key.keyId, role: key.role, scopes: key.scopes };
  request.caller = caller;
  request.principal = `key:${key.keyId}`;
  return caller;
}

/**
 * A contributor whose signature verifies against the signing key they registered, with a nonce
 * never seen before. `publicKeyFor` may be overridden for self-registration, where the key to
 * check is the one in the body (proof of possession).
 */
export async function requireContributor(
  request: FastifyRequest,
  deps: AuthDeps,
  publicKeyFor: (keyId: string) => Promise<Uint8Array | null> = (keyId) => registeredSigningKey(deps.store, keyId),
): Promise<ContributorCaller> {
  const nowMs = deps.nowMs();
  const url = new URL(request.url, 'http://localhost');
  const verified = await verifyRequest({
    method: request.method,
    path: url.pathname,
    query: url.search,
    headers: request.headers,
    body: rawBodyOf(request),
    nowSec: Math.floor(nowMs / 1000),
    maxSkewSec: deps.maxSkewSec,
    publicKeyFor,
  }).catch((error: unknown) => {
    const e = error as { status?: number; code?: string; message?: string };
    if (e.code) throw new ApiError(e.status ?? 401, e.code, e.message ?? 'signature refused');
    throw error;
  });
  // The nonce is burned only after the signature verified: a forged request cannot use up someone's nonce.
  const first = await deps.nonces.claim(verified.keyId, verified.nonce, nowMs + 2 * deps.maxSkewSec * 1000, nowMs);
  if (!first) throw new ApiError(401, 'NONCE_REPLAYED', `nonce ${verified.nonce} was already used; sign every request with a fresh nonce`);
  const caller: ContributorCaller = { kind: 'contributor', contributorId: verified.keyId };
  request.caller = caller;
  request.principal = `contributor:${verified.keyId}`;
  return caller;
}

/** Either kind of caller: staff with `scope`, or a signed contributor (the route then checks ownership). */
export async function requireStaffOrContributor(request: FastifyRequest, deps: AuthDeps, scope: Scope): Promise<Caller> {
  return request.headers.authorization ? requireStaff(request, deps, scope) : requireContributor(request, deps);
}

async function registeredSigningKey(store: EventStore, contributorId: string): Promise<Uint8Array | null> {
  if (!/^[A-Za-z0-9._:-]{1,200}$/.test(contributorId)) return null;
  const { state } = await loadAggregate(store, contributorDecider, contributorStreamId(contributorId));
  // A suspended contributor's key no longer opens anything.
  if (state.status !== 'active') return null;
  return Buffer.from(state.signingPublicKeyHex, 'hex');
}

export function rawBodyOf(request: FastifyRequest): Uint8Array {
  const raw = (request as { rawBody?: Uint8Array }).rawBody;
  return raw ?? new Uint8Array(0);
}

/*
 * Route hooks. Authentication runs as the route's preHandler, before the idempotency plugin's
 * claim, so a stored response is only ever replayed to the caller who proved who they are.
 */
export const asStaff = (deps: AuthDeps, scope: Scope) => async (request: FastifyRequest) => void (await requireStaff(request, deps, scope));
export const asContributor = (deps: AuthDeps) => async (request: FastifyRequest) => void (await requireContributor(request, deps));
export const asStaffOrContributor = (deps: AuthDeps, scope: Scope) => async (request: FastifyRequest) => void (await requireStaffOrContributor(request, deps, scope));

export function callerOf(request: FastifyRequest): Caller {
  if (!request.caller) throw new Error(`route ${request.url} ran without its authentication hook`);
  return request.caller;
}

export function staffCallerOf(request: FastifyRequest): StaffCaller {
  const caller = callerOf(request);
  if (caller.kind !== 'staff') throw new Error('a staff route ran for a contributor');
  return caller;
}

export function contributorCallerOf(request: FastifyRequest): ContributorCaller {
  const caller = callerOf(request);
  if (caller.kind !== 'contributor') throw new Error('a contributor route ran for staff');
  return caller;
}
