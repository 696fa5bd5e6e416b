// Re-derives a stream's hash chain from its rows; the check itself is pure and lives in domain/hash-chain.ts.

export { verifyChain } from '../../domain/hash-chain.js';
