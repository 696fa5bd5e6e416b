// An in-process API for route tests: a fresh store (PGlite or PostgreSQL), the dev Lightning network, staff keys and signing contributors.

import { createHash, randomBytes, randomUUID, type KeyObject } from 'node:crypto';
import { mkdtempSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import type { FastifyInstance, InjectOptions } from 'fastify';
import { FileBlobStore } from '../../adapters/blobs/file-blob-store.js';
import { openEventStore, openSplitStore, type OpenedLedgerStore } from '../../adapters/event-store/open-event-store.js';
import type { EventStore } from '../../domain/ports/event-store.js';
import { SQL_SPLIT_LOG, type SplitLog } from '../support/split-logs.js';
import type { CoordinatorNode } from '../../domain/ports/lightning.js';
import { DEFAULT_API_LIMITS, type ApiLimits } from '../../adapters/http/api-context.js';
import { ApiKeyStore } from '../../adapters/http/auth/api-keys.js';
import { generateEd25519KeyPair, signRequest } from '../../adapters/http/auth/http-signature.js';
import { NonceStore } from '../../adapters/http/auth/nonce-store.js';
import { buildApp } from '../../adapters/http/build-app.js';
import { HoldInvoiceBox } from '../../adapters/http/hold-invoice-box.js';
import { DevContributors } from '../../adapters/lightning/dev-contributors.js';
import { DevLightningNetwork } from '../../adapters/lightning/dev/dev-lightning-network.js';
import { PreimageDeriver } from '../../adapters/lightning/preimages.js';
import { openAsyncCommitDatabase } from '../../adapters/postgres/database.js';
import type { PostgresEventStore } from '../../adapters/postgres/postgres-event-store.js';
import { createPostgresDatabase } from '../support/databases.js';
import { mnistShardDigests } from '../../replay/data/mnist.js';
import { referenceStep } from '../../replay/graphs/reference-steps.js';
import { encodeCheckpoint, initialParameters } from '../../replay/model/checkpoint.js';
import { checkExchanges, recordExchanges } from './openapi-conformance.js';

/** 'split': the split composition, the log behind the plain port on a second store (HarnessOptions.splitLog), everything else in PGlite. */
export type Engine = 'pglite' | 'postgres' | 'split';

export type SignedContributor = Readonly<{ contributorId: string; privateKey: KeyObject; publicKeyHex: string; nodeKeyHex: string }>;

export type ApiHarness = Awaited<ReturnType<typeof apiHarness>>;

export type HarnessOptions = Readonly<{
  /** Wraps the coordinator's node the app is given, e.g. to hold a call until the spec has seen what happens meanwhile. */
  wrapCoordinatorNode?: (node: CoordinatorNode) => CoordinatorNode;
  /** On 'split': the log (default: a second SQL store through the plain port only). */
  splitLog?: SplitLog;
  /** On 'split': wraps the log the system is given, e.g. to fail one append the way a crash would. */
  wrapLog?: (log: EventStore) => EventStore;
}>;

export async function apiHarness(engine: Engine = 'pglite', limits: Partial<ApiLimits> = {}, options: HarnessOptions = {}) {
  const target = engine !== 'postgres' ? ({ engine: 'pglite' } as const) : ({ engine: 'postgres', connectionString: await createPostgresDatabase('api') } as const);
  const opened: OpenedLedgerStore = engine === 'split'
    ? await openSplitStore((options.wrapLog ?? ((log) => log))(await (options.splitLog ?? SQL_SPLIT_LOG).open()), target)
    : await openEventStore(target);
  const { store, db } = opened;
  const clock = { nowMs: Date.now() };
  const nowMs = () => clock.nowMs;
  const network = await DevLightningNetwork.open({ nowMs, seed: randomBytes(32) });
  const devContributors = new DevContributors(network);
  const holdInvoices = new HoldInvoiceBox(db, devContributors);
  await holdInvoices.prepare();
  const apiKeys = new ApiKeyStore(db);
  await apiKeys.prepare();
  // As in production (adapters/system.ts): nonces and HTTP idempotency records on the asynchronous-commit pool.
  const asyncCommit = target.engine === 'postgres' ? openAsyncCommitDatabase(target.connectionString) : null;
  const nonces = new NonceStore(asyncCommit?.db ?? db);
  await nonces.prepare();
  const blobDir = mkdtempSync(join(tmpdir(), 'trainledger-api-'));
  const blobs = new FileBlobStore(blobDir);
  const preimages = new PreimageDeriver(randomBytes(32));
  const app: FastifyInstance = await buildApp({
    store, engine: target.engine, startedAtMs: clock.nowMs, nowMs, bodyLimitBytes: 1024 * 1024,
    api: {
      store, db, ...(asyncCommit ? { asyncCommitDb: asyncCommit.db } : {}), blobs, apiKeys, nonces, preimages, holdInvoices, nowMs, newEventId: randomUUID,
      limits: { ...DEFAULT_API_LIMITS, ...limits },
      lightning: { node: options.wrapCoordinatorNode?.(network.coordinator()) ?? network.coordinator(), network: 'regtest' },
      devNodeKey: (id) => network.wallet(id).publicKey(),
    },
  });
  // Every answer is recorded, so a spec can check all it received against the app's own OpenAPI document.
  const recorder = recordExchanges(app);
  const keys = {} as Record<'coordinator' | 'validator' | 'analyst' | 'auditor', string>;
  for (const role of ['coordinator', 'validator', 'analyst', 'auditor'] as const) keys[role] = (await apiKeys.issue({ role, label: `test ${role}`, nowMs: clock.nowMs, keyId: `test-${role}` })).apiKey;

  async function contributor(contributorId: string): Promise<SignedContributor> {
    const { publicKeyHex, privateKey } = generateEd25519KeyPair();
    return { contributorId, privateKey, publicKeyHex, nodeKeyHex: await network.wallet(contributorId).publicKey() };
  }

  /** A staff request with a bearer key and (for writes) a fresh idempotency key unless one is given. */
  function staff(role: keyof typeof keys, options: InjectOptions & { idempotencyKey?: string }) {
    const headers: Record<string, string> = { authorization: `Bearer ${keys[role]}`, ...(options.headers as Record<string, string>) };
    if (options.method !== 'GET') headers['idempotency-key'] ??= options.idempotencyKey ?? randomUUID();
    return app.inject({ ...options, headers });
  }

  /** A request signed by `who` over exactly the bytes sent; `tamper` may change the request after signing. */
  function signed(who: SignedContributor, options: { method: 'GET' | 'POST' | 'PUT'; url: string; json?: unknown; bytes?: Uint8Array; headers?: Record<string, string>; idempotencyKey?: string; createdSec?: number; nonce?: string; keyId?: string }) {
    const body = options.bytes ?? (options.json === undefined ? new Uint8Array(0) : Buffer.from(JSON.stringify(options.json)));
    const signature = signRequest({
      method: options.method, path: options.url, body, keyId: options.keyId ?? who.contributorId, privateKey: who.privateKey,
      createdSec: options.createdSec ?? Math.floor(clock.nowMs / 1000), nonce: options.nonce ?? randomBytes(18).toString('base64url'),
    });
    const headers: Record<string, string> = { ...signature, ...options.headers };
    if (options.json !== undefined) headers['content-type'] = 'application/json';
    if (options.bytes) headers['content-type'] = 'application/octet-stream';
    if (options.method !== 'GET') headers['idempotency-key'] ??= options.idempotencyKey ?? randomUUID();
    return app.inject({ method: options.method, url: options.url, headers, ...(options.method === 'GET' ? {} : { payload: Buffer.from(body) }) });
  }

  /** Every event in the log, to prove a refused request appended nothing. */
  async function eventCount(): Promise<number> {
    return (await store.readAll({ maxCount: 10_000 })).length;
  }

  /**
   * A funded softmax-regression run on mnist shards with its initial checkpoint uploaded, a registered
   * contributor, and one assignment to them. Returns what tests need to submit against it.
   */
  async function seedRun(runId: string, who: SignedContributor, assignmentId: string, fundingMsat = '100000000') {
    const step = referenceStep('softmax-regression');
    const initial = encodeCheckpoint(step.model, initialParameters(step.model, '1'));
    const expectStatus = (response: { statusCode: number; body: string }, status: number) => {
      if (response.statusCode !== status) throw new Error(`seedRun: expected ${status}, got ${response.statusCode}: ${response.body}`);
    };
    expectStatus(await staff('coordinator', { method: 'PUT', url: '/v1/checkpoints', payload: Buffer.from(initial), headers: { 'content-type': 'application/octet-stream' } }), 201);
    const checkpointDigest = createHash('sha256').update(initial).digest('hex');
    expectStatus(await staff('coordinator', { method: 'POST', url: '/v1/runs', payload: {
      runId, stepGraphDigest: step.graphDigest, initialCheckpointDigest: checkpointDigest, shards: mnistShardDigests().slice(0, 3),
      rewardPolicy: { baseRewardMsat: '1000000', maxBonusMsat: '200000' },
      verificationPolicy: { replayProbability: 1, maxGradientNorm: 50, minRelativeImprovement: 0.001 },
      escrowPolicy: { cltvDeltaBlocks: 144, invoiceExpirySec: 3600, disputeWindowMs: 86_400_000, assignmentTimeoutMs: 3_600_000 },
    } }), 201);
    expectStatus(await staff('coordinator', { method: 'POST', url: `/v1/runs/${runId}/fundings`, payload: { fundingId: 'f1', source: 'customer', amountMsat: fundingMsat } }), 201);
    const registered = await signed(who, { method: 'POST', url: '/v1/contributors', json: { contributorId: who.contributorId, signingPublicKeyHex: who.publicKeyHex, lightningNodePubkeyHex: who.nodeKeyHex } });
    if (registered.statusCode !== 201 && registered.statusCode !== 200) throw new Error(`seedRun: register ${registered.statusCode} ${registered.body}`);
    expectStatus(await staff('coordinator', { method: 'POST', url: '/v1/assignments', payload: { assignmentId, runId, contributorId: who.contributorId, step: 1, shardId: 'mnist-00', batchIndex: 0, seed: '42' } }), 201);
    return { step, checkpointDigest, initialParameters: initialParameters(step.model, '1') };
  }

  /** Everything recorded so far, checked against GET /docs/json (see openapi-conformance.ts). */
  async function conformance() {
    const doc = (await app.inject({ method: 'GET', url: '/docs/json' })).json();
    return { ...checkExchanges(doc, recorder.exchanges), dropped: recorder.dropped };
  }

  return {
    seedRun, recorder, conformance,
    /** The PostgreSQL database's URL (null on PGlite), for a spec that points a CLI child at the same store. */
    databaseUrl: target.engine === 'postgres' ? target.connectionString : null,
    // Typed as the SQL store for the specs that use its extras; on 'split' it is the SplitLogStore, and specs there use the port only.
    app, store: store as PostgresEventStore, db, blobs, blobDir, network, preimages, keys, clock, contributor, staff, signed, eventCount,
    close: async () => {
      await app.close();
      await network.close();
      await asyncCommit?.close();
      await store.close();
    },
  };
}
