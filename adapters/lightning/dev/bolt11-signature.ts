// Checks a BOLT11 signature independently of the decoder: the hash it signs and the payee key its `n` field names.

import { createHash } from 'node:crypto';
import { bech32 } from 'bech32';
import { verifyHashSignature } from './dev-keys.js';

/** BOLT11 layout, in 5-bit words: a 35-bit timestamp, tagged fields, then a 520-bit signature (64 bytes + recovery id). */
const TIMESTAMP_WORDS = 7;
const SIGNATURE_WORDS = 104;
const COMPACT_SIGNATURE_BYTES = 64;
/** Field type 19 (`n`): the payee's 33-byte node key, 53 words long. */
const PAYEE_FIELD_TYPE = 19;
const PAYEE_FIELD_WORDS = 53;

export type SignatureCheck = Readonly<{ ok: true } | { ok: false; reason: string }>;

/**
 * The decoder recovers a key from any well-formed signature, so a request edited and re-checksummed
 * still "decodes", to some other key. When the request names its payee (`n`), that key must
 * both verify the signature (low-S) and be the key the decoder recovered.
 */
export async function checkRequestSignature(request: string, recoveredKeyHex: string): Promise<SignatureCheck> {
  const { prefix, words } = bech32.decode(request, Number.MAX_SAFE_INTEGER);
  if (words.length < TIMESTAMP_WORDS + SIGNATURE_WORDS) return { ok: false, reason: 'the request is too short to hold a signature' };
  const signed = words.slice(0, -SIGNATURE_WORDS);
  const signature = Uint8Array.from(bech32.fromWords(words.slice(-SIGNATURE_WORDS))).slice(0, COMPACT_SIGNATURE_BYTES);
  const payeeKeyHex = payeeField(signed);
  if (payeeKeyHex === null) return { ok: true };
  if (payeeKeyHex !== recoveredKeyHex) return { ok: false, reason: 'the signature does not recover the payee key the request names' };
  const hash = createHash('sha256').update(Buffer.from(prefix, 'ascii')).update(wordsToPaddedBytes(signed)).digest();
  if (!(await verifyHashSignature(signature, hash, payeeKeyHex))) return { ok: false, reason: 'the signature does not verify against the payee key' };
  return { ok: true };
}

/** The `n` field as 66 hex, or null when the request does not name its payee. */
function payeeField(signed: readonly number[]): string | null {
  let at = TIMESTAMP_WORDS;
  while (at + 3 <= signed.length) {
    const type = signed[at]!;
    const length = signed[at + 1]! * 32 + signed[at + 2]!;
    const data = signed.slice(at + 3, at + 3 + length);
    if (type === PAYEE_FIELD_TYPE && length === PAYEE_FIELD_WORDS) return wordsToPaddedBytes(data).subarray(0, 33).toString('hex');
    at += 3 + length;
  }
  return null;
}

/** 5-bit words to bytes, zero-padding the last byte, as BOLT11's signing hash does. */
function wordsToPaddedBytes(words: readonly number[]): Buffer {
  const bytes: number[] = [];
  let accumulator = 0;
  let bits = 0;
  for (const word of words) {
    accumulator = ((accumulator << 5) | word) & 0xfff;
    bits += 5;
    if (bits >= 8) {
      bits -= 8;
      bytes.push((accumulator >> bits) & 0xff);
    }
  }
  if (bits > 0) bytes.push((accumulator << (8 - bits)) & 0xff);
  return Buffer.from(bytes);
}
