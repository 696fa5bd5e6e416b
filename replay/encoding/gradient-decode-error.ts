// The one error a gradient decoder may throw: a stable reason code clients branch on, plus a human detail.

/** Every reason an untrusted gradient body is refused; stable, so audit records and clients can branch on them. */
export const GRADIENT_DECODE_CODES = [
  'GRADIENT_UNKNOWN_ENCODING',
  'GRADIENT_EMPTY',
  'GRADIENT_TOO_LARGE',
  'GRADIENT_TRUNCATED',
  'GRADIENT_TRAILING_BYTES',
  'GRADIENT_BAD_MAGIC',
  'GRADIENT_BAD_VERSION',
  'GRADIENT_SHAPE_MISMATCH',
  'GRADIENT_BAD_CHUNKING',
  'GRADIENT_INDEX_OUT_OF_RANGE',
  'GRADIENT_INDEX_NOT_INCREASING',
  'GRADIENT_BAD_PADDING',
  'GRADIENT_NON_FINITE',
] as const;

export type GradientDecodeCode = (typeof GRADIENT_DECODE_CODES)[number];

export class GradientDecodeError extends Error {
  override readonly name = 'GradientDecodeError';
  constructor(
    /** Stable, SCREAMING_SNAKE reason; never parse the message instead. */
    readonly code: GradientDecodeCode,
    /** Where and why, for the person reading a refusal (byte offsets, tensor names). */
    readonly detail: string,
  ) {
    super(`${code}: ${detail}`);
  }
}

export function isGradientDecodeCode(value: unknown): value is GradientDecodeCode {
  return typeof value === 'string' && (GRADIENT_DECODE_CODES as readonly string[]).includes(value);
}
