// Composition root for `npm start`: the whole system embedded (PGlite, dev Lightning, projections, verification, API); clean shutdown.

import { pathToFileURL } from 'node:url';
import { ConfigError, loadConfig } from './config.js';
import { startSystem } from './system.js';

/** `trainledger start` and `npm start`: runs until SIGINT or SIGTERM. */
export async function startCommand(argv: readonly string[], env: NodeJS.ProcessEnv): Promise<void> {
  const config = loadConfig(argv, env);
  const system = await startSystem({ config, env, log: (line) => console.error(line), logger: true });
  const where = config.database.engine === 'pglite' ? `PGlite in ${config.database.dataDir}` : 'PostgreSQL';
  system.app.log.info(`trainledger listening on ${system.address} (event store: ${where}; Lightning: ${system.lightning}; OpenAPI at ${system.address}/docs)`);

  let stopping = false;
  const shutdown = async (signal: string): Promise<void> => {
    if (stopping) {
      // A second signal is someone who will not wait: leave now rather than after the deadline.
      system.app.log.error(`${signal} received again while shutting down; exiting now`);
      process.exit(1);
    }
    stopping = true;
    const startedMs = Date.now();
    system.app.log.info(`${signal} received: closing HTTP, workers, escrow, projections, then the event store (each loop stops after its batch in progress)`);
    const forced = setTimeout(() => {
      system.app.log.error(`shutdown took longer than ${config.shutdownTimeoutMs} ms; exiting`);
      process.exit(1);
    }, config.shutdownTimeoutMs);
    forced.unref();
    try {
      await system.stop();
    } catch (error) {
      system.app.log.error(`shutdown failed after ${Date.now() - startedMs} ms: ${error instanceof Error ? error.message : String(error)}`);
      process.exit(1);
    }
    system.app.log.info(`stopped in ${Date.now() - startedMs} ms`);
    process.exit(0);
  };
  process.on('SIGINT', () => void shutdown('SIGINT'));
  process.on('SIGTERM', () => void shutdown('SIGTERM'));
}

export function failStart(error: unknown): never {
  const code = error instanceof ConfigError ? error.code : 'START_FAILED';
  console.error(`trainledger: ${code}: ${error instanceof Error ? error.message : String(error)}`);
  process.exit(1);
}

if (process.argv[1] && import.meta.url === pathToFileURL(process.argv[1]).href) startCommand(process.argv.slice(2), process.env).catch(failStart);
