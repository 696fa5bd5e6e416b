// Composition root for `npm start`: the whole system embedded (PGlite, dev Lightning, projections, verification, API); clean shutdown.

import { pathToFileURL } from 'node:url';
import { ConfigError, loadConfig } from './config.js';
import { startSystem, type RunningSystem } from './system.js';
import { EventStoreError } from '../domain/ports/event-store-errors.js';

/** `trainledger start` and `npm start`: runs until SIGINT or SIGTERM. */
export async function startCommand(argv: readonly string[], env: NodeJS.ProcessEnv): Promise<void> {
  const config = loadConfig(argv, env);
  const started = startSystem({ config, env, log: (line) => console.error(line), logger: true });
  // Handlers before the start: a signal during start-up waits for it and then stops what started, rather than killing PGlite mid-write.
  stopOnSignals(started, config.shutdownTimeoutMs);
  const system = await started;
  const sqlWhere = config.database.engine === 'pglite' ? `PGlite in ${config.database.dataDir}` : 'PostgreSQL';
  const where = config.eventStore ? `EventStoreDB at ${config.eventStore.display}, read models and API tables in ${sqlWhere}` : sqlWhere;
  system.app.log.info(`trainledger listening on ${system.address} (event store: ${where}; Lightning: ${system.lightning}; OpenAPI at ${system.address}/docs)`);
}

/**
 * A repeat of a stop signal this soon after the first is the same request arriving twice, not an
 * impatient operator: a terminal's Ctrl-C reaches every process in its group, npm and node both, and
 * npm forwards its copy to node as well.
 */
export const REPEAT_SIGNAL_GRACE_MS = 1_000;

/**
 * SIGINT and SIGTERM stop the system once, in order, and exit 0; a failed stop, or one that takes
 * longer than `shutdownTimeoutMs`, exits 1. A second signal later than REPEAT_SIGNAL_GRACE_MS after
 * the first exits 1 at once.
 */
function stopOnSignals(started: Promise<RunningSystem>, shutdownTimeoutMs: number): void {
  let system: RunningSystem | null = null;
  started.then((s) => (system = s), () => {});
  // The service's log once it runs; stderr while it is still starting.
  const log = { info: (line: string) => (system ? system.app.log.info(line) : console.error(line)), error: (line: string) => (system ? system.app.log.error(line) : console.error(line)) };
  let firstSignalMs: number | null = null;
  const shutdown = async (signal: NodeJS.Signals): Promise<void> => {
    if (firstSignalMs !== null) {
      if (Date.now() - firstSignalMs < REPEAT_SIGNAL_GRACE_MS) {
        log.info(`${signal} again within ${REPEAT_SIGNAL_GRACE_MS} ms: the same stop, not a forced exit`);
        return;
      }
      // A second signal is someone who will not wait: leave now rather than after the deadline.
      log.error(`${signal} received again while shutting down; exiting now`);
      process.exit(1);
    }
    const stopStartedMs = Date.now();
    firstSignalMs = stopStartedMs;
    log.info(`${signal} received: closing HTTP, workers, escrow, projections, then the event store (each loop stops after its batch in progress; another signal ${REPEAT_SIGNAL_GRACE_MS} ms or more from now exits at once)`);
    const forced = setTimeout(() => {
      log.error(`shutdown took longer than ${shutdownTimeoutMs} ms; exiting`);
      process.exit(1);
    }, shutdownTimeoutMs);
    forced.unref();
    try {
      await (await started).stop();
    } catch (error) {
      log.error(`shutdown failed after ${Date.now() - stopStartedMs} ms: ${error instanceof Error ? error.message : String(error)}`);
      process.exit(1);
    }
    log.info(`stopped in ${Date.now() - stopStartedMs} ms`);
    process.exit(0);
  };
  for (const signal of ['SIGINT', 'SIGTERM'] as const) process.on(signal, () => void shutdown(signal));
}

export function failStart(error: unknown): never {
  const code = error instanceof ConfigError || error instanceof EventStoreError ? error.code : 'START_FAILED';
  console.error(`trainledger: ${code}: ${error instanceof Error ? error.message : String(error)}`);
  process.exit(1);
}

if (process.argv[1] && import.meta.url === pathToFileURL(process.argv[1]).href) startCommand(process.argv.slice(2), process.env).catch(failStart);
