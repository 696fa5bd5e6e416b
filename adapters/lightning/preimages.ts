// Escrow preimages derived from a coordinator secret, so no unreleased preimage is ever stored in the log or a table.

import { createHash, createHmac, randomBytes, timingSafeEqual } from 'node:crypto';
import { chmodSync, existsSync, readFileSync, writeFileSync, renameSync } from 'node:fs';
import { join } from 'node:path';

/** 32 bytes: HMAC-SHA256's output size and the preimage size Lightning uses. */
export const COORDINATOR_SECRET_BYTES = 32;
const SECRET_FILE = 'coordinator-secret';

export type EscrowSecret = Readonly<{ paymentHash: string; preimageHex: string }>;

/**
 * preimage = HMAC-SHA256(secret, "trainledger/escrow/v1/" + assignmentId), hash = SHA-256(preimage).
 * The domain prefix keeps these preimages from ever colliding with another use of the secret.
 */
export class PreimageDeriver {
  private readonly secret: Buffer;

  constructor(secret: Uint8Array) {
    if (secret.length !== COORDINATOR_SECRET_BYTES) throw new Error(`the coordinator secret must be ${COORDINATOR_SECRET_BYTES} bytes, got ${secret.length}`);
    this.secret = Buffer.from(secret);
  }

  escrow(assignmentId: string): EscrowSecret {
    if (typeof assignmentId !== 'string' || assignmentId.length === 0) throw new Error('assignmentId is required to derive an escrow preimage');
    const preimage = createHmac('sha256', this.secret).update(`trainledger/escrow/v1/${assignmentId}`).digest();
    return { preimageHex: preimage.toString('hex'), paymentHash: createHash('sha256').update(preimage).digest('hex') };
  }

  /** Whether `preimageHex` opens `paymentHash`, in constant time. */
  static opens(preimageHex: string, paymentHash: string): boolean {
    if (!/^[0-9a-f]{64}$/.test(preimageHex) || !/^[0-9a-f]{64}$/.test(paymentHash)) return false;
    const digest = createHash('sha256').update(Buffer.from(preimageHex, 'hex')).digest();
    return timingSafeEqual(digest, Buffer.from(paymentHash, 'hex'));
  }
}

/**
 * Loads the coordinator secret from `<dataDir>/coordinator-secret` (hex), creating it with
 * mode 0600 on first start. Losing it loses the ability to release held escrows: back it up.
 */
export function loadOrCreateCoordinatorSecret(dataDir: string): Buffer {
  const path = join(dataDir, SECRET_FILE);
  if (existsSync(path)) {
    const hex = readFileSync(path, 'utf8').trim();
    if (!/^[0-9a-f]{64}$/.test(hex)) throw new Error(`${path} must hold ${COORDINATOR_SECRET_BYTES} bytes as 64 lowercase hex characters`);
    return Buffer.from(hex, 'hex');
  }
  const secret = randomBytes(COORDINATOR_SECRET_BYTES);
  const temporary = `${path}.tmp`;
  writeFileSync(temporary, `${secret.toString('hex')}\n`, { mode: 0o600 });
  chmodSync(temporary, 0o600);
  renameSync(temporary, path);
  return secret;
}
