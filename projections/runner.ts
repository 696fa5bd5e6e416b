// The projection runner: applies log batches to each projector with its checkpoint in the same transaction;
// a projector that cannot apply an event stops alone and says why, the others keep running.

import { sql, type Kysely } from 'kysely';
import { comparePositions, type LogPosition } from '../domain/ports/event-store.js';
import { DomainError, invariant, InvariantViolation } from '../domain/errors.js';
import { decodeForProjection } from './decode.js';
import { PassLoop, type StopRequested } from './pass-loop.js';
import type { LoggedEvent, ProjectionLog } from './ports/projection-log.js';
import type { ProjectedEvent, Projector } from './projector.js';
import { prepareProjectorSchema } from './schemas.js';

export const DEFAULT_PROJECTION_BATCH_SIZE = 500;
export const DEFAULT_PROJECTION_POLL_INTERVAL_MS = 200;

/** Why a projector stopped: the error, where its checkpoint stands, and the event it could not apply. */
export type ProjectionStop = Readonly<{
  projector: string;
  /** `<error name>: <message>`, e.g. `InvariantViolation: run budget would go below zero`. */
  reason: string;
  /** The last position it applied; the failing event is the next one after it. */
  checkpoint: LogPosition;
  /** The event it could not apply, when the runner isolated it (null if the batch failed but no single event did). */
  event: Readonly<{ streamId: string; revision: number; type: string; position: LogPosition }> | null;
  stoppedAtMs: number;
}>;

export type ProjectionStatus = 'running' | 'stopped';

export type ProjectionLag = Readonly<{
  projector: string;
  checkpoint: LogPosition;
  lagEvents: number;
  lagSeconds: number;
  /** 'stopped' once the projector hit an event it cannot apply; the other projectors keep running. */
  status: ProjectionStatus;
  /** Present exactly when status is 'stopped'. */
  stopped?: ProjectionStop;
}>;

export type RunnerOptions = Readonly<{
  /** The log, in the read models' own database (the PostgreSQL/PGlite event store implements it). */
  store: ProjectionLog;
  projectors: readonly Projector[];
  batchSize?: number;
  pollIntervalMs?: number;
  nowMs?: () => number;
  /**
   * Fault injection: runs inside the batch transaction after the read-model
   * writes and the checkpoint, just before commit. Throwing here is a crash at
   * the worst moment; the transaction must roll back whole.
   */
  beforeCommit?: (projector: string, batch: readonly ProjectedEvent[]) => void | Promise<void>;
  /** One line per projector stopped, resumed, or retrying after a transient database error. */
  log?: (line: string) => void;
}>;

/** The checkpoint of a projector's tables in `schema`; live tables use the projector's own name. */
export function projectionCheckpointId(schema: string): string {
  return `projection:${schema}`;
}

/** Serialises every writer of one projection (runner batches, a rebuild's swap) across processes. */
export async function lockProjection(trx: Kysely<any>, schema: string): Promise<void> {
  await sql`SELECT pg_advisory_xact_lock(hashtext(${`trainledger:${projectionCheckpointId(schema)}`}))`.execute(trx);
}

/**
 * Applies at most `batchSize` events after the checkpoint (and not beyond
 * `until`, when given) to the projector's tables in `schema`, inside `trx`;
 * the events and the checkpoint are read and moved through `log` in that same
 * transaction. Returns how many events it applied.
 */
export async function applyBatchIn(
  log: ProjectionLog,
  trx: Kysely<any>,
  projector: Projector,
  schema: string,
  options: {
    batchSize: number;
    nowMs: () => number;
    until?: LogPosition;
    beforeCommit?: RunnerOptions['beforeCommit'];
    /** Sees the events read for the batch before they are decoded and applied (the runner names a failing event with it). */
    onRead?: (recorded: readonly LoggedEvent[]) => void;
  },
): Promise<number> {
  const checkpointId = projectionCheckpointId(schema);
  const checkpoint = await log.loadCheckpointIn(trx, checkpointId);
  let recorded = await log.readAllIn(trx, { after: checkpoint, maxCount: options.batchSize });
  if (options.until) recorded = recorded.filter((e) => comparePositions(e.position, options.until!) <= 0);
  if (recorded.length === 0) return 0;
  options.onRead?.(recorded);
  const events = recorded.map(decodeForProjection);
  await projector.apply(trx.withSchema(schema), events);
  const last = events[events.length - 1]!.position;
  invariant(comparePositions(last, checkpoint) > 0, `projection ${schema} would move its checkpoint backwards`);
  await log.saveCheckpointIn(trx, checkpointId, last, new Date(options.nowMs()));
  await options.beforeCommit?.(projector.name, events);
  return events.length;
}

/**
 * Whether an error is the database or the connection to it failing for now
 * (connection reset or refused, server shutting down, serialization failure,
 * deadlock, statement timeout, resources exhausted), which the next attempt may
 * not meet. Anything else (an InvariantViolation, a domain error, an unknown
 * event type, a SQL error in the projector) fails again on the same events.
 */
export function isTransientDatabaseError(error: unknown): boolean {
  return transient(error, 0);
}

const TRANSIENT_SQLSTATES = new Set(['40001', '40P01', '55P03', '57014', '57P01', '57P02', '57P03']);
/** 08: connection exception; 53: insufficient resources (too many connections, out of memory, disk full). */
const TRANSIENT_SQLSTATE_CLASSES = new Set(['08', '53']);
const TRANSIENT_SYSTEM_CODES = new Set(['ECONNRESET', 'ECONNREFUSED', 'ECONNABORTED', 'ETIMEDOUT', 'EPIPE', 'EHOSTUNREACH', 'ENETUNREACH', 'ENETDOWN', 'EAI_AGAIN', 'ENOTFOUND']);
/** pg, pg-pool, kysely and PGlite say these without a code. */
const TRANSIENT_MESSAGES = /connection terminated|timeout exceeded when trying to connect|connection ended without|client (?:was closed|has encountered a connection error)|pool (?:has been )?ended|after calling end on the pool|driver has already been destroyed|pglite is closed/i;

function transient(error: unknown, depth: number): boolean {
  if (depth > 8 || typeof error !== 'object' || error === null) return false;
  if (error instanceof InvariantViolation || error instanceof DomainError) return false;
  const code = (error as { code?: unknown }).code;
  if (typeof code === 'string') {
    if (TRANSIENT_SYSTEM_CODES.has(code) || TRANSIENT_SQLSTATES.has(code)) return true;
    if (/^[0-9A-Z]{5}$/.test(code) && TRANSIENT_SQLSTATE_CLASSES.has(code.slice(0, 2))) return true;
  }
  if (error instanceof Error && TRANSIENT_MESSAGES.test(error.message)) return true;
  if (error instanceof AggregateError && error.errors.some((e) => transient(e, depth + 1))) return true;
  return transient((error as { cause?: unknown }).cause, depth + 1);
}

function describeError(error: unknown): string {
  if (error instanceof Error) return `${error.name}: ${error.message}`;
  return String(error);
}

function formatPosition(position: LogPosition): string {
  return `${position.transactionId}:${position.globalPosition}`;
}

type ProjectorState = { stop: ProjectionStop | null; transientFailures: number };

/** A projector's turn in a pass: what it applied, and whether it is out of this pass (stopped, or the database failing for now). */
type Turn = Readonly<{ applied: number; out: boolean }>;

const NEVER_STOPPED: StopRequested = () => false;

/** What the runner has applied since it was made, and how many batches it finished after the last stop request. */
export type RunnerProgress = Readonly<{ batches: number; events: number; batchesAfterStopRequest: number | null }>;

export class ProjectionRunner {
  private loop: PassLoop | null = null;
  private readonly batchSize: number;
  private readonly nowMs: () => number;
  private readonly states = new Map<string, ProjectorState>();
  private batches = 0;
  private events = 0;
  private batchesAtStopRequest: number | null = null;

  constructor(private readonly options: RunnerOptions) {
    this.batchSize = options.batchSize ?? DEFAULT_PROJECTION_BATCH_SIZE;
    this.nowMs = options.nowMs ?? Date.now;
    const names = new Set(options.projectors.map((p) => p.name));
    invariant(names.size === options.projectors.length, 'projector names must be unique');
    for (const projector of options.projectors) this.states.set(projector.name, { stop: null, transientFailures: 0 });
  }

  private get db(): Kysely<any> {
    return this.options.store.db;
  }

  private state(projector: Projector): ProjectorState {
    return this.states.get(projector.name)!;
  }

  private zeroes(): Record<string, number> {
    return Object.fromEntries(this.options.projectors.map((p) => [p.name, 0]));
  }

  /** Creates each projector's schema and runs its migrations. */
  async prepare(): Promise<void> {
    for (const projector of this.options.projectors) await prepareProjectorSchema(this.db, projector);
  }

  /** One batch for one projector, in its own transaction. */
  async step(projector: Projector, batchSize = this.batchSize, onRead?: (recorded: readonly LoggedEvent[]) => void): Promise<number> {
    const applied = await this.db.transaction().execute(async (trx) => {
      await lockProjection(trx, projector.name);
      return applyBatchIn(this.options.store, trx, projector, projector.name, {
        batchSize,
        nowMs: this.nowMs,
        ...(this.options.beforeCommit ? { beforeCommit: this.options.beforeCommit } : {}),
        ...(onRead ? { onRead } : {}),
      });
    });
    if (applied > 0) {
      this.batches += 1;
      this.events += applied;
    }
    return applied;
  }

  /**
   * Applies everything visible now to every projector and returns the events
   * applied per projector; the first error rejects it. A one-shot for callers
   * that must not go on past a failure (the escrow engine's outbox, tests); it
   * neither reads nor sets the stopped state that pass() keeps. Batches go
   * round-robin, as in pass(), and it returns after a turn in which no
   * projector found anything new: all of them at the head together.
   */
  async catchUp(): Promise<Record<string, number>> {
    const applied = this.zeroes();
    for (let round = -1; round !== 0; ) {
      round = 0;
      for (const projector of this.options.projectors) {
        const n = await this.step(projector);
        applied[projector.name]! += n;
        round += n;
      }
    }
    return applied;
  }

  /**
   * One pass of the running service: round-robin, one bounded batch per
   * running projector per turn, until a turn in which none of them found
   * anything new, or `stopped()` holds. No projector waits for another's
   * backlog, and one at the head keeps its turn and takes in new appends while
   * the others work through theirs, so under a sustained append rate every lag
   * stays bounded; `stopped()` is checked before every batch, so a stop request
   * waits for the batch in progress at most.
   *
   * A projector whose batch fails with an error that is not transient (an
   * InvariantViolation, an unknown event type, ...) is stopped alone, at the
   * checkpoint just before the event it cannot apply, and is not tried again
   * until its checkpoint moves (a rebuild swapped fresh tables in, or another
   * process applied past the event), resume() is called, or the process
   * restarts. A transient database error takes it out of this pass only, to be
   * retried at the next. Returns the events applied per projector; it rejects
   * only if the runner itself fails, never for a projector's error.
   */
  async pass(stopped: StopRequested = NEVER_STOPPED): Promise<Record<string, number>> {
    const applied = this.zeroes();
    let active: Projector[] = [];
    for (const projector of this.options.projectors) if (await this.runnable(projector)) active.push(projector);
    for (let round = -1; active.length > 0 && round !== 0; ) {
      round = 0;
      const next: Projector[] = [];
      for (const projector of active) {
        if (stopped()) return applied;
        const turn = await this.turn(projector, stopped);
        applied[projector.name]! += turn.applied;
        round += turn.applied;
        if (!turn.out) next.push(projector);
      }
      active = next;
    }
    return applied;
  }

  /** Whether the projector takes part in this pass: running, or stopped but its checkpoint has moved since. */
  private async runnable(projector: Projector): Promise<boolean> {
    const stop = this.state(projector).stop;
    if (!stop) return true;
    return this.checkpointMoved(projector, stop).catch((error: unknown) => {
      if (!isTransientDatabaseError(error)) throw error;
      return false;
    });
  }

  /** One batch for one projector; a failure is handled here (retried at the next pass, or isolated), never thrown. */
  private async turn(projector: Projector, stopped: StopRequested): Promise<Turn> {
    const state = this.state(projector);
    try {
      const applied = await this.step(projector);
      if (state.transientFailures > 0) this.log(`projection ${projector.name}: database reachable again after ${state.transientFailures} failed pass(es)`);
      state.transientFailures = 0;
      return { applied, out: false };
    } catch (error) {
      if (isTransientDatabaseError(error)) {
        state.transientFailures += 1;
        if (state.transientFailures === 1) this.log(`projection ${projector.name}: ${describeError(error)}; retrying at the next pass`);
        return { applied: 0, out: true };
      }
      return this.isolate(projector, error, stopped);
    }
  }

  /** A stopped projector resumes once its checkpoint is no longer where it stopped. */
  private async checkpointMoved(projector: Projector, stop: ProjectionStop): Promise<boolean> {
    const checkpoint = await this.options.store.loadCheckpointIn(this.db, projectionCheckpointId(projector.name));
    if (comparePositions(checkpoint, stop.checkpoint) === 0) return false;
    this.state(projector).stop = null;
    this.log(`projection ${projector.name}: PROJECTION_RESUMED: its checkpoint moved from ${formatPosition(stop.checkpoint)} to ${formatPosition(checkpoint)} (rebuilt, or applied by another process)`);
    return true;
  }

  /**
   * After a batch failed for good: applies its events one at a time so the
   * ones before the culprit are kept and the culprit is named, then stops the
   * projector there. A stop request between two of them leaves it running:
   * the next pass fails on the same batch and isolates it again.
   */
  private async isolate(projector: Projector, batchError: unknown, stopped: StopRequested): Promise<Turn> {
    let applied = 0;
    let read: LoggedEvent | null = null;
    let failure: unknown = batchError;
    try {
      for (let i = 0; i < this.batchSize; i += 1) {
        if (stopped()) return { applied, out: true };
        read = null;
        const n = await this.step(projector, 1, (recorded) => (read = recorded[0] ?? null));
        if (n === 0) break;
        applied += n;
      }
      // Every event of the failed batch applied on its own: nothing to stop on.
      this.log(`projection ${projector.name}: a batch failed (${describeError(batchError)}) but its events applied one at a time; carrying on`);
      return { applied, out: false };
    } catch (error) {
      if (isTransientDatabaseError(error)) {
        this.state(projector).transientFailures += 1;
        this.log(`projection ${projector.name}: ${describeError(error)}; retrying at the next pass`);
        return { applied, out: true };
      }
      failure = error;
    }
    let checkpoint: LogPosition;
    try {
      checkpoint = await this.options.store.loadCheckpointIn(this.db, projectionCheckpointId(projector.name));
    } catch (error) {
      if (!isTransientDatabaseError(error)) throw error;
      // Where it stands is unknown for now: not stopped, the next pass fails on the same event and stops it then.
      this.state(projector).transientFailures += 1;
      return { applied, out: true };
    }
    const culprit = read as LoggedEvent | null;
    const stop: ProjectionStop = {
      projector: projector.name,
      reason: describeError(failure),
      checkpoint,
      event: culprit ? { streamId: culprit.streamId, revision: culprit.revision, type: culprit.type, position: culprit.position } : null,
      stoppedAtMs: this.nowMs(),
    };
    this.state(projector).stop = stop;
    const at = stop.event ? ` on ${stop.event.type} ${stop.event.streamId}@${stop.event.revision} (position ${formatPosition(stop.event.position)})` : '';
    this.log(`projection ${projector.name}: PROJECTION_STOPPED at checkpoint ${formatPosition(stop.checkpoint)}${at}: ${stop.reason}; the other projectors keep running`);
    return { applied, out: true };
  }

  /** The projectors stopped on an event they cannot apply, with why. */
  stoppedProjectors(): ProjectionStop[] {
    return [...this.states.values()].flatMap((s) => (s.stop ? [s.stop] : []));
  }

  /** Clears a projector's stop (all of them without a name): the next pass tries it again. */
  resume(projector?: string): void {
    for (const [name, state] of this.states) {
      if (projector !== undefined && name !== projector) continue;
      if (state.stop) this.log(`projection ${name}: PROJECTION_RESUMED on request`);
      state.stop = null;
    }
  }

  /**
   * Runs until stop() or `signal` aborts: a pass, then a wait for an append in
   * this process or the poll interval. A projector that fails stops alone (see
   * pass()); the loop and its promise carry on. The promise rejects only if the
   * runner itself fails with an error that is not transient.
   */
  start(options: Readonly<{ signal?: AbortSignal }> = {}): Promise<void> {
    invariant(this.loop === null, 'projection runner already started');
    const { signal } = options;
    const loop = new PassLoop({
      pass: (stopped) => this.pass(stopped),
      store: this.options.store,
      pollIntervalMs: this.options.pollIntervalMs ?? DEFAULT_PROJECTION_POLL_INTERVAL_MS,
      onError: (error) => (isTransientDatabaseError(error) ? 'retry' : 'stop'),
      ...(signal ? { signal } : {}),
    });
    this.loop = loop;
    this.batchesAtStopRequest = null;
    signal?.addEventListener('abort', () => {
      if (this.loop === loop) this.noteStopRequest();
    }, { once: true });
    return loop.start();
  }

  /** Stops after the batch in progress; the runner may be started again (stopped projectors stay stopped). */
  async stop(): Promise<void> {
    const loop = this.loop;
    if (!loop) return;
    this.noteStopRequest();
    this.loop = null;
    await loop.stop();
    this.log(`projections: stopped ${this.progress().batchesAfterStopRequest} batch(es) after the stop request (${this.events} event(s) applied by this runner)`);
  }

  private noteStopRequest(): void {
    this.batchesAtStopRequest ??= this.batches;
  }

  /** Batches and events applied by this runner, and the batches it finished after the stop request (null before one). */
  progress(): RunnerProgress {
    const at = this.batchesAtStopRequest;
    return { batches: this.batches, events: this.events, batchesAfterStopRequest: at === null ? null : this.batches - at };
  }

  /** How far each projector trails the log (events not yet applied, and the age of the oldest of them), and whether it runs. */
  async lag(): Promise<ProjectionLag[]> {
    const lags: ProjectionLag[] = [];
    for (const projector of this.options.projectors) {
      const checkpoint = await this.options.store.loadCheckpointIn(this.db, projectionCheckpointId(projector.name));
      const backlog = await this.options.store.backlogIn(this.db, checkpoint);
      const lagSeconds = backlog.oldestRecordedAtMs === null ? 0 : Math.max(0, (this.nowMs() - backlog.oldestRecordedAtMs) / 1000);
      const stop = this.state(projector).stop;
      lags.push({
        projector: projector.name,
        checkpoint,
        lagEvents: backlog.events,
        lagSeconds,
        ...(stop ? { status: 'stopped' as const, stopped: stop } : { status: 'running' as const }),
      });
    }
    return lags;
  }

  private log(line: string): void {
    this.options.log?.(line);
  }
}
