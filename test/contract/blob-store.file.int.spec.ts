// Runs the blob-store contract against the file adapter in a temporary folder, plus its size limit.

import { mkdtempSync } from 'node:fs';
import { writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { describe, expect, it } from 'vitest';
import { FileBlobStore } from '../../adapters/blobs/file-blob-store.js';
import { describeBlobStoreContract } from './blob-store.contract.js';

function openFileStore(maxBlobSizeBytes?: number) {
  const root = mkdtempSync(join(tmpdir(), 'trainledger-blobs-'));
  const store = new FileBlobStore(root, maxBlobSizeBytes);
  return Object.assign(store, {
    corrupt: (digest: string) => writeFile(join(root, digest.slice(0, 2), digest), 'tampered'),
  });
}

describeBlobStoreContract('file', async () => openFileStore());

describe('file blob store limits', () => {
  it('refuses a blob over its size limit and stores nothing', async () => {
    const store = openFileStore(1024);
    await expect(store.put(new Uint8Array(1025))).rejects.toMatchObject({ code: 'BLOB_TOO_LARGE' });
    expect((await store.put(new Uint8Array(1024))).sizeBytes).toBe(1024);
  });
});
