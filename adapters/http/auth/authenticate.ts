// Who is calling: staff by bearer API key (role and scopes), contributors by an RFC 9421 signature with their registered key.

import type { FastifyRequest } from 'fastify';
import { loadAggregate } from '../../commands/command-handler.js';
import { contributorDecider, contributorStreamId } from '../../../domain/contributor/index.js';
import type { EventStore } from '../../../domain/ports/event-store.js';
import { ApiError } from '../problem.js';
import type { ApiKeyStore } from './api-keys.js';
import { HttpSignatureError, checkBodyDigest, readSignedHeaders, verifySignature, type SignedHeaders, type VerifiedSignature } from './http-signature.js';
import type { NonceStore } from './nonce-store.js';
import { withArticle } from '../wording.js';

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

/** A contributor's registered key by key id (from the headers alone), or null when there is none. */
export type SigningKeyLookup = (keyId: string) => Promise<Uint8Array | null>;
/** Self-registration: the key a still unvalidated body registers under this key id, or null when it names none. */
export type SigningKeyInBody = (keyId: string, body: unknown) => Uint8Array | null;

declare module 'fastify' {
  interface FastifyRequest {
    caller?: Caller;
    /**
     * What a signature checked before the body was read still has to prove once it is: that the
     * body matches the signed Content-Digest (and, for self-registration, the signature itself).
     * Set in onRequest; settled first thing in preValidation by `proveSignedBody`.
     */
    signedBodyProof?: () => Promise<void>;
  }
}

/** A staff caller holding `scope` (or any one of several), or a 401/403 problem. Reads headers only. */
export async function requireStaff(request: FastifyRequest, deps: AuthDeps, scope: Scope): Promise<StaffCaller> {
  const header = request.headers.authorization;
  if (!header) throw new ApiError(401, 'AUTHENTICATION_REQUIRED', `this route needs a staff API key with scope ${String(scope)}: send Authorization: Bearer <key>`);
  const match = /^Bearer ([A-Za-z0-9_-]{1,200})$/.exec(header);
  const key = match ? await deps.apiKeys.authenticate(match[1]!) : null;
  if (!key) throw new ApiError(401, 'INVALID_API_KEY', 'the API key is malformed, unknown or revoked');
  const accepted = typeof scope === 'string' ? [scope] : scope;
  if (!accepted.some((s) => key.scopes.includes(s))) throw new ApiError(403, 'FORBIDDEN', `${withArticle(key.role)} key holds none of the scopes this route accepts (${accepted.join(', ')})`);
  const caller: StaffCaller = { kind: 'staff', keyId: key.keyId, role: key.role, scopes: key.scopes };
  request.caller = caller;
  request.principal = `key:${key.keyId}`;
  return caller;
}

/**
 * A contributor whose signature verifies against the signing key they registered, with a nonce
 * never seen before, and whose body matches the signed Content-Digest: both halves at once, for
 * code that runs after the body is read. Routes use `asContributor`, which splits them.
 */
export async function requireContributor(request: FastifyRequest, deps: AuthDeps, publicKeyFor?: SigningKeyLookup): Promise<ContributorCaller> {
  await authenticateContributorHeaders(request, deps, publicKeyFor);
  await proveSignedBody(request);
  return contributorCallerOf(request);
}

/**
 * The half of a contributor's authentication that needs no body: the signature over the base
 * (which covers the Content-Digest header as sent) verified against the registered key, then the
 * nonce burned. Leaves `signedBodyProof` to tie the body to that digest once it is read.
 */
export async function authenticateContributorHeaders(
  request: FastifyRequest,
  deps: AuthDeps,
  publicKeyFor: SigningKeyLookup = (keyId) => registeredSigningKey(deps.store, keyId),
): Promise<void> {
  const signed = await signedHeadersOf(request, deps);
  const verified = await signatureChecked(() => verifySignature(signed, publicKeyFor));
  await admitContributor(request, deps, verified);
  request.signedBodyProof = async () => signatureChecked(() => checkBodyDigest(signed, rawBodyOf(request)));
}

/**
 * Self-registration with proof of possession: the signature must verify under the key the body
 * registers, so only the header checks (well formed, fresh, digest covered) run before the body;
 * the digest, the signature and the nonce are settled in `signedBodyProof`, before schema validation.
 */
export async function authenticateSelfRegistrationHeaders(request: FastifyRequest, deps: AuthDeps, keyInBody: SigningKeyInBody): Promise<void> {
  const signed = await signedHeadersOf(request, deps);
  request.signedBodyProof = async () => {
    await signatureChecked(() => checkBodyDigest(signed, rawBodyOf(request)));
    const verified = await signatureChecked(() => verifySignature(signed, async (keyId) => keyInBody(keyId, request.body)));
    await admitContributor(request, deps, verified);
  };
}

/** Settles what a signature left for the body (once; a no-op for staff and unsigned routes). */
export async function proveSignedBody(request: FastifyRequest): Promise<void> {
  const proof = request.signedBodyProof;
  if (!proof) return;
  request.signedBodyProof = undefined;
  await proof();
}

/** Either kind of caller: staff with `scope`, or a signed contributor (the route then checks ownership). */
export async function requireStaffOrContributor(request: FastifyRequest, deps: AuthDeps, scope: Scope): Promise<Caller> {
  if (request.headers.authorization) return requireStaff(request, deps, scope);
  return requireContributor(request, deps);
}

async function signedHeadersOf(request: FastifyRequest, deps: AuthDeps): Promise<SignedHeaders> {
  const url = new URL(request.url, 'http://localhost');
  return signatureChecked(() =>
    readSignedHeaders({ method: request.method, path: url.pathname, query: url.search, headers: request.headers, nowSec: Math.floor(deps.nowMs() / 1000), maxSkewSec: deps.maxSkewSec }),
  );
}

/** Burns the nonce (only ever after the signature verified: a forged request cannot use up someone's nonce) and names the caller. */
async function admitContributor(request: FastifyRequest, deps: AuthDeps, verified: VerifiedSignature): Promise<void> {
  const nowMs = deps.nowMs();
  const first = await deps.nonces.claim(verified.keyId, verified.nonce, nowMs + 2 * deps.maxSkewSec * 1000, nowMs);
  if (!first) throw new ApiError(401, 'NONCE_REPLAYED', `nonce ${verified.nonce} was already used; sign every request with a fresh nonce`);
  request.caller = { kind: 'contributor', contributorId: verified.keyId };
  request.principal = `contributor:${verified.keyId}`;
}

/** Runs a signature check, answering its refusal as a problem with the same status and code. */
async function signatureChecked<T>(check: () => T | Promise<T>): Promise<T> {
  try {
    return await check();
  } catch (error) {
    throw error instanceof HttpSignatureError ? new ApiError(error.status, error.code, error.message) : error;
  }
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
 * Route hooks. Declared as a route's preHandler, each authenticates there, body and all. The
 * registerAuthFirst plugin recognises them by BEFORE_BODY and runs that half in onRequest instead,
 * so a request is authenticated and authorised before its body is read, validated, or its
 * Idempotency-Key looked at; what a signature leaves for the body is proved first in preValidation.
 */
const BEFORE_BODY = Symbol('trainledger.auth.beforeBody');

export type AuthHook = ((request: FastifyRequest) => Promise<void>) & { readonly [BEFORE_BODY]: (request: FastifyRequest) => Promise<void> };

export function authHook(beforeBody: (request: FastifyRequest) => Promise<void>): AuthHook {
  const whole = async (request: FastifyRequest) => {
    await beforeBody(request);
    await proveSignedBody(request);
  };
  return Object.assign(whole, { [BEFORE_BODY]: beforeBody });
}

/** The half of an auth hook that runs before the body, or undefined for any other hook. */
export function beforeBodyHalfOf(hook: unknown): ((request: FastifyRequest) => Promise<void>) | undefined {
  return typeof hook === 'function' && BEFORE_BODY in hook ? (hook as AuthHook)[BEFORE_BODY] : undefined;
}

export const asStaff = (deps: AuthDeps, scope: Scope) => authHook(async (request) => void (await requireStaff(request, deps, scope)));
export const asContributor = (deps: AuthDeps) => authHook((request) => authenticateContributorHeaders(request, deps));
export const asStaffOrContributor = (deps: AuthDeps, scope: Scope) =>
  authHook(async (request) => {
    if (request.headers.authorization) await requireStaff(request, deps, scope);
    else await authenticateContributorHeaders(request, deps);
  });
export const asSelfRegisteringContributor = (deps: AuthDeps, keyInBody: SigningKeyInBody) => authHook((request) => authenticateSelfRegistrationHeaders(request, deps, keyInBody));

export function callerOf(request: FastifyRequest): Caller {
  if (!request.caller || request.signedBodyProof) throw new Error(`route ${request.url} ran without its authentication hook, or before the signed body was proved`);
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
