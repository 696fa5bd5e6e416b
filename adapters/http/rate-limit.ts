// Request budgets with @fastify/rate-limit: one per IP for every request, one per verified caller after authentication.

import rateLimit, { normalizeIP } from '@fastify/rate-limit';
import type { FastifyInstance, FastifyReply, FastifyRequest } from 'fastify';
import { ApiError } from './problem.js';

/** Requests per minute per verified caller when the app does not say otherwise (ApiLimits.requestsPerMinute). */
export const DEFAULT_MAX_REQUESTS_PER_MINUTE = 6_000;
export const RATE_LIMIT_WINDOW_MS = 60_000;
/**
 * One IP's ceiling, as a multiple of the per-caller budget. It counts every request, verified or
 * not, before authentication: it is what bounds guessing keys and forging signatures, and what an
 * unauthenticated route gets.
 */
export const DEFAULT_IP_CEILING_FACTOR = 4;
/** Buckets kept in memory per limiter (LRU); past it the least recently seen caller starts afresh. */
export const DEFAULT_RATE_LIMIT_BUCKETS = 10_000;

export type RateLimitOptions = {
  /** Per verified caller (request.principal). */
  maxPerMinute?: number;
  /** Per IP across everything it sends; defaults to maxPerMinute × DEFAULT_IP_CEILING_FACTOR. */
  maxPerMinutePerIp?: number;
  buckets?: number;
};

type Limit = Awaited<ReturnType<ReturnType<FastifyInstance['createRateLimit']>>>;

/** The IP bucket: IPv6 by its /56, as @fastify/rate-limit counts it, so one host cannot rotate addresses for budget. */
export function ipBucketKey(request: FastifyRequest): string {
  return `ip:${normalizeIP(request.ip)}`;
}

/**
 * The caller's bucket: only ever a principal that authentication verified (request.principal).
 * Credentials a request merely presents (a bearer token, a signature's keyid) name no bucket, so
 * forged requests in someone's name cannot spend their budget. Null before or without authentication.
 */
export function principalBucketKey(request: FastifyRequest): string | null {
  return request.principal ? `principal:${request.principal}` : null;
}

/**
 * Registers both limits for every route. The IP ceiling runs in onRequest, before authentication,
 * so refused credentials count against it; the caller's budget runs in preParsing, after every
 * onRequest hook (authentication included, see registerAuthFirst) and before the body is read.
 * Self-registration names its caller only once the body is read, so it costs the IP ceiling alone
 * (a fresh key would be a fresh caller anyway). Over a budget a request is answered 429 RATE_LIMITED with Retry-After, through the problem handler.
 */
export async function registerRateLimits(app: FastifyInstance, options: RateLimitOptions = {}): Promise<void> {
  const maxPerMinute = options.maxPerMinute ?? DEFAULT_MAX_REQUESTS_PER_MINUTE;
  const maxPerMinutePerIp = options.maxPerMinutePerIp ?? maxPerMinute * DEFAULT_IP_CEILING_FACTOR;
  // global: false: the plugin's own per-route hook would run in onRequest, possibly before authentication.
  await app.register(rateLimit, { global: false, timeWindow: RATE_LIMIT_WINDOW_MS });
  // The plugin gives each limiter its own store, sized by `cache` (which its types leave out of these options).
  const cache = { cache: options.buckets ?? DEFAULT_RATE_LIMIT_BUCKETS };
  const perIp = app.createRateLimit({ max: maxPerMinutePerIp, timeWindow: RATE_LIMIT_WINDOW_MS, keyGenerator: ipBucketKey, ...cache });
  const perCaller = app.createRateLimit({ max: maxPerMinute, timeWindow: RATE_LIMIT_WINDOW_MS, keyGenerator: (request) => principalBucketKey(request)!, ...cache });
  app.addHook('onRequest', async (request, reply) => {
    refuseOver(await perIp(request), reply);
  });
  app.addHook('preParsing', async (request, reply) => {
    if (principalBucketKey(request) === null) return;
    const limit = await perCaller(request);
    // isAllowed is the plugin's allow-list exemption; with no allow list, every result carries its counts.
    if (!limit.isAllowed) {
      reply.header('x-ratelimit-limit', limit.max).header('x-ratelimit-remaining', limit.remaining).header('x-ratelimit-reset', limit.ttlInSeconds);
    }
    refuseOver(limit, reply);
  });
}

function refuseOver(limit: Limit, reply: FastifyReply): void {
  if (limit.isAllowed || !limit.isExceeded) return;
  reply.header('retry-after', Math.max(1, Math.ceil(limit.ttl / 1000)));
  throw rateLimited(limit.ttl);
}

function rateLimited(ttlMs: number): ApiError {
  const retryAfterSec = Math.max(1, Math.ceil(ttlMs / 1000));
  return new ApiError(429, 'RATE_LIMITED', `too many requests; retry after ${retryAfterSec} s`, { retryAfterSec });
}
