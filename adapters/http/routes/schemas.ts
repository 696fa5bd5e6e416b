// TypeBox building blocks shared by the route groups: ids, digests, msat strings, problem responses.

import { Type } from 'typebox';

export const Id = Type.String({ pattern: '^[A-Za-z0-9._:-]+$', minLength: 1, maxLength: 200 });
export const Sha256Hex = Type.String({ pattern: '^[0-9a-f]{64}$' });
/** Millisatoshis as decimal digits: JSON numbers cannot carry every amount exactly. */
export const Msat = Type.String({ pattern: '^(0|[1-9][0-9]{0,20})$' });
export const Seed = Type.String({ pattern: '^(0|[1-9][0-9]{0,19})$' });

export const Problem = Type.Object(
  { type: Type.String(), title: Type.String(), status: Type.Integer(), code: Type.String(), detail: Type.String() },
  { additionalProperties: true },
);

/** Every state-changing route documents the header it requires. */
export const IdempotencyHeaders = Type.Object({ 'idempotency-key': Type.String({ minLength: 1, maxLength: 255 }) }, { additionalProperties: true });

export const AppendedEvents = Type.Object({
  status: Type.String(),
  events: Type.Array(Type.Object({ type: Type.String(), data: Type.Record(Type.String(), Type.Unknown()) })),
});
