// Every size and count the event store accepts, named once with its unit.

export const EVENT_STORE_LIMITS = Object.freeze({
  maxEventsPerAppend: 1_000,
  maxEventDataBytes: 256 * 1024,
  maxStreamIdLength: 200,
  maxEventTypeLength: 128,
  maxReadCount: 10_000,
  defaultReadCount: 1_000,
  maxIdempotencyKeyLength: 200,
});
