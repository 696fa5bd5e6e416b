// Domain errors: every refused transition carries a stable code and a message a person can act on.

export class DomainError extends Error {
  override readonly name = 'DomainError';
  constructor(
    /** Stable, SCREAMING_SNAKE code; clients branch on it, never on the message. */
    readonly code: string,
    message: string,
    readonly details: Readonly<Record<string, unknown>> = {},
  ) {
    super(message);
  }
}

/** Throws a DomainError unless `condition` holds; used where a rule is decided. */
export function require_(condition: boolean, code: string, message: string, details?: Record<string, unknown>): asserts condition {
  if (!condition) throw new DomainError(code, message, details);
}

/**
 * Programmer-error assertion (TigerBeetle style): an invariant that the code itself
 * guarantees. Failing it is a bug to stop on, never a user error.
 */
export function invariant(condition: boolean, message: string): asserts condition {
  if (!condition) throw new InvariantViolation(message);
}

export class InvariantViolation extends Error {
  override readonly name = 'InvariantViolation';
}
