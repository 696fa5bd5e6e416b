// The SIGKILL suite's clients: each registers a contributor, opens and funds a shared run, then assigns, posts an invoice, submits, decides and disputes, every call under its own Idempotency-Key.

import { createHash, randomBytes, randomUUID } from 'node:crypto';
import { generateEd25519KeyPair } from '../../adapters/http/auth/http-signature.js';
import { DevLightningNetwork } from '../../adapters/lightning/dev/dev-lightning-network.js';
import { mnistShardDigests } from '../../replay/data/mnist.js';
import { referenceStep } from '../../replay/graphs/reference-steps.js';
import { encodeCheckpoint, initialParameters } from '../../replay/model/checkpoint.js';
import { attempt, perform, SIGKILL_LIMITS, type Operation, type Sender } from './sigkill-clients.js';

/** A dense-f32 gradient of the softmax-regression model (all zeros): it decodes, which is all the route checks. */
const GRADIENT_BYTES = new Uint8Array(31_400);
const GRADIENT_HEADERS = Object.freeze({ 'content-type': 'application/octet-stream', 'x-gradient-encoding': 'dense-f32', 'x-claimed-loss': '1.5', 'x-compute-time-ms': '5' });
const JSON_HEADERS = Object.freeze({ 'content-type': 'application/json' });
const SHARDS = mnistShardDigests().slice(0, 3);
/** Funding per client and per top-up: room for every assignment's worst case (base, bonus, fees) between top-ups. */
const FUNDING_MSAT = 40_000_000n;
const ASSIGNMENTS_PER_TOP_UP = 20;

export type WorkloadPolicy = Readonly<{ assignmentTimeoutMs: number; disputeWindowMs: number; replayProbability: number }>;

export type WorkloadSetup = Readonly<{ baseUrl: string; adminKey: string; validatorKey: string; validatorKeyId: string; checkpointDigest: string; clients: number; runs: number; policy: WorkloadPolicy; random: () => number }>;

/** What the server must hold before the clients start: the initial checkpoint and a validator key (no chaos yet). */
export async function prepareServer(baseUrl: string, adminKey: string): Promise<{ checkpointDigest: string; validatorKey: string; validatorKeyId: string }> {
  const step = referenceStep('softmax-regression');
  const initial = encodeCheckpoint(step.model, initialParameters(step.model, '1'));
  const staff: Sender = { kind: 'staff', keyId: 'bootstrap-coordinator', apiKey: adminKey };
  const put = await attempt(baseUrl, { method: 'PUT', path: '/v1/checkpoints', headers: { 'content-type': 'application/octet-stream' }, sender: staff, idempotencyKey: randomUUID() }, initial);
  if (put.status !== 201 && put.status !== 200) throw new Error(`checkpoint upload: ${put.status} ${put.body}`);
  const validatorKeyId = `sigkill-validator-${randomBytes(4).toString('hex')}`;
  const keyBody = Buffer.from(JSON.stringify({ keyId: validatorKeyId, role: 'validator', label: 'SIGKILL suite validator' }));
  const issued = await attempt(baseUrl, { method: 'POST', path: '/v1/api-keys', headers: { ...JSON_HEADERS }, sender: staff, idempotencyKey: randomUUID() }, keyBody);
  if (issued.status !== 201) throw new Error(`validator key: ${issued.status} ${issued.body}`);
  return { checkpointDigest: createHash('sha256').update(initial).digest('hex'), validatorKey: (JSON.parse(issued.body) as { apiKey: string }).apiKey, validatorKeyId };
}

export class Workload {
  readonly operations: Operation[] = [];
  /** Assignments whose assign call was acknowledged, with their run: the ones that must reach a final state. */
  readonly assignments = new Map<string, string>();
  readonly runIds: string[];
  private nextId = 0;
  private stopped = false;
  private readonly staff: Sender;
  private readonly validator: Sender;
  /** A wallet the server has never heard of: its invoices are well-formed BOLT11 for the wrong destination. */
  private stranger: DevLightningNetwork | null = null;

  constructor(private readonly setup: WorkloadSetup) {
    this.staff = { kind: 'staff', keyId: 'bootstrap-coordinator', apiKey: setup.adminKey };
    this.validator = { kind: 'staff', keyId: setup.validatorKeyId, apiKey: setup.validatorKey };
    this.runIds = Array.from({ length: setup.runs }, (_, r) => `sk-run-${r}`);
  }

  stop(): void {
    this.stopped = true;
  }

  /** Runs every client until stop(); each finishes the assignment it is on, so none is left half-done by the test itself. */
  async run(): Promise<void> {
    this.stranger = await DevLightningNetwork.open({ nowMs: Date.now, seed: randomBytes(32) });
    try {
      await Promise.all(Array.from({ length: this.setup.clients }, (_, i) => this.client(i)));
    } finally {
      await this.stranger.close();
    }
  }

  private async client(i: number): Promise<void> {
    const contributorId = `sk-c${i}`;
    const runId = this.runIds[i % this.runIds.length]!;
    const { publicKeyHex, privateKey } = generateEd25519KeyPair();
    const me: Sender = { kind: 'contributor', contributorId, privateKey };
    const nodeKey = await this.devNodeKey(contributorId);
    const register = { contributorId, signingPublicKeyHex: publicKeyHex, lightningNodePubkeyHex: nodeKey };
    // A changed body that still proves possession: the same fields, other bytes.
    await this.send(i, 'register', 'POST', '/v1/contributors', me, json(register), json(register, ' '));
    const run = runBody(runId, this.setup.checkpointDigest, this.setup.policy);
    // Every client of a run tries to open it: one is first, the rest are refused with 409.
    await this.send(i, 'open', 'POST', '/v1/runs', this.staff, json(run), json({ ...run, rewardPolicy: { ...run.rewardPolicy, baseRewardMsat: '1000001' } }));
    let fundings = 0;
    const fund = async () => {
      const body = { fundingId: `sk-f${i}-${fundings++}`, source: 'customer', amountMsat: String(FUNDING_MSAT) };
      await this.send(i, 'fund', 'POST', `/v1/runs/${runId}/fundings`, this.staff, json(body), json({ ...body, amountMsat: String(FUNDING_MSAT + 1n) }));
    };
    await fund();
    for (let k = 0; !this.stopped && this.countOf(i) < SIGKILL_LIMITS.maxOperationsPerClient; k += 1) {
      if (k > 0 && k % ASSIGNMENTS_PER_TOP_UP === 0) await fund();
      await this.assignment(i, me, runId, `sk-a${i}-${k}`, k);
    }
  }

  private async assignment(i: number, me: Sender & { kind: 'contributor' }, runId: string, assignmentId: string, k: number): Promise<void> {
    const random = this.setup.random;
    const assign = { assignmentId, runId, contributorId: me.contributorId, step: 1, shardId: SHARDS[k % SHARDS.length]!.shardId, batchIndex: k % 10, seed: '42' };
    const assigned = await this.send(i, 'assign', 'POST', '/v1/assignments', this.staff, json(assign), json({ ...assign, batchIndex: (k % 10) + 1 }));
    if (assigned.outcome !== 'ok') return;
    this.assignments.set(assignmentId, runId);
    if (random() < 0.3) {
      // Well-formed, for a node that is not the contributor's: a definite 422, kept under its key like any answer.
      const bolt11 = await this.stranger!.wallet('stranger').createHoldInvoice({ paymentHash: randomBytes(32).toString('hex'), amountMsat: 1_000_000n, expirySec: 3600, cltvDelta: 80, description: 'sigkill' });
      await this.send(i, 'invoice', 'PUT', `/v1/assignments/${assignmentId}/invoice`, me, json({ bolt11 }), json({ bolt11 }, ' '), false);
    }
    // Some assignments are never worked on: they must expire at their deadline and release their budget.
    if (random() < 0.1) return;
    const changed = new Uint8Array(GRADIENT_BYTES);
    changed[0] = 1;
    const submitted = await this.send(i, 'submit', 'POST', `/v1/assignments/${assignmentId}/gradient`, me, GRADIENT_BYTES, changed, true, GRADIENT_HEADERS);
    if (submitted.outcome !== 'ok') return;
    // The validator part decides too; whichever verdict comes second is refused (409).
    const accept = random() < 0.6;
    const verdict = accept
      ? { verdict: 'accepted', qualityScore: 0.9, bonusMsat: String(Math.floor(random() * 200_000)), evidence: { by: 'sigkill' } }
      : { verdict: 'rejected', reasonCode: 'SIGKILL_REJECTED', evidence: { by: 'sigkill' } };
    await this.send(i, 'verdict', 'POST', `/v1/assignments/${assignmentId}/verdicts`, this.validator, json(verdict), json({ ...verdict, evidence: { by: 'changed' } }));
    if (random() < 0.5) {
      // Disputed whatever the verdict: an accepted one is refused (409), a rejected one goes to a replay.
      const dispute = { disputeId: `sk-d-${assignmentId}`, reason: 'replay my step' };
      await this.send(i, 'dispute', 'POST', `/v1/assignments/${assignmentId}/disputes`, me, json(dispute), json({ ...dispute, reason: 'another reason' }));
    }
  }

  private countOf(client: number): number {
    return this.operations.filter((o) => o.client === client).length;
  }

  private async send(client: number, kind: string, method: 'POST' | 'PUT', path: string, sender: Sender, body: Uint8Array, changedBody: Uint8Array, logged = true, headers: Record<string, string> = { ...JSON_HEADERS }) {
    const op: Operation = { id: this.nextId++, client, kind, method, path, body, headers: { ...headers }, sender, idempotencyKey: randomUUID(), changedBody, attempts: [], logged };
    this.operations.push(op);
    return perform(this.setup.baseUrl, op, () => true);
  }

  private async devNodeKey(contributorId: string): Promise<string> {
    for (let tries = 0; ; tries += 1) {
      const response = await fetch(new URL(`/v1/dev/node-keys/${contributorId}`, this.setup.baseUrl), { signal: AbortSignal.timeout(SIGKILL_LIMITS.requestTimeoutMs) }).catch(() => null);
      if (response?.ok) return ((await response.json()) as { lightningNodePubkeyHex: string }).lightningNodePubkeyHex;
      if (tries > SIGKILL_LIMITS.maxAttempts * 10) throw new Error(`GET /v1/dev/node-keys/${contributorId} never answered`);
      await new Promise((done) => setTimeout(done, SIGKILL_LIMITS.pollIntervalMs * 4));
    }
  }
}

function json(value: unknown, trailing = ''): Uint8Array {
  return Buffer.from(JSON.stringify(value) + trailing);
}

function runBody(runId: string, checkpointDigest: string, policy: WorkloadPolicy) {
  return {
    runId, stepGraphDigest: referenceStep('softmax-regression').graphDigest, initialCheckpointDigest: checkpointDigest, shards: SHARDS,
    rewardPolicy: { baseRewardMsat: '1000000', maxBonusMsat: '200000' },
    verificationPolicy: { replayProbability: policy.replayProbability, maxGradientNorm: 50, minRelativeImprovement: 0.001 },
    escrowPolicy: { cltvDeltaBlocks: 144, invoiceExpirySec: 3600, disputeWindowMs: policy.disputeWindowMs, assignmentTimeoutMs: policy.assignmentTimeoutMs },
  };
}
