// The TypeScript client SDK: staff calls with a bearer key, contributor calls signed per RFC 9421; problems become typed errors.

import { randomBytes, randomUUID, type KeyObject } from 'node:crypto';
import { signRequest } from '../http/auth/http-signature.js';

export type ClientOptions = Readonly<{
  baseUrl: string;
  nowMs?: () => number;
  /** Per-request timeout. */
  timeoutMs?: number;
}>;

/** Calls that change state take an idempotency key; retrying with the same key can never apply twice. */
export type Idempotent = Readonly<{ idempotencyKey?: string }>;

export const DEFAULT_CLIENT_TIMEOUT_MS = 30_000;

export class TrainLedgerApiError extends Error {
  override readonly name = 'TrainLedgerApiError';
  constructor(
    readonly status: number,
    readonly code: string,
    readonly detail: string,
    readonly body: unknown,
  ) {
    super(`${status} ${code}: ${detail}`);
  }
}

type Auth = Readonly<{ kind: 'staff'; apiKey: string }> | Readonly<{ kind: 'contributor'; contributorId: string; privateKey: KeyObject | Uint8Array }>;

type Call = Readonly<{ method: 'GET' | 'POST' | 'PUT'; path: string; json?: unknown; bytes?: Uint8Array; headers?: Record<string, string>; idempotencyKey?: string; raw?: boolean }>;

class Transport {
  constructor(
    private readonly options: ClientOptions,
    private readonly auth: Auth,
  ) {}

  async call<T>(call: Call): Promise<T> {
    const body = call.bytes ?? (call.json === undefined ? new Uint8Array(0) : Buffer.from(JSON.stringify(call.json)));
    const headers: Record<string, string> = { ...call.headers };
    if (call.json !== undefined) headers['content-type'] = 'application/json';
    if (call.bytes) headers['content-type'] = 'application/octet-stream';
    if (call.method !== 'GET') headers['idempotency-key'] = call.idempotencyKey ?? randomUUID();
    if (this.auth.kind === 'staff') headers.authorization = `Bearer ${this.auth.apiKey}`;
    else {
      const nowMs = this.options.nowMs?.() ?? Date.now();
      Object.assign(headers, signRequest({ method: call.method, path: call.path, body, keyId: this.auth.contributorId, privateKey: this.auth.privateKey, createdSec: Math.floor(nowMs / 1000), nonce: randomBytes(18).toString('base64url') }));
    }
    const response = await fetch(new URL(call.path, this.options.baseUrl), {
      method: call.method,
      headers,
      ...(call.method === 'GET' ? {} : { body }),
      signal: AbortSignal.timeout(this.options.timeoutMs ?? DEFAULT_CLIENT_TIMEOUT_MS),
    });
    if (!response.ok) throw await problemOf(response);
    if (call.raw) return new Uint8Array(await response.arrayBuffer()) as T;
    const type = response.headers.get('content-type') ?? '';
    // NDJSON is text to the caller: one JSON document per line, not one document.
    const isJson = /^application\/(json|[a-z.+-]+\+json)\b/.test(type);
    return (isJson ? await response.json() : await response.text()) as T;
  }
}

async function problemOf(response: Response): Promise<TrainLedgerApiError> {
  const text = await response.text();
  try {
    const problem = JSON.parse(text) as { code?: string; detail?: string };
    return new TrainLedgerApiError(response.status, problem.code ?? 'UNKNOWN', problem.detail ?? text, problem);
  } catch {
    return new TrainLedgerApiError(response.status, 'UNKNOWN', text.slice(0, 500), text);
  }
}

const enc = encodeURIComponent;

/** Coordinator, validator, analyst and auditor calls; each needs its key to hold the route's scope. */
export class StaffClient {
  private readonly http: Transport;
  constructor(options: ClientOptions, apiKey: string) {
    this.http = new Transport(options, { kind: 'staff', apiKey });
  }
  stepGraphs = () => this.http.call<any[]>({ method: 'GET', path: '/v1/step-graphs' });
  uploadCheckpoint = (bytes: Uint8Array, o: Idempotent = {}) => this.http.call<{ digest: string; sizeBytes: number; model: string }>({ method: 'PUT', path: '/v1/checkpoints', bytes, ...o });
  openRun = (run: Record<string, unknown>, o: Idempotent = {}) => this.http.call<any>({ method: 'POST', path: '/v1/runs', json: run, ...o });
  fundRun = (runId: string, funding: { fundingId: string; source: 'customer' | 'subsidy'; amountMsat: string }, o: Idempotent = {}) =>
    this.http.call<any>({ method: 'POST', path: `/v1/runs/${enc(runId)}/fundings`, json: funding, ...o });
  publishCheckpoint = (runId: string, checkpoint: { checkpointId: string; step: number; digest: string }, o: Idempotent = {}) =>
    this.http.call<any>({ method: 'POST', path: `/v1/runs/${enc(runId)}/checkpoints`, json: checkpoint, ...o });
  getRun = (runId: string) => this.http.call<any>({ method: 'GET', path: `/v1/runs/${enc(runId)}` });
  assign = (assignment: Record<string, unknown>, o: Idempotent = {}) => this.http.call<any>({ method: 'POST', path: '/v1/assignments', json: assignment, ...o });
  getAssignment = (assignmentId: string) => this.http.call<any>({ method: 'GET', path: `/v1/assignments/${enc(assignmentId)}` });
  postVerdict = (assignmentId: string, verdict: Record<string, unknown>, o: Idempotent = {}) =>
    this.http.call<any>({ method: 'POST', path: `/v1/assignments/${enc(assignmentId)}/verdicts`, json: verdict, ...o });
  issueKey = (key: { keyId: string; role: string; label: string }, o: Idempotent = {}) => this.http.call<{ keyId: string; apiKey: string; role: string; scopes: string[] }>({ method: 'POST', path: '/v1/api-keys', json: key, ...o });
  ledgerAccounts = (q: { runId?: string; contributorId?: string } = {}) => this.http.call<any[]>({ method: 'GET', path: `/v1/ledger/accounts${query(q)}` });
  trialBalance = () => this.http.call<any>({ method: 'GET', path: '/v1/ledger/trial-balance' });
  contributorRewards = () => this.http.call<any[]>({ method: 'GET', path: '/v1/rewards/contributors' });
  runBudgets = () => this.http.call<any[]>({ method: 'GET', path: '/v1/rewards/runs' });
  metricsByPeriod = (q: { granularity: 'hour' | 'day' | 'week'; runId?: string }) => this.http.call<any[]>({ method: 'GET', path: `/v1/metrics/periods${query(q)}` });
  metricsByRun = () => this.http.call<any[]>({ method: 'GET', path: '/v1/metrics/runs' });
  exportEvents = (q: { after?: string; limit?: number } = {}) => this.http.call<string>({ method: 'GET', path: `/v1/events${query(q)}` });
}

/** A contributor's calls, each signed with their ed25519 key; they reach only their own records. */
export class ContributorClient {
  private readonly http: Transport;
  constructor(
    options: ClientOptions,
    readonly contributorId: string,
    privateKey: KeyObject | Uint8Array,
  ) {
    this.http = new Transport(options, { kind: 'contributor', contributorId, privateKey });
  }
  register = (keys: { signingPublicKeyHex: string; lightningNodePubkeyHex: string }, o: Idempotent = {}) =>
    this.http.call<any>({ method: 'POST', path: '/v1/contributors', json: { contributorId: this.contributorId, ...keys }, ...o });
  getRun = (runId: string) => this.http.call<any>({ method: 'GET', path: `/v1/runs/${enc(runId)}` });
  downloadCheckpoint = (digest: string) => this.http.call<Uint8Array>({ method: 'GET', path: `/v1/checkpoints/${enc(digest)}`, raw: true });
  getAssignment = (assignmentId: string) => this.http.call<any>({ method: 'GET', path: `/v1/assignments/${enc(assignmentId)}` });
  postHoldInvoice = (assignmentId: string, bolt11: string, o: Idempotent = {}) => this.http.call<any>({ method: 'PUT', path: `/v1/assignments/${enc(assignmentId)}/invoice`, json: { bolt11 }, ...o });
  submitGradient = (assignmentId: string, gradient: { bytes: Uint8Array; encoding: 'dense-f32' | 'sparseloco'; claimedLoss: number; computeTimeMs: number }, o: Idempotent = {}) =>
    this.http.call<any>({
      method: 'POST',
      path: `/v1/assignments/${enc(assignmentId)}/gradient`,
      bytes: gradient.bytes,
      headers: { 'x-gradient-encoding': gradient.encoding, 'x-claimed-loss': String(gradient.claimedLoss), 'x-compute-time-ms': String(Math.round(gradient.computeTimeMs)) },
      ...o,
    });
  dispute = (assignmentId: string, dispute: { disputeId: string; reason: string }, o: Idempotent = {}) =>
    this.http.call<any>({ method: 'POST', path: `/v1/assignments/${enc(assignmentId)}/disputes`, json: dispute, ...o });
  rewards = () => this.http.call<any>({ method: 'GET', path: `/v1/rewards/contributors/${enc(this.contributorId)}` });
}

function query(q: Readonly<Record<string, string | number | undefined>>): string {
  const entries = Object.entries(q).filter(([, v]) => v !== undefined) as [string, string | number][];
  return entries.length === 0 ? '' : `?${entries.map(([k, v]) => `${enc(k)}=${enc(String(v))}`).join('&')}`;
}
