// POST /v1/audits starts an audit in the background; GET /v1/audits/:id shows its progress and report. Coordinator and auditor keys.

import type { FastifyInstance } from 'fastify';
import type { TypeBoxTypeProvider } from '@fastify/type-provider-typebox';
import { Type } from 'typebox';
import { authDeps, type ApiDeps } from '../api-context.js';
import { asStaff, staffCallerOf } from '../auth/authenticate.js';
import { AuditAlreadyRunning, AuditJobs, MAX_FINISHED_AUDITS } from '../audit-jobs.js';
import { ApiError } from '../problem.js';
import { IdempotencyHeaders } from './schemas.js';
import { AUDIT_PART_NAMES } from '../../../replay/audit/catalog.js';

/** events:read is the scope the coordinator and auditor roles hold (adapters/http/auth/api-keys.ts), and no other. */
const AUDIT_SCOPE = 'events:read';

const AuditBody = Type.Object(
  {
    /** Re-run every replay verdict's recipe. */
    replay: Type.Optional(Type.Boolean()),
    /** Re-run a uniform sample of this many replay verdicts instead. */
    replaySample: Type.Optional(Type.Integer({ minimum: 1, maximum: 10_000 })),
    settlementGraceMs: Type.Optional(Type.Integer({ minimum: 0, maximum: 10 * 365 * 86_400_000 })),
    /** A subset of the parts to run; default all. */
    parts: Type.Optional(Type.Array(Type.Union(AUDIT_PART_NAMES.map((p) => Type.Literal(p))), { minItems: 1, maxItems: 5, uniqueItems: true })),
  },
  { additionalProperties: false },
);

export async function auditsRoutes(app: FastifyInstance, deps: ApiDeps): Promise<void> {
  const api = app.withTypeProvider<TypeBoxTypeProvider>();
  const auth = authDeps(deps);
  const jobs = new AuditJobs({ store: deps.store, node: deps.lightning.node, blobs: deps.blobs, nowMs: deps.nowMs });
  app.addHook('onClose', () => jobs.close());

  api.post('/v1/audits', { preHandler: asStaff(auth, AUDIT_SCOPE), config: { idempotent: true }, schema: { headers: IdempotencyHeaders, body: Type.Optional(AuditBody) } }, async (request, reply) => {
    const body = request.body ?? {};
    if (body.replay === true && body.replaySample !== undefined) throw new ApiError(400, 'AUDIT_REPLAY_CONFLICT', 'send replay: true or replaySample: N, not both');
    const replay = body.replaySample !== undefined ? ({ mode: 'sample', count: body.replaySample } as const) : body.replay === true ? ({ mode: 'all' } as const) : ({ mode: 'none' } as const);
    try {
      const job = jobs.start({ replay, ...(body.parts ? { parts: body.parts } : {}), ...(body.settlementGraceMs !== undefined ? { settlementGraceMs: body.settlementGraceMs } : {}) }, staffCallerOf(request).keyId);
      reply.code(202).header('location', `/v1/audits/${job.auditId}`);
      return { auditId: job.auditId, status: job.status, startedAtMs: job.startedAtMs, statusUrl: `/v1/audits/${job.auditId}` };
    } catch (error) {
      if (error instanceof AuditAlreadyRunning) throw new ApiError(409, 'AUDIT_ALREADY_RUNNING', error.message, { runningAuditId: error.runningAuditId });
      throw error;
    }
  });

  api.get('/v1/audits/:auditId', { preHandler: asStaff(auth, AUDIT_SCOPE), schema: { params: Type.Object({ auditId: Type.String({ minLength: 1, maxLength: 100 }) }) } }, async (request) => {
    const job = jobs.get(request.params.auditId);
    if (!job) throw new ApiError(404, 'AUDIT_NOT_FOUND', `no audit ${request.params.auditId} is known here: audits are kept in memory, the last ${MAX_FINISHED_AUDITS} finished ones, and forgotten on restart`);
    return job;
  });
}
