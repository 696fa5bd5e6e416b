// Records what an app answers (route pattern, status, content type, bodies) and checks each exchange against the app's own OpenAPI document with ajv (JSON Schema 2020-12).

import { Ajv2020, type ValidateFunction } from 'ajv/dist/2020.js';
import addFormatsModule from 'ajv-formats';
import type { FastifyInstance } from 'fastify';
import { expect } from 'vitest';

/** Exchanges one recorder keeps; a flow past it is told so (a silent cap would let a bad answer slip by unchecked). */
export const MAX_RECORDED_EXCHANGES = 50_000;
const DOC_ID = 'https://trainledger.invalid/openapi.json';
const JSON_TYPES = new Set(['application/json', 'application/problem+json']);

export type Exchange = Readonly<{
  method: string;
  /** The matched route as fastify names it (`/v1/runs/:runId`); undefined for an unmatched URL. */
  route: string | undefined;
  url: string;
  status: number;
  contentType: string | undefined;
  /** The response body, or null for a stream (static files). */
  body: string | null;
  requestContentType: string | undefined;
  requestBody: Buffer | undefined;
}>;

export type Recorder = { readonly exchanges: Exchange[]; dropped: number };

/** Hooks `app` (before it is ready) so that every response it sends is recorded. */
export function recordExchanges(app: FastifyInstance): Recorder {
  const recorder: Recorder = { exchanges: [], dropped: 0 };
  app.addHook('onSend', async (request, reply, payload) => {
    if (recorder.exchanges.length >= MAX_RECORDED_EXCHANGES) {
      recorder.dropped += 1;
      return payload;
    }
    const body = typeof payload === 'string' ? payload : Buffer.isBuffer(payload) ? payload.toString('utf8') : payload === undefined || payload === null ? '' : null;
    const contentType = reply.getHeader('content-type');
    const requestType = request.headers['content-type'];
    recorder.exchanges.push({
      method: request.method,
      route: request.routeOptions.url,
      url: request.url,
      status: reply.statusCode,
      contentType: typeof contentType === 'string' ? contentType : undefined,
      body,
      requestContentType: typeof requestType === 'string' ? requestType : undefined,
      requestBody: request.rawBody ?? (Buffer.isBuffer(request.body) ? request.body : undefined),
    });
    return payload;
  });
  return recorder;
}

export type OpenApiDoc = { paths: Record<string, Record<string, OperationObject>>; components: { responses?: Record<string, ResponseObject> } };
type Doc = OpenApiDoc;
type OperationObject = { operationId: string; requestBody?: { content: Record<string, unknown> }; responses: Record<string, ResponseObject | { $ref: string }> };
type ResponseObject = { content?: Record<string, unknown> };

export type Checked = Readonly<{ problems: string[]; checked: number; operations: ReadonlySet<string>; samples: ReadonlyMap<string, ReadonlySet<number>> }>;

/** `/v1/runs/:runId` as the document names it: `/v1/runs/{runId}`. */
export function documentPath(route: string): string {
  return route.replace(/:([A-Za-z0-9_]+)/g, '{$1}');
}

/**
 * Every exchange on a documented path: its status listed for the operation, its content type listed for that
 * status, its JSON body valid against that schema; and for an accepted (2xx) request, its body type and JSON body
 * valid against the operation's request body, or no body where the operation declares none. Returns one line per
 * breach naming the operation, the status and ajv's error.
 */
export function checkExchanges(doc: Doc, exchanges: readonly Exchange[]): Checked {
  const ajv = new Ajv2020({ strict: false, allErrors: false, validateFormats: true });
  (addFormatsModule as unknown as (a: Ajv2020) => void)(ajv);
  ajv.addFormat('binary', true);
  ajv.addSchema(doc as object, DOC_ID);
  const validators = new Map<string, ValidateFunction>();
  const validatorAt = (pointer: string[]) => {
    const ref = `${DOC_ID}#/${pointer.map((s) => encodeURIComponent(s.replace(/~/g, '~0').replace(/\//g, '~1'))).join('/')}`;
    let validate = validators.get(ref);
    if (!validate) validators.set(ref, (validate = ajv.compile({ $ref: ref })));
    return validate;
  };
  const problems: string[] = [];
  const operations = new Set<string>();
  const samples = new Map<string, Set<number>>();
  let checked = 0;
  for (const exchange of exchanges) {
    if (exchange.route === undefined || exchange.method === 'HEAD') continue;
    const path = documentPath(exchange.route);
    const item = doc.paths[path];
    if (!item) continue; // a route the document hides: the UI, the dashboard's assets
    checked += 1;
    const method = exchange.method.toLowerCase();
    const where = `${exchange.method} ${path} -> ${exchange.status}`;
    const op = item[method];
    if (!op) {
      problems.push(`${where}: the document has no ${exchange.method} operation on ${path}`);
      continue;
    }
    operations.add(op.operationId);
    if (!samples.has(op.operationId)) samples.set(op.operationId, new Set());
    samples.get(op.operationId)!.add(exchange.status);
    const statusKey = [String(exchange.status), `${String(exchange.status)[0]}XX`].find((key) => key in op.responses);
    if (!statusKey) {
      problems.push(`${where}: status ${exchange.status} is not listed for ${op.operationId} (lists ${Object.keys(op.responses).join(', ')}); body ${exchange.body?.slice(0, 300)}`);
      continue;
    }
    const pointer = responsePointer(doc, ['paths', path, method, 'responses', statusKey]);
    problems.push(...checkBody(doc, pointer, where, exchange.contentType, exchange.body, validatorAt));
    if (exchange.status >= 200 && exchange.status < 300) problems.push(...checkRequest(op, ['paths', path, method], where, exchange, validatorAt));
  }
  return { problems, checked, operations, samples };
}

/** Follows a response's `$ref` (to #/components/responses/...) to the pointer of the response object itself. */
function responsePointer(doc: Doc, pointer: string[]): string[] {
  const node = resolve(doc, pointer) as { $ref?: string };
  if (typeof node.$ref === 'string') return node.$ref.replace(/^#\//, '').split('/').map((s) => s.replace(/~1/g, '/').replace(/~0/g, '~'));
  return pointer;
}

function resolve(doc: unknown, pointer: readonly string[]): unknown {
  return pointer.reduce<unknown>((node, key) => (node as Record<string, unknown> | undefined)?.[key], doc);
}

function checkBody(doc: Doc, pointer: string[], where: string, contentType: string | undefined, body: string | null, validatorAt: (p: string[]) => ValidateFunction): string[] {
  const response = resolve(doc, pointer) as ResponseObject;
  if (!response.content) return body ? [`${where}: answered a ${contentType} body where the document declares none`] : [];
  const mediaType = contentType?.split(';')[0]!.trim().toLowerCase();
  if (!mediaType || !(mediaType in response.content)) return [`${where}: answered ${contentType ?? 'no content type'}; the document lists ${Object.keys(response.content).join(', ')}`];
  if (body === null) return [];
  let value: unknown = body;
  if (JSON_TYPES.has(mediaType)) {
    try {
      value = JSON.parse(body);
    } catch {
      return [`${where}: the ${mediaType} body is not JSON: ${body.slice(0, 200)}`];
    }
  } else if (mediaType === 'application/octet-stream') {
    return [];
  }
  const validate = validatorAt([...pointer, 'content', mediaType, 'schema']);
  return validate(value) ? [] : [`${where}: the ${mediaType} body does not match the document: ${ajvErrors(validate)}; body ${body.slice(0, 300)}`];
}

function checkRequest(op: OperationObject, pointer: string[], where: string, exchange: Exchange, validatorAt: (p: string[]) => ValidateFunction): string[] {
  const bytes = exchange.requestBody;
  if (!op.requestBody) return bytes && bytes.byteLength > 0 ? [`${where}: accepted a request body (${exchange.requestContentType}) where the document declares none`] : [];
  const mediaType = exchange.requestContentType?.split(';')[0]!.trim().toLowerCase();
  if (!mediaType || !(mediaType in op.requestBody.content)) return [`${where}: accepted a ${exchange.requestContentType ?? 'typeless'} body; the document lists ${Object.keys(op.requestBody.content).join(', ')}`];
  if (!JSON_TYPES.has(mediaType) || !bytes) return [];
  const validate = validatorAt([...pointer, 'requestBody', 'content', mediaType, 'schema']);
  const value: unknown = JSON.parse(bytes.toString('utf8'));
  return validate(value) ? [] : [`${where}: accepted a request body the document refuses: ${ajvErrors(validate)}; body ${bytes.toString('utf8').slice(0, 300)}`];
}

function ajvErrors(validate: ValidateFunction): string {
  return (validate.errors ?? []).map((e) => `${e.instancePath || '/'} ${e.message} (${e.schemaPath})`).join('; ');
}

/** For a spec's last test: every answer its harness recorded is one the document lists, with a body its schema accepts. */
export async function expectConformant(h: { conformance: () => Promise<Checked & { dropped: number }> }): Promise<void> {
  const { problems, checked, dropped } = await h.conformance();
  expect(dropped, 'exchanges past the recorder limit went unchecked').toBe(0);
  expect(checked, 'no exchange on a documented route was recorded').toBeGreaterThan(0);
  expect(problems).toEqual([]);
}
