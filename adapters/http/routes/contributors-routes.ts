// Contributors register themselves: the request is signed by the very key it registers (proof of possession).

import type { FastifyInstance, FastifyRequest } from 'fastify';
import type { TypeBoxTypeProvider } from '@fastify/type-provider-typebox';
import { Type, type Static } from 'typebox';
import { contributorDecider, contributorStreamId, type ContributorCommand } from '../../../domain/contributor/index.js';
import { authDeps, eventsView, runCommand, type ApiDeps } from '../api-context.js';
import { requireContributor } from '../auth/authenticate.js';
import { ApiError } from '../problem.js';
import { AppendedEvents, Id, IdempotencyHeaders } from './schemas.js';

const RegisterBody = Type.Object({
  contributorId: Id,
  signingPublicKeyHex: Type.String({ pattern: '^[0-9a-f]{64}$' }),
  lightningNodePubkeyHex: Type.String({ pattern: '^0[23][0-9a-f]{64}$' }),
});

export async function contributorsRoutes(app: FastifyInstance, deps: ApiDeps): Promise<void> {
  const api = app.withTypeProvider<TypeBoxTypeProvider>();
  const auth = authDeps(deps);

  // The signature's keyid must be the contributor id, and it must verify under the key being registered.
  const proofOfPossession = async (request: FastifyRequest) => {
    const body = request.body as Static<typeof RegisterBody>;
    await requireContributor(request, auth, async (keyId) => (keyId === body.contributorId ? Buffer.from(body.signingPublicKeyHex, 'hex') : null));
  };

  api.post('/v1/contributors', { preHandler: proofOfPossession, config: { idempotent: true }, schema: { body: RegisterBody, headers: IdempotencyHeaders, response: { 201: AppendedEvents } } }, async (request, reply) => {
    const body = request.body;
    const outcome = await runCommand<ContributorCommand, any, any>(deps, request, contributorDecider, contributorStreamId(body.contributorId), 'RegisterContributor', body);
    reply.code(201);
    return { status: outcome.status, events: eventsView(outcome) };
  });

  // Development network only: contributors there are simulated wallets whose node keys the server holds.
  if (deps.devNodeKey) {
    const devNodeKey = deps.devNodeKey;
    api.get('/v1/dev/node-keys/:contributorId', { schema: { params: Type.Object({ contributorId: Id }) } }, async (request) => {
      if (!/^[A-Za-z0-9._:-]{1,200}$/.test(request.params.contributorId)) throw new ApiError(400, 'VALIDATION_FAILED', 'contributorId is not an id');
      return { contributorId: request.params.contributorId, lightningNodePubkeyHex: await devNodeKey(request.params.contributorId), network: 'regtest', realMoney: false };
    });
  }
}
