// Unit tests for the shared pieces: id and key validators, limits, and the event catalog.

import { describe, expect, it } from 'vitest';
import {
  DOMAIN_EVENT_TYPES,
  EVENT_CATALOG,
  isDomainEventType,
  isId,
  isStorableText,
  MAX_ID_CHARS,
  requireEd25519PublicKeyHex,
  requireId,
  requireNodePubkeyHex,
  requirePaymentHashHex,
  requirePreimageHex,
  requireSha256Hex,
  requireText,
  requireWireSafeObject,
  sameContent,
} from '../../domain/index.js';
import { expectCode, hex64 } from './fixtures.js';

describe('ids', () => {
  it('accepts ids of safe characters up to the limit', () => {
    expect(requireId('run.1:a_b-C', 'id')).toBe('run.1:a_b-C');
    expect(isId('x'.repeat(MAX_ID_CHARS))).toBe(true);
    expect(isId('x'.repeat(MAX_ID_CHARS + 1))).toBe(false);
    for (const bad of ['', 'a b', 'a/b', 'é', 42, null]) expectCode(() => requireId(bad, 'id'), 'INVALID_ID');
  });

  it('checks digests, keys, payment hashes and preimages by shape', () => {
    const digest = hex64('x');
    expect(requireSha256Hex(digest, 'd')).toBe(digest);
    expectCode(() => requireSha256Hex(digest.toUpperCase(), 'd'), 'INVALID_DIGEST');
    expectCode(() => requireSha256Hex(`${digest}0`, 'd'), 'INVALID_DIGEST');
    expect(requireEd25519PublicKeyHex(digest, 'k')).toBe(digest);
    expectCode(() => requireEd25519PublicKeyHex('00', 'k'), 'INVALID_SIGNING_KEY');
    expect(requireNodePubkeyHex(`03${digest}`, 'n')).toBe(`03${digest}`);
    expectCode(() => requireNodePubkeyHex(`02${digest}0`, 'n'), 'INVALID_NODE_PUBKEY');
    expectCode(() => requirePaymentHashHex('g'.repeat(64)), 'INVALID_PAYMENT_HASH');
    expectCode(() => requirePreimageHex(undefined), 'INVALID_PREIMAGE');
  });
});

describe('free-form objects', () => {
  it('copies wire-safe objects and compares content regardless of key order', () => {
    const copy = requireWireSafeObject({ b: [1, { c: null }], a: 'x', rewardMsat: 5n }, 'evidence', 1000);
    expect(copy).toEqual({ b: [1, { c: null }], a: 'x', rewardMsat: 5n });
    expect(sameContent({ a: 1, b: 2n }, { b: 2n, a: 1 })).toBe(true);
    expect(sameContent({ a: 1 }, { a: 2 })).toBe(false);
  });

  it('refuses values the wire cannot carry exactly', () => {
    for (const bad of [null, 'x', [1], new Date(0), { f: () => 1 }, { u: undefined }, { m: new Map() }, { big: 1n }]) {
      expectCode(() => requireWireSafeObject(bad, 'evidence', 1000), 'INVALID_OBJECT');
    }
  });
});

describe('storable text', () => {
  it('keeps any well-formed text, pairs of surrogates (emoji) included', () => {
    for (const ok of ['plain', 'héllo wörld', '\u{1F600} grin', '中文', '\uD83D\uDE00']) {
      expect(isStorableText(ok)).toBe(true);
      expect(requireText(ok, 'reason', 100)).toBe(ok);
    }
  });

  it('refuses NUL and an unpaired surrogate, alone or in the middle, in free text and in free-form objects (values and keys)', () => {
    for (const bad of ['\uD800', 'a\uD800b', '\uDC00', 'a\uDC00', '\uDE00\uD83D', 'nul\u0000inside']) {
      expect(isStorableText(bad)).toBe(false);
      expectCode(() => requireText(bad, 'reason', 100), 'INVALID_TEXT');
      expectCode(() => requireWireSafeObject({ note: bad }, 'evidence', 1000), 'INVALID_OBJECT');
      expectCode(() => requireWireSafeObject({ nested: [{ [bad]: 1 }] }, 'evidence', 1000), 'INVALID_OBJECT');
    }
  });
});

describe('event catalog', () => {
  it('lists every event once, with its aggregate and schema version 1', () => {
    expect(DOMAIN_EVENT_TYPES).toHaveLength(30);
    const count = (aggregate: string) => Object.values(EVENT_CATALOG).filter((entry) => entry.aggregate === aggregate).length;
    expect([count('run'), count('contributor'), count('assignment'), count('invoice')]).toEqual([6, 2, 12, 10]);
    for (const entry of Object.values(EVENT_CATALOG)) {
      expect(entry.schemaVersion).toBe(1);
      expect(entry.description.length).toBeGreaterThan(20);
    }
  });

  it('recognises catalogued types only', () => {
    expect(isDomainEventType('InvoiceSettled')).toBe(true);
    expect(isDomainEventType('toString')).toBe(false);
    expect(isDomainEventType('Nope')).toBe(false);
    expect(isDomainEventType(7)).toBe(false);
    expect(Object.isFrozen(EVENT_CATALOG)).toBe(true);
  });
});
