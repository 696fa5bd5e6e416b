// The SIGKILL suite's moving parts: the real server (and, on PostgreSQL, a replay worker) as child processes killed and restarted, and clients that record every request's outcome.

import { spawn, type ChildProcess } from 'node:child_process';
import { createHash, randomBytes, type KeyObject } from 'node:crypto';
import { createServer } from 'node:net';
import { dirname, resolve } from 'node:path';
import { fileURLToPath } from 'node:url';
import { signRequest } from '../../adapters/http/auth/http-signature.js';
import type { Outcome } from './set-checker.js';

export const ROOT = resolve(dirname(fileURLToPath(import.meta.url)), '../..');
export type Engine = 'pglite' | 'postgres';

/** Bounds on every wait: a boot on two busy cores takes seconds, never minutes. */
export const SIGKILL_LIMITS = Object.freeze({
  startTimeoutMs: 90_000,
  exitTimeoutMs: 30_000,
  /** One request's budget: past it the outcome is unknown, as a client's timeout makes it. */
  requestTimeoutMs: 8_000,
  /** After the chaos, a retry is a check, not a client's impatience: it waits this long for its answer. */
  checkTimeoutMs: 60_000,
  /** Attempts of one operation before the client leaves it unknown. */
  maxAttempts: 40,
  pollIntervalMs: 50,
  /** Operations one client may make in a run, so a fast machine cannot grow the history without bound. */
  maxOperationsPerClient: 2_000,
  /** Output kept per process, for the failure message. */
  maxOutputChars: 20_000,
});

export async function freePort(): Promise<number> {
  const server = createServer();
  await new Promise<void>((done) => server.listen(0, '127.0.0.1', done));
  const port = (server.address() as { port: number }).port;
  await new Promise<void>((done) => server.close(() => done()));
  return port;
}

/** Polls `probe` until it yields a value or the time is up; the probe is the synchronisation, the pause only spaces the checks. */
export async function poll<T>(probe: () => Promise<T | null> | T | null, timeoutMs: number, what: string): Promise<T> {
  const deadlineMs = Date.now() + timeoutMs;
  for (;;) {
    const value = await probe();
    if (value !== null) return value;
    if (Date.now() > deadlineMs) throw new Error(`gave up after ${timeoutMs} ms waiting for ${what}`);
    await new Promise((done) => setTimeout(done, SIGKILL_LIMITS.pollIntervalMs));
  }
}

type Child = { name: string; process: ChildProcess; exited: Promise<void>; output: () => string };

export type FleetOptions = Readonly<{ engine: Engine; dataDir: string; databaseUrl: string | null; port: number; adminKey: string }>;

/**
 * The server as an operator runs it, `node --import tsx adapters/main.ts`, on one data folder (and one
 * database) for every start. On PGlite it runs every part in-process: PGlite is one process's, so
 * nothing can be split off. On PostgreSQL the replay worker runs as its own process
 * (adapters/replay-worker-main.ts) and is killed too. The escrow engine stays in the server on both:
 * the development Lightning network lives in the server's memory (persisted to its data folder), so a
 * second process could not share it.
 */
export class ServerFleet {
  readonly baseUrl: string;
  private children: Child[] = [];
  /** Everything every process printed, newest last, for a failure message. */
  private log = '';
  kills = 0;
  killsDuringBoot = 0;
  processesKilled = 0;
  /** How long each start took until /health answered: a restart's downtime. */
  readonly startMs: number[] = [];
  readonly killedAtMs: number[] = [];

  private readonly createdMs = Date.now();

  constructor(private readonly options: FleetOptions) {
    this.baseUrl = `http://127.0.0.1:${options.port}`;
  }

  async start(): Promise<void> {
    const beganMs = Date.now();
    this.spawnAll();
    await poll(async () => ((await fetch(new URL('/health', this.baseUrl), { signal: AbortSignal.timeout(2_000) }).catch(() => null))?.ok ? true : null), SIGKILL_LIMITS.startTimeoutMs, 'the server to answer /health')
      .catch((error: unknown) => {
        throw new Error(`${(error as Error).message}\n${this.output()}`);
      });
    this.startMs.push(Date.now() - beganMs);
  }

  /** A start killed `afterMs` in, whatever it is doing then: opening the store, migrating, catching projections up. */
  async startAndKillDuringBoot(afterMs: number): Promise<void> {
    this.spawnAll();
    await new Promise((done) => setTimeout(done, afterMs));
    this.killsDuringBoot += 1;
    await this.kill();
  }

  private spawnAll(): void {
    const { engine, dataDir, databaseUrl, port, adminKey } = this.options;
    const db = databaseUrl ? ['--database-url', databaseUrl] : [];
    const parts = engine === 'postgres' ? ['--parts', 'api,projections,escrow,validator'] : [];
    this.children.push(this.spawn('server', ['adapters/main.ts', '--data-dir', dataDir, '--host', '127.0.0.1', '--port', String(port), ...db, ...parts], { TRAINLEDGER_ADMIN_KEY: adminKey }));
    if (engine === 'postgres') this.children.push(this.spawn('replay-worker', ['adapters/replay-worker-main.ts', '--data-dir', dataDir, ...db, '--provider', 'cpu', '--threads', '1'], {}));
  }

  /** SIGKILL to every process at once: no handler runs, no buffer is flushed, nothing is closed. */
  async kill(): Promise<void> {
    const running = this.children.splice(0);
    for (const child of running) child.process.kill('SIGKILL');
    await Promise.all(running.map((c) => c.exited));
    this.kills += 1;
    this.killedAtMs.push(Date.now());
    this.processesKilled += running.length;
  }

  /** SIGTERM and wait: the end of the run, so the checks can open a PGlite folder that one process at a time may hold. */
  async stop(): Promise<void> {
    const running = this.children.splice(0);
    for (const child of running) child.process.kill('SIGTERM');
    await Promise.race([Promise.all(running.map((c) => c.exited)), new Promise((done) => setTimeout(done, SIGKILL_LIMITS.exitTimeoutMs).unref())]);
    for (const child of running) if (child.process.exitCode === null && child.process.signalCode === null) child.process.kill('SIGKILL');
    await Promise.all(running.map((c) => c.exited));
  }

  output(): string {
    return this.log.slice(-SIGKILL_LIMITS.maxOutputChars);
  }

  private spawn(name: string, args: string[], env: Record<string, string>): Child {
    const child = spawn(process.execPath, ['--import', 'tsx', ...args], { cwd: ROOT, env: { ...process.env, ...env }, stdio: ['ignore', 'pipe', 'pipe'] });
    const append = (chunk: Buffer) => {
      // Per-request access lines would push out what matters (escrow, replay, start-up): they are left out.
      const lines = chunk.toString().split('\n').filter((line) => line !== '' && !/"msg":"(incoming request|request completed)"/.test(line));
      if (lines.length > 0) this.log = (this.log + lines.map((line) => `[${name} ${child.pid} +${Date.now() - this.createdMs}ms] ${line}\n`).join('')).slice(-SIGKILL_LIMITS.maxOutputChars * 2);
    };
    child.stdout!.on('data', append);
    child.stderr!.on('data', append);
    const exited = new Promise<void>((done) => child.once('exit', () => done()));
    return { name, process: child, exited, output: () => this.log };
  }
}

/** Who sends a request: a staff bearer key, or a contributor who signs every attempt afresh (a nonce is single-use). */
export type Sender = Readonly<{ kind: 'staff'; keyId: string; apiKey: string }> | Readonly<{ kind: 'contributor'; contributorId: string; privateKey: KeyObject }>;

export type Attempt = Readonly<{ outcome: Outcome; status: number | null; code: string | null; body: string; error: string | null }>;

/** One command under one idempotency key, and every attempt at it. */
export type Operation = {
  id: number;
  client: number;
  kind: string;
  method: 'POST' | 'PUT';
  path: string;
  body: Uint8Array;
  headers: Record<string, string>;
  sender: Sender;
  idempotencyKey: string;
  /** A body the server must refuse under this key with 422: the same request changed. */
  changedBody: Uint8Array;
  attempts: Attempt[];
  /** Appends events (the key is in their metadata); a checkpoint upload or an invoice post does not. */
  logged: boolean;
};

export function principalOf(sender: Sender): string {
  return sender.kind === 'staff' ? `key:${sender.keyId}` : `contributor:${sender.contributorId}`;
}

/** The prefix of the command keys the server derives from this request (adapters/http/api-context.ts commandKey; the command type follows). */
export function commandKeyPrefix(op: Operation): string {
  return `http:${createHash('sha256').update(`${principalOf(op.sender)}\n${op.idempotencyKey}`).digest('hex')}`;
}

/** One attempt, signed afresh: a 2xx is ok, a 4xx a definite failure, anything else (reset, timeout, 5xx) unknown. */
export async function attempt(baseUrl: string, op: Pick<Operation, 'method' | 'path' | 'headers' | 'sender' | 'idempotencyKey'>, body: Uint8Array, timeoutMs: number = SIGKILL_LIMITS.requestTimeoutMs): Promise<Attempt> {
  const headers: Record<string, string> = { ...op.headers, 'idempotency-key': op.idempotencyKey };
  if (op.sender.kind === 'staff') headers.authorization = `Bearer ${op.sender.apiKey}`;
  else Object.assign(headers, signRequest({ method: op.method, path: op.path, body, keyId: op.sender.contributorId, privateKey: op.sender.privateKey, createdSec: Math.floor(Date.now() / 1000), nonce: randomBytes(18).toString('base64url') }));
  try {
    const response = await fetch(new URL(op.path, baseUrl), { method: op.method, headers, body, signal: AbortSignal.timeout(timeoutMs) });
    const text = await response.text();
    let code: string | null = null;
    try {
      code = (JSON.parse(text) as { code?: string }).code ?? null;
    } catch {
      // Not JSON: no code.
    }
    const outcome: Outcome = response.status >= 200 && response.status < 300 ? 'ok' : response.status >= 400 && response.status < 500 ? 'fail' : 'unknown';
    return { outcome, status: response.status, code, body: text, error: null };
  } catch (error) {
    const cause = (error as { cause?: { code?: string } }).cause?.code ?? (error as Error).name;
    return { outcome: 'unknown', status: null, code: null, body: '', error: cause };
  }
}

/**
 * Problems that mean "nothing happened, try again" are not kept under the key (UNKEPT_* in
 * adapters/http/idempotency.ts): a retry redoes them, so the client retries them like an unknown.
 */
const RETRY_CODES = new Set(['CONCURRENCY_CONFLICT', 'WRONG_EXPECTED_REVISION', 'RATE_LIMITED']);
const RETRY_STATUSES = new Set([401, 408, 429]);

export function isRetriable(a: Attempt): boolean {
  return a.outcome === 'unknown' || RETRY_STATUSES.has(a.status ?? 0) || (a.code !== null && RETRY_CODES.has(a.code));
}

/** The answer an operation ended with: its last attempt that was not to be retried. */
export function finalAttempt(op: Operation): Attempt | null {
  const last = op.attempts.at(-1);
  return last && !isRetriable(last) ? last : null;
}

/** The set checker's view: a retried transient refusal is unknown (it may have been a lost reply's retry), the rest as answered. */
export function outcomesOf(op: Operation): Outcome[] {
  return op.attempts.map((a) => (isRetriable(a) ? 'unknown' : a.outcome));
}

/** How many events a 2xx answer listed, or null (no 2xx, or an answer with no events list). */
export function acknowledgedEvents(op: Operation): number | null {
  const ok = op.attempts.find((a) => a.outcome === 'ok');
  if (!ok) return null;
  try {
    const events = (JSON.parse(ok.body) as { events?: unknown[] }).events;
    return Array.isArray(events) ? events.length : null;
  } catch {
    return null;
  }
}

/** Sends an operation until it gets an answer that is not to be retried, waiting for the server between attempts. */
export async function perform(baseUrl: string, op: Operation, stillRunning: () => boolean): Promise<Attempt> {
  for (;;) {
    const a = await attempt(baseUrl, op, op.body);
    op.attempts.push(a);
    if (!isRetriable(a) || op.attempts.length >= SIGKILL_LIMITS.maxAttempts || !stillRunning()) return a;
    // Down, or restarting: wait until it answers again (bounded), then retry with the same key and body.
    await poll(async () => ((await fetch(new URL('/health', baseUrl), { signal: AbortSignal.timeout(2_000) }).catch(() => null))?.ok ? true : null), SIGKILL_LIMITS.startTimeoutMs, 'the server to come back').catch(() => undefined);
  }
}
