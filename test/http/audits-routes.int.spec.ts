// POST /v1/audits and GET /v1/audits/:id: who may run an audit, every refusal, one at a time, and the finished report.

import { randomUUID } from 'node:crypto';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import type { CoordinatorNode } from '../../domain/ports/lightning.js';
import { apiHarness, type ApiHarness } from './api-harness.js';

/**
 * The audit's node part waits on this gate while it is shut, so a spec can look at a running audit
 * without racing it (an empty system's audit otherwise finishes before the next request arrives).
 */
const nodeGate = {
  opened: Promise.resolve(),
  open: () => {},
  shut(): void {
    this.opened = new Promise<void>((resolve) => (this.open = resolve));
  },
};

function gatedNode(node: CoordinatorNode): CoordinatorNode {
  return new Proxy(node, {
    get(target, property, receiver) {
      const value = Reflect.get(target, property, receiver) as unknown;
      if (typeof value !== 'function') return value;
      if (property !== 'listPayments') return value.bind(target);
      return async (...args: unknown[]) => {
        await nodeGate.opened;
        return (value as (...a: unknown[]) => unknown).apply(target, args);
      };
    },
  });
}

let h: ApiHarness;
beforeAll(async () => {
  h = await apiHarness('pglite', {}, { wrapCoordinatorNode: gatedNode });
});
afterAll(async () => {
  await h?.close();
});

const body = (response: { body: string }) => JSON.parse(response.body) as Record<string, any>;

/** Polls the audit's status until it is no longer running: a condition, not a sleep. */
async function finished(auditId: string, maxLooks = 2_000): Promise<Record<string, any>> {
  for (let look = 0; look < maxLooks; look += 1) {
    const view = body(await h.staff('auditor', { method: 'GET', url: `/v1/audits/${auditId}` }));
    if (view.status !== 'running') return view;
    await new Promise((resolve) => setTimeout(resolve, 10));
  }
  throw new Error(`audit ${auditId} never finished`);
}

describe('POST /v1/audits', () => {
  it('refuses an anonymous request with 401 before looking at the body or the idempotency key', async () => {
    const response = await h.app.inject({ method: 'POST', url: '/v1/audits', payload: { nonsense: true } });
    expect(response.statusCode).toBe(401);
  });

  it('refuses the analyst and validator roles with 403', async () => {
    for (const role of ['analyst', 'validator'] as const) {
      const response = await h.staff(role, { method: 'POST', url: '/v1/audits', payload: {} });
      expect(response.statusCode, role).toBe(403);
    }
  });

  it('refuses a body with an unknown field or a bad sample with 400, naming the field', async () => {
    const unknown = await h.staff('auditor', { method: 'POST', url: '/v1/audits', payload: { deep: true } });
    expect(unknown.statusCode).toBe(400);
    expect(unknown.body).toContain('deep');
    const sample = await h.staff('auditor', { method: 'POST', url: '/v1/audits', payload: { replaySample: 0 } });
    expect(sample.statusCode).toBe(400);
    const both = await h.staff('auditor', { method: 'POST', url: '/v1/audits', payload: { replay: true, replaySample: 3 } });
    expect(body(both).code).toBe('AUDIT_REPLAY_CONFLICT');
  });

  it('refuses a request without an Idempotency-Key with 400', async () => {
    const response = await h.app.inject({ method: 'POST', url: '/v1/audits', headers: { authorization: `Bearer ${h.keys.auditor}` }, payload: {} });
    expect(response.statusCode).toBe(400);
    expect(body(response).code).toBe('IDEMPOTENCY_KEY_MISSING');
  });

  it('runs one audit at a time (409 AUDIT_ALREADY_RUNNING), replays a retried POST, and reports a clean empty system', async () => {
    const key = randomUUID();
    nodeGate.shut();
    const started = await h.staff('auditor', { method: 'POST', url: '/v1/audits', payload: {}, idempotencyKey: key });
    expect(started.statusCode).toBe(202);
    const { auditId } = body(started);
    expect(started.headers.location).toBe(`/v1/audits/${auditId}`);
    const second = await h.staff('coordinator', { method: 'POST', url: '/v1/audits', payload: {} });
    expect(second.statusCode).toBe(409);
    expect(body(second)).toMatchObject({ code: 'AUDIT_ALREADY_RUNNING', runningAuditId: auditId });
    const retried = await h.staff('auditor', { method: 'POST', url: '/v1/audits', payload: {}, idempotencyKey: key });
    expect(body(retried).auditId).toBe(auditId);
    expect(body(await h.staff('auditor', { method: 'GET', url: `/v1/audits/${auditId}` })).status).toBe('running');
    nodeGate.open();
    const view = await finished(auditId);
    expect(view).toMatchObject({ status: 'finished', clean: true, error: null, requestedBy: 'test-auditor' });
    expect(view.report.total).toBe(0);
    expect(view.report.parts.node.checked).toBe(true);
    // A coordinator may start the next one once it is done.
    const next = await h.staff('coordinator', { method: 'POST', url: '/v1/audits', payload: {} });
    expect(next.statusCode).toBe(202);
    expect((await finished(body(next).auditId)).status).toBe('finished');
  });
});

describe('GET /v1/audits/:id', () => {
  it('answers 404 AUDIT_NOT_FOUND for an unknown id, 401 anonymous and 403 for an analyst', async () => {
    const unknown = await h.staff('auditor', { method: 'GET', url: `/v1/audits/${randomUUID()}` });
    expect(unknown.statusCode).toBe(404);
    expect(body(unknown).code).toBe('AUDIT_NOT_FOUND');
    expect((await h.app.inject({ method: 'GET', url: `/v1/audits/${randomUUID()}` })).statusCode).toBe(401);
    expect((await h.staff('analyst', { method: 'GET', url: `/v1/audits/${randomUUID()}` })).statusCode).toBe(403);
  });
});

describe('the audit job list', () => {
  it('keeps the last MAX_FINISHED_AUDITS finished audits and forgets older ones', async () => {
    const { AuditJobs, MAX_FINISHED_AUDITS } = await import('../../adapters/http/audit-jobs.js');
    const jobs = new AuditJobs({ store: h.store, node: h.network.coordinator(), blobs: h.blobs, nowMs: Date.now });
    const ids: string[] = [];
    for (let i = 0; i <= MAX_FINISHED_AUDITS; i += 1) {
      const { auditId } = jobs.start({ replay: { mode: 'none' } }, 'test');
      ids.push(auditId);
      await jobs.idle();
    }
    expect(jobs.get(ids[0]!)).toBeNull();
    expect(jobs.get(ids[1]!)?.status).toBe('finished');
    expect(jobs.get(ids[MAX_FINISHED_AUDITS]!)?.status).toBe('finished');
  });
});
