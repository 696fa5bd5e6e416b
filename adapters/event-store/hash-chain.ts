// The stream hash chain, kept where the stores import it from; the pure functions live in domain/hash-chain.ts so offline verifiers share them.

export { GENESIS_HASH, chainHash, sameEventContent, type ChainedContent } from '../../domain/hash-chain.js';
