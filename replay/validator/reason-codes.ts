// Stable reason codes a validator rejects a submission with, each naming the check that failed.

import { GRADIENT_DECODE_CODES } from '../encoding/gradient-decode-error.js';

export const VALIDATION_REASON_CODES = [
  /** Integrity: the bytes the contributor uploaded are not in the blob store. */
  'GRADIENT_MISSING',
  /** Integrity: the stored bytes do not hash to the digest the submission declared, or their size differs. */
  'GRADIENT_DIGEST_MISMATCH',
  ...GRADIENT_DECODE_CODES,
  /** Integrity: the L2 norm exceeds the run's verification policy. */
  'GRADIENT_NORM_OUT_OF_BOUNDS',
  /** Integrity: the same bytes were already submitted for another assignment of the run. */
  'GRADIENT_COPIED',
  /** Quality: applying the gradient does not lower the held-out loss by the policy's minimum. */
  'QUALITY_NO_IMPROVEMENT',
  /** Replay: the gradient points the right way but its magnitude is not the step's. */
  'REPLAY_SCALED_GRADIENT',
  /** Replay: the gradient is the step computed from an older checkpoint than the one assigned. */
  'REPLAY_STALE_CHECKPOINT',
  /** Replay: the gradient is not the step at all. */
  'REPLAY_MISMATCH',
] as const;

export type ValidationReasonCode = (typeof VALIDATION_REASON_CODES)[number];
