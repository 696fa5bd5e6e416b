// Starts the whole system — store, projections, escrow (dev network or LND), verification, API — and stops it in order.

import { randomUUID } from 'node:crypto';
import { mkdirSync } from 'node:fs';
import { join } from 'node:path';
import type { FastifyInstance } from 'fastify';
import { logCatalogProjector } from '../projections/catalog/index.js';
import { ALL_PROJECTORS } from '../projections/index.js';
import { ProjectionRunner } from '../projections/runner.js';
import { REFERENCE_SETTINGS } from '../replay/recipe.js';
import { FileBlobStore } from './blobs/file-blob-store.js';
import type { AppConfig } from './config.js';
import { openEventStore, openSplitStore, type OpenedLedgerStore } from './event-store/open-event-store.js';
import { SplitLogStore } from './event-store/split-log.js';
import { openEsdbEventStore } from './eventstoredb/open-esdb.js';
import type { EventStore } from '../domain/ports/event-store.js';
import { openAsyncCommitDatabase } from './postgres/database.js';
import { DEFAULT_API_LIMITS, type ApiLimits } from './http/api-context.js';
import { ApiKeyStore } from './http/auth/api-keys.js';
import { NonceStore } from './http/auth/nonce-store.js';
import { buildApp } from './http/build-app.js';
import { HoldInvoiceBox } from './http/hold-invoice-box.js';
import type { Kysely } from 'kysely';
import type { ContributorChannel, CoordinatorNode } from '../domain/ports/lightning.js';
import { ConfigError } from './config.js';
import { API_CONTRIBUTOR_CHANNEL } from './lightning/api-contributor-channel.js';
import { loadLndConfig } from './lightning/lnd/lnd-config.js';
import { DevContributors } from './lightning/dev-contributors.js';
import { DevLightningNetwork } from './lightning/dev/dev-lightning-network.js';
import { EscrowEngine } from './lightning/escrow-engine.js';
import { EscrowLoop } from './lightning/escrow-loop.js';
import { leaseFor } from './lightning/escrow-lease.js';
import { loadOrCreateCoordinatorSecret, PreimageDeriver } from './lightning/preimages.js';
import { DEFAULT_REPLAY_LEASE_MS, VerificationService } from './replay/verification-service.js';

export type SystemOptions = Readonly<{
  config: AppConfig;
  env: NodeJS.ProcessEnv;
  log: (line: string) => void;
  logger?: boolean;
  limits?: ApiLimits;
  /** Simulated seconds per block on the development network. */
  blockIntervalMs?: number;
  /** Called with the built app before it listens, to add hooks (end-to-end tests record every exchange this way). */
  beforeListen?: (app: FastifyInstance) => void;
  /**
   * Opens the event log of the split composition instead of ESDB_URL's cluster: the log behind the plain
   * port, everything else in the configured database. Tests run the split on a second SQL store this way.
   */
  openLog?: () => Promise<EventStore>;
}>;

export type RunningSystem = Readonly<{ app: FastifyInstance; address: string; lightning: string; stop: () => Promise<void> }>;

/** Network names as BOLT11 prefixes map to them; the coordinator's LND runs on one of these. */
const LND_NETWORKS = ['bitcoin', 'testnet', 'signet', 'regtest', 'simnet'];

type Lightning = Readonly<{
  node: CoordinatorNode;
  network: string;
  holdInvoices: HoldInvoiceBox;
  channel: ContributorChannel;
  devNodeKey?: (contributorId: string) => Promise<string>;
  describe: string;
  close: () => Promise<void>;
}>;

/**
 * LND when LND_SOCKET, LND_CERT and LND_MACAROON are set: contributors then post their own
 * invoices through the API. Otherwise the development network, whose simulated wallets answer
 * for contributors who posted nothing. Never real money there.
 */
async function openLightning(options: SystemOptions, db: Kysely<any>): Promise<Lightning> {
  const lnd = loadLndConfig(options.env).coordinator;
  if (lnd) {
    const network = options.env.TRAINLEDGER_LND_NETWORK ?? 'bitcoin';
    if (!LND_NETWORKS.includes(network)) throw new ConfigError(`TRAINLEDGER_LND_NETWORK must be one of ${LND_NETWORKS.join(', ')}, got ${network}`);
    // Loaded only here: ln-service and its gRPC stack hold ~15 MB a development-network service never uses.
    const { LndCoordinatorNode } = await import('./lightning/lnd/lnd-coordinator.js');
    const node = LndCoordinatorNode.connect(lnd);
    // Fail at start, not at the first payment, when the node cannot be reached or the credentials are wrong.
    await node.publicKey();
    return { node, network, holdInvoices: new HoldInvoiceBox(db, null), channel: API_CONTRIBUTOR_CHANNEL, describe: `LND at ${lnd.socket} (${network})`, close: () => node.close() };
  }
  const network = await DevLightningNetwork.open({ dataDir: options.config.dataDir, nowMs: Date.now, blockIntervalMs: options.blockIntervalMs ?? 600_000 });
  const devContributors = new DevContributors(network);
  return {
    node: network.coordinator(),
    network: 'regtest',
    // Invoices contributors post through the API come first; the dev wallets answer for everyone else.
    holdInvoices: new HoldInvoiceBox(db, devContributors),
    channel: devContributors,
    devNodeKey: (contributorId) => network.wallet(contributorId).publicKey(),
    describe: `development network in ${options.config.dataDir}, NOT real money`,
    close: () => network.close(),
  };
}

/**
 * The SQL log (log, checkpoints and read models in one database), or with ESDB_URL the split composition: the
 * cluster is probed first (EVENT_STORE_UNREACHABLE when none answers), then the database of everything else opens.
 */
async function openStores(options: SystemOptions): Promise<OpenedLedgerStore> {
  const { config } = options;
  const target = config.eventStore;
  const openLog = options.openLog ?? (target ? async () => (await openEsdbEventStore(target)).store : null);
  if (!openLog) return openEventStore(config.database);
  return openSplitStore(await openLog(), config.database);
}

export async function startSystem(options: SystemOptions): Promise<RunningSystem> {
  mkdirSync(options.config.dataDir, { recursive: true });
  // Each part that starts pushes its stop; a part that fails to start stops the ones before it.
  const stops: (() => Promise<void>)[] = [];
  try {
    return await startParts(options, stops);
  } catch (error) {
    for (const stop of stops) await stop().catch(() => {});
    throw error;
  }
}

async function startParts(options: SystemOptions, stops: (() => Promise<void>)[]): Promise<RunningSystem> {
  const { config, log } = options;
  const { store, engine, db } = await openStores(options);
  stops.push(() => store.close());
  const fail = (part: string) => (error: unknown) => {
    // A part whose loop itself fails stops the service loudly. One projector's broken invariant stops that projector
    // alone (reported on /health), and one bad input about an assignment is recorded as an event, so neither reaches here.
    log(`trainledger: ${part}_STOPPED: ${error instanceof Error ? error.message : String(error)}`);
    process.exit(1);
  };

  // Aborted first at stop, so the loops wind down together while the HTTP server drains; each stop below waits for its own.
  const stopping = new AbortController();
  const { parts } = config;
  // On the split composition the log catalog runs beside the read models: the list of streams and their heads the
  // audit walks (the SQL log has its own streams table). The audit catches it up itself; running it here keeps that short.
  const projectors = store instanceof SplitLogStore ? [...ALL_PROJECTORS, logCatalogProjector] : ALL_PROJECTORS;
  const projections = parts.has('projections') ? new ProjectionRunner({ store, projectors, log }) : null;
  if (projections) {
    await projections.prepare();
    projections.start({ signal: stopping.signal }).catch(fail('PROJECTION'));
    stops.unshift(() => projections.stop());
  }

  // The API decodes contributors' invoices with the coordinator's node, so it opens Lightning too.
  const lightning = await openLightning(options, db);
  stops.unshift(() => lightning.close());
  const { holdInvoices } = lightning;
  await holdInvoices.prepare();
  const preimages = new PreimageDeriver(loadOrCreateCoordinatorSecret(config.dataDir));
  const escrow = new EscrowEngine({
    store, node: lightning.node, invoices: holdInvoices, contributors: lightning.channel, preimages, nowMs: Date.now, newEventId: randomUUID, network: lightning.network,
    // One escrow process per database: a second one started against it waits, and takes over when the first dies.
    lease: leaseFor(db, engine),
    onRefused: (command, error) => log(`escrow: ${command.type} refused: ${error.code}: ${error.message}`),
    log,
  });
  await escrow.prepare();
  if (parts.has('escrow')) {
    const escrowLoop = new EscrowLoop(escrow, store, log);
    escrowLoop.start().catch(fail('ESCROW'));
    stops.unshift(() => escrowLoop.stop());
  }

  // Verification on CPU in the reference recipe class: the validator and one replay worker.
  const blobs = new FileBlobStore(join(config.dataDir, 'blobs'));
  const verification = new VerificationService({
    store, db, blobs, nowMs: Date.now, leaseMs: DEFAULT_REPLAY_LEASE_MS, workerIdPrefix: 'embedded', engine, log,
    settings: { provider: 'cpu', graphOptimizationLevel: REFERENCE_SETTINGS.graphOptimizationLevel, intraOpNumThreads: REFERENCE_SETTINGS.intraOpNumThreads },
    parts: { validator: parts.has('validator'), replayWorkers: parts.has('replay') ? 1 : 0 },
  });
  await verification.start({ signal: stopping.signal });
  stops.unshift(() => verification.stop());

  const apiKeys = new ApiKeyStore(db);
  await apiKeys.prepare();
  await apiKeys.ensureBootstrapCoordinatorKey({ dataDir: config.dataDir, envKey: options.env.TRAINLEDGER_ADMIN_KEY, nowMs: Date.now(), log });
  // Nonces and HTTP idempotency records commit asynchronously on PostgreSQL: the append's durable
  // commit flushes them too, so a submission waits for one WAL flush instead of four.
  const asyncCommit = config.database.engine === 'postgres' ? openAsyncCommitDatabase(config.database.connectionString) : null;
  if (asyncCommit) stops.push(() => asyncCommit.close());
  const nonces = new NonceStore(asyncCommit?.db ?? db);
  await nonces.prepare();

  // /health and /metrics are served whatever the parts; the /v1 API only with the api part.
  const app = await buildApp({
    store, engine, startedAtMs: Date.now(), nowMs: Date.now, bodyLimitBytes: config.http.bodyLimitBytes, logger: options.logger ?? false,
    ...(projections ? { projectionLag: () => projections.lag() } : {}),
    ...(!parts.has('api') ? {} : { api: {
      store, db, ...(asyncCommit ? { asyncCommitDb: asyncCommit.db } : {}), blobs, apiKeys, nonces, preimages, holdInvoices, nowMs: Date.now, newEventId: randomUUID,
      limits: options.limits ?? DEFAULT_API_LIMITS,
      lightning: { node: lightning.node, network: lightning.network },
      ...(lightning.devNodeKey ? { devNodeKey: lightning.devNodeKey } : {}),
    } }),
  });
  options.beforeListen?.(app);
  const address = await app.listen({ host: config.http.host, port: config.http.port });
  stops.unshift(() => app.close());
  return {
    app,
    address,
    lightning: lightning.describe,
    stop: async () => {
      stopping.abort();
      for (const stop of stops) await stop();
    },
  };
}
