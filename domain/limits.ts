// Every bound the domain enforces, named once with its unit, so adapters and tests read the same numbers.

/** Longest id (run, contributor, assignment, shard, ...) in characters. */
export const MAX_ID_CHARS = 128;

/** Most data shards one run may declare. */
export const MAX_SHARDS_PER_RUN = 4096;

/** Most reservations a run may hold open at once (in-flight assignments); bounds state size. */
export const MAX_OPEN_RESERVATIONS_PER_RUN = 100_000;

/** Largest gradient body a contributor may submit: 64 MiB. */
export const MAX_GRADIENT_SIZE_BYTES = 64 * 1024 * 1024;

/** Escrow CLTV delta bounds in blocks: 18 is LND's floor, 2016 is about two weeks. */
export const MIN_CLTV_DELTA_BLOCKS = 18;
export const MAX_CLTV_DELTA_BLOCKS = 2016;

/** Hold-invoice expiry bounds in seconds (one minute to one day). */
export const MIN_INVOICE_EXPIRY_SEC = 60;
export const MAX_INVOICE_EXPIRY_SEC = 86_400;

const DAY_MS = 86_400_000;

/** Latest instant the clock may report: the end of year 9999, so sums of times stay exact integers. */
export const MAX_TIMESTAMP_MS = 253_402_300_799_999;

/** Longest dispute window a run may grant. */
export const MAX_DISPUTE_WINDOW_MS = 30 * DAY_MS;

/** Longest an assignment may run before it expires (policy timeout and per-assignment deadline). */
export const MAX_ASSIGNMENT_TIMEOUT_MS = 7 * DAY_MS;

/** Longest compute time a contributor may claim for one step. */
export const MAX_COMPUTE_TIME_MS = 7 * DAY_MS;

/** Longest a replay job may report having run. */
export const MAX_REPLAY_DURATION_MS = DAY_MS;

/** Furthest in the future an invoice may expire, measured from when it is opened. */
export const MAX_INVOICE_LIFETIME_MS = 30 * DAY_MS;

/** Highest training step number; far beyond any run, small enough to stay an exact JSON number. */
export const MAX_TRAINING_STEP = 1_000_000_000_000;

/** Highest batch index within a shard. */
export const MAX_BATCH_INDEX = 4_294_967_295;

/** Seeds are unsigned 64-bit integers written as decimal digits. */
export const MAX_SEED = 18_446_744_073_709_551_615n;

/** Longest free-text reason (dispute reason, cancel reason, close reason) in characters. */
export const MAX_REASON_CHARS = 1024;

/** Longest machine code (rejection reason code, payment failure code) in characters. */
export const MAX_CODE_CHARS = 64;

/** Longest short label (execution provider, device name) in characters. */
export const MAX_LABEL_CHARS = 256;

/** Largest free-form evidence/recipe/tolerance object, measured as canonical JSON characters. */
export const MAX_EVIDENCE_JSON_CHARS = 65_536;

/**
 * Deepest nesting inside a free-form object. The wire codec refuses payloads deeper than
 * MAX_WIRE_DEPTH (16) and an event wraps such an object two levels down (event.data.evidence),
 * so 8 leaves room for envelopes around the event.
 */
export const MAX_EVIDENCE_DEPTH = 8;

/** Most named numbers in a replay metric. */
export const MAX_METRIC_ENTRIES = 64;

/** Longest BOLT11 payment request in characters. */
export const MAX_BOLT11_CHARS = 2048;

/** Highest block height an escrow's CLTV expiry may name; Bitcoin will not reach it for centuries. */
export const MAX_BLOCK_HEIGHT = 10_000_000;

/**
 * How long a bonus or compensation may wait for the contributor's invoice before it is abandoned
 * and its budget released: a week, long enough for an offline contributor, short enough that no
 * reservation stays open for ever.
 */
export const PAYOUT_CLAIM_WINDOW_MS = 7 * DAY_MS;
