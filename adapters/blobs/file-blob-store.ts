// Content-addressed blobs as files under a folder: <root>/<first two hex>/<digest>, written atomically, verified on read.

import { randomUUID } from 'node:crypto';
import { mkdir, open, readFile, rename, stat } from 'node:fs/promises';
import { join } from 'node:path';
import { sha256Hex } from '../../replay/model/checkpoint.js';
import { BlobStoreError, type BlobRef, type BlobStore } from '../../replay/ports/blob-store.js';

/** Largest blob accepted: a checkpoint or gradient of the reference models is a few hundred KiB. */
export const DEFAULT_MAX_BLOB_SIZE_BYTES = 64 * 1024 * 1024;

const DIGEST_PATTERN = /^[0-9a-f]{64}$/;

export class FileBlobStore implements BlobStore {
  constructor(
    private readonly rootDir: string,
    private readonly maxBlobSizeBytes = DEFAULT_MAX_BLOB_SIZE_BYTES,
  ) {}

  async put(bytes: Uint8Array): Promise<BlobRef> {
    if (bytes.byteLength > this.maxBlobSizeBytes) {
      throw new BlobStoreError('BLOB_TOO_LARGE', `blob of ${bytes.byteLength} bytes exceeds the ${this.maxBlobSizeBytes}-byte limit`);
    }
    const digest = sha256Hex(bytes);
    const path = this.pathOf(digest);
    if (await exists(path)) return { digest, sizeBytes: bytes.byteLength };
    const dir = join(this.rootDir, digest.slice(0, 2));
    await mkdir(dir, { recursive: true });
    // Write, flush, rename, flush the folder: a reader never sees half a blob, a crash leaves only a
    // stray temp file, and once put returns the bytes survive a power loss. The log names a blob only
    // after put returns, and its commit is durable, so the blob must be at least as durable.
    const temporary = `${path}.${randomUUID()}.tmp`;
    const file = await open(temporary, 'wx');
    try {
      await file.writeFile(bytes);
      await file.sync();
    } finally {
      await file.close();
    }
    await rename(temporary, path);
    await syncDirectory(dir);
    return { digest, sizeBytes: bytes.byteLength };
  }

  async get(digest: string): Promise<Uint8Array | null> {
    const path = this.pathOf(requireDigest(digest));
    let bytes: Buffer;
    try {
      bytes = await readFile(path);
    } catch (error) {
      if ((error as NodeJS.ErrnoException).code === 'ENOENT') return null;
      throw error;
    }
    // A file edited on disk must not pass for the blob it is named after.
    if (sha256Hex(bytes) !== digest) throw new BlobStoreError('BLOB_CORRUPT', `blob ${digest} on disk does not hash to its name; restore it from a replica`);
    return new Uint8Array(bytes.buffer, bytes.byteOffset, bytes.byteLength);
  }

  async has(digest: string): Promise<boolean> {
    return exists(this.pathOf(requireDigest(digest)));
  }

  private pathOf(digest: string): string {
    return join(this.rootDir, digest.slice(0, 2), digest);
  }
}

function requireDigest(digest: string): string {
  if (!DIGEST_PATTERN.test(digest)) throw new BlobStoreError('BLOB_INVALID_DIGEST', `blob digest must be 64 lowercase hex characters, got ${JSON.stringify(digest).slice(0, 80)}`);
  return digest;
}

/** Makes a rename in `dir` durable: the new name lives in the folder's own blocks. */
async function syncDirectory(dir: string): Promise<void> {
  const handle = await open(dir, 'r');
  try {
    await handle.sync();
  } finally {
    await handle.close();
  }
}

async function exists(path: string): Promise<boolean> {
  try {
    await stat(path);
    return true;
  } catch (error) {
    if ((error as NodeJS.ErrnoException).code === 'ENOENT') return false;
    throw error;
  }
}
