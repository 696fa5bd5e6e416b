// Escrow preimage derivation: deterministic per assignment, distinct across assignments and secrets, hash-checked.

import { mkdtempSync, rmSync, statSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import fc from 'fast-check';
import { describe, expect, it } from 'vitest';
import { PreimageDeriver, loadOrCreateCoordinatorSecret } from '../../adapters/lightning/preimages.js';

const secretA = Buffer.alloc(32, 1);
const secretB = Buffer.alloc(32, 2);

describe('PreimageDeriver', () => {
  it('derives the same preimage for the same assignment and secret, and its hash opens', () => {
    const first = new PreimageDeriver(secretA).escrow('asg-1');
    expect(new PreimageDeriver(secretA).escrow('asg-1')).toEqual(first);
    expect(PreimageDeriver.opens(first.preimageHex, first.paymentHash)).toBe(true);
    expect(PreimageDeriver.opens(first.preimageHex, new PreimageDeriver(secretA).escrow('asg-2').paymentHash)).toBe(false);
  });

  it('never repeats a payment hash across assignments or secrets', () => {
    fc.assert(
      fc.property(fc.uniqueArray(fc.string({ minLength: 1, maxLength: 40 }), { minLength: 2, maxLength: 30 }), (ids) => {
        const hashes = ids.flatMap((id) => [new PreimageDeriver(secretA).escrow(id).paymentHash, new PreimageDeriver(secretB).escrow(id).paymentHash]);
        expect(new Set(hashes).size).toBe(hashes.length);
      }),
    );
  });

  it('refuses a secret of the wrong size and malformed hex', () => {
    expect(() => new PreimageDeriver(Buffer.alloc(16))).toThrow(/32 bytes/);
    expect(PreimageDeriver.opens('zz', 'a'.repeat(64))).toBe(false);
  });

  it('creates the secret file once, private to its owner, and reloads it', () => {
    const dir = mkdtempSync(join(tmpdir(), 'trainledger-secret-'));
    try {
      const created = loadOrCreateCoordinatorSecret(dir);
      expect(created).toHaveLength(32);
      expect(statSync(join(dir, 'coordinator-secret')).mode & 0o777).toBe(0o600);
      expect(loadOrCreateCoordinatorSecret(dir).equals(created)).toBe(true);
    } finally {
      rmSync(dir, { recursive: true, force: true });
    }
  });
});
