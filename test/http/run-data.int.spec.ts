// POST /v1/runs checks the run's declared data: every shard must be one this server holds, with the digest of the data
// it holds, because the validator and the replay worker can only judge steps on that data. Both engines.

import { createHash, randomUUID } from 'node:crypto';
import type { LightMyRequestResponse } from 'fastify';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { MNIST_HELDOUT_SHARD_ID, mnistShardDigests } from '../../replay/data/mnist.js';
import { referenceStep } from '../../replay/graphs/reference-steps.js';
import { encodeCheckpoint, initialParameters } from '../../replay/model/checkpoint.js';
import { apiHarness, type ApiHarness } from './api-harness.js';
import { expectConformant } from './openapi-conformance.js';

const STEP = referenceStep('softmax-regression');
const ZERO_DIGEST = '0'.repeat(64);
const HELD = mnistShardDigests();
const TRAINING = HELD.filter((shard) => shard.shardId !== MNIST_HELDOUT_SHARD_ID);
const digestOf = (shardId: string) => HELD.find((shard) => shard.shardId === shardId)!.digest;

describe.each(['pglite', 'postgres'] as const)('declared run data on %s', (engine) => {
  let h: ApiHarness;
  let checkpointDigest: string;

  beforeAll(async () => {
    h = await apiHarness(engine);
    const bytes = encodeCheckpoint(STEP.model, initialParameters(STEP.model, '1'));
    const uploaded = await h.staff('coordinator', { method: 'PUT', url: '/v1/checkpoints', payload: Buffer.from(bytes), headers: { 'content-type': 'application/octet-stream' } });
    expect(uploaded.statusCode, uploaded.body).toBe(201);
    checkpointDigest = createHash('sha256').update(bytes).digest('hex');
  });
  afterAll(async () => h?.close());

  function openRun(shards: readonly { shardId: string; digest: string }[], runId = `run-${randomUUID().slice(0, 8)}`): Promise<LightMyRequestResponse> {
    return h.staff('coordinator', {
      method: 'POST',
      url: '/v1/runs',
      payload: {
        runId, stepGraphDigest: STEP.graphDigest, initialCheckpointDigest: checkpointDigest, shards,
        rewardPolicy: { baseRewardMsat: '1000000', maxBonusMsat: '200000' },
        verificationPolicy: { replayProbability: 1, maxGradientNorm: 50, minRelativeImprovement: 0.001 },
        escrowPolicy: { cltvDeltaBlocks: 144, invoiceExpirySec: 3600, disputeWindowMs: 86_400_000, assignmentTimeoutMs: 3_600_000 },
      },
    });
  }

  /** A 422 problem with the code and the shard it names, and not one event appended. */
  async function expectRefused(shards: readonly { shardId: string; digest: string }[], code: string, named: { shardId: string; declaredDigest: string; knownDigest: string | null }) {
    const before = await h.eventCount();
    const response = await openRun(shards);
    expect(response.statusCode, response.body).toBe(422);
    expect(response.headers['content-type']).toContain('application/problem+json');
    const problem = response.json();
    expect(problem).toMatchObject({ status: 422, code, ...named });
    expect(problem.detail).toContain(named.shardId);
    expect(await h.eventCount(), 'a refused run appended an event').toBe(before);
    return problem as { detail: string };
  }

  it("refuses the issue's run: a shard declared with an all-zero digest (SHARD_DIGEST_MISMATCH)", async () => {
    const problem = await expectRefused([{ shardId: 'mnist-00', digest: ZERO_DIGEST }], 'SHARD_DIGEST_MISMATCH', { shardId: 'mnist-00', declaredDigest: ZERO_DIGEST, knownDigest: digestOf('mnist-00') });
    expect(problem.detail).toContain(digestOf('mnist-00'));
  });

  it("names the one bad shard among good ones: a held shard declared with another shard's digest", async () => {
    const shards = TRAINING.slice(0, 8).map((shard) => (shard.shardId === 'mnist-05' ? { ...shard, digest: digestOf('mnist-06') } : shard));
    await expectRefused(shards, 'SHARD_DIGEST_MISMATCH', { shardId: 'mnist-05', declaredDigest: digestOf('mnist-06'), knownDigest: digestOf('mnist-05') });
  });

  it('refuses a shard id this server holds no data for (UNKNOWN_SHARD_ID), and says whose digest it was given', async () => {
    await expectRefused([TRAINING[0]!, { shardId: 'shard-0', digest: ZERO_DIGEST }], 'UNKNOWN_SHARD_ID', { shardId: 'shard-0', declaredDigest: ZERO_DIGEST, knownDigest: null });
    const renamed = await expectRefused([{ shardId: 'my-mnist-03', digest: digestOf('mnist-03') }], 'UNKNOWN_SHARD_ID', { shardId: 'my-mnist-03', declaredDigest: digestOf('mnist-03'), knownDigest: null });
    expect(renamed.detail).toContain('mnist-03');
  });

  it("refuses the validator's held-out shard as training data (HELDOUT_SHARD_DECLARED), even with its true digest", async () => {
    const heldOut = { shardId: MNIST_HELDOUT_SHARD_ID, digest: digestOf(MNIST_HELDOUT_SHARD_ID) };
    await expectRefused([...TRAINING.slice(0, 2), heldOut], 'HELDOUT_SHARD_DECLARED', { shardId: MNIST_HELDOUT_SHARD_ID, declaredDigest: heldOut.digest, knownDigest: heldOut.digest });
  });

  it('lists the shards a run may declare (GET /v1/shards) and opens a run on exactly those', async () => {
    const listed = await h.app.inject({ method: 'GET', url: '/v1/shards' });
    expect(listed.statusCode, listed.body).toBe(200);
    const shards = listed.json() as { shardId: string; digest: string; sampleCount: number; use: string }[];
    expect(shards.map(({ shardId, digest }) => ({ shardId, digest }))).toEqual(HELD);
    expect(shards.filter((s) => s.use === 'held-out').map((s) => s.shardId)).toEqual([MNIST_HELDOUT_SHARD_ID]);
    expect(shards.every((s) => s.sampleCount === 500)).toBe(true);

    const training = shards.filter((s) => s.use === 'training').map(({ shardId, digest }) => ({ shardId, digest }));
    const opened = await openRun(training, 'run-all-training');
    expect(opened.statusCode, opened.body).toBe(201);
    const view = await h.staff('coordinator', { method: 'GET', url: '/v1/runs/run-all-training' });
    expect(view.json()).toMatchObject({ runId: 'run-all-training', shards: training });
  });

  it('answered nothing above that its OpenAPI document (/docs/json) does not describe', async () => {
    await expectConformant(h);
  });
});
