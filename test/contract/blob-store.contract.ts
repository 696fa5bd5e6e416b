// The blob-store contract: every BlobStore adapter runs this suite.

import { createHash, randomBytes } from 'node:crypto';
import { describe, expect, it } from 'vitest';
import { BlobStoreError, type BlobStore } from '../../replay/ports/blob-store.js';

export function describeBlobStoreContract(name: string, open: () => Promise<BlobStore & { corrupt?: (digest: string) => Promise<void> }>): void {
  describe(`blob store contract [${name}]`, () => {
    it('names a blob by the SHA-256 of its bytes and gives the same bytes back', async () => {
      const store = await open();
      const bytes = randomBytes(4096);
      const ref = await store.put(bytes);
      expect(ref).toEqual({ digest: createHash('sha256').update(bytes).digest('hex'), sizeBytes: 4096 });
      expect(Buffer.from((await store.get(ref.digest))!)).toEqual(bytes);
      expect(await store.has(ref.digest)).toBe(true);
    });

    it('stores the same bytes once, and an empty blob too', async () => {
      const store = await open();
      const bytes = randomBytes(100);
      expect(await store.put(bytes)).toEqual(await store.put(bytes));
      const empty = await store.put(new Uint8Array(0));
      expect((await store.get(empty.digest))!.byteLength).toBe(0);
    });

    it('answers null for an unknown digest and refuses a malformed one', async () => {
      const store = await open();
      const unknown = createHash('sha256').update('never stored').digest('hex');
      expect(await store.get(unknown)).toBeNull();
      expect(await store.has(unknown)).toBe(false);
      await expect(store.get('../../etc/passwd')).rejects.toMatchObject({ code: 'BLOB_INVALID_DIGEST' });
      await expect(store.has('ABC')).rejects.toBeInstanceOf(BlobStoreError);
    });

    it('detects a blob whose stored bytes were changed', async () => {
      const store = await open();
      if (!store.corrupt) return expect(store.corrupt).toBeUndefined();
      const ref = await store.put(randomBytes(64));
      await store.corrupt(ref.digest);
      await expect(store.get(ref.digest)).rejects.toMatchObject({ code: 'BLOB_CORRUPT' });
    });
  });
}
