// Shared validators for ids, digests and keys: each returns the checked value or throws a DomainError saying what shape is wanted.

import { DomainError } from './errors.js';
import { MAX_ID_CHARS } from './limits.js';

/** Ids become stream names and URL segments, so they are restricted to characters safe in both. */
export const ID_PATTERN = /^[A-Za-z0-9._:-]+$/;
const HEX64_PATTERN = /^[0-9a-f]{64}$/;
const NODE_PUBKEY_PATTERN = /^0[23][0-9a-f]{64}$/;

export function isId(value: unknown): value is string {
  return typeof value === 'string' && value.length > 0 && value.length <= MAX_ID_CHARS && ID_PATTERN.test(value);
}

/** 32 bytes as 64 lowercase hex: the shape of digests, ed25519 keys, payment hashes and preimages alike. */
export function isHex64(value: unknown): value is string {
  return typeof value === 'string' && HEX64_PATTERN.test(value);
}

export const isSha256Hex = isHex64;

export function isNodePubkeyHex(value: unknown): value is string {
  return typeof value === 'string' && NODE_PUBKEY_PATTERN.test(value);
}

function describe(value: unknown): string {
  const text = typeof value === 'string' ? JSON.stringify(value.slice(0, 80)) : typeof value;
  return typeof value === 'string' && value.length > 80 ? `${text}... (${value.length} chars)` : text;
}

export function requireId(value: unknown, field: string): string {
  if (isId(value)) return value;
  throw new DomainError(
    'INVALID_ID',
    `${field} must be 1 to ${MAX_ID_CHARS} characters of letters, digits, '.', '_', ':' or '-'; got ${describe(value)}`,
    { field },
  );
}

/** A SHA-256 digest as 64 lowercase hex characters (checkpoints, shards, gradients, step graphs). */
export function requireSha256Hex(value: unknown, field: string): string {
  if (isSha256Hex(value)) return value;
  throw new DomainError('INVALID_DIGEST', `${field} must be a SHA-256 digest written as 64 lowercase hex characters; got ${describe(value)}`, { field });
}

/** An ed25519 public key: 32 bytes as 64 lowercase hex characters. */
export function requireEd25519PublicKeyHex(value: unknown, field: string): string {
  if (isHex64(value)) return value;
  throw new DomainError('INVALID_SIGNING_KEY', `${field} must be an ed25519 public key written as 64 lowercase hex characters; got ${describe(value)}`, { field });
}

/** A Lightning node id: a compressed secp256k1 key, 33 bytes as 66 lowercase hex starting 02 or 03. */
export function requireNodePubkeyHex(value: unknown, field: string): string {
  if (isNodePubkeyHex(value)) return value;
  throw new DomainError(
    'INVALID_NODE_PUBKEY',
    `${field} must be a Lightning node public key: 66 lowercase hex characters starting with 02 or 03; got ${describe(value)}`,
    { field },
  );
}

/** A Lightning payment hash: SHA-256 of the preimage, 64 lowercase hex characters. */
export function requirePaymentHashHex(value: unknown, field = 'paymentHash'): string {
  if (isHex64(value)) return value;
  throw new DomainError('INVALID_PAYMENT_HASH', `${field} must be a payment hash written as 64 lowercase hex characters; got ${describe(value)}`, { field });
}

/**
 * A payment preimage: 32 bytes as 64 lowercase hex. The domain has no hash function
 * (it stays dependency-free), so the adapter checks sha256(preimage) == paymentHash
 * before the command is built; here only the shape is checked.
 */
export function requirePreimageHex(value: unknown, field = 'preimageHex'): string {
  if (isHex64(value)) return value;
  throw new DomainError('INVALID_PREIMAGE', `${field} must be a payment preimage written as 64 lowercase hex characters; got ${describe(value)}`, { field });
}
