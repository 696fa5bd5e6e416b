// A blob store over the blobs a bundle carries, held in memory up to a byte limit, optionally backed by another store.

import { createHash } from 'node:crypto';
import { BlobStoreError, type BlobRef, type BlobStore } from '../ports/blob-store.js';

export class MemoryBlobStore implements BlobStore {
  private readonly blobs = new Map<string, Uint8Array>();
  private totalBytes = 0;

  constructor(private readonly maxTotalBytes: number) {}

  get size(): number {
    return this.blobs.size;
  }

  /** False when the bytes would pass the limit; the caller names that as a problem. */
  add(digest: string, bytes: Uint8Array): boolean {
    if (this.blobs.has(digest)) return true;
    if (this.totalBytes + bytes.byteLength > this.maxTotalBytes) return false;
    this.blobs.set(digest, bytes);
    this.totalBytes += bytes.byteLength;
    return true;
  }

  hasSync(digest: string): boolean {
    return this.blobs.has(digest);
  }

  async put(bytes: Uint8Array): Promise<BlobRef> {
    const digest = createHash('sha256').update(bytes).digest('hex');
    if (!this.add(digest, bytes)) throw new BlobStoreError('BLOB_TOO_LARGE', `blobs held in memory would exceed ${this.maxTotalBytes} bytes`);
    return { digest, sizeBytes: bytes.byteLength };
  }

  async get(digest: string): Promise<Uint8Array | null> {
    return this.blobs.get(digest) ?? null;
  }

  async has(digest: string): Promise<boolean> {
    return this.blobs.has(digest);
  }

  /** This store first, then `other` (a blob folder given on the command line). */
  withFallback(other: BlobStore): BlobStore {
    return {
      put: (bytes) => other.put(bytes),
      get: async (digest) => (await this.get(digest)) ?? other.get(digest),
      has: async (digest) => (await this.has(digest)) || other.has(digest),
    };
  }
}
