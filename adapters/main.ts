// Composition root for `npm start`: embedded store in ./data, projections, dev-network escrow, validator and replay worker, /health.

import { mkdirSync } from 'node:fs';
import { ConfigError, loadConfig } from './config.js';
import { openEventStore } from './event-store/open-event-store.js';
import { buildApp } from './http/build-app.js';
import { randomUUID } from 'node:crypto';
import { ALL_PROJECTORS } from '../projections/index.js';
import { DevLightningNetwork } from './lightning/dev/dev-lightning-network.js';
import { DevContributors } from './lightning/dev-contributors.js';
import { EscrowEngine } from './lightning/escrow-engine.js';
import { EscrowLoop } from './lightning/escrow-loop.js';
import { PreimageDeriver, loadOrCreateCoordinatorSecret } from './lightning/preimages.js';
import { ProjectionRunner } from '../projections/runner.js';
import { FileBlobStore } from './blobs/file-blob-store.js';
import { DEFAULT_REPLAY_LEASE_MS, VerificationService } from './replay/verification-service.js';
import { REFERENCE_SETTINGS } from '../replay/recipe.js';
import { join } from 'node:path';

async function main(): Promise<void> {
  const config = loadConfig(process.argv.slice(2), process.env);
  mkdirSync(config.dataDir, { recursive: true });
  const { store, engine, db } = await openEventStore(config.database);
  const projections = new ProjectionRunner({ store, projectors: ALL_PROJECTORS });
  await projections.prepare();
  // A projector that hits a broken invariant stops the service loudly rather than serve drifting figures.
  projections.start().catch((error: unknown) => {
    console.error(`trainledger: PROJECTION_STOPPED: ${error instanceof Error ? error.message : String(error)}`);
    process.exit(1);
  });
  // Escrow on the development Lightning network: simulated nodes, regtest BOLT11, never real money.
  const lightning = await DevLightningNetwork.open({ dataDir: config.dataDir, nowMs: Date.now, blockIntervalMs: 600_000 });
  const contributors = new DevContributors(lightning);
  const escrow = new EscrowEngine({
    store,
    node: lightning.coordinator(),
    invoices: contributors,
    contributors,
    preimages: new PreimageDeriver(loadOrCreateCoordinatorSecret(config.dataDir)),
    nowMs: Date.now,
    newEventId: randomUUID,
    network: 'regtest',
  });
  await escrow.prepare();
  const escrowLoop = new EscrowLoop(escrow, store, (line) => console.error(line));
  escrowLoop.start().catch((error: unknown) => {
    console.error(`trainledger: ESCROW_STOPPED: ${error instanceof Error ? error.message : String(error)}`);
    process.exit(1);
  });
  // Verification on CPU in the reference recipe class: the validator and one replay worker.
  const verification = new VerificationService({
    store, db, blobs: new FileBlobStore(join(config.dataDir, 'blobs')), nowMs: Date.now, leaseMs: DEFAULT_REPLAY_LEASE_MS, workerIdPrefix: 'embedded',
    settings: { provider: 'cpu', graphOptimizationLevel: REFERENCE_SETTINGS.graphOptimizationLevel, intraOpNumThreads: REFERENCE_SETTINGS.intraOpNumThreads },
    parts: { validator: true, replayWorkers: 1 },
    log: (line) => console.error(line),
  });
  await verification.start();
  const app = await buildApp({ store, engine, startedAtMs: Date.now(), nowMs: Date.now, projectionLag: () => projections.lag(), bodyLimitBytes: config.http.bodyLimitBytes, logger: true });
  const address = await app.listen({ host: config.http.host, port: config.http.port });
  const where = config.database.engine === 'pglite' ? `PGlite in ${config.database.dataDir}` : 'PostgreSQL';
  app.log.info(`trainledger listening on ${address} (event store: ${where}; Lightning: development network in ${config.dataDir}, NOT real money)`);

  let stopping = false;
  const shutdown = async (signal: string): Promise<void> => {
    if (stopping) return;
    stopping = true;
    app.log.info(`${signal} received: closing HTTP, then the event store`);
    const forced = setTimeout(() => {
      app.log.error(`shutdown took longer than ${config.shutdownTimeoutMs} ms; exiting`);
      process.exit(1);
    }, config.shutdownTimeoutMs);
    forced.unref();
    await app.close();
    await verification.stop();
    await escrowLoop.stop();
    await lightning.close();
    await projections.stop();
    await store.close();
    process.exit(0);
  };
  process.on('SIGINT', () => void shutdown('SIGINT'));
  process.on('SIGTERM', () => void shutdown('SIGTERM'));
}

main().catch((error: unknown) => {
  const code = error instanceof ConfigError ? error.code : 'START_FAILED';
  console.error(`trainledger: ${code}: ${error instanceof Error ? error.message : String(error)}`);
  process.exit(1);
});
