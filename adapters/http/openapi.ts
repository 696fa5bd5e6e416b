// The OpenAPI 3.1 document at /docs/json and its browsable reference at /docs: what each operation is, who may call it, and every status it answers.

import swagger from '@fastify/swagger';
import swaggerUi from '@fastify/swagger-ui';
import type { FastifyInstance } from 'fastify';
import { PROBLEM_TYPE_BASE_URL } from './problem.js';
import { OPERATIONS, type Access, type Operation } from './openapi-operations.js';

export const OPENAPI_VERSION = '3.1.0';
export const DOCS_PREFIX = '/docs';
const PROBLEM_MEDIA_TYPE = 'application/problem+json';

/** Swagger UI fetches the document and its own assets from this origin only; its "try it out" calls this origin too. */
const DOCS_CONTENT_SECURITY_POLICY = "default-src 'none'; script-src 'self'; style-src 'self' 'unsafe-inline'; img-src 'self' data:; font-src 'self' data:; connect-src 'self'; base-uri 'none'; form-action 'none'; frame-ancestors 'none'";

/** Why each 4xx is listed: one line per status, the same wherever it appears. */
const ERROR_DESCRIPTIONS: Readonly<Record<number, string>> = {
  400: 'VALIDATION_FAILED, UNKNOWN_FIELD, INVALID_JSON, IDEMPOTENCY_KEY_MISSING or IDEMPOTENCY_KEY_INVALID: the request is malformed; `detail` and `errors` say where.',
  401: 'AUTHENTICATION_REQUIRED, INVALID_API_KEY or a SIGNATURE_* code: the credentials are missing or do not verify.',
  403: 'FORBIDDEN: the credentials verify but do not reach this operation (a staff key without the scope, another contributor\'s data).',
  404: 'A *_NOT_FOUND code: a resource the request names does not exist (to a contributor, another\'s assignment does not either).',
  409: 'A state conflict (already done, wrong stage, budget, deadline), or IDEMPOTENCY_REQUEST_IN_FLIGHT / IDEMPOTENT_RESPONSE_NOT_KEPT for the Idempotency-Key.',
  413: 'BODY_TOO_LARGE or a size code naming `limitBytes`: the body is over this operation\'s limit.',
  415: 'UNSUPPORTED_MEDIA_TYPE: the body\'s Content-Type is not one this operation takes; `accepted` lists them.',
  422: 'The request is well-formed but its content is unacceptable (unknown graph, bad invoice, undecodable tensor), or IDEMPOTENCY_KEY_REUSED for a different request.',
  429: 'RATE_LIMITED: over the per-IP or per-caller budget; wait for Retry-After.',
};

const ProblemSchema = {
  type: 'object',
  description: `An RFC 9457 problem. \`code\` is stable and the one to branch on; \`type\` is ${PROBLEM_TYPE_BASE_URL} plus the code in kebab case. Some codes add extension members (errors, limitBytes, accepted, retryAfterSec, ...).`,
  required: ['type', 'title', 'status', 'code', 'detail'],
  properties: {
    type: { type: 'string', format: 'uri' },
    title: { type: 'string' },
    status: { type: 'integer', minimum: 400, maximum: 599 },
    code: { type: 'string', pattern: '^[A-Z][A-Z0-9_]*$' },
    detail: { type: 'string' },
    errors: { type: 'array', description: 'VALIDATION_FAILED / UNKNOWN_FIELD: each field that is wrong and why.', items: { type: 'object', required: ['field', 'message'], properties: { field: { type: 'string' }, message: { type: 'string' }, allowed: { type: 'array' } } } },
  },
  additionalProperties: true,
} as const;

const SECURITY_SCHEMES = {
  staffKey: {
    type: 'http',
    scheme: 'bearer',
    description: 'A staff API key (coordinator, validator, analyst or auditor): `Authorization: Bearer <key>`. The scopes an operation needs are listed in its security requirement; a key without them gets 403.',
  },
  contributorSignature: {
    type: 'apiKey',
    in: 'header',
    name: 'Signature',
    description: 'Not a static key: an RFC 9421 HTTP message signature by the contributor\'s registered ed25519 key, sent with Signature-Input (see contributorSignatureInput). It covers @method, @path, content-digest (RFC 9530 sha-256 of the exact body bytes), created and a single-use nonce; `keyid` is the contributor id, and `created` must be within the server\'s skew limit.',
  },
  contributorSignatureInput: {
    type: 'apiKey',
    in: 'header',
    name: 'Signature-Input',
    description: 'The RFC 9421 Signature-Input header naming what the Signature covers (label sig1: @method, @path, content-digest; created, nonce, keyid, alg="ed25519"). Always sent together with Signature and Content-Digest.',
  },
} as const;

function securityFor(access: Access): Record<string, string[]>[] {
  const signature = { contributorSignature: [], contributorSignatureInput: [] };
  switch (access.kind) {
    case 'public':
      return [];
    case 'staff':
      return [{ staffKey: [...access.scopes] }];
    case 'contributor':
    case 'self-registration':
      return [signature];
    case 'staff-or-contributor':
      return [{ staffKey: [...access.scopes] }, signature];
    default: {
      const never: never = access;
      return never;
    }
  }
}

/** The 4xx statuses an operation can answer: those its shape implies (auth, parameters, body, idempotency) and those its handler names. */
export function errorStatusesOf(operation: Operation, shape: { hasInput: boolean; idempotent: boolean; hasBody: boolean }): number[] {
  const statuses = new Set<number>([429, ...operation.errors]);
  if (shape.hasInput || shape.idempotent) statuses.add(400);
  if (operation.access.kind !== 'public') statuses.add(401);
  if (operation.access.kind === 'staff' || operation.access.kind === 'staff-or-contributor') statuses.add(403);
  if (shape.idempotent) for (const status of [409, 422]) statuses.add(status);
  if (shape.hasBody) for (const status of [413, 415]) statuses.add(status);
  return [...statuses].sort((a, b) => a - b);
}

type Doc = { paths: Record<string, Record<string, OperationObject>>; components?: Record<string, unknown>; [key: string]: unknown };
type OperationObject = { parameters?: { in: string; name: string }[]; requestBody?: unknown; responses: Record<string, unknown>; [key: string]: unknown };

/**
 * Completes the document @fastify/swagger builds from the routes' TypeBox schemas: each operation gets its id, summary,
 * tag and security from OPERATIONS, its binary body and undeclared success body, and its problem responses. An
 * operation missing from OPERATIONS, or an entry naming no route, is a programming error: the document would lie.
 */
export function completeDocument(doc: Doc, operations: Readonly<Record<string, Operation>> = OPERATIONS): Doc {
  const seen = new Set<string>();
  for (const [path, item] of Object.entries(doc.paths)) {
    for (const [method, op] of Object.entries(item)) {
      const key = `${method.toUpperCase()} ${path}`;
      const operation = operations[key];
      if (!operation) throw new Error(`openapi: ${key} has no entry in OPERATIONS (adapters/http/openapi-operations.ts)`);
      seen.add(key);
      item[method] = completeOperation(op, operation);
    }
  }
  const missing = Object.keys(operations).filter((key) => !seen.has(key) && !operations[key]!.optional);
  if (missing.length > 0) throw new Error(`openapi: OPERATIONS lists ${missing.join(', ')}, which no route serves`);
  doc.components = { ...doc.components, schemas: { ...(doc.components?.schemas as object), Problem: ProblemSchema }, securitySchemes: SECURITY_SCHEMES };
  return doc;
}

function completeOperation(op: OperationObject, operation: Operation): OperationObject {
  const idempotent = op.parameters?.some((p) => p.in === 'header' && p.name === 'idempotency-key') ?? false;
  if (operation.binaryBody) {
    op.requestBody = {
      required: true,
      description: operation.binaryBody,
      content: { 'application/octet-stream': { schema: { type: 'string', format: 'binary' } } },
    };
  }
  const hasBody = op.requestBody !== undefined;
  const hasInput = hasBody || (op.parameters?.length ?? 0) > 0;
  const responses: Record<string, unknown> = {};
  const declared = op.responses[String(operation.ok.status)] as { content?: unknown } | undefined;
  responses[String(operation.ok.status)] = {
    description: operation.ok.description,
    ...(operation.ok.headers ? { headers: operation.ok.headers } : {}),
    content: operation.ok.content ?? declared?.content ?? missingSuccessBody(operation),
  };
  for (const status of errorStatusesOf(operation, { hasInput, idempotent, hasBody })) {
    responses[String(status)] = { $ref: `#/components/responses/Problem${status}` };
  }
  responses['5XX'] = { $ref: '#/components/responses/ServerProblem' };
  return {
    operationId: operation.operationId,
    summary: operation.summary,
    ...(op.description ? { description: op.description } : operation.description ? { description: operation.description } : {}),
    tags: [operation.tag],
    security: securityFor(operation.access),
    ...(op.parameters ? { parameters: op.parameters } : {}),
    ...(op.requestBody ? { requestBody: op.requestBody } : {}),
    responses,
  };
}

function missingSuccessBody(operation: Operation): never {
  throw new Error(`openapi: ${operation.operationId} declares no ${operation.ok.status} body, in its route schema or in OPERATIONS`);
}

function problemResponses(): Record<string, unknown> {
  const content = { [PROBLEM_MEDIA_TYPE]: { schema: { $ref: '#/components/schemas/Problem' } } };
  const responses: Record<string, unknown> = Object.fromEntries(Object.entries(ERROR_DESCRIPTIONS).map(([status, description]) => [`Problem${status}`, { description, content }]));
  responses.ServerProblem = { description: 'INTERNAL (500), or 503 when the event store or the Lightning node cannot be reached; retry later.', content };
  return responses;
}

/**
 * Registers the document and the UI; routes declared after this call are documented. Swagger UI and its assets come
 * from node_modules (@fastify/swagger-ui's copy of swagger-ui-dist), so the reference works with no network.
 */
export async function registerOpenApi(app: FastifyInstance): Promise<void> {
  await app.register(swagger, {
    openapi: {
      openapi: OPENAPI_VERSION,
      info: {
        title: 'TrainLedger API',
        version: '1',
        description: 'Event-sourced ledger and verification audit for training networks paid in Lightning sats. Amounts are millisatoshis as decimal strings; every error is application/problem+json with a stable `code`; every state-changing operation takes an Idempotency-Key.',
      },
      servers: [{ url: '/', description: 'The server that serves this document' }],
      tags: TAGS,
      components: { securitySchemes: SECURITY_SCHEMES, responses: problemResponses() as never },
    },
    transformObject: (built) => completeDocument((built as unknown as { openapiObject: Doc }).openapiObject) as never,
  });
  await app.register(swaggerUi, {
    routePrefix: DOCS_PREFIX,
    staticCSP: DOCS_CONTENT_SECURITY_POLICY,
    // No badge from validator.swagger.io: the page loads nothing from elsewhere.
    validatorUrl: false,
    uiConfig: { deepLinking: true, displayOperationId: true },
    theme: { title: 'TrainLedger API reference' },
  });
}

const TAGS = [
  { name: 'runs', description: 'Open, fund and read training runs; the reference graphs and shards a run may use.' },
  { name: 'contributors', description: 'Contributor self-registration (signed by the key it registers).' },
  { name: 'assignments', description: 'Work assignments, their escrow and payout invoices, gradients, verdicts and disputes.' },
  { name: 'checkpoints', description: 'Content-addressed checkpoint bytes.' },
  { name: 'ledger', description: 'Double-entry ledger projections.' },
  { name: 'rewards', description: 'Reward and budget projections.' },
  { name: 'metrics', description: 'Revenue, subsidy and throughput projections.' },
  { name: 'disputes', description: 'Disputes with their replay verdicts.' },
  { name: 'events', description: 'The raw event log, for auditors.' },
  { name: 'admin', description: 'Staff API keys.' },
  { name: 'operations', description: 'Health and Prometheus metrics, for operators and load balancers.' },
  { name: 'dev', description: 'Development network only (regtest, no real money).' },
];
