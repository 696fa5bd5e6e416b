// Gradient submission: a binary body, limited by the run's model, decoded strictly before anything is stored or logged.

import type { FastifyInstance, FastifyRequest } from 'fastify';
import type { TypeBoxTypeProvider } from '@fastify/type-provider-typebox';
import { Type } from 'typebox';
import { assignmentDecider, assignmentStreamId, type AssignmentCommand, type AssignmentEvent, type AssignmentState, type SubmitGradient } from '../../../domain/assignment/index.js';
import { DomainError } from '../../../domain/errors.js';
import { MAX_COMPUTE_TIME_MS } from '../../../domain/limits.js';
import { decodeGradient, maxEncodedSizeBytes } from '../../../replay/encoding/decode-gradient.js';
import { GradientDecodeError } from '../../../replay/encoding/gradient-decode-error.js';
import { referenceSteps, stepByGraphDigest } from '../../../replay/graphs/reference-steps.js';
import { sha256Hex } from '../../../replay/model/checkpoint.js';
import type { CommandOutcome } from '../../commands/command-handler.js';
import { authDeps, eventsView, runCommand, type ApiDeps } from '../api-context.js';
import { asContributor, contributorCallerOf } from '../auth/authenticate.js';
import { ApiError } from '../problem.js';
import { withArticle } from '../wording.js';
import { loadOwnedAssignment } from './assignments-routes.js';
import { requireRunDefinition } from './runs-routes.js';
import { AppendedEvents, Id } from './schemas.js';

/** The route's hard ceiling: the largest body any reference model accepts. The run's model then narrows it. */
export const GRADIENT_ROUTE_LIMIT_BYTES = Math.max(...referenceSteps().flatMap((s) => [maxEncodedSizeBytes(s.model, 'dense-f32'), maxEncodedSizeBytes(s.model, 'sparseloco')]));

/** A gradient is a binary tensor: a JSON body reaches the handler (its parser is the app's) and is refused there. */
const GRADIENT_CONTENT_TYPES = ['application/octet-stream'] as const;

const GradientHeaders = Type.Object(
  {
    'idempotency-key': Type.String({ minLength: 1, maxLength: 255 }),
    'x-gradient-encoding': Type.Union([Type.Literal('dense-f32'), Type.Literal('sparseloco')]),
    'x-claimed-loss': Type.String({ pattern: '^[0-9]+(\\.[0-9]+)?([eE][-+]?[0-9]+)?$', maxLength: 40 }),
    'x-compute-time-ms': Type.String({ pattern: '^[0-9]{1,12}$' }),
  },
  { additionalProperties: true },
);

export async function gradientsRoutes(app: FastifyInstance, deps: ApiDeps): Promise<void> {
  const api = app.withTypeProvider<TypeBoxTypeProvider>();
  const auth = authDeps(deps);

  api.post(
    '/v1/assignments/:assignmentId/gradient',
    { preHandler: asContributor(auth), bodyLimit: GRADIENT_ROUTE_LIMIT_BYTES, config: { idempotent: true, accepts: GRADIENT_CONTENT_TYPES }, schema: { params: Type.Object({ assignmentId: Id }), headers: GradientHeaders, response: { 201: AppendedEvents } } },
    async (request, reply) => {
      const caller = contributorCallerOf(request);
      const loaded = await loadOwnedAssignment(deps, request.params.assignmentId, caller);
      const terms = loaded.state.terms!;
      // Only the run's step graph is read here, and a run's definition never changes: no need to catch up with its stream.
      const run = await requireRunDefinition(deps, terms.runId);
      const step = stepByGraphDigest(run.stepGraphDigest);
      if (!step) throw new ApiError(409, 'UNKNOWN_STEP_GRAPH', `run ${run.runId} uses a step graph this build does not know; gradients cannot be checked`);
      const encoding = request.headers['x-gradient-encoding'];
      const body = bodyBytes(request.body);
      const limitBytes = maxEncodedSizeBytes(step.model, encoding);
      if (body.byteLength > limitBytes) {
        throw new ApiError(413, 'GRADIENT_TOO_LARGE', `${withArticle(encoding)} gradient of ${step.model.name} is at most ${limitBytes} bytes, got ${body.byteLength}`, { limitBytes, receivedBytes: body.byteLength });
      }
      try {
        decodeGradient(step.model, encoding, body);
      } catch (error) {
        if (error instanceof GradientDecodeError) throw new ApiError(422, error.code, error.detail);
        throw error;
      }
      const claimedLoss = Number(request.headers['x-claimed-loss']);
      const computeTimeMs = Number(request.headers['x-compute-time-ms']);
      if (!Number.isFinite(claimedLoss) || computeTimeMs > MAX_COMPUTE_TIME_MS) throw new ApiError(400, 'VALIDATION_FAILED', 'x-claimed-loss must be finite and x-compute-time-ms within bounds');
      const submission = { assignmentId: terms.assignmentId, contributorId: terms.contributorId, gradientDigest: sha256Hex(body), sizeBytes: body.byteLength, encoding, claimedLoss, computeTimeMs };
      const outcome = await submitOnce(deps, request, loaded, submission, body);
      reply.code(201);
      return { status: outcome.status, events: eventsView(outcome) };
    },
  );
}

/**
 * Decides (without writing) before the bytes are kept, so a refused submission leaves no blob behind; then bytes
 * first, event second, so a logged digest always names stored bytes. A refusal may answer the retry of a submission
 * that was accepted, its response lost in a crash ("already submitted", "deadline passed"): the command-level key
 * then replays the original events, and only a request it does not know is refused.
 */
async function submitOnce(
  deps: ApiDeps,
  request: FastifyRequest,
  loaded: { state: AssignmentState; lastRevision: number | null },
  submission: SubmitGradient['data'],
  body: Uint8Array,
): Promise<CommandOutcome<AssignmentEvent>> {
  const streamId = assignmentStreamId(submission.assignmentId);
  try {
    assignmentDecider.decide({ type: 'SubmitGradient', data: submission, metadata: { nowMs: deps.nowMs() } }, loaded.state);
  } catch (error) {
    if (!(error instanceof DomainError)) throw error;
    return runCommand<AssignmentCommand, AssignmentEvent, AssignmentState>(deps, request, replayingOnly(error), streamId, 'SubmitGradient', submission);
  }
  const { digest } = await deps.blobs.put(body);
  if (digest !== submission.gradientDigest) throw new Error('blob store named the gradient by another digest');
  return runCommand<AssignmentCommand, AssignmentEvent, AssignmentState>(deps, request, assignmentDecider, streamId, 'SubmitGradient', submission, { loaded });
}

/** The assignment decider that decides nothing new: the command path replays a recorded outcome, or `refusal` stands (no bytes were kept for it). */
function replayingOnly(refusal: DomainError): typeof assignmentDecider {
  return {
    ...assignmentDecider,
    decide: () => {
      throw refusal;
    },
  };
}

function bodyBytes(body: unknown): Uint8Array {
  if (body instanceof Uint8Array) return body;
  throw new ApiError(415, 'UNSUPPORTED_MEDIA_TYPE', 'send the gradient as Content-Type: application/octet-stream (its encoding goes in x-gradient-encoding: dense-f32 or sparseloco)', { accepted: GRADIENT_CONTENT_TYPES });
}
