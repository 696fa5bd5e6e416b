// Read models over HTTP: ledger balances and transfers, rewards per contributor and run, metrics by period and run.

import type { FastifyInstance } from 'fastify';
import type { TypeBoxTypeProvider } from '@fastify/type-provider-typebox';
import type { Kysely } from 'kysely';
import { Type } from 'typebox';
import { accountBalances, transfersForAssignment, trialBalance } from '../../../projections/ledger/queries.js';
import type { LedgerTables } from '../../../projections/ledger/schema.js';
import { metricsByPeriod, metricsByRun } from '../../../projections/metrics/queries.js';
import { contributorRewards, listContributorRewards, listRunBudgets, runBudget } from '../../../projections/rewards/queries.js';
import { authDeps, wire, type ApiDeps } from '../api-context.js';
import { asStaff, asStaffOrContributor, callerOf } from '../auth/authenticate.js';
import { ApiError } from '../problem.js';
import { Id } from './schemas.js';
import { assignmentStreamId } from '../../../domain/assignment/index.js';
import { contributorStreamId } from '../../../domain/contributor/index.js';
import { runStreamId } from '../../../domain/run/index.js';

/** Query strings are not coerced: a timestamp is up to 16 digits of ms. */
const TIMESTAMP_PATTERN = '^(0|[1-9][0-9]{0,15})$';

export async function queriesRoutes(app: FastifyInstance, deps: ApiDeps): Promise<void> {
  const api = app.withTypeProvider<TypeBoxTypeProvider>();
  const auth = authDeps(deps);
  const ledger = () => deps.db.withSchema('ledger') as unknown as Kysely<LedgerTables>;
  const rewards = () => deps.db.withSchema('rewards');
  const metrics = () => deps.db.withSchema('metrics');

  api.get('/v1/ledger/accounts', { preHandler: asStaff(auth, 'ledger:read'), schema: { querystring: Type.Object({ runId: Type.Optional(Id), contributorId: Type.Optional(Id) }) } }, async (request) => {
    const { runId, contributorId } = request.query;
    if (runId !== undefined) await requireStream(deps, runStreamId(runId), 'RUN_NOT_FOUND', `run ${runId} does not exist`);
    if (contributorId !== undefined) await requireStream(deps, contributorStreamId(contributorId), 'CONTRIBUTOR_NOT_FOUND', `contributor ${contributorId} is not registered`);
    return wire(await accountBalances(ledger(), request.query));
  });

  api.get('/v1/ledger/trial-balance', { preHandler: asStaff(auth, 'ledger:read') }, async (request) => {
    return wire(await trialBalance(ledger()));
  });

  api.get('/v1/ledger/assignments/:assignmentId/transfers', { preHandler: asStaff(auth, 'ledger:read'), schema: { params: Type.Object({ assignmentId: Id }) } }, async (request) => {
    const { assignmentId } = request.params;
    await requireStream(deps, assignmentStreamId(assignmentId), 'ASSIGNMENT_NOT_FOUND', `assignment ${assignmentId} does not exist`);
    return wire(await transfersForAssignment(ledger(), assignmentId));
  });

  api.get('/v1/rewards/contributors', { preHandler: asStaff(auth, 'rewards:read') }, async (request) => {
    return wire(await listContributorRewards(rewards()));
  });

  // A contributor may read their own rewards, and only theirs.
  api.get('/v1/rewards/contributors/:contributorId', { preHandler: asStaffOrContributor(auth, 'rewards:read'), schema: { params: Type.Object({ contributorId: Id }) } }, async (request) => {
    const caller = callerOf(request);
    if (caller.kind === 'contributor' && caller.contributorId !== request.params.contributorId) throw new ApiError(403, 'FORBIDDEN', 'a contributor reads only their own rewards');
    const found = await contributorRewards(rewards(), request.params.contributorId);
    if (!found) throw new ApiError(404, 'CONTRIBUTOR_NOT_FOUND', `no rewards recorded for contributor ${request.params.contributorId}`);
    return wire(found);
  });

  api.get('/v1/rewards/runs', { preHandler: asStaff(auth, 'rewards:read') }, async (request) => {
    return wire(await listRunBudgets(rewards()));
  });

  api.get('/v1/rewards/runs/:runId', { preHandler: asStaff(auth, 'rewards:read'), schema: { params: Type.Object({ runId: Id }) } }, async (request) => {
    const found = await runBudget(rewards(), request.params.runId);
    if (!found) throw new ApiError(404, 'RUN_NOT_FOUND', `no budget recorded for run ${request.params.runId}`);
    return wire(found);
  });

  api.get(
    '/v1/metrics/periods',
    { preHandler: asStaff(auth, 'metrics:read'), 
      schema: {
        querystring: Type.Object({
          granularity: Type.Union([Type.Literal('hour'), Type.Literal('day'), Type.Literal('week')]),
          runId: Type.Optional(Id),
          fromMs: Type.Optional(Type.String({ pattern: TIMESTAMP_PATTERN })),
          toMs: Type.Optional(Type.String({ pattern: TIMESTAMP_PATTERN })),
        }),
      },
    },
    async (request) => {
      const { granularity, runId, fromMs, toMs } = request.query;
      if (runId !== undefined) await requireStream(deps, runStreamId(runId), 'RUN_NOT_FOUND', `run ${runId} does not exist`);
      return wire(await metricsByPeriod(metrics(), { granularity, ...(runId ? { runId } : {}), ...(fromMs ? { fromMs: Number(fromMs) } : {}), ...(toMs ? { toMs: Number(toMs) } : {}) }));
    },
  );

  api.get('/v1/metrics/runs', { preHandler: asStaff(auth, 'metrics:read') }, async (request) => {
    return wire(await metricsByRun(metrics()));
  });
}

/**
 * A filter or path naming an id the log has never seen is a 404, not an empty list: the projections may lag the log,
 * but the log decides what exists. One event read (maxCount 1); an existing id with no rows yet still answers 200 [].
 */
async function requireStream(deps: ApiDeps, streamId: string, code: string, detail: string): Promise<void> {
  if ((await deps.store.readStream(streamId, { maxCount: 1 })).length === 0) throw new ApiError(404, code, detail);
}
