// Every error leaves as RFC 9457 application/problem+json: one table from what was thrown to a status and a stable code.

import { STATUS_CODES } from 'node:http';
import type { Socket } from 'node:net';
import type { FastifyError, FastifyInstance, FastifyReply, FastifyRequest } from 'fastify';
import { DomainError } from '../../domain/errors.js';
import { EventStoreError } from '../../domain/ports/event-store-errors.js';
import { LightningError } from '../../domain/ports/lightning.js';
import { BlobStoreError } from '../../replay/ports/blob-store.js';
import { ApiKeyError } from './auth/api-keys.js';
import { GradientDecodeError } from '../../replay/encoding/gradient-decode-error.js';

/** Problem `type` URIs are this base plus the code in lower case with dashes. */
export const PROBLEM_TYPE_BASE_URL = 'https://trainledger.dev/problems/';
export const PROBLEM_CONTENT_TYPE = 'application/problem+json; charset=utf-8';
/** Validation issues listed in one problem; the first is also named in `detail`. */
export const MAX_VALIDATION_ISSUES = 10;
/** Characters of the request URL echoed back in a ROUTE_NOT_FOUND detail. */
const MAX_ECHOED_URL_CHARS = 200;
const INTERNAL_DETAIL = 'the server failed to handle this request; it has been logged, retry later or report the request id';

/** What a route handler throws to answer with a specific problem. */
export class ApiError extends Error {
  override readonly name = 'ApiError';
  constructor(
    readonly status: number,
    /** Stable, SCREAMING_SNAKE; clients branch on it. */
    readonly code: string,
    readonly detail: string,
    /** Extension members merged into the problem body (never overriding the standard ones). */
    readonly extra?: Readonly<Record<string, unknown>>,
  ) {
    super(detail);
  }
}

export type Problem = { type: string; title: string; status: number; code: string; detail: string; [extension: string]: unknown };

export type MappedError = { status: number; code: string; detail: string; extra?: Readonly<Record<string, unknown>>; serverFault?: boolean };

/** Framework (fastify) error codes a request can provoke, and what each becomes. */
export const FRAMEWORK_ERROR_PROBLEMS: Readonly<Record<string, { status: number; code: string }>> = {
  FST_ERR_VALIDATION: { status: 400, code: 'VALIDATION_FAILED' },
  FST_ERR_CTP_BODY_TOO_LARGE: { status: 413, code: 'BODY_TOO_LARGE' },
  FST_ERR_CTP_INVALID_MEDIA_TYPE: { status: 415, code: 'UNSUPPORTED_MEDIA_TYPE' },
  FST_ERR_CTP_INVALID_JSON_BODY: { status: 400, code: 'INVALID_JSON' },
  FST_ERR_CTP_EMPTY_JSON_BODY: { status: 400, code: 'INVALID_JSON' },
  FST_ERR_CTP_INVALID_CONTENT_LENGTH: { status: 400, code: 'INVALID_CONTENT_LENGTH' },
  FST_ERR_BAD_URL: { status: 400, code: 'INVALID_URL' },
  FST_ERR_INVALID_URL: { status: 400, code: 'INVALID_URL' },
  FST_ERR_MAX_PARAM_LENGTH: { status: 414, code: 'URI_TOO_LONG' },
  FST_ERR_NOT_FOUND: { status: 404, code: 'ROUTE_NOT_FOUND' },
};

/** Event-store refusals; any other EventStoreError code is a server fault. */
export const EVENT_STORE_CODE_STATUS: Readonly<Record<string, number>> = {
  WRONG_EXPECTED_REVISION: 409,
  CONCURRENCY_CONFLICT: 409,
  EVENT_ID_CONFLICT: 409,
  IDEMPOTENCY_KEY_REUSED: 422,
  // A stream id, key or event built from request fields went past a store limit: the request's content, not the server.
  INVALID_APPEND: 422,
};

/**
 * Every code the domain throws, by status. 404: the thing named does not exist; 403: it belongs
 * to someone else; 422: the request's content is unacceptable in any state; 409: the request is
 * well-formed but conflicts with the current state (the stage, a budget, a deadline, an earlier decision).
 */
const DOMAIN_CODES_BY_STATUS: Readonly<Record<number, readonly string[]>> = {
  403: ['NOT_YOUR_ASSIGNMENT'],
  404: ['ASSIGNMENT_NOT_FOUND', 'CONTRIBUTOR_NOT_FOUND', 'INVOICE_NOT_FOUND', 'RESERVATION_NOT_FOUND', 'RUN_NOT_FOUND'],
  409: [
    'ALREADY_ACCEPTED', 'ALREADY_DISPUTED', 'ALREADY_EXPIRED', 'ALREADY_REJECTED', 'ALREADY_SUBMITTED', 'ASSIGNMENT_EXISTS',
    'ASSIGNMENT_EXPIRED', 'CHECKPOINT_ID_REUSED', 'CHECKPOINT_STEP_NOT_INCREASING', 'CONTRIBUTOR_ALREADY_REGISTERED',
    'DEADLINE_NOT_PASSED', 'DEADLINE_PASSED', 'DISPUTE_ALREADY_RESOLVED', 'DISPUTE_WINDOW_CLOSED', 'ESCROW_ALREADY_CANCELED',
    'ESCROW_ALREADY_SETTLED', 'ESCROW_CANCEL_REQUESTED', 'ESCROW_NOT_HELD', 'ESCROW_RELEASE_REQUESTED', 'FUNDING_CAP_EXCEEDED',
    'FUNDING_ID_REUSED', 'INSUFFICIENT_BUDGET', 'NOT_DISPUTED', 'NOT_EXPIRABLE', 'NOT_REJECTED', 'NOT_SUBMITTED', 'NOT_YET_EXPIRED',
    'PAYMENT_ALREADY_SENT', 'PAYMENT_HASH_REUSED', 'PAYOUT_INVOICE_MISMATCH', 'PREIMAGE_MISMATCH', 'REPLAY_ALREADY_REQUESTED',
    'REPLAY_JOB_MISMATCH', 'REPLAY_NOT_REQUESTED', 'REPLAY_VERDICT_MISSING', 'RESERVATION_EXISTS', 'RESOLUTION_CONTRADICTS_VERDICT',
    'RUN_ALREADY_OPENED', 'RUN_CLOSED', 'SPENT_EXCEEDS_RESERVATION', 'TOO_MANY_OPEN_RESERVATIONS', 'VERDICT_ALREADY_RECORDED',
    'WRONG_INVOICE_KIND',
  ],
  422: [
    'BATCH_OUT_OF_RANGE', 'BONUS_EXCEEDS_MAX', 'DUPLICATE_SHARD_ID', 'INVALID_AMOUNT', 'INVALID_BOLT11', 'INVALID_CLTV', 'INVALID_CODE', 'INVALID_DEADLINE',
    'INVALID_DIGEST', 'INVALID_EXPIRY', 'INVALID_GRADIENT_SIZE', 'INVALID_ID', 'INVALID_LABEL', 'INVALID_LEAF_COUNT', 'INVALID_LEAF_INDEX',
    'INVALID_NODE_PUBKEY', 'INVALID_NUMBER', 'INVALID_OBJECT', 'INVALID_OPTION', 'INVALID_PAYMENT_HASH', 'INVALID_PREIMAGE', 'INVALID_RANGE',
    'INVALID_SEED', 'INVALID_SHARDS', 'INVALID_SIGNING_KEY', 'INVALID_TEXT', 'INVALID_TIMESTAMP', 'INVALID_TRACE_STEPS', 'NON_FINITE_NUMBER',
    'PAYLOAD_TOO_DEEP', 'UNKNOWN_COMMAND', 'UNKNOWN_SHARD', 'UNSUPPORTED_DTYPE', 'UNSUPPORTED_MODEL_SPEC',
  ],
};

export const DOMAIN_CODE_STATUS: ReadonlyMap<string, number> = new Map(
  Object.entries(DOMAIN_CODES_BY_STATUS).flatMap(([status, codes]) => codes.map((code) => [code, Number(status)] as const)),
);

/** For domain codes not (yet) in the table: the first matching rule decides; a refusal defaults to 409. */
export const DOMAIN_CODE_RULES: readonly { pattern: RegExp; status: number }[] = [
  { pattern: /_NOT_FOUND$/, status: 404 },
  { pattern: /^NOT_YOUR_/, status: 403 },
  { pattern: /^(INVALID|UNSUPPORTED|UNKNOWN)_|_INVALID$/, status: 422 },
];
export const DEFAULT_DOMAIN_STATUS = 409;

/** Lightning errors from decoding or checking what a caller sent; any other LightningError is the node failing (503). */
export const LIGHTNING_CODE_STATUS: Readonly<Record<string, number>> = {
  INVOICE_INVALID: 422, INVOICE_MISMATCH: 422, INVOICE_REQUEST_INVALID: 422, PAY_REQUEST_INVALID: 422,
  PAYMENT_HASH_INVALID: 422, PREIMAGE_INVALID: 422, INVALID_REQUEST: 422,
  INVOICE_NOT_FOUND: 404, PAYMENT_NOT_FOUND: 404,
  ALREADY_PAID: 409, PAYMENT_HASH_REUSED: 409, INVOICE_ALREADY_SETTLED: 409, INVOICE_SETTLED: 409, INVOICE_CANCELED: 409,
  INVOICE_NOT_HELD: 409, HTLC_NOT_HELD: 409, PAYMENT_IN_FLIGHT: 409,
};
/** Blob refusals caused by the upload; BLOB_CORRUPT (a damaged stored blob) is a server fault. */
/** Staff key issuing: a taken id is a conflict, everything else bad input. */
export const API_KEY_CODE_STATUS: Readonly<Record<string, number>> = { API_KEY_ID_TAKEN: 409, BOOTSTRAP_KEY_REVOKED: 409 };

export const BLOB_CODE_STATUS: Readonly<Record<string, number>> = { BLOB_TOO_LARGE: 413, BLOB_INVALID_DIGEST: 422 };

/** The whole mapping in one list, for the README. */
export const PROBLEM_MAPPINGS: readonly { source: string; status: string; code: string }[] = [
  { source: 'ApiError', status: 'its status', code: 'its code' },
  { source: 'schema validation (FST_ERR_VALIDATION)', status: '400', code: 'VALIDATION_FAILED' },
  { source: 'a body field the route does not know (schema validation, additionalProperties)', status: '400', code: 'UNKNOWN_FIELD' },
  { source: 'invalid or empty JSON body', status: '400', code: 'INVALID_JSON' },
  { source: 'body over the limit (FST_ERR_CTP_BODY_TOO_LARGE)', status: '413', code: 'BODY_TOO_LARGE' },
  { source: 'content type without a parser', status: '415', code: 'UNSUPPORTED_MEDIA_TYPE' },
  { source: 'body length differs from Content-Length', status: '400', code: 'INVALID_CONTENT_LENGTH' },
  { source: 'undecodable URL / path parameter too long', status: '400 / 414', code: 'INVALID_URL / URI_TOO_LONG' },
  { source: 'no route', status: '404', code: 'ROUTE_NOT_FOUND' },
  { source: 'rate limit (429 from @fastify/rate-limit)', status: '429', code: 'RATE_LIMITED' },
  { source: 'other framework 4xx', status: 'its status', code: 'status name, e.g. BAD_REQUEST' },
  { source: 'DomainError', status: 'DOMAIN_CODE_STATUS, then DOMAIN_CODE_RULES, else 409', code: 'its code' },
  { source: 'EventStoreError', status: 'EVENT_STORE_CODE_STATUS (else 500)', code: 'its code' },
  { source: 'GradientDecodeError', status: '422', code: 'its code' },
  { source: 'ApiKeyError', status: 'API_KEY_ID_TAKEN 409, else 422', code: 'its code' },
  { source: 'BlobStoreError', status: 'BLOB_CODE_STATUS (else 500)', code: 'its code' },
  { source: 'LightningError', status: 'LIGHTNING_CODE_STATUS (else 503)', code: 'its code' },
  { source: 'a read model whose tables are not created yet (PostgreSQL 42P01: the projections part has not run)', status: '503', code: 'READ_MODEL_NOT_READY' },
  { source: 'a request the HTTP parser refuses (headers over 16 KiB / anything else malformed)', status: '431 / 400', code: 'HEADERS_TOO_LARGE / MALFORMED_REQUEST' },
  { source: 'anything else', status: '500', code: 'INTERNAL' },
];

declare module 'fastify' {
  interface FastifyContextConfig {
    /** The body content types the route takes, named by a 415; without it, JSON for a route with a body schema. */
    accepts?: readonly string[];
  }
}

const problemsSent = new WeakMap<FastifyReply, Problem>();

/** The problem this reply carries, when it was produced by the problem handler (lets onSend hooks branch on the code). */
export function problemOf(reply: FastifyReply): Problem | undefined {
  return problemsSent.get(reply);
}

/** Installs the error and not-found handlers on `app`; call it on the root instance so every route inherits them. */
export function registerProblemHandler(app: FastifyInstance): void {
  app.setErrorHandler((error: unknown, request, reply) => sendProblem(request, reply, mapError(error, request), error));
  app.setNotFoundHandler((request, reply) => sendProblem(request, reply, routeNotFound(request)));
}

/**
 * For `Fastify({ frameworkErrors })`: the errors fastify raises before routing (an undecodable
 * path parameter, one too long) never reach setErrorHandler and would otherwise leave as plain JSON.
 */
export function frameworkErrorsAsProblems(error: FastifyError, request: FastifyRequest, reply: FastifyReply): void {
  void sendProblem(request, reply, mapError(error, request), error);
}

/** What Node's HTTP parser refuses before fastify sees a request, by the parser's error code. */
const CLIENT_ERROR_PROBLEMS: Readonly<Record<string, { status: number; code: string; detail: string }>> = {
  HPE_HEADER_OVERFLOW: { status: 431, code: 'HEADERS_TOO_LARGE', detail: 'the request headers are over the server\'s limit of 16 KiB' },
  ERR_HTTP_REQUEST_TIMEOUT: { status: 408, code: 'REQUEST_TIMEOUT', detail: 'the request did not arrive in time' },
};
const MALFORMED_REQUEST = { status: 400, code: 'MALFORMED_REQUEST', detail: 'the request is not valid HTTP/1.1 (for example two different Content-Length headers)' };

/**
 * For `Fastify({ clientErrorHandler })`: a request Node's parser refuses (headers too large, a conflicting
 * Content-Length) never reaches a route, and fastify's default answer is plain JSON; it leaves as a problem
 * like every other refusal, and the connection is closed, since the parser's state is unknown.
 */
export function clientErrorAsProblem(error: Error & { code?: string }, socket: Socket): void {
  if (!socket.writable) return;
  const mapped = (error.code ? CLIENT_ERROR_PROBLEMS[error.code] : undefined) ?? MALFORMED_REQUEST;
  const body = JSON.stringify(toProblem(mapped));
  socket.end(`HTTP/1.1 ${mapped.status} ${STATUS_CODES[mapped.status] ?? 'Client Error'}\r\ncontent-type: ${PROBLEM_CONTENT_TYPE}\r\ncontent-length: ${Buffer.byteLength(body)}\r\nconnection: close\r\n\r\n${body}`);
}

/** Status and code for any thrown value; exported so other adapters (the CLI) can share the table. */
export function mapError(error: unknown, request?: FastifyRequest): MappedError {
  if (error instanceof ApiError && isErrorStatus(error.status)) {
    return { status: error.status, code: error.code, detail: error.detail, ...(error.extra ? { extra: error.extra } : {}) };
  }
  if (error instanceof DomainError) return { status: domainStatus(error.code), code: error.code, detail: error.message, extra: error.details };
  if (error instanceof GradientDecodeError) return { status: 422, code: error.code, detail: error.detail };
  const known = mapKnownAdapterError(error);
  if (known) return known;
  const framework = mapFrameworkError(error, request);
  if (framework) return framework;
  return { status: 500, code: 'INTERNAL', detail: INTERNAL_DETAIL, serverFault: true };
}

export function domainStatus(code: string): number {
  const listed = DOMAIN_CODE_STATUS.get(code);
  if (listed !== undefined) return listed;
  return DOMAIN_CODE_RULES.find((rule) => rule.pattern.test(code))?.status ?? DEFAULT_DOMAIN_STATUS;
}

/** PostgreSQL's undefined_table: a read route ran before the projections part created its tables (a split deployment). */
const UNDEFINED_TABLE_SQLSTATE = '42P01';

function mapKnownAdapterError(error: unknown): MappedError | null {
  if (error instanceof Error && (error as { code?: unknown }).code === UNDEFINED_TABLE_SQLSTATE) {
    return { status: 503, code: 'READ_MODEL_NOT_READY', detail: 'this read model has not been built yet: start the projections part (trainledger start --parts projections) and retry', serverFault: true };
  }
  if (error instanceof EventStoreError) {
    const status = EVENT_STORE_CODE_STATUS[error.code];
    return status ? { status, code: error.code, detail: error.message } : null;
  }
  if (error instanceof ApiKeyError) {
    return { status: API_KEY_CODE_STATUS[error.code] ?? 422, code: error.code, detail: error.message };
  }
  if (error instanceof BlobStoreError) {
    const status = BLOB_CODE_STATUS[error.code];
    return status ? { status, code: error.code, detail: error.message } : null;
  }
  if (error instanceof LightningError) {
    const status = LIGHTNING_CODE_STATUS[error.code];
    if (status) return { status, code: error.code, detail: error.message };
    // The node's own message can name hosts and internals: keep it in the log, not the answer.
    return { status: 503, code: error.code, detail: 'the Lightning node could not complete this request; retry later', serverFault: true };
  }
  return null;
}

function mapFrameworkError(error: unknown, request?: FastifyRequest): MappedError | null {
  if (!(error instanceof Error)) return null;
  const { code, statusCode } = error as Partial<FastifyError>;
  if (code === 'FST_ERR_VALIDATION' || Array.isArray((error as Partial<FastifyError>).validation)) return validationProblem(error as FastifyError, request);
  if (code === 'FST_ERR_CTP_BODY_TOO_LARGE') return bodyTooLarge(request);
  if (code === 'FST_ERR_CTP_INVALID_MEDIA_TYPE') return unsupportedMediaType(request);
  const listed = code ? FRAMEWORK_ERROR_PROBLEMS[code] : undefined;
  if (listed) return { ...listed, detail: listed.code === 'ROUTE_NOT_FOUND' && request ? routeNotFound(request).detail : error.message };
  if (statusCode === 429) return { status: 429, code: 'RATE_LIMITED', detail: 'too many requests; wait for the time in Retry-After' };
  // A parser that throws SyntaxError on a body (a custom JSON parser, say) marks it a 400.
  if (error instanceof SyntaxError && statusCode === 400) return { status: 400, code: 'INVALID_JSON', detail: 'the body is not valid JSON' };
  if (typeof statusCode === 'number' && statusCode >= 400 && statusCode < 500) {
    const name = STATUS_CODES[statusCode] ?? 'Client Error';
    // Only fastify's own messages are known to be safe to echo; a library's may carry internals.
    return { status: statusCode, code: name.toUpperCase().replace(/[^A-Z0-9]+/g, '_'), detail: code?.startsWith('FST_') ? error.message : name };
  }
  return null;
}

/** One ajv error, as fastify hands them over in `error.validation`. */
type AjvIssue = Readonly<{ keyword: string; instancePath?: string; schemaPath?: string; params?: Readonly<Record<string, unknown>>; message?: string }>;
/** One line of a VALIDATION_FAILED / UNKNOWN_FIELD problem: the field (`body/…`, `querystring/…`, `headers/…`) and what is wrong with it. */
export type ValidationIssue = { field: string; message: string; allowed?: readonly unknown[] };
type Explained = { path: string; message: string; keyword: string; allowed?: readonly unknown[] };

export const UNKNOWN_FIELD_MESSAGE = 'is not a field of this request (unknown fields are refused, not ignored)';

/**
 * Turns ajv's errors into lines a caller can act on: a union of literals says which values it allows, a union
 * of objects told apart by a literal field reports the branch the request chose, an unknown field is named
 * (code UNKNOWN_FIELD), and a missing one is named as the field itself.
 */
function validationProblem(error: FastifyError, request?: FastifyRequest): MappedError {
  const context = error.validationContext ?? 'request';
  const schema = request ? (request.routeOptions?.schema as Record<string, unknown> | undefined)?.[context] : undefined;
  const explained = explainIssues((error.validation ?? []) as readonly AjvIssue[], schema, request ? validatedData(request, context) : undefined);
  const issues: ValidationIssue[] = explained.slice(0, MAX_VALIDATION_ISSUES).map((issue) => ({
    field: `${context}${issue.path}`,
    message: issue.message,
    ...(issue.allowed ? { allowed: issue.allowed } : {}),
  }));
  const first = issues[0];
  const detail = first ? `${first.field} ${first.message}` : error.message;
  const code = explained[0]?.keyword === 'additionalProperties' ? 'UNKNOWN_FIELD' : 'VALIDATION_FAILED';
  return { status: 400, code, detail, extra: { errors: issues } };
}

function validatedData(request: FastifyRequest, context: string): unknown {
  if (context === 'body') return request.body;
  if (context === 'querystring') return request.query;
  if (context === 'params') return request.params;
  if (context === 'headers') return request.headers;
  return undefined;
}

function explainIssues(errors: readonly AjvIssue[], schema: unknown, data: unknown): Explained[] {
  const unions = errors.filter((e) => e.keyword === 'anyOf' || e.keyword === 'oneOf');
  // ajv lists a union's branch errors before the union's own: group each outermost union with everything under it.
  const outermost = unions.filter((u) => !unions.some((other) => other !== u && isUnder(u.schemaPath, other.schemaPath)));
  const out: Explained[] = [];
  const done = new Set<AjvIssue>();
  for (const e of errors) {
    const union = outermost.find((u) => u === e || isUnder(e.schemaPath, u.schemaPath));
    if (!union) {
      out.push(explainOne(e));
    } else if (!done.has(union)) {
      done.add(union);
      out.push(...explainUnion(union, errors.filter((x) => isUnder(x.schemaPath, union.schemaPath)), schema, data));
    }
  }
  return out;
}

function explainUnion(union: AjvIssue, members: readonly AjvIssue[], schema: unknown, data: unknown): Explained[] {
  const path = union.instancePath ?? '';
  const byBranch = new Map<string, AjvIssue[]>();
  for (const m of members) {
    const branch = m.schemaPath!.slice(union.schemaPath!.length + 1).split('/')[0]!;
    byBranch.set(branch, [...(byBranch.get(branch) ?? []), m]);
  }
  // A union of literals (TypeBox's Union of Literal): every branch failed on its constant.
  const constants = [...byBranch.values()].map((branch) => branch.find((m) => m.keyword === 'const' && (m.instancePath ?? '') === path));
  if (constants.length > 0 && constants.every((c) => c !== undefined)) {
    const allowed = constants.map((c) => c!.params?.allowedValue);
    return [{ path, keyword: 'enum', message: oneOf(allowed), allowed }];
  }
  // A union of objects told apart by a literal field: report only the branch the request named.
  const branches = resolvePointer(schema, union.schemaPath);
  const tag = Array.isArray(branches) ? discriminator(branches) : null;
  if (tag) {
    const value = (resolveInstance(data, path) as Record<string, unknown> | undefined)?.[tag.property];
    const chosen = tag.values.indexOf(value);
    if (chosen < 0) return [{ path: `${path}/${tag.property}`, keyword: 'enum', message: oneOf(tag.values), allowed: tag.values }];
    const branchErrors = byBranch.get(String(chosen));
    if (branchErrors && branchErrors.length > 0) return explainIssues(branchErrors, schema, data);
  }
  return [...explainIssues(members, schema, data), explainOne(union)];
}

function explainOne(e: AjvIssue): Explained {
  const path = e.instancePath ?? '';
  const params = e.params ?? {};
  if (e.keyword === 'required' && typeof params.missingProperty === 'string') return { path: `${path}/${params.missingProperty}`, keyword: e.keyword, message: 'is required' };
  if (e.keyword === 'additionalProperties' && typeof params.additionalProperty === 'string') {
    return { path: `${path}/${params.additionalProperty}`, keyword: e.keyword, message: UNKNOWN_FIELD_MESSAGE };
  }
  if (e.keyword === 'enum' && Array.isArray(params.allowedValues)) return { path, keyword: e.keyword, message: oneOf(params.allowedValues), allowed: params.allowedValues };
  if (e.keyword === 'const') return { path, keyword: e.keyword, message: `must be ${showValue(params.allowedValue)}`, allowed: [params.allowedValue] };
  return { path, keyword: e.keyword, message: e.message ?? 'is invalid' };
}

function oneOf(values: readonly unknown[]): string {
  return `must be one of: ${values.map(showValue).join(', ')}`;
}

function showValue(value: unknown): string {
  return typeof value === 'string' ? value : JSON.stringify(value);
}

function isUnder(path: string | undefined, parent: string | undefined): boolean {
  return path !== undefined && parent !== undefined && path.startsWith(`${parent}/`);
}

/** The property every branch fixes to a distinct literal (`verdict: 'accepted' | 'rejected'`), if there is one. */
function discriminator(branches: readonly unknown[]): { property: string; values: unknown[] } | null {
  const first = branches[0] as { properties?: Record<string, { const?: unknown }> } | undefined;
  for (const property of Object.keys(first?.properties ?? {})) {
    const values = branches.map((b) => (b as { properties?: Record<string, { const?: unknown }> })?.properties?.[property]?.const);
    if (values.every((v) => v !== undefined) && new Set(values).size === values.length) return { property, values };
  }
  return null;
}

/** The schema node at an ajv schemaPath (`#/properties/v/anyOf`). */
function resolvePointer(schema: unknown, pointer: string | undefined): unknown {
  if (!pointer?.startsWith('#')) return undefined;
  return walk(schema, pointer.slice(1).split('/').slice(1));
}

/** The value at an ajv instancePath (`/rewardPolicy/baseRewardMsat`). */
function resolveInstance(data: unknown, pointer: string): unknown {
  return walk(data, pointer === '' ? [] : pointer.split('/').slice(1));
}

function walk(node: unknown, segments: readonly string[]): unknown {
  let current = node;
  for (const raw of segments) {
    if (current === null || typeof current !== 'object') return undefined;
    current = (current as Record<string, unknown>)[raw.replace(/~1/g, '/').replace(/~0/g, '~')];
  }
  return current;
}

/** 413 with the limit that applied: the route's own bodyLimit, else the server's. */
function bodyTooLarge(request?: FastifyRequest): MappedError {
  const limitBytes = request?.routeOptions?.bodyLimit ?? request?.server.initialConfig.bodyLimit;
  if (typeof limitBytes !== 'number') return { status: 413, code: 'BODY_TOO_LARGE', detail: 'the request body is larger than this server accepts' };
  const declared = Number(request?.headers['content-length']);
  const received = Number.isSafeInteger(declared) && declared > limitBytes ? { receivedBytes: declared } : {};
  const route = request?.routeOptions?.url ? ` ${request.method} ${request.routeOptions.url}` : '';
  return {
    status: 413,
    code: 'BODY_TOO_LARGE',
    detail: `the request body is larger than the ${limitBytes}-byte limit of${route || ' this route'}${'receivedBytes' in received ? ` (Content-Length ${declared})` : ''}`,
    extra: { limitBytes, ...received },
  };
}

/** Content types this app may parse, in the order a 415 lists them when a route does not say. */
const KNOWN_BODY_TYPES = ['application/json', 'application/octet-stream'] as const;

/** What a route accepts: its `config.accepts`, else JSON for a route with a body schema, else whatever the app parses. */
export function acceptedContentTypes(request: FastifyRequest): readonly string[] {
  const declared = (request.routeOptions?.config as { accepts?: readonly string[] } | undefined)?.accepts;
  if (declared && declared.length > 0) return declared;
  if ((request.routeOptions?.schema as { body?: unknown } | undefined)?.body !== undefined) return ['application/json'];
  return KNOWN_BODY_TYPES.filter((type) => request.server.hasContentTypeParser(type));
}

function unsupportedMediaType(request?: FastifyRequest): MappedError {
  if (!request) return { status: 415, code: 'UNSUPPORTED_MEDIA_TYPE', detail: 'the request body has a content type this server does not accept' };
  const accepted = acceptedContentTypes(request);
  const sent = request.headers['content-type'];
  const shown = typeof sent === 'string' && sent.length > 0 ? `Content-Type ${sent.slice(0, 100)}` : 'a body without a Content-Type';
  const route = request.routeOptions?.url ? `${request.method} ${request.routeOptions.url}` : 'this route';
  return { status: 415, code: 'UNSUPPORTED_MEDIA_TYPE', detail: `${route} does not accept ${shown}; send Content-Type: ${accepted.join(' or ')}`, extra: { accepted } };
}

function routeNotFound(request: FastifyRequest): MappedError {
  const url = request.url.length > MAX_ECHOED_URL_CHARS ? `${request.url.slice(0, MAX_ECHOED_URL_CHARS)}…` : request.url;
  return { status: 404, code: 'ROUTE_NOT_FOUND', detail: `no route serves ${request.method} ${url}` };
}

/** The problem body for a mapping: extensions first, so they can never overwrite the standard members. */
export function toProblem(mapped: MappedError): Problem {
  return {
    ...(mapped.extra ?? {}),
    type: `${PROBLEM_TYPE_BASE_URL}${mapped.code.toLowerCase().replace(/_/g, '-')}`,
    title: titleOf(mapped.code),
    status: mapped.status,
    code: mapped.code,
    detail: mapped.detail,
  };
}

function titleOf(code: string): string {
  const words = code.toLowerCase().replace(/_/g, ' ');
  return words.charAt(0).toUpperCase() + words.slice(1);
}

function isErrorStatus(status: number): boolean {
  return Number.isInteger(status) && status >= 400 && status <= 599;
}

function sendProblem(request: FastifyRequest, reply: FastifyReply, mapped: MappedError, error?: unknown): FastifyReply {
  if (mapped.serverFault || mapped.status >= 500) request.log.error({ err: error, problemCode: mapped.code }, 'request failed with a server fault');
  const problem = toProblem(mapped);
  problemsSent.set(reply, problem);
  // Serialised here, not by the route's response schema: a 4xx must keep its extensions, and bigints become strings.
  const body = JSON.stringify(problem, (_key, value: unknown) => (typeof value === 'bigint' ? value.toString() : value));
  return reply.code(problem.status).type(PROBLEM_CONTENT_TYPE).send(body);
}
