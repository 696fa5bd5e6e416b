// Staff keys and checkpoint blobs: the coordinator issues keys for the other roles and uploads checkpoints; callers fetch them.

import type { FastifyInstance } from 'fastify';
import type { TypeBoxTypeProvider } from '@fastify/type-provider-typebox';
import { Type } from 'typebox';
import { referenceSteps } from '../../../replay/graphs/reference-steps.js';
import { decodeCheckpoint } from '../../../replay/model/checkpoint.js';
import { authDeps, type ApiDeps } from '../api-context.js';
import { ROLE_SCOPES } from '../auth/api-keys.js';
import { asStaff, asStaffOrContributor } from '../auth/authenticate.js';
import { ApiError } from '../problem.js';
import { IdempotencyHeaders, Sha256Hex } from './schemas.js';

const ROLES = Object.keys(ROLE_SCOPES);
const CHECKPOINT_CONTENT_TYPES = ['application/octet-stream'] as const;

export async function adminRoutes(app: FastifyInstance, deps: ApiDeps): Promise<void> {
  const api = app.withTypeProvider<TypeBoxTypeProvider>();
  const auth = authDeps(deps);

  api.post(
    '/v1/api-keys',
    { preHandler: asStaff(auth, 'keys:write'), config: { idempotent: true }, schema: { headers: IdempotencyHeaders, body: Type.Object({ keyId: Type.String({ pattern: '^[A-Za-z0-9._:-]+$', minLength: 1, maxLength: 100 }), role: Type.String({ maxLength: 40 }), label: Type.String({ minLength: 1, maxLength: 200 }) }) } },
    async (request, reply) => {
      const { keyId, role, label } = request.body;
      if (!ROLES.includes(role)) throw new ApiError(422, 'UNKNOWN_ROLE', `role must be one of ${ROLES.join(', ')}`);
      const issued = await deps.apiKeys.issue({ keyId, role: role as keyof typeof ROLE_SCOPES, label, nowMs: deps.nowMs() });
      reply.code(201);
      // The key is shown once, here; the idempotent replay of this response is the only other time.
      return issued;
    },
  );

  // Checkpoints are content-addressed: the body's SHA-256 is its name, and it must be a reference model's checkpoint.
  api.put('/v1/checkpoints', { preHandler: asStaff(auth, 'runs:write'), bodyLimit: deps.limits.blobBodyLimitBytes, config: { idempotent: true, accepts: CHECKPOINT_CONTENT_TYPES }, schema: { headers: IdempotencyHeaders } }, async (request, reply) => {
    if (!(request.body instanceof Uint8Array)) throw new ApiError(415, 'UNSUPPORTED_MEDIA_TYPE', 'send the checkpoint as Content-Type: application/octet-stream', { accepted: CHECKPOINT_CONTENT_TYPES });
    const body = request.body;
    const model = referenceSteps().find((s) => s.model.parameters.reduce((n, p) => n + p.dims.reduce((a, d) => a * d, 1), 0) * 4 === body.byteLength)?.model;
    if (!model) throw new ApiError(422, 'CHECKPOINT_SHAPE_MISMATCH', `${body.byteLength} bytes is not the size of any reference model's checkpoint`);
    try {
      decodeCheckpoint(model, body);
    } catch (error) {
      throw new ApiError(422, (error as { code?: string }).code ?? 'CHECKPOINT_INVALID', error instanceof Error ? error.message : String(error));
    }
    const stored = await deps.blobs.put(body);
    reply.code(201);
    return { ...stored, model: model.name };
  });

  api.get('/v1/checkpoints/:digest', { preHandler: asStaffOrContributor(auth, ['runs:write', 'assignments:read', 'events:read']), schema: { params: Type.Object({ digest: Sha256Hex }) } }, async (request, reply) => {
    const bytes = await deps.blobs.get(request.params.digest);
    if (!bytes) throw new ApiError(404, 'CHECKPOINT_NOT_FOUND', `no checkpoint ${request.params.digest} is stored`);
    reply.type('application/octet-stream');
    return Buffer.from(bytes.buffer, bytes.byteOffset, bytes.byteLength);
  });
}
