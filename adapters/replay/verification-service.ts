// Wires verification into a process: the validator, the replay feeder and replay workers, each in its own pass loop.

import { randomUUID } from 'node:crypto';
import type { Kysely } from 'kysely';
import type { EventStore } from '../../domain/ports/event-store.js';
import { loadCalibration } from '../../replay/compare/calibration.js';
import type { BlobStore } from '../../replay/ports/blob-store.js';
import type { SessionSettings } from '../../replay/step/execution-providers.js';
import { StepRunner } from '../../replay/step/step-runner.js';
import { EventStoreCommandBus } from '../commands/command-bus.js';
import { ValidatorWorker } from '../../replay/workers/validator-worker.js';
import { feedReplayJobs, ReplayWorker } from '../../replay/workers/replay-worker.js';
import { PassLoop, type StopRequested } from '../../projections/pass-loop.js';
import { PostgresReplayJobQueue } from './postgres-replay-jobs.js';

export type VerificationParts = Readonly<{ validator: boolean; replayWorkers: number }>;

export type VerificationServiceDeps = Readonly<{
  store: EventStore;
  db: Kysely<any>;
  blobs: BlobStore;
  settings: SessionSettings;
  parts: VerificationParts;
  /** Longer than the slowest replay, so a live worker never loses its job. */
  leaseMs: number;
  workerIdPrefix: string;
  /** Lets a worker take over at once a job whose worker's process is gone (see ReplayJobQueueOptions); absent, leases run out. */
  engine?: 'postgres' | 'pglite';
  nowMs: () => number;
  log: (line: string) => void;
}>;

export const DEFAULT_PASS_INTERVAL_MS = 1_000;
/** Consecutive failed passes after which a worker loop stops instead of retrying forever. */
export const MAX_CONSECUTIVE_FAILURES = 20;

/** Default replay lease: a reference step takes milliseconds; a minute leaves room for a cold GPU. */
export const DEFAULT_REPLAY_LEASE_MS = 60_000;

export class VerificationService {
  private readonly loops: PassLoop[] = [];
  private readonly runners: StepRunner[] = [];
  private signal: AbortSignal | undefined;
  private jobs: PostgresReplayJobQueue | null = null;

  constructor(private readonly deps: VerificationServiceDeps) {}

  /** Starts the loops; an abort of `signal` asks each to stop between items, as stop() does, and stop() waits for them. */
  async start(options: Readonly<{ signal?: AbortSignal }> = {}): Promise<void> {
    this.signal = options.signal;
    const { store, db, blobs, settings, parts, nowMs, log } = this.deps;
    const calibration = loadCalibration();
    const jobs = new PostgresReplayJobQueue(db, undefined, this.deps.engine ? { engine: this.deps.engine } : {});
    await jobs.prepare();
    this.jobs = jobs;
    // One bus for every worker here: the aggregate cache is per store, and all of them write to this one.
    const commands = new EventStoreCommandBus(store, { newEventId: () => randomUUID() });
    if (parts.validator) {
      const runner = this.runner(settings);
      // The validator's replay draws come from the process's CSPRNG, never from anything a contributor can see.
      const validator = new ValidatorWorker({ store, commands, db, blobs, runner, calibration, random: secureRandom, validatorId: `${this.deps.workerIdPrefix}-validator`, nowMs, onSkipped: (id, reason, code) => log(`validator: left ${id} unjudged (${code}): ${reason}`) });
      await validator.prepare();
      this.loop('validator', async (stopped) => void (await validator.runOnce(stopped)));
    }
    if (parts.replayWorkers > 0) {
      this.loop('replay-feeder', async (stopped) => void (await feedReplayJobs({ store, commands, jobs, nowMs }, stopped)));
      for (let i = 0; i < parts.replayWorkers; i += 1) {
        const workerId = `${this.deps.workerIdPrefix}-replay-${i}-${randomUUID().slice(0, 8)}`;
        await jobs.registerWorker(workerId);
        const worker = new ReplayWorker({ store, commands, jobs, blobs, runner: this.runner(settings), calibration, workerId, leaseMs: this.deps.leaseMs, nowMs });
        this.loop(`replay-worker-${i}`, async (stopped) => {
          for (const outcome of await worker.drain(undefined, stopped)) log(`replay: ${outcome.jobId} ${outcome.result}${outcome.detail ? `: ${outcome.detail}` : ''}`);
        });
      }
    }
  }

  async stop(): Promise<void> {
    await Promise.all(this.loops.map((loop) => loop.stop()));
    await Promise.all(this.runners.map((runner) => runner.close()));
    await this.jobs?.close();
  }

  private runner(settings: SessionSettings): StepRunner {
    const runner = new StepRunner(settings);
    this.runners.push(runner);
    return runner;
  }

  /** A failing pass is logged and retried at the next wake-up; too many in a row stop it, loudly. */
  private loop(name: string, pass: (stopped: StopRequested) => Promise<void>): void {
    const loop = new PassLoop({
      pass,
      store: this.deps.store,
      pollIntervalMs: DEFAULT_PASS_INTERVAL_MS,
      ...(this.signal ? { signal: this.signal } : {}),
      onError: (error, failures) => {
        this.deps.log(`${name}: pass failed (${failures}/${MAX_CONSECUTIVE_FAILURES}): ${error instanceof Error ? error.message : String(error)}`);
        return failures >= MAX_CONSECUTIVE_FAILURES ? 'stop' : 'retry';
      },
    });
    this.loops.push(loop);
    loop.start().catch((error: unknown) => {
      this.deps.log(`trainledger: ${name.toUpperCase()}_STOPPED: ${error instanceof Error ? error.message : String(error)}`);
      process.exitCode = 1;
    });
  }
}

function secureRandom(): number {
  const [value] = crypto.getRandomValues(new Uint32Array(1));
  return value! / 2 ** 32;
}
