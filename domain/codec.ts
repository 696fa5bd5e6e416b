// Wire codec for events and commands: bigint msat fields become decimal strings and back, by naming convention.

import type { Event } from './decider.js';
import { DomainError } from './errors.js';
import { parseMsat } from './money.js';
import type { RecordedEvent } from './ports/event-store.js';

/**
 * Any property whose name ends in `Msat` holds a bigint in code and a decimal
 * string on the wire. The units-last naming rule makes this convention total:
 * there is no other place an amount can hide.
 */
const MSAT_SUFFIX = 'Msat';

/** Largest nesting the codec walks; deeper payloads are refused, not recursed into. */
export const MAX_WIRE_DEPTH = 16;

export function toWire(value: unknown, depth = 0): unknown {
  if (depth > MAX_WIRE_DEPTH) throw new DomainError('PAYLOAD_TOO_DEEP', `payload nests deeper than ${MAX_WIRE_DEPTH} levels`);
  if (typeof value === 'bigint') return value.toString();
  if (Array.isArray(value)) return value.map((item) => toWire(item, depth + 1));
  if (value !== null && typeof value === 'object') {
    const out: Record<string, unknown> = {};
    for (const [key, item] of Object.entries(value)) {
      if (item === undefined) continue;
      out[key] = toWire(item, depth + 1);
    }
    return out;
  }
  return value;
}

export function fromWire(value: unknown, depth = 0, key = ''): unknown {
  if (depth > MAX_WIRE_DEPTH) throw new DomainError('PAYLOAD_TOO_DEEP', `payload nests deeper than ${MAX_WIRE_DEPTH} levels`);
  if (key.endsWith(MSAT_SUFFIX)) return parseMsat(value, key);
  if (Array.isArray(value)) return value.map((item) => fromWire(item, depth + 1));
  if (value !== null && typeof value === 'object') {
    const out: Record<string, unknown> = {};
    for (const [childKey, item] of Object.entries(value)) out[childKey] = fromWire(item, depth + 1, childKey);
    return out;
  }
  return value;
}

/**
 * A logged event back as the domain event it was: type and data, msat strings as bigints. Pure, so
 * the command path, the workers in replay/ and the reactors all decode one way.
 */
export function decodeEvent<E extends Event>(recorded: RecordedEvent): E {
  return { type: recorded.type, data: fromWire(recorded.data) } as E;
}

/**
 * Canonical JSON (sorted keys, no whitespace) of a wire value. Hashes and
 * idempotency digests are taken over this, so key order never changes a digest.
 */
export function canonicalJson(value: unknown): string {
  if (value === null || typeof value !== 'object') {
    if (typeof value === 'number' && !Number.isFinite(value)) throw new DomainError('NON_FINITE_NUMBER', 'payload holds a non-finite number');
    if (typeof value === 'bigint') return JSON.stringify(value.toString());
    return JSON.stringify(value);
  }
  if (Array.isArray(value)) return `[${value.map(canonicalJson).join(',')}]`;
  const keys = Object.keys(value).filter((k) => (value as Record<string, unknown>)[k] !== undefined).sort();
  return `{${keys.map((k) => `${JSON.stringify(k)}:${canonicalJson((value as Record<string, unknown>)[k])}`).join(',')}}`;
}
