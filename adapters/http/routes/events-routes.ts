// The auditors' export: the log as NDJSON from a checkpoint, each line a whole event with its hash chain fields.

import type { FastifyInstance } from 'fastify';
import type { TypeBoxTypeProvider } from '@fastify/type-provider-typebox';
import { Type } from 'typebox';
import { LOG_START, type LogPosition } from '../../../domain/ports/event-store.js';
import { authDeps, type ApiDeps } from '../api-context.js';
import { asStaff } from '../auth/authenticate.js';
import { ApiError } from '../problem.js';

/** Events read from the store per page while streaming. */
const EXPORT_PAGE_SIZE = 500;
const MAX_INT8 = 2n ** 63n - 1n;

export async function eventsRoutes(app: FastifyInstance, deps: ApiDeps): Promise<void> {
  const api = app.withTypeProvider<TypeBoxTypeProvider>();
  const auth = authDeps(deps);

  api.get(
    '/v1/events',
    { preHandler: asStaff(auth, 'events:read'), schema: { querystring: Type.Object({ after: Type.Optional(Type.String({ pattern: '^[0-9]{1,20}:[0-9]{1,20}$' })), limit: Type.Optional(Type.String({ pattern: '^[1-9][0-9]{0,8}$' })) }) } },
    async (request, reply) => {
      const limit = Math.min(Number(request.query.limit ?? deps.limits.exportMaxEvents), deps.limits.exportMaxEvents);
      let after = parseCheckpoint(request.query.after);
      const lines: string[] = [];
      while (lines.length < limit) {
        const page = await deps.store.readAll({ after, maxCount: Math.min(EXPORT_PAGE_SIZE, limit - lines.length) });
        if (page.length === 0) break;
        for (const e of page) {
          lines.push(JSON.stringify({ ...e, position: { transactionId: e.position.transactionId.toString(), globalPosition: e.position.globalPosition.toString() } }));
        }
        after = page[page.length - 1]!.position;
      }
      // The next checkpoint travels in a header, so a client can resume without parsing the last line.
      reply.header('x-next-after', `${after.transactionId}:${after.globalPosition}`);
      reply.type('application/x-ndjson');
      return lines.length > 0 ? `${lines.join('\n')}\n` : '';
    },
  );
}

function parseCheckpoint(value: string | undefined): LogPosition {
  if (value === undefined) return LOG_START;
  const [transactionId, globalPosition] = value.split(':').map((part) => BigInt(part));
  // Both are int8 in the store: anything larger is no position of this log.
  if (transactionId! > MAX_INT8 || globalPosition! > MAX_INT8) throw new ApiError(400, 'VALIDATION_FAILED', `after must be <transactionId>:<globalPosition>, each at most ${MAX_INT8}, as x-next-after gives it`);
  return { transactionId: transactionId!, globalPosition: globalPosition! };
}
