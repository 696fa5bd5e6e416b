// Which server processes hold claims, and whether the one behind a claim is gone: advisory locks on PostgreSQL, this process on PGlite.

import { createHash } from 'node:crypto';
import { sql, type Kysely } from 'kysely';

/**
 * The server processes that make claims, each under a random instance id, and whether the one behind a claim is
 * gone. Nothing compares clocks of different processes: a process is gone when the database says its session ended.
 */
export interface Claimants {
  readonly instanceId: string;
  /** Begins claiming under `instanceId` (on PostgreSQL, takes its lock); the app calls it when it is ready. */
  start(): Promise<void>;
  /** True only when the process behind `instanceId` is certainly gone, so its in-flight claims may be taken over now. */
  isGone(instanceId: string): Promise<boolean>;
  close(): Promise<void>;
}

/** The engines that can tell a gone process from a live one; any other store waits out leases. */
export type ClaimantEngine = 'postgres' | 'pglite';

/** How this engine tells a gone process from a live one (the HTTP idempotency claims and the replay-job queue's workers). */
export function claimantsFor(db: Kysely<any>, engine: ClaimantEngine | undefined, instanceId: string): Claimants {
  if (engine === 'postgres') return new AdvisoryLockClaimants(db, instanceId);
  if (engine === 'pglite') return new InProcessClaimants(db, instanceId);
  return new LeaseOnlyClaimants(instanceId);
}

/** The two int4 halves of an instance's advisory lock key: the two-key lock space, apart from hashtext(name) locks. */
export function instanceLockKeys(instanceId: string): readonly [number, number] {
  const digest = createHash('sha256').update(`trainledger:http-instance:${instanceId}`).digest();
  return [digest.readInt32BE(0), digest.readInt32BE(4)];
}

/**
 * PostgreSQL: each process holds a session advisory lock keyed by its instance id, on one connection reserved for
 * its lifetime (as the escrow lease does). The server frees the lock when that session ends, however the process
 * died, so a claimant whose lock can be taken is gone. The probe takes and drops the lock in one statement.
 */
class AdvisoryLockClaimants implements Claimants {
  private holding: Promise<void> | null = null;
  private letGo: (() => void) | null = null;

  constructor(private readonly db: Kysely<any>, readonly instanceId: string) {}

  start(): Promise<void> {
    if (this.holding) return Promise.resolve();
    const [high, low] = instanceLockKeys(this.instanceId);
    return new Promise<void>((resolve, reject) => {
      this.holding = this.db
        .connection()
        .execute(async (connection) => {
          const rows = await sql<{ locked: boolean }>`SELECT pg_try_advisory_lock(${high}::int4, ${low}::int4) AS locked`.execute(connection);
          if (rows.rows[0]?.locked !== true) throw new Error(`idempotency instance ${this.instanceId} is already held by another session: give each server process its own instance id`);
          await new Promise<void>((letGo) => {
            this.letGo = letGo;
            resolve();
          });
          await sql`SELECT pg_advisory_unlock(${high}::int4, ${low}::int4)`.execute(connection).catch(() => {});
        })
        .catch((error: unknown) => {
          this.holding = null;
          reject(error);
        });
    });
  }

  async isGone(instanceId: string): Promise<boolean> {
    if (instanceId === this.instanceId) return false;
    const [high, low] = instanceLockKeys(instanceId);
    const rows = await sql<{ gone: boolean }>`
      SELECT CASE WHEN pg_try_advisory_lock(${high}::int4, ${low}::int4) THEN pg_advisory_unlock(${high}::int4, ${low}::int4) ELSE false END AS gone`.execute(this.db);
    return rows.rows[0]?.gone === true;
  }

  async close(): Promise<void> {
    this.letGo?.();
    this.letGo = null;
    await this.holding;
    this.holding = null;
  }
}

/** Live instances per embedded database: only this process can have a PGlite database open. */
const liveInProcess = new WeakMap<object, Set<string>>();

/**
 * PGlite: one process opens the database, and it serialises every query over one connection (a held lock would pin
 * it). So a claimant that is not a live instance in this process is gone: it ran in a process that has ended.
 */
class InProcessClaimants implements Claimants {
  constructor(private readonly db: object, readonly instanceId: string) {}

  async start(): Promise<void> {
    const live = liveInProcess.get(this.db) ?? new Set<string>();
    live.add(this.instanceId);
    liveInProcess.set(this.db, live);
  }

  async isGone(instanceId: string): Promise<boolean> {
    return liveInProcess.get(this.db)?.has(instanceId) !== true;
  }

  async close(): Promise<void> {
    liveInProcess.get(this.db)?.delete(this.instanceId);
  }
}

/** No way to tell: every claim waits for the lease. */
class LeaseOnlyClaimants implements Claimants {
  constructor(readonly instanceId: string) {}
  async start(): Promise<void> {}
  async isGone(): Promise<boolean> {
    return false;
  }
  async close(): Promise<void> {}
}
