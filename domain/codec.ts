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
/** Object keys come from a handful of schemas: their quoted form is remembered, up to a bound. */
const QUOTED_KEYS = new Map<string, string>();
const MAX_QUOTED_KEYS = 4_096;

function quotedKey(key: string): string {
  let quoted = QUOTED_KEYS.get(key);
  if (quoted === undefined) {
    quoted = JSON.stringify(key);
    if (QUOTED_KEYS.size < MAX_QUOTED_KEYS) QUOTED_KEYS.set(key, quoted);
  }
  return quoted;
}

export function canonicalJson(value: unknown): string {
  // Written as loops that append to one string, not filter/sort/map/join per object: every event's data
  // and metadata go through here when the audit re-hashes the log. The output is byte for byte the same.
  switch (typeof value) {
    case 'string':
      return JSON.stringify(value);
    case 'number':
      if (!Number.isFinite(value)) throw new DomainError('NON_FINITE_NUMBER', 'payload holds a non-finite number');
      return JSON.stringify(value);
    case 'bigint':
      return JSON.stringify(value.toString());
    case 'object': {
      if (value === null) return 'null';
      if (Array.isArray(value)) {
        let out = '[';
        for (let i = 0; i < value.length; i += 1) {
          if (i > 0) out += ',';
          // join() wrote an element that has no JSON (undefined, a function) as nothing: so does this.
          out += canonicalJson(value[i]) ?? '';
        }
        return `${out}]`;
      }
      const record = value as Record<string, unknown>;
      const keys = Object.keys(record).sort();
      let out = '{';
      for (const key of keys) {
        const field = record[key];
        if (field === undefined) continue;
        if (out.length > 1) out += ',';
        out += `${quotedKey(key)}:${canonicalJson(field)}`;
      }
      return `${out}}`;
    }
    default:
      return JSON.stringify(value);
  }
}
