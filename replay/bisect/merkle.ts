// Merkle commitments to a training trace's checkpoint digests (RFC 6962 tree hashing), with inclusion proofs and their check.

// Leaves are SHA-256 digests written as 64 lowercase hex characters; a leaf's bytes are those 32
// bytes. As in RFC 6962 §2.1 (RFC 9162 §2.1.1), for leaves D[0..n), n ≥ 1:
//   MTH({d}) = SHA-256(0x00 ‖ d)
//   MTH(D[0..n)) = SHA-256(0x01 ‖ MTH(D[0..k)) ‖ MTH(D[k..n))), k the largest power of two < n.
// So an odd node is never duplicated or padded: the left subtree is always a full power of two
// and the rightmost, smaller subtree is hashed as it is, one level higher up.
// A proof is RFC 6962's audit path: sibling subtree hashes from the leaf up to the root, hex.
// Verification is RFC 9162 §2.1.3.2. The root binds the leaves but not the leaf count: callers must
// take leafCount from the commitment itself (a trace of H steps has H + 1 leaves), never from the prover.

import { createHash } from 'node:crypto';
import { DomainError } from '../../domain/errors.js';

/** Most inner training steps one commitment may cover. */
export const MAX_TRACE_STEPS = 4096;
/** A trace of H steps commits to H + 1 checkpoints, the base one included. */
export const MAX_MERKLE_LEAVES = MAX_TRACE_STEPS + 1;
/** Longest audit path: the tree height for the most leaves. */
export const MAX_MERKLE_PROOF_HASHES = bitLength(MAX_MERKLE_LEAVES - 1);

const DIGEST_PATTERN = /^[0-9a-f]{64}$/;
const LEAF_PREFIX = Buffer.from([0x00]);
const NODE_PREFIX = Buffer.from([0x01]);

function bitLength(value: number): number {
  return 32 - Math.clz32(value);
}

export function isDigestHex(value: unknown): value is string {
  return typeof value === 'string' && DIGEST_PATTERN.test(value);
}

/** Throws INVALID_DIGEST unless `value` is 64 lowercase hex characters (one spelling per digest, so equality is string equality). */
export function requireDigestHex(value: unknown, field: string): string {
  if (isDigestHex(value)) return value;
  throw new DomainError('INVALID_DIGEST', `${field} must be a SHA-256 digest as 64 lowercase hex characters`, { field });
}

function leafHash(leafHex: string): Buffer {
  return createHash('sha256').update(LEAF_PREFIX).update(Buffer.from(leafHex, 'hex')).digest();
}

function nodeHash(left: Buffer, right: Buffer): Buffer {
  return createHash('sha256').update(NODE_PREFIX).update(left).update(right).digest();
}

/** Largest power of two strictly below n (n ≥ 2). */
function splitPoint(n: number): number {
  return 2 ** (bitLength(n - 1) - 1);
}

function subtreeHash(leaves: readonly Buffer[], start: number, end: number): Buffer {
  if (end - start === 1) return leaves[start] as Buffer;
  const k = splitPoint(end - start);
  return nodeHash(subtreeHash(leaves, start, start + k), subtreeHash(leaves, start + k, end));
}

function hashedLeaves(leavesHex: readonly string[]): Buffer[] {
  if (!Array.isArray(leavesHex) || leavesHex.length < 1 || leavesHex.length > MAX_MERKLE_LEAVES) {
    throw new DomainError('INVALID_LEAF_COUNT', `a Merkle tree needs 1 to ${MAX_MERKLE_LEAVES} leaves`, { max: MAX_MERKLE_LEAVES });
  }
  return leavesHex.map((leaf, i) => leafHash(requireDigestHex(leaf, `leaves[${i}]`)));
}

export function merkleRoot(leavesHex: readonly string[]): string {
  const leaves = hashedLeaves(leavesHex);
  return subtreeHash(leaves, 0, leaves.length).toString('hex');
}

/** The audit path for leaf `index`: sibling subtree hashes, lowest first. */
export function merkleProof(leavesHex: readonly string[], index: number): string[] {
  const leaves = hashedLeaves(leavesHex);
  if (!Number.isSafeInteger(index) || index < 0 || index >= leaves.length) {
    throw new DomainError('INVALID_LEAF_INDEX', `leaf index must be a whole number from 0 to ${leaves.length - 1}; got ${String(index)}`, { field: 'index' });
  }
  const path: Buffer[] = [];
  let start = 0;
  let end = leaves.length;
  // Walk down from the root, collecting the sibling at each split; reversed at the end to run leaf-up.
  while (end - start > 1) {
    const mid = start + splitPoint(end - start);
    if (index < mid) {
      path.push(subtreeHash(leaves, mid, end));
      end = mid;
    } else {
      path.push(subtreeHash(leaves, start, mid));
      start = mid;
    }
  }
  return path.reverse().map((hash) => hash.toString('hex'));
}

export type MerkleProofCheck = { root: string; leafHex: string; index: number; leafCount: number; proof: readonly string[] };

/** True only if `proof` shows `leafHex` at `index` of a `leafCount`-leaf tree with this root; malformed input of any kind is false, never an exception. */
export function verifyMerkleProof(check: MerkleProofCheck): boolean {
  const { root, leafHex, index, leafCount, proof } = check;
  if (!isDigestHex(root) || !isDigestHex(leafHex)) return false;
  if (!Number.isSafeInteger(leafCount) || leafCount < 1 || leafCount > MAX_MERKLE_LEAVES) return false;
  if (!Number.isSafeInteger(index) || index < 0 || index >= leafCount) return false;
  if (!Array.isArray(proof) || proof.length > MAX_MERKLE_PROOF_HASHES || !proof.every(isDigestHex)) return false;
  let fn = index;
  let sn = leafCount - 1;
  let hash = leafHash(leafHex);
  for (const siblingHex of proof) {
    if (sn === 0) return false;
    const sibling = Buffer.from(siblingHex, 'hex');
    if (fn % 2 === 1 || fn === sn) {
      hash = nodeHash(sibling, hash);
      // A rightmost node with no right sibling at this level is carried up unchanged.
      while (fn % 2 === 0 && fn !== 0) {
        fn = Math.floor(fn / 2);
        sn = Math.floor(sn / 2);
      }
    } else {
      hash = nodeHash(hash, sibling);
    }
    fn = Math.floor(fn / 2);
    sn = Math.floor(sn / 2);
  }
  return sn === 0 && hash.toString('hex') === root;
}
