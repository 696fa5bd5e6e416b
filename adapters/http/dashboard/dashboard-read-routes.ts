// Read-only routes the analyst dashboard needs beyond metrics and rewards: recent disputes (with each recipe) and top contributors.

import type { FastifyInstance } from 'fastify';
import type { TypeBoxTypeProvider } from '@fastify/type-provider-typebox';
import type { Kysely } from 'kysely';
import { type Static, Type } from 'typebox';
import { assignmentStreamId } from '../../../domain/assignment/index.js';
import { runStreamId } from '../../../domain/run/index.js';
import { disputeOf, recentDisputes } from '../../../projections/disputes/queries.js';
import type { LedgerTables } from '../../../projections/ledger/schema.js';
import { topContributors } from '../../../projections/ledger/top-contributors.js';
import { authDeps, wire, type ApiDeps } from '../api-context.js';
import { asStaff } from '../auth/authenticate.js';
import { ApiError } from '../problem.js';
import { Id, Msat } from '../routes/schemas.js';

/** Most rows one page of either list may ask for. */
export const DASHBOARD_LIST_MAX_ROWS = 100;
const DEFAULT_ROWS = 10;
/** Not coerced: a timestamp is up to 16 digits of ms, a limit 1..100. */
const Timestamp = Type.String({ pattern: '^(0|[1-9][0-9]{0,15})$' });
const Limit = Type.String({ pattern: '^(100|[1-9][0-9]?)$', description: `rows, 1 to ${DASHBOARD_LIST_MAX_ROWS} (default ${DEFAULT_ROWS})` });
const WindowQuery = Type.Object(
  { runId: Type.Optional(Id), fromMs: Type.Optional(Timestamp), toMs: Type.Optional(Timestamp), limit: Type.Optional(Limit) },
  { additionalProperties: false },
);
const NullableString = Type.Union([Type.String(), Type.Null()]);
const NullableNumber = Type.Union([Type.Number(), Type.Null()]);

const DisputeSummary = {
  assignmentId: Type.String(),
  runId: Type.String(),
  contributorId: Type.String(),
  disputeId: Type.String(),
  rejectionCode: Type.String(),
  rejectedAtMs: Type.Number(),
  disputedAtMs: Type.Number(),
  reason: Type.String(),
  replayOutcome: NullableString,
  executionProvider: NullableString,
  device: NullableString,
  replayDurationMs: NullableNumber,
  resolution: NullableString,
  resolvedAtMs: NullableNumber,
};
const DisputeDetail = Type.Object({
  ...DisputeSummary,
  validatorId: Type.String(),
  replayJobId: NullableString,
  replayedAtMs: NullableNumber,
  recipe: Type.Unknown(),
  metric: Type.Unknown(),
  tolerance: Type.Unknown(),
});
const DisputeList = Type.Array(Type.Object(DisputeSummary));
const TopContributor = Type.Object({ contributorId: Type.String(), paidMsat: Msat, payments: Type.Integer(), pendingEscrowMsat: Msat });
const TopContributorList = Type.Array(TopContributor);

type Window = { runId?: string; fromMs?: string; toMs?: string; limit?: string };

export async function dashboardReadRoutes(app: FastifyInstance, deps: ApiDeps): Promise<void> {
  const api = app.withTypeProvider<TypeBoxTypeProvider>();
  const auth = authDeps(deps);
  const window = async (query: Window) => {
    if (query.fromMs !== undefined && query.toMs !== undefined && Number(query.fromMs) >= Number(query.toMs)) {
      throw new ApiError(400, 'VALIDATION_FAILED', 'fromMs must be before toMs');
    }
    if (query.runId !== undefined) await requireStream(deps, runStreamId(query.runId), 'RUN_NOT_FOUND', `run ${query.runId} does not exist`);
    return {
      limit: query.limit === undefined ? DEFAULT_ROWS : Number(query.limit),
      ...(query.runId !== undefined ? { runId: query.runId } : {}),
      ...(query.fromMs !== undefined ? { fromMs: Number(query.fromMs) } : {}),
      ...(query.toMs !== undefined ? { toMs: Number(query.toMs) } : {}),
    };
  };

  api.get(
    '/v1/disputes',
    {
      preHandler: asStaff(auth, 'metrics:read'),
      schema: {
        description: 'Disputes opened in [fromMs, toMs), newest first, with the replay verdict and resolution once recorded.',
        querystring: WindowQuery,
        response: { 200: DisputeList },
      },
    },
    async (request) => wire(await recentDisputes(deps.db.withSchema('disputes'), await window(request.query))) as Static<typeof DisputeList>,
  );

  api.get(
    '/v1/disputes/:assignmentId',
    {
      preHandler: asStaff(auth, 'metrics:read'),
      schema: { description: "One assignment's dispute with its replay recipe, metric and tolerance.", params: Type.Object({ assignmentId: Id }), response: { 200: DisputeDetail } },
    },
    async (request) => {
      const { assignmentId } = request.params;
      await requireStream(deps, assignmentStreamId(assignmentId), 'ASSIGNMENT_NOT_FOUND', `assignment ${assignmentId} does not exist`);
      const found = await disputeOf(deps.db.withSchema('disputes'), assignmentId);
      if (found === null) throw new ApiError(404, 'DISPUTE_NOT_FOUND', `assignment ${assignmentId} has no dispute recorded (yet: projections may lag the log)`);
      return wire(found) as Static<typeof DisputeDetail>;
    },
  );

  api.get(
    '/v1/ledger/top-contributors',
    {
      preHandler: asStaff(auth, 'ledger:read'),
      schema: {
        description: 'Contributors ranked by msat posted to them in [fromMs, toMs) (escrow settled, bonus, compensation), with escrow still pending.',
        querystring: WindowQuery,
        response: { 200: TopContributorList },
      },
    },
    async (request) => wire(await topContributors(deps.db.withSchema('ledger') as unknown as Kysely<LedgerTables>, await window(request.query))) as Static<typeof TopContributorList>,
  );
}

/** As in the query routes: an id the log has never seen is a 404, whatever the projections hold yet. */
async function requireStream(deps: ApiDeps, streamId: string, code: string, detail: string): Promise<void> {
  if ((await deps.store.readStream(streamId, { maxCount: 1 })).length === 0) throw new ApiError(404, code, detail);
}
