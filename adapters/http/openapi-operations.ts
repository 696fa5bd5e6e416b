// What the OpenAPI document says of each operation that its route schema cannot: id, summary, access, the 4xx its handler raises, bodies it leaves undeclared.

/** Who may call: the scopes listed are those of which any one suffices (see asStaff / asStaffOrContributor). */
export type Access =
  | Readonly<{ kind: 'public' }>
  | Readonly<{ kind: 'staff'; scopes: readonly string[] }>
  | Readonly<{ kind: 'contributor' }>
  /** Signed by the very key the body registers (proof of possession). */
  | Readonly<{ kind: 'self-registration' }>
  | Readonly<{ kind: 'staff-or-contributor'; scopes: readonly string[] }>;

export type Operation = Readonly<{
  /** Stable camelCase: client generators name their methods after it. */
  operationId: string;
  summary: string;
  description?: string;
  tag: string;
  access: Access;
  /**
   * 4xx the handler or the domain raises. Those the route's shape implies are added by the document builder: 400 for
   * any input, 401/403 for authentication, 400/409/422 for the Idempotency-Key, 413/415 for a body, 429 everywhere.
   */
  errors: readonly number[];
  ok: Readonly<{ status: number; description: string; content?: Record<string, { schema: unknown }>; headers?: Record<string, unknown> }>;
  /** The route reads raw bytes (no body schema for fastify to document): what they are. */
  binaryBody?: string;
  /** Served only in some configurations (the development network). */
  optional?: boolean;
}>;

const json = (schema: unknown) => ({ 'application/json': { schema } });
const str = { type: 'string' } as const;
const msat = { type: 'string', pattern: '^(0|[1-9][0-9]{0,20})$', description: 'millisatoshis, decimal digits' } as const;
const sha256 = { type: 'string', pattern: '^[0-9a-f]{64}$' } as const;
const anyObject = { type: 'object', additionalProperties: true } as const;
const nullableObject = { type: ['object', 'null'], additionalProperties: true } as const;
/** A projection's rows: objects whose amounts are msat strings; each projection documents its columns in the README. */
const rows = (description: string) => json({ type: 'array', description, items: anyObject });
const row = (description: string) => json({ ...anyObject, description });

const STEP_GRAPH = {
  type: 'object',
  required: ['model', 'graphDigest', 'learningRate', 'batchSize', 'parameters'],
  properties: { model: str, graphDigest: sha256, learningRate: { type: 'number' }, batchSize: { type: 'integer' }, parameters: { type: 'array', items: anyObject } },
  additionalProperties: false,
};
const SHARD = {
  type: 'object',
  required: ['shardId', 'digest', 'sampleCount', 'use'],
  properties: { shardId: str, digest: sha256, sampleCount: { type: 'integer' }, use: { enum: ['training', 'held-out'] } },
  additionalProperties: false,
};
const RUN = {
  type: 'object',
  required: ['runId', 'status', 'stepGraphDigest', 'step', 'initialCheckpointDigest', 'lastCheckpoint', 'shards', 'rewardPolicy', 'verificationPolicy', 'escrowPolicy', 'funded', 'reservedMsat', 'spentMsat'],
  properties: {
    runId: str,
    status: str,
    stepGraphDigest: sha256,
    step: { type: ['object', 'null'], properties: { model: str, learningRate: { type: 'number' }, batchSize: { type: 'integer' } } },
    initialCheckpointDigest: sha256,
    lastCheckpoint: nullableObject,
    shards: { type: 'array', items: { type: 'object', properties: { shardId: str, digest: sha256 } } },
    rewardPolicy: { type: 'object', properties: { baseRewardMsat: msat, maxBonusMsat: msat } },
    verificationPolicy: anyObject,
    escrowPolicy: anyObject,
    funded: { type: 'object', properties: { customerMsat: msat, subsidyMsat: msat } },
    reservedMsat: msat,
    spentMsat: msat,
  },
  additionalProperties: false,
};
const ASSIGNMENT = {
  type: 'object',
  required: ['assignmentId', 'status', 'terms', 'escrow', 'invoiceRefusals', 'payouts', 'reservation'],
  properties: {
    assignmentId: str,
    status: str,
    terms: anyObject,
    submission: nullableObject,
    acceptance: nullableObject,
    rejection: nullableObject,
    dispute: nullableObject,
    verdict: nullableObject,
    resolution: nullableObject,
    escrow: {
      type: 'object',
      required: ['paymentHash', 'status'],
      properties: { paymentHash: sha256, status: str, bolt11: { type: ['string', 'null'] }, preimageHex: { type: ['string', 'null'] }, feeMsat: { anyOf: [msat, { type: 'null' }] } },
    },
    invoiceRefusals: anyObject,
    payouts: { type: 'array', items: anyObject },
    reservation: { type: 'object', properties: { reservationId: str, worstCaseMsat: msat } },
  },
  additionalProperties: false,
};
const BINARY = { 'application/octet-stream': { schema: { type: 'string', format: 'binary' } } };

const staff = (...scopes: string[]): Access => ({ kind: 'staff', scopes });
const READ_RUN_SCOPES = ['runs:write', 'assignments:read', 'metrics:read', 'events:read'];
const APPENDED = (what: string) => ({ status: 201, description: `${what}: the events appended (or, for a retry, the ones it appended first).` });

const POSITION = { type: 'object', required: ['transactionId', 'globalPosition'], properties: { transactionId: str, globalPosition: str }, additionalProperties: false } as const;
const HEALTH = {
  type: 'object',
  required: ['status', 'engine', 'uptimeMs', 'logHead', 'projections'],
  properties: {
    status: { enum: ['ok', 'degraded'], description: 'degraded: a projector stopped (see `degraded`); the API and the log still work.' },
    engine: str,
    uptimeMs: { type: 'number' },
    logHead: POSITION,
    projections: { type: 'array', items: { type: 'object', required: ['projector', 'status', 'lagEvents', 'lagSeconds'], properties: { projector: str, status: { enum: ['running', 'stopped'] }, lagEvents: { type: 'number' }, lagSeconds: { type: 'number' }, stopped: anyObject }, additionalProperties: false } },
    degraded: { type: 'array', items: { type: 'object', required: ['projector', 'reason'], properties: { projector: str, reason: str }, additionalProperties: false } },
  },
  additionalProperties: false,
};

/** Keyed by `METHOD /path/{param}` as the document names operations. */
export const OPERATIONS: Readonly<Record<string, Operation>> = {
  'GET /health': {
    operationId: 'getHealth', summary: 'Liveness, the event store and projection lag', tag: 'operations', access: { kind: 'public' }, errors: [],
    description: 'A stopped projector answers 200 with status `degraded`, so a load balancer keeps routing here; 503 (in 5XX) means the event store is unreachable.',
    ok: { status: 200, description: 'The service, its log head and each projector.', content: json(HEALTH) },
  },
  'GET /metrics': {
    operationId: 'getPrometheusMetrics', summary: 'Prometheus metrics', tag: 'operations', access: { kind: 'public' }, errors: [],
    ok: { status: 200, description: 'Request counts by route pattern, the log head, projection lag, the process\'s resident memory and V8 heap, and uptime, in the Prometheus text format 0.0.4.', content: { 'text/plain': { schema: { type: 'string' } } } },
  },
  'POST /v1/runs': { operationId: 'openRun', summary: 'Open a run', tag: 'runs', access: staff('runs:write'), errors: [409, 422], ok: APPENDED('RunOpened') },
  'POST /v1/runs/{runId}/fundings': { operationId: 'fundRun', summary: 'Fund a run', tag: 'runs', access: staff('runs:write'), errors: [404, 409, 422], ok: APPENDED('RunFunded') },
  'POST /v1/runs/{runId}/checkpoints': { operationId: 'publishCheckpoint', summary: "Publish a run's checkpoint", tag: 'runs', access: staff('runs:write'), errors: [404, 409, 422], ok: APPENDED('CheckpointPublished') },
  'GET /v1/runs/{runId}': { operationId: 'getRun', summary: 'Read a run', tag: 'runs', access: { kind: 'staff-or-contributor', scopes: READ_RUN_SCOPES }, errors: [404], ok: { status: 200, description: "The run's definition, budget and last checkpoint.", content: json(RUN) } },
  'GET /v1/step-graphs': { operationId: 'listStepGraphs', summary: 'List the reference step graphs', tag: 'runs', access: { kind: 'public' }, errors: [], ok: { status: 200, description: 'The graphs a run may train.', content: json({ type: 'array', items: STEP_GRAPH }) } },
  'GET /v1/shards': { operationId: 'listShards', summary: 'List the data shards', tag: 'runs', access: { kind: 'public' }, errors: [], ok: { status: 200, description: 'The shards this server holds; a run declares training shards by these digests.', content: json({ type: 'array', items: SHARD }) } },
  'POST /v1/contributors': { operationId: 'registerContributor', summary: 'Register as a contributor', tag: 'contributors', access: { kind: 'self-registration' }, errors: [409, 422], ok: APPENDED('ContributorRegistered') },
  'GET /v1/dev/node-keys/{contributorId}': {
    operationId: 'getDevNodeKey', summary: "Read a simulated contributor's node key", tag: 'dev', access: { kind: 'public' }, errors: [], optional: true,
    ok: { status: 200, description: 'The regtest node key of a simulated wallet.', content: json({ type: 'object', required: ['contributorId', 'lightningNodePubkeyHex', 'network', 'realMoney'], properties: { contributorId: str, lightningNodePubkeyHex: { type: 'string', pattern: '^0[23][0-9a-f]{64}$' }, network: { const: 'regtest' }, realMoney: { const: false } }, additionalProperties: false }) },
  },
  'POST /v1/assignments': { operationId: 'assignWork', summary: 'Assign work (reserving budget)', tag: 'assignments', access: staff('assignments:write'), errors: [404, 409, 422], ok: APPENDED('BudgetReserved and WorkAssigned, with the escrow payment hash') },
  'GET /v1/assignments/{assignmentId}': { operationId: 'getAssignment', summary: 'Read an assignment', tag: 'assignments', access: { kind: 'staff-or-contributor', scopes: ['assignments:read', 'assignments:write', 'events:read'] }, errors: [404], ok: { status: 200, description: 'Terms, submission, verdicts, escrow and payouts.', content: json(ASSIGNMENT) } },
  'PUT /v1/assignments/{assignmentId}/invoice': {
    operationId: 'postEscrowInvoice', summary: 'Post the escrow hold invoice', tag: 'assignments', access: { kind: 'contributor' }, errors: [404, 409, 422],
    ok: { status: 200, description: 'The hold invoice is stored for the coordinator to pay.', content: json({ type: 'object', required: ['assignmentId', 'paymentHash', 'bolt11'], properties: { assignmentId: str, paymentHash: sha256, bolt11: str }, additionalProperties: false }) },
  },
  'PUT /v1/assignments/{assignmentId}/payout-invoices/{kind}': {
    operationId: 'postPayoutInvoice', summary: 'Post a bonus or compensation invoice', tag: 'assignments', access: { kind: 'contributor' }, errors: [404, 409, 422],
    ok: { status: 200, description: 'The invoice for this payout attempt is stored.', content: json({ type: 'object', required: ['assignmentId', 'kind', 'amountMsat', 'attempt'], properties: { assignmentId: str, kind: { enum: ['bonus', 'compensation'] }, amountMsat: msat, attempt: { type: 'integer' } }, additionalProperties: false }) },
  },
  'POST /v1/assignments/{assignmentId}/disputes': { operationId: 'disputeRejection', summary: 'Dispute a rejection', tag: 'assignments', access: { kind: 'contributor' }, errors: [404, 409, 422], ok: APPENDED('RejectionDisputed and ReplayRequested') },
  'POST /v1/assignments/{assignmentId}/verdicts': { operationId: 'recordVerdict', summary: 'Accept or reject a submission', tag: 'assignments', access: staff('verdicts:write'), errors: [404, 409, 422], ok: APPENDED('SubmissionAccepted or SubmissionRejected') },
  'POST /v1/assignments/{assignmentId}/gradient': {
    operationId: 'submitGradient', summary: 'Submit a gradient', tag: 'assignments', access: { kind: 'contributor' }, errors: [404, 409, 422], ok: APPENDED('GradientSubmitted'),
    binaryBody: "The gradient tensor in the encoding x-gradient-encoding names (dense-f32, or sparseloco). At most the run model's largest encoding: a larger body is 413.",
  },
  'GET /v1/ledger/accounts': { operationId: 'listLedgerAccounts', summary: 'List ledger account balances', tag: 'ledger', access: staff('ledger:read'), errors: [404], ok: { status: 200, description: 'Balances, pending and posted, per account.', content: rows('accounts') } },
  'GET /v1/ledger/trial-balance': { operationId: 'getTrialBalance', summary: 'Read the trial balance', tag: 'ledger', access: staff('ledger:read'), errors: [], ok: { status: 200, description: 'Σdebits and Σcredits, pending and posted.', content: row('trial balance') } },
  'GET /v1/ledger/assignments/{assignmentId}/transfers': { operationId: 'listAssignmentTransfers', summary: "List an assignment's transfers", tag: 'ledger', access: staff('ledger:read'), errors: [404], ok: { status: 200, description: 'Every transfer for the assignment.', content: rows('transfers') } },
  'GET /v1/ledger/top-contributors': { operationId: 'listTopContributors', summary: 'Rank contributors by msat paid', tag: 'ledger', access: staff('ledger:read'), errors: [404], ok: { status: 200, description: 'Contributors by msat posted to them in the window.' } },
  'GET /v1/rewards/contributors': { operationId: 'listContributorRewards', summary: "List contributors' rewards", tag: 'rewards', access: staff('rewards:read'), errors: [], ok: { status: 200, description: 'Rewards per contributor.', content: rows('contributor rewards') } },
  'GET /v1/rewards/contributors/{contributorId}': { operationId: 'getContributorRewards', summary: "Read a contributor's rewards", tag: 'rewards', access: { kind: 'staff-or-contributor', scopes: ['rewards:read'] }, errors: [404], ok: { status: 200, description: "One contributor's rewards (a contributor reads only their own).", content: row('contributor rewards') } },
  'GET /v1/rewards/runs': { operationId: 'listRunBudgets', summary: "List runs' budgets", tag: 'rewards', access: staff('rewards:read'), errors: [], ok: { status: 200, description: 'Budget per run.', content: rows('run budgets') } },
  'GET /v1/rewards/runs/{runId}': { operationId: 'getRunBudget', summary: "Read a run's budget", tag: 'rewards', access: staff('rewards:read'), errors: [404], ok: { status: 200, description: "One run's budget.", content: row('run budget') } },
  'GET /v1/metrics/periods': { operationId: 'listPeriodMetrics', summary: 'Metrics per period', tag: 'metrics', access: staff('metrics:read'), errors: [404], ok: { status: 200, description: 'Revenue, subsidy and throughput per hour, day or week.', content: rows('periods') } },
  'GET /v1/metrics/runs': { operationId: 'listRunMetrics', summary: 'Metrics per run', tag: 'metrics', access: staff('metrics:read'), errors: [], ok: { status: 200, description: 'Revenue, subsidy and throughput per run.', content: rows('runs') } },
  'GET /v1/disputes': { operationId: 'listDisputes', summary: 'List recent disputes', tag: 'disputes', access: staff('metrics:read'), errors: [404], ok: { status: 200, description: 'Disputes in the window, newest first.' } },
  'GET /v1/disputes/{assignmentId}': { operationId: 'getDispute', summary: "Read an assignment's dispute", tag: 'disputes', access: staff('metrics:read'), errors: [404], ok: { status: 200, description: 'The dispute with its replay recipe.' } },
  'GET /v1/events': {
    operationId: 'exportEvents', summary: 'Export the event log', tag: 'events', access: staff('events:read'), errors: [],
    ok: {
      status: 200,
      description: 'One JSON event per line, from `after`; empty when the log has nothing further.',
      content: { 'application/x-ndjson': { schema: { type: 'string' } } },
      headers: { 'x-next-after': { description: 'The checkpoint to pass as `after` for the next page.', schema: { type: 'string', pattern: '^[0-9]{1,20}:[0-9]{1,20}$' } } },
    },
  },
  'POST /v1/api-keys': {
    operationId: 'issueApiKey', summary: 'Issue a staff API key', tag: 'admin', access: staff('keys:write'), errors: [409, 422],
    ok: { status: 201, description: 'The key, shown this once (and to an idempotent retry).', content: json({ type: 'object', required: ['keyId', 'apiKey', 'role', 'scopes'], properties: { keyId: str, apiKey: str, role: str, scopes: { type: 'array', items: str } }, additionalProperties: false }) },
  },
  'PUT /v1/checkpoints': {
    operationId: 'uploadCheckpoint', summary: "Upload a checkpoint's bytes", tag: 'checkpoints', access: staff('runs:write'), errors: [422],
    binaryBody: "A reference model's checkpoint: float32 parameters, little-endian, in the model's order. Named by its SHA-256.",
    ok: { status: 201, description: 'Stored under its digest.', content: json({ type: 'object', required: ['digest', 'sizeBytes', 'model'], properties: { digest: sha256, sizeBytes: { type: 'integer' }, model: str }, additionalProperties: false }) },
  },
  'GET /v1/checkpoints/{digest}': { operationId: 'getCheckpoint', summary: "Download a checkpoint's bytes", tag: 'checkpoints', access: { kind: 'staff-or-contributor', scopes: ['runs:write', 'assignments:read', 'events:read'] }, errors: [404], ok: { status: 200, description: 'The checkpoint bytes.', content: BINARY } },
  'POST /v1/audits': {
    operationId: 'startAudit', summary: 'Start an audit of the log in the background', tag: 'audits', access: staff('events:read'), errors: [409],
    ok: { status: 202, description: 'The audit started; poll its Location.', content: json({ type: 'object', required: ['auditId', 'status'], properties: { auditId: str, status: str }, additionalProperties: true }), headers: { location: { description: 'Where the audit\'s status and report are: GET /v1/audits/{auditId}.', schema: { type: 'string' } } } },
  },
  'GET /v1/audits/{auditId}': {
    operationId: 'getAudit', summary: "An audit's status, progress and report", tag: 'audits', access: staff('events:read'), errors: [404],
    ok: { status: 200, description: 'running, finished (with clean and the report) or failed.', content: json({ type: 'object', required: ['auditId', 'status'], properties: { auditId: str, status: str }, additionalProperties: true }) },
  },
};
