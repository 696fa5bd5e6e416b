// The blob-store port: content-addressed bytes (gradients, checkpoints, step graphs) named by their SHA-256.

/** A blob's name is the lowercase hex SHA-256 of its bytes; nothing else can be stored under it. */
export type BlobRef = Readonly<{ digest: string; sizeBytes: number }>;

export interface BlobStore {
  /** Stores the bytes; storing the same bytes twice is a no-op that returns the same ref. */
  put(bytes: Uint8Array): Promise<BlobRef>;
  /** The bytes, checked against their digest on the way out; null when no such blob exists. */
  get(digest: string): Promise<Uint8Array | null>;
  has(digest: string): Promise<boolean>;
}

export class BlobStoreError extends Error {
  override readonly name = 'BlobStoreError';
  constructor(
    /** Stable code: BLOB_TOO_LARGE, BLOB_INVALID_DIGEST, BLOB_CORRUPT. */
    readonly code: 'BLOB_TOO_LARGE' | 'BLOB_INVALID_DIGEST' | 'BLOB_CORRUPT',
    message: string,
  ) {
    super(message);
  }
}
