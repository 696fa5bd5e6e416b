// Shared validators for numbers, text, options and free-form objects; each returns a normalised value or throws a DomainError.

import { canonicalJson, toWire } from './codec.js';
import type { CommandMetadata } from './decider.js';
import { DomainError } from './errors.js';
import { MAX_CODE_CHARS, MAX_EVIDENCE_DEPTH, MAX_TIMESTAMP_MS } from './limits.js';
import { MAX_MONEY_MSAT } from './money.js';

/** The injected clock must give a whole, non-negative, exactly representable millisecond count. */
export function requireNowMs(metadata: CommandMetadata | undefined): number {
  const nowMs = metadata?.nowMs;
  if (typeof nowMs === 'number' && Number.isSafeInteger(nowMs) && nowMs >= 0 && nowMs <= MAX_TIMESTAMP_MS) return nowMs;
  throw new DomainError('INVALID_TIMESTAMP', `command metadata.nowMs must be whole milliseconds since the Unix epoch, up to year 9999; got ${String(nowMs)}`, {
    field: 'metadata.nowMs',
  });
}

/** A whole number in [min, max]; `code` lets a caller give a well-known limit its own error code. */
export function requireInt(value: unknown, field: string, min: number, max: number, code = 'INVALID_NUMBER'): number {
  if (typeof value === 'number' && Number.isSafeInteger(value) && value >= min && value <= max) return value + 0;
  throw new DomainError(code, `${field} must be a whole number from ${min} to ${max}; got ${String(value)}`, { field, min, max });
}

/** A finite number in [min, max]. Adding 0 turns -0 into 0, which JSON cannot tell apart anyway. */
export function requireFinite(value: unknown, field: string, min = -Number.MAX_VALUE, max = Number.MAX_VALUE): number {
  if (typeof value === 'number' && Number.isFinite(value) && value >= min && value <= max) return value + 0;
  throw new DomainError('INVALID_NUMBER', `${field} must be a finite number from ${min} to ${max}; got ${String(value)}`, { field, min, max });
}

/** A lone UTF-16 surrogate (half of a pair with no other half), or NUL. */
const UNSTORABLE_TEXT = /[\uD800-\uDBFF](?![\uDC00-\uDFFF])|(?<![\uD800-\uDBFF])[\uDC00-\uDFFF]|\u0000/;

/**
 * Whether every store can keep this string exactly: PostgreSQL's text and JSON refuse NUL and a lone
 * surrogate, so an event carrying one would be refused by one log (or read model) and kept by another,
 * and a projector that met it would stop on it for good. Refused at the decider instead, with its field.
 */
export function isStorableText(value: string): boolean {
  return !UNSTORABLE_TEXT.test(value);
}

/** Free text a person reads: non-blank, bounded, and storable as it is (see isStorableText). */
export function requireText(value: unknown, field: string, maxChars: number): string {
  if (typeof value === 'string' && value.trim().length > 0 && value.length <= maxChars && isStorableText(value)) return value;
  throw new DomainError('INVALID_TEXT', `${field} must be non-blank text of at most ${maxChars} characters, with no NUL and no unpaired UTF-16 surrogate`, { field, maxChars });
}

const CODE_PATTERN = /^[A-Z][A-Z0-9_]*$/;

/** A machine code in SCREAMING_SNAKE case, like the domain's own error codes. */
export function requireCode(value: unknown, field: string): string {
  if (typeof value === 'string' && value.length <= MAX_CODE_CHARS && CODE_PATTERN.test(value)) return value;
  throw new DomainError('INVALID_CODE', `${field} must be an upper-case code such as NORM_TOO_LARGE (at most ${MAX_CODE_CHARS} characters)`, { field });
}

export function requireOneOf<T extends string>(value: unknown, field: string, options: readonly T[]): T {
  if (typeof value === 'string' && (options as readonly string[]).includes(value)) return value as T;
  throw new DomainError('INVALID_OPTION', `${field} must be one of ${options.join(', ')}; got ${JSON.stringify(value)}`, { field, options });
}

function invalidObject(field: string, why: string): DomainError {
  return new DomainError('INVALID_OBJECT', `${field} ${why}`, { field });
}

/**
 * Copies a free-form JSON object (evidence, recipe, tolerance) after checking that the
 * wire codec round-trips it exactly: only JSON values, finite numbers, bigint msat under
 * keys ending in Msat (the codec's convention), no __proto__ keys, bounded depth and size.
 */
export function requireWireSafeObject(value: unknown, field: string, maxJsonChars: number): Record<string, unknown> {
  if (!isPlainObject(value)) throw invalidObject(field, 'must be a JSON object');
  const copy = copyWireSafe(value, field, 0, '') as Record<string, unknown>;
  if (canonicalJson(toWire(copy)).length > maxJsonChars) throw invalidObject(field, `must be at most ${maxJsonChars} characters of JSON`);
  return copy;
}

function isPlainObject(value: unknown): value is Record<string, unknown> {
  if (value === null || typeof value !== 'object' || Array.isArray(value)) return false;
  const proto: unknown = Object.getPrototypeOf(value);
  return proto === Object.prototype || proto === null;
}

function copyWireSafe(value: unknown, field: string, depth: number, key: string): unknown {
  if (depth > MAX_EVIDENCE_DEPTH) throw invalidObject(field, `nests deeper than ${MAX_EVIDENCE_DEPTH} levels`);
  if (key.endsWith('Msat')) {
    if (typeof value === 'bigint' && value >= 0n && value <= MAX_MONEY_MSAT) return value;
    throw invalidObject(field, `holds ${key}, and keys ending in Msat must be whole millisatoshi amounts (bigint)`);
  }
  if (typeof value === 'string' && !isStorableText(value)) throw invalidObject(field, 'holds a string with NUL or an unpaired UTF-16 surrogate, which PostgreSQL cannot store');
  if (value === null || typeof value === 'string' || typeof value === 'boolean') return value;
  if (typeof value === 'number') {
    if (!Number.isFinite(value)) throw invalidObject(field, 'holds a non-finite number');
    return value + 0;
  }
  if (Array.isArray(value)) return value.map((item) => copyWireSafe(item, field, depth + 1, ''));
  if (!isPlainObject(value)) throw invalidObject(field, `holds a ${typeof value}, which JSON cannot carry`);
  const out: Record<string, unknown> = {};
  for (const [childKey, item] of Object.entries(value)) {
    if (childKey === '__proto__') throw invalidObject(field, 'holds a __proto__ key');
    if (!isStorableText(childKey)) throw invalidObject(field, 'holds a key with NUL or an unpaired UTF-16 surrogate, which PostgreSQL cannot store');
    out[childKey] = copyWireSafe(item, field, depth + 1, childKey);
  }
  return out;
}

/** An object of named finite numbers (a replay metric such as {relativeL2: 1e-7}). */
export function requireNumberRecord(value: unknown, field: string, maxEntries: number): Record<string, number> {
  if (!isPlainObject(value)) throw invalidObject(field, 'must be an object of named numbers');
  const entries = Object.entries(value);
  if (entries.length === 0 || entries.length > maxEntries) throw invalidObject(field, `must hold 1 to ${maxEntries} named numbers`);
  const out: Record<string, number> = {};
  for (const [key, item] of entries) {
    if (key === '__proto__' || key.endsWith('Msat')) throw invalidObject(field, `may not use the key ${JSON.stringify(key)}`);
    if (typeof item !== 'number' || !Number.isFinite(item)) throw invalidObject(field, `must hold only finite numbers; ${JSON.stringify(key)} is not`);
    out[key] = item + 0;
  }
  return out;
}

/** True when two values are the same on the wire; decides whether a repeated command is a harmless retry. */
export function sameContent(a: unknown, b: unknown): boolean {
  return canonicalJson(toWire(a)) === canonicalJson(toWire(b));
}
