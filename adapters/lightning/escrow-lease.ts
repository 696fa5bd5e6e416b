// The single-writer lease of the escrow engine: one process at a time reacts, settles and dispatches; a second waits and takes over on the first one's death.

import { sql, type Kysely } from 'kysely';

export interface SingleWriterLease {
  /** Waits until this process holds the lease; resolves false when `stopped` turns true first. */
  acquire(stopped: () => boolean): Promise<boolean>;
  /** Throws when the lease was lost (its session died), so the holder stops acting on it. */
  check(): Promise<void>;
  release(): Promise<void>;
  readonly held: boolean;
}

/** How often a waiting process tries the lock again. */
export const LEASE_RETRY_MS = 500;
const LEASE_NAME = 'trainledger:escrow-engine';

/**
 * A PostgreSQL session advisory lock held on one connection reserved for as long as the lease
 * lives. Nothing depends on clocks: the server frees the lock when the holder's session ends,
 * whether it released it, crashed or lost its network. `check()` runs a query on that very
 * connection before every pass, so a holder whose session died stops before acting again.
 */
export class PostgresAdvisoryLease implements SingleWriterLease {
  private holding: Promise<void> | null = null;
  private letGo: (() => void) | null = null;
  private connection: Kysely<any> | null = null;
  /** Tries made while waiting: tests watch it to know a waiter is really waiting. */
  tries = 0;

  constructor(private readonly db: Kysely<any>, private readonly retryMs = LEASE_RETRY_MS) {}

  get held(): boolean {
    return this.connection !== null;
  }

  acquire(stopped: () => boolean): Promise<boolean> {
    if (this.held) return Promise.resolve(true);
    return new Promise<boolean>((resolve, reject) => {
      this.holding = this.db
        .connection()
        .execute(async (connection) => {
          while (!(await tryLock(connection))) {
            this.tries += 1;
            if (stopped()) return resolve(false);
            await new Promise((wake) => setTimeout(wake, this.retryMs));
          }
          this.connection = connection;
          resolve(true);
          await new Promise<void>((letGo) => (this.letGo = letGo));
          this.connection = null;
          await sql`SELECT pg_advisory_unlock(hashtext(${LEASE_NAME}))`.execute(connection).catch(() => {});
        })
        .catch((error: unknown) => {
          this.connection = null;
          reject(error);
        });
    });
  }

  /**
   * Proves the lock is still this session's: advisory locks are re-entrant, so taking it again on
   * the holding connection succeeds only if that session still holds it (then the extra hold is
   * dropped). A dead session fails the query. Either way a lost lease is let go entirely, so the
   * next acquire starts over on a fresh connection instead of trusting a dead one.
   */
  async check(): Promise<void> {
    const connection = this.connection;
    if (connection === null) throw new Error('the escrow lease is not held');
    let held = false;
    try {
      held = await tryLock(connection);
      if (held) await sql`SELECT pg_advisory_unlock(hashtext(${LEASE_NAME}))`.execute(connection);
    } catch {
      held = false;
    }
    if (held) return;
    await this.release();
    throw new Error('the escrow lease was lost (its session ended); it will be taken again before the next pass acts');
  }

  async release(): Promise<void> {
    this.connection = null;
    this.letGo?.();
    this.letGo = null;
    await this.holding?.catch(() => {});
    this.holding = null;
  }
}

async function tryLock(connection: Kysely<any>): Promise<boolean> {
  const rows = await sql<{ locked: boolean }>`SELECT pg_try_advisory_lock(hashtext(${LEASE_NAME})) AS locked`.execute(connection);
  return rows.rows[0]?.locked === true;
}

/** Leases per embedded database: PGlite lives in one process, so mutual exclusion in that process is the whole story. */
const inProcessHolders = new WeakMap<object, InProcessLease>();

/**
 * For PGlite, which one process opens at a time and which serialises every query over one
 * connection (an advisory lock would pin it): engines in the same process take turns.
 */
export class InProcessLease implements SingleWriterLease {
  readonly waiters: (() => void)[] = [];
  private holdingFlag = false;

  constructor(private readonly key: object) {}

  get held(): boolean {
    return this.holdingFlag;
  }

  async acquire(stopped: () => boolean): Promise<boolean> {
    for (;;) {
      if (this.holdingFlag) return true;
      const holder = inProcessHolders.get(this.key);
      if (holder === undefined) {
        inProcessHolders.set(this.key, this);
        this.holdingFlag = true;
        return true;
      }
      if (stopped()) return false;
      // Woken by the holder's release, or after a while to notice a stop.
      await new Promise<void>((wake) => {
        holder.waiters.push(wake);
        setTimeout(wake, LEASE_RETRY_MS);
      });
    }
  }

  async check(): Promise<void> {
    if (!this.holdingFlag) throw new Error('the escrow lease is not held');
  }

  async release(): Promise<void> {
    if (!this.holdingFlag) return;
    this.holdingFlag = false;
    inProcessHolders.delete(this.key);
    for (const wake of this.waiters.splice(0)) wake();
  }
}

export function leaseFor(db: Kysely<any>, engine: 'postgres' | 'pglite'): SingleWriterLease {
  return engine === 'postgres' ? new PostgresAdvisoryLease(db) : new InProcessLease(db);
}
