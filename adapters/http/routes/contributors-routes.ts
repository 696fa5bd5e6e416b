// Contributors register themselves: the request is signed by the very key it registers (proof of possession).

import type { FastifyInstance } from 'fastify';
import type { TypeBoxTypeProvider } from '@fastify/type-provider-typebox';
import { Type, type Static } from 'typebox';
import { contributorDecider, contributorStreamId, type ContributorCommand } from '../../../domain/contributor/index.js';
import { authDeps, eventsView, runCommand, type ApiDeps } from '../api-context.js';
import { asSelfRegisteringContributor } from '../auth/authenticate.js';
import { ApiError } from '../problem.js';
import { AppendedEvents, Id, IdempotencyHeaders } from './schemas.js';

const SIGNING_KEY_HEX = /^[0-9a-f]{64}$/;

const RegisterBody = Type.Object({
  contributorId: Id,
  signingPublicKeyHex: Type.String({ pattern: SIGNING_KEY_HEX.source }),
  lightningNodePubkeyHex: Type.String({ pattern: '^0[23][0-9a-f]{64}$' }),
});

/** The signing key an unvalidated registration body registers under `keyId`, or null when it registers none. */
function keyBeingRegistered(keyId: string, body: unknown): Uint8Array | null {
  if (typeof body !== 'object' || body === null) return null;
  const { contributorId, signingPublicKeyHex } = body as Partial<Record<keyof Static<typeof RegisterBody>, unknown>>;
  if (contributorId !== keyId || typeof signingPublicKeyHex !== 'string' || !SIGNING_KEY_HEX.test(signingPublicKeyHex)) return null;
  return Buffer.from(signingPublicKeyHex, 'hex');
}

export async function contributorsRoutes(app: FastifyInstance, deps: ApiDeps): Promise<void> {
  const api = app.withTypeProvider<TypeBoxTypeProvider>();
  const auth = authDeps(deps);

  // The signature's keyid must be the contributor id, and it must verify under the key being registered.
  // The signature headers are checked before the body is read; the rest once it is, before it is validated.
  const proofOfPossession = asSelfRegisteringContributor(auth, keyBeingRegistered);

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
