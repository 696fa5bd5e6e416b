// `trainledger audit`: opens the database (PGlite or PostgreSQL; with ESDB_URL the log on the cluster beside it) and the node, runs the audit, prints a summary, writes --json, exits 0/1/3.

import { copyFileSync, existsSync, mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join, resolve } from 'node:path';
import { AUDIT_PART_NAMES, type AuditPartName } from '../../replay/audit/catalog.js';
import type { AuditProgress, AuditReport, ReplayChoice } from '../../replay/audit/run-audit.js';

/** Exit statuses: 0 clean, 1 discrepancies found, 2 usage error (the CLI's), 3 the audit could not run. */
export const AUDIT_EXIT = Object.freeze({ clean: 0, discrepancies: 1, usage: 2, failed: 3 });

export const AUDIT_USAGE = `usage: trainledger audit [flags]
Checks the log from end to end and exits 0 when clean, 1 when it finds a discrepancy, 2 on a usage error, 3 when it cannot run.
Integrity (hash chains, revisions, heads, order), rebuild (every projection against the log), settlement (verdicts vs
invoice and escrow events vs the Lightning node), node payments with no event, ledger (trial balance, per-run funds), replays.
  --data-dir DIR          the server's data dir: PGlite in DIR/pglite, blobs, dev-lightning.json (env TRAINLEDGER_DATA_DIR; default ./data)
  --database-url URL      PostgreSQL instead of the embedded PGlite (env DATABASE_URL)
  --parts LIST            a comma-separated subset of integrity, rebuild, settlement, node, ledger (default all)
  --json FILE             also write the full report as JSON to FILE
  --progress              show progress on stderr even when it is not a terminal (it shows on a terminal anyway)
  --replay                re-run every replay verdict's recipe (slow: one training step each)
  --replay-sample N       re-run a uniform sample of N replay verdicts instead
  --node MODE             auto (LND when LND_* is set, else the dev network in the data dir if it has one) or none (default auto)
  --settlement-grace-ms MS  how long past its deadline or verdict a payout may still be under way (default 86400000)
  --max-findings N        findings kept in full in the report; all are counted (default 1000)
  -h, --help              this help
With ESDB_URL set (esdb://h1:2113,h2:2113?tls=true), the log is read from that EventStoreDB/KurrentDB cluster and the read
models and the log catalog from the database above, as the server runs; EVENT_STORE_UNREACHABLE when no node answers.
Stop the server first when it uses PGlite: one process at a time can open a PGlite data dir. Use POST /v1/audits on a running server.`;

export class AuditUsageError extends Error {
  override readonly name = 'AuditUsageError';
}

export type AuditFlags = Readonly<{
  dataDir: string;
  databaseUrl: string | null;
  jsonFile: string | null;
  progress: boolean;
  replay: ReplayChoice;
  node: 'auto' | 'none';
  settlementGraceMs: number | undefined;
  maxFindings: number | undefined;
  parts: readonly AuditPartName[] | undefined;
}>;


const VALUE_FLAGS = ['data-dir', 'database-url', 'json', 'parts', 'replay-sample', 'node', 'settlement-grace-ms', 'max-findings'] as const;
const SWITCHES = ['progress', 'replay'] as const;

export function parseAuditFlags(argv: readonly string[], env: NodeJS.ProcessEnv): AuditFlags {
  const values = new Map<string, string>();
  const switches = new Set<string>();
  for (let i = 0; i < argv.length; i += 1) {
    const match = /^--([a-z-]+)(?:=(.*))?$/.exec(argv[i]!);
    const name = match?.[1] ?? '';
    if ((SWITCHES as readonly string[]).includes(name) && match?.[2] === undefined) {
      switches.add(name);
      continue;
    }
    if (!match || !(VALUE_FLAGS as readonly string[]).includes(name)) throw new AuditUsageError(`unknown argument ${JSON.stringify(argv[i])} for audit`);
    const value = match[2] ?? argv[(i += 1)];
    if (value === undefined) throw new AuditUsageError(`--${name} needs a value`);
    values.set(name, value);
  }
  const whole = (name: string, max: number): number | undefined => {
    const raw = values.get(name);
    if (raw === undefined) return undefined;
    const n = Number(raw);
    if (!/^[0-9]+$/.test(raw) || !Number.isSafeInteger(n) || n > max) throw new AuditUsageError(`--${name} must be a whole number up to ${max}; got ${JSON.stringify(raw)}`);
    return n;
  };
  const sample = whole('replay-sample', 10_000);
  if (sample !== undefined && switches.has('replay')) throw new AuditUsageError('give --replay or --replay-sample N, not both');
  const node = values.get('node') ?? 'auto';
  if (node !== 'auto' && node !== 'none') throw new AuditUsageError(`--node must be auto or none; got ${JSON.stringify(node)}`);
  const partsRaw = values.get('parts');
  const parts = partsRaw?.split(',').map((p) => p.trim());
  for (const part of parts ?? []) if (!(AUDIT_PART_NAMES as readonly string[]).includes(part)) throw new AuditUsageError(`--parts: unknown part ${JSON.stringify(part)}; use ${AUDIT_PART_NAMES.join(', ')}`);
  return {
    parts: parts as AuditPartName[] | undefined,
    dataDir: resolve(values.get('data-dir') ?? env.TRAINLEDGER_DATA_DIR ?? './data'),
    databaseUrl: values.get('database-url') ?? env.DATABASE_URL ?? null,
    jsonFile: values.get('json') ?? null,
    progress: switches.has('progress'),
    replay: sample !== undefined ? { mode: 'sample', count: sample } : switches.has('replay') ? { mode: 'all' } : { mode: 'none' },
    node,
    settlementGraceMs: whole('settlement-grace-ms', 10 * 365 * 86_400_000),
    maxFindings: whole('max-findings', 1_000_000),
  };
}

/** Progress on stderr, at most twice a second: events done, events/s, ETA. */
export function progressPrinter(write: (line: string) => void, nowMs: () => number = Date.now): (p: AuditProgress) => void {
  const startedMs = nowMs();
  let lastMs = 0;
  return (p) => {
    const now = nowMs();
    if (now - lastMs < 500 && p.eventsDone < p.eventsTotal) return;
    lastMs = now;
    const perSec = p.eventsDone / Math.max(0.001, (now - startedMs) / 1000);
    const etaSec = perSec > 0 ? Math.max(0, (p.eventsTotal - p.eventsDone) / perSec) : 0;
    write(`audit ${p.part}: ${p.eventsDone}/${p.eventsTotal} events, ${Math.round(perSec)} events/s, ETA ${Math.round(etaSec)} s`);
  };
}

/** Runs the command; returns the exit status (usage errors are thrown as AuditUsageError). */
export async function auditCommand(argv: readonly string[], env: NodeJS.ProcessEnv, io: { stdout: NodeJS.WritableStream & { isTTY?: boolean }; stderr: NodeJS.WritableStream & { isTTY?: boolean } } = process): Promise<number> {
  const flags = parseAuditFlags(argv, env);
  try {
    const report = await runAuditFromFlags(flags, env, io);
    if (flags.jsonFile) writeFileSync(resolve(env.INIT_CWD ?? process.cwd(), flags.jsonFile), `${JSON.stringify(report, (_, v: unknown) => (typeof v === 'bigint' ? v.toString() : v), 2)}\n`);
    const { formatAuditSummary } = await import('../../replay/audit/format-report.js');
    io.stdout.write(`${formatAuditSummary(report)}\n`);
    return report.clean ? AUDIT_EXIT.clean : AUDIT_EXIT.discrepancies;
  } catch (error) {
    io.stderr.write(`trainledger audit: AUDIT_FAILED: ${error instanceof Error ? error.message : String(error)}\n`);
    return AUDIT_EXIT.failed;
  }
}

async function runAuditFromFlags(flags: AuditFlags, env: NodeJS.ProcessEnv, io: { stderr: NodeJS.WritableStream & { isTTY?: boolean } }): Promise<AuditReport> {
  const { openEventStore, openSplitStore } = await import('../event-store/open-event-store.js');
  const { esdbTargetFrom } = await import('../eventstoredb/select-esdb.js');
  const esdb = esdbTargetFrom(env);
  // ESDB_URL: the log on the cluster, probed first (EVENT_STORE_UNREACHABLE when none answers), the read models and the log catalog in the database.
  const cluster = esdb ? (await (await import('../eventstoredb/open-esdb.js')).openEsdbEventStore(esdb, { liveWakeups: false })).store : null;
  const { auditOptions, openStepReplayer } = await import('../audit/audit-deps.js');
  const { runAudit } = await import('../../replay/audit/run-audit.js');
  const pgliteDir = join(flags.dataDir, 'pglite');
  if (flags.databaseUrl === null && !existsSync(pgliteDir)) {
    await cluster?.close();
    throw new Error(`no PGlite database in ${pgliteDir}: pass the server's --data-dir, or --database-url`);
  }
  const target = flags.databaseUrl !== null ? { engine: 'postgres' as const, connectionString: flags.databaseUrl } : { engine: 'pglite' as const, dataDir: pgliteDir };
  const { store } = cluster ? await openSplitStore(cluster, target) : await openEventStore(target);
  const closers: (() => Promise<void>)[] = [() => store.close()];
  try {
    const node = flags.node === 'none' ? null : await openAuditNode(flags.dataDir, env, closers);
    if (node === null && flags.node === 'auto') io.stderr.write('trainledger audit: no Lightning node (no LND_* and no dev-lightning.json in the data dir): the node part is skipped\n');
    const replayer = flags.replay.mode === 'none' ? undefined : await openStepReplayer(store, join(flags.dataDir, 'blobs'));
    if (replayer) closers.push(replayer.close);
    const showProgress = flags.progress || io.stderr.isTTY === true;
    const settings = {
      replay: flags.replay,
      ...(flags.parts ? { parts: flags.parts } : {}),
      ...(flags.settlementGraceMs !== undefined ? { settlementGraceMs: flags.settlementGraceMs } : {}),
      ...(flags.maxFindings !== undefined ? { maxFindings: flags.maxFindings } : {}),
      ...(showProgress ? { onProgress: progressPrinter((line) => io.stderr.write(`${line}\n`)) } : {}),
    };
    return await runAudit(auditOptions(store, node, replayer, Date.now, settings));
  } finally {
    for (const close of closers.reverse()) await close().catch(() => {});
  }
}

async function openAuditNode(dataDir: string, env: NodeJS.ProcessEnv, closers: (() => Promise<void>)[]): Promise<unknown> {
  const { loadLndConfig } = await import('../lightning/lnd/lnd-config.js');
  const lnd = loadLndConfig(env).coordinator;
  if (lnd) {
    const { LndCoordinatorNode } = await import('../lightning/lnd/lnd-coordinator.js');
    const node = LndCoordinatorNode.connect(lnd);
    closers.push(() => node.close());
    return node;
  }
  const { DEV_STATE_FILE } = await import('../lightning/dev/dev-store.js');
  if (!existsSync(join(dataDir, DEV_STATE_FILE))) return null;
  // A copy: the dev network saves its state as it opens and closes, and the audit must neither change
  // the server's node nor race a running server writing the same file.
  const copyDir = mkdtempSync(join(tmpdir(), 'trainledger-audit-node-'));
  copyFileSync(join(dataDir, DEV_STATE_FILE), join(copyDir, DEV_STATE_FILE));
  const { DevLightningNetwork } = await import('../lightning/dev/dev-lightning-network.js');
  const network = await DevLightningNetwork.open({ dataDir: copyDir, nowMs: Date.now });
  closers.push(async () => {
    await network.close();
    rmSync(copyDir, { recursive: true, force: true });
  });
  return network.coordinator();
}
