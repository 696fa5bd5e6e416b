// Per-caller request budgets with @fastify/rate-limit: keyed by the credential a request presents, else by its IP.

import { createHash } from 'node:crypto';
import rateLimit from '@fastify/rate-limit';
import type { FastifyInstance, FastifyRequest } from 'fastify';
import { ApiError } from './problem.js';

/** Requests per minute per caller when the app does not say otherwise (ApiLimits.requestsPerMinute). */
export const DEFAULT_MAX_REQUESTS_PER_MINUTE = 6_000;
export const RATE_LIMIT_WINDOW_MS = 60_000;
/**
 * One IP's ceiling, as a multiple of the per-caller budget: credentials are read before they are
 * verified, so a client could otherwise mint a fresh bucket per request with made-up keys.
 */
export const DEFAULT_IP_CEILING_FACTOR = 4;
/** Buckets kept in memory per limiter (LRU); past it the least recently seen caller starts afresh. */
export const DEFAULT_RATE_LIMIT_BUCKETS = 10_000;
/** Hex digits of SHA-256(bearer token) naming its bucket: the token itself is never kept. */
const BEARER_KEY_HEX_CHARS = 32;
/** Longest Authorization or Signature-Input header read for a key; longer ones fall back to the IP. */
const MAX_CREDENTIAL_HEADER_CHARS = 4_096;
const BEARER_PATTERN = /^Bearer ([!-~]{1,2048})$/;
/** RFC 9421 Signature-Input parameter naming the signer (contributors sign with keyid = contributor id). */
const KEYID_PATTERN = /;\s*keyid="([A-Za-z0-9._:-]{1,200})"/;

export type RateLimitOptions = {
  maxPerMinute?: number;
  /** Per-IP ceiling across all credentials; defaults to maxPerMinute × DEFAULT_IP_CEILING_FACTOR. */
  maxPerMinutePerIp?: number;
  buckets?: number;
};

/**
 * Who the request says it is, before authentication checks it: the verified principal if the auth
 * layer already ran, else a digest of its bearer token, else its signature keyid. Null when none.
 */
export function claimedPrincipal(request: FastifyRequest): string | null {
  if (request.principal) return request.principal;
  const authorization = request.headers.authorization;
  if (typeof authorization === 'string' && authorization.length <= MAX_CREDENTIAL_HEADER_CHARS) {
    const token = BEARER_PATTERN.exec(authorization)?.[1];
    if (token) return `bearer:${createHash('sha256').update(token).digest('hex').slice(0, BEARER_KEY_HEX_CHARS)}`;
  }
  const signatureInput = request.headers['signature-input'];
  if (typeof signatureInput === 'string' && signatureInput.length <= MAX_CREDENTIAL_HEADER_CHARS) {
    const keyId = KEYID_PATTERN.exec(signatureInput)?.[1];
    if (keyId) return `keyid:${keyId}`;
  }
  return null;
}

/** The bucket a request is counted in: its claimed principal, else its IP. */
export function rateLimitKey(request: FastifyRequest): string {
  return claimedPrincipal(request) ?? `ip:${request.ip}`;
}

/**
 * Registers the limiter on every route declared after this call (it hooks onRoute). Over the
 * budget a request is answered 429 RATE_LIMITED with Retry-After, through the problem handler.
 */
export async function registerRateLimits(app: FastifyInstance, options: RateLimitOptions = {}): Promise<void> {
  const maxPerMinute = options.maxPerMinute ?? DEFAULT_MAX_REQUESTS_PER_MINUTE;
  const maxPerMinutePerIp = options.maxPerMinutePerIp ?? maxPerMinute * DEFAULT_IP_CEILING_FACTOR;
  await app.register(rateLimit, {
    max: maxPerMinute,
    timeWindow: RATE_LIMIT_WINDOW_MS,
    cache: options.buckets ?? DEFAULT_RATE_LIMIT_BUCKETS,
    keyGenerator: rateLimitKey,
    errorResponseBuilder: (_request, context) => rateLimited(context.ttl),
  });
  const ipCeiling = app.createRateLimit({ max: maxPerMinutePerIp, keyGenerator: (request) => `ip:${request.ip}` });
  app.addHook('onRequest', async (request, reply) => {
    const limit = await ipCeiling(request);
    if (limit.isAllowed || !limit.isExceeded) return;
    reply.header('retry-after', Math.ceil(limit.ttl / 1000));
    throw rateLimited(limit.ttl);
  });
}

function rateLimited(ttlMs: number): ApiError {
  const retryAfterSec = Math.max(1, Math.ceil(ttlMs / 1000));
  return new ApiError(429, 'RATE_LIMITED', `too many requests; retry after ${retryAfterSec} s`, { retryAfterSec });
}
