// Development-only secp256k1 keys derived from one seed (a simulation: these keys never guard real money).

import { createHmac, randomBytes } from 'node:crypto';
import * as secp from '@noble/secp256k1';

/** 32 bytes: the size of a secp256k1 secret key and of HMAC-SHA256's output. */
export const DEV_SEED_BYTES = 32;
/** Bounds re-derivation when an HMAC output is not a valid scalar (odds ~2^-128 per try). */
const MAX_KEY_DERIVATION_TRIES = 16;
const KEY_DOMAIN = 'trainledger/dev-lightning/v1/key/';
const SECRET_DOMAIN = 'trainledger/dev-lightning/v1/secret/';

export type DevKey = Readonly<{ secretKey: Uint8Array; publicKeyHex: string }>;

export function randomDevSeed(): Uint8Array {
  return new Uint8Array(randomBytes(DEV_SEED_BYTES));
}

/**
 * Every key and every wallet-chosen secret is an HMAC of the seed under its own label, so
 * keeping the seed (in dev-lightning.json) is enough to restore every key after a reopen.
 */
export class DevKeyring {
  private readonly seed: Buffer;
  private readonly keys = new Map<string, DevKey>();

  constructor(seed: Uint8Array) {
    if (seed.length !== DEV_SEED_BYTES) throw new Error(`the dev Lightning seed must be ${DEV_SEED_BYTES} bytes, got ${seed.length}`);
    this.seed = Buffer.from(seed);
  }

  coordinator(): DevKey {
    return this.key('coordinator');
  }

  wallet(name: string): DevKey {
    return this.key(`wallet/${name}`);
  }

  /** A 32-byte secret (preimage, payment secret) the simulated wallet "chose", as hex. */
  secretHex(label: string): string {
    return createHmac('sha256', this.seed).update(SECRET_DOMAIN + label).digest('hex');
  }

  private key(role: string): DevKey {
    const cached = this.keys.get(role);
    if (cached) return cached;
    for (let attempt = 0; attempt < MAX_KEY_DERIVATION_TRIES; attempt += 1) {
      const candidate = new Uint8Array(createHmac('sha256', this.seed).update(`${KEY_DOMAIN}${role}/${attempt}`).digest());
      if (!secp.utils.isValidSecretKey(candidate)) continue;
      const key = { secretKey: candidate, publicKeyHex: Buffer.from(secp.getPublicKey(candidate, true)).toString('hex') };
      this.keys.set(role, key);
      return key;
    }
    throw new Error(`could not derive a valid secp256k1 key for ${role}`);
  }
}

/** A 64-byte compact, low-S ECDSA signature over an already-hashed message (BOLT11 signs sha256 of the request). */
export async function signHash(hash: Uint8Array, secretKey: Uint8Array): Promise<Uint8Array> {
  return secp.signAsync(hash, secretKey, { prehash: false });
}

/** Whether a compact signature over `hash` verifies against a 33-byte compressed key; low-S only, as BOLT11 requires. */
export async function verifyHashSignature(signature: Uint8Array, hash: Uint8Array, publicKeyHex: string): Promise<boolean> {
  try {
    return await secp.verifyAsync(signature, hash, Buffer.from(publicKeyHex, 'hex'), { prehash: false, lowS: true });
  } catch {
    return false;
  }
}
