// The OpenAPI document of a real built app: redocly's recommended rules report nothing (redocly.yaml), it is 3.1, ids are stable camelCase, and /docs is a browsable reference that loads nothing from elsewhere.

import { execFile } from 'node:child_process';
import { existsSync, mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { dirname, join, resolve } from 'node:path';
import { fileURLToPath } from 'node:url';
import { promisify } from 'node:util';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { completeDocument } from '../../adapters/http/openapi.js';
import { OPERATIONS } from '../../adapters/http/openapi-operations.js';
import { apiHarness, type ApiHarness } from './api-harness.js';

const ROOT = resolve(dirname(fileURLToPath(import.meta.url)), '..', '..');
/** The Node 24 that npm scripts run on (npm run setup installs it); redocly warns on older majors. */
const NODE = [join(ROOT, 'node_modules', '.bin', 'node')].find(existsSync) ?? process.execPath;
const REDOCLY = join(ROOT, 'node_modules', '@redocly', 'cli', 'bin', 'cli.js');
const METHODS = ['get', 'put', 'post', 'delete', 'patch'];

type Doc = { openapi: string; paths: Record<string, Record<string, { operationId?: string; requestBody?: { content: Record<string, { schema: unknown }> } }>> };
type LintReport = { totals: { errors: number; warnings: number }; problems: { ruleId: string; severity: string; message: string; location: { pointer: string }[] }[] };

let h: ApiHarness;
let doc: Doc;
const scratch = mkdtempSync(join(tmpdir(), 'trainledger-openapi-'));

beforeAll(async () => {
  h = await apiHarness('pglite');
  const response = await h.app.inject({ method: 'GET', url: '/docs/json' });
  expect(response.statusCode).toBe(200);
  doc = response.json();
});
afterAll(async () => {
  await h?.close();
  rmSync(scratch, { recursive: true, force: true });
});

async function lint(document: unknown): Promise<LintReport> {
  const file = join(scratch, `openapi-${Math.random().toString(36).slice(2)}.json`);
  writeFileSync(file, JSON.stringify(document));
  // redocly exits 1 when it finds errors; the JSON report on stdout says what they are either way.
  const { stdout } = await promisify(execFile)(NODE, [REDOCLY, 'lint', file, '--config', join(ROOT, 'redocly.yaml'), '--format=json'], { cwd: ROOT, maxBuffer: 32 * 1024 * 1024 }).catch((error: { stdout?: string }) => ({ stdout: error.stdout ?? '' }));
  return JSON.parse(stdout) as LintReport;
}

describe('the OpenAPI document at /docs/json', () => {
  it('lints clean under redocly recommended (redocly.yaml): no errors and no warnings', async () => {
    const report = await lint(doc);
    const lines = report.problems.map((p) => `${p.severity} ${p.ruleId} at ${p.location[0]?.pointer}: ${p.message}`);
    expect(lines).toEqual([]);
    expect(report.totals).toMatchObject({ errors: 0, warnings: 0 });
  }, 60_000);

  it('is linted for real: a document without summaries and security fails the same lint', async () => {
    const broken = structuredClone(doc) as unknown as { paths: Record<string, Record<string, Record<string, unknown>>> };
    delete broken.paths['/v1/runs']!.post!.summary;
    delete broken.paths['/v1/runs']!.post!.security;
    const report = await lint(broken);
    expect(report.problems.map((p) => p.ruleId)).toEqual(expect.arrayContaining(['operation-summary', 'security-defined']));
  }, 60_000);

  it('declares OpenAPI 3.1, whose schemas are JSON Schema 2020-12 as TypeBox writes them', () => {
    expect(doc.openapi).toBe('3.1.0');
    const policy = (doc.paths['/v1/runs']!.post!.requestBody!.content['application/json']!.schema as { properties: Record<string, { properties: Record<string, unknown> }> }).properties.verificationPolicy!.properties.maxGradientNorm;
    expect(policy).toMatchObject({ type: 'number', exclusiveMinimum: 0 });
  });

  it('names every operation by a unique camelCase id, and every one the table lists is served', () => {
    const ids = Object.values(doc.paths).flatMap((item) => METHODS.filter((m) => item[m]).map((m) => item[m]!.operationId));
    expect(ids.every((id) => typeof id === 'string' && /^[a-z][A-Za-z0-9]*$/.test(id))).toBe(true);
    expect(new Set(ids).size).toBe(ids.length);
    expect(ids.sort()).toEqual(Object.values(OPERATIONS).map((o) => o.operationId).sort());
  });

  it('declares the binary bodies of checkpoint uploads and gradient submissions', () => {
    for (const [path, method] of [['/v1/checkpoints', 'put'], ['/v1/assignments/{assignmentId}/gradient', 'post']] as const) {
      expect(doc.paths[path]![method]!.requestBody!.content).toEqual({ 'application/octet-stream': { schema: { type: 'string', format: 'binary' } } });
    }
  });

  it('refuses to build a document for a route the table does not describe, or a table entry no route serves', () => {
    const { ['POST /v1/runs']: _dropped, ...withoutOpenRun } = OPERATIONS;
    const fresh = () => ({ paths: { '/v1/runs': { post: { responses: { 201: { description: 'x', content: {} } } } } } });
    expect(() => completeDocument(fresh(), withoutOpenRun)).toThrow(/POST \/v1\/runs has no entry in OPERATIONS/);
    expect(() => completeDocument(fresh(), { 'POST /v1/runs': OPERATIONS['POST /v1/runs']!, 'GET /v1/nowhere': OPERATIONS['GET /v1/shards']! })).toThrow(/GET \/v1\/nowhere, which no route serves/);
  });
});

describe('the browsable reference at /docs', () => {
  it('is HTML whose every asset is served by this app, with no URL to anywhere else', async () => {
    const page = await h.app.inject({ method: 'GET', url: '/docs' });
    expect(page.statusCode).toBe(200);
    expect(page.headers['content-type']).toContain('text/html');
    expect(page.body).not.toMatch(/(https?:)?\/\/[a-z0-9.-]+\.[a-z]{2,}/i);
    const assets = [...page.body.matchAll(/(?:src|href)="([^"]+)"/g)].map((m) => m[1]!);
    expect(assets.length).toBeGreaterThanOrEqual(5);
    for (const asset of assets) {
      expect(asset, 'a relative or same-origin path').toMatch(/^\/docs\//);
      const loaded = await h.app.inject({ method: 'GET', url: asset });
      expect(loaded.statusCode, asset).toBe(200);
      expect(loaded.rawPayload.byteLength, asset).toBeGreaterThan(0);
    }
    expect(assets).toContain('/docs/static/swagger-ui-bundle.js');
  });

  it('points Swagger UI at this origin only: the document from ./json, no validator badge, a same-origin CSP', async () => {
    const init = await h.app.inject({ method: 'GET', url: '/docs/static/swagger-initializer.js' });
    expect(init.statusCode).toBe(200);
    expect(init.body).toContain("resolveUrl('./json')");
    expect(init.body).toMatch(/validatorUrl: null/);
    const page = await h.app.inject({ method: 'GET', url: '/docs' });
    const csp = String(page.headers['content-security-policy']);
    expect(csp).toContain("default-src 'none'");
    expect(csp).toContain("connect-src 'self'");
    expect(csp).not.toMatch(/https?:/);
  });
});
