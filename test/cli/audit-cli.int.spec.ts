// `trainledger audit` as a user runs it: spawned with tsx on a real PGlite data dir; exit codes, the --json report, progress on stderr only when asked.

import { spawn } from 'node:child_process';
import { randomUUID } from 'node:crypto';
import { mkdtempSync, readFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { sql } from 'kysely';
import { beforeAll, describe, expect, it } from 'vitest';
import { handleCommand } from '../../adapters/commands/command-handler.js';
import { openEventStore } from '../../adapters/event-store/open-event-store.js';
import { DevLightningNetwork } from '../../adapters/lightning/dev/dev-lightning-network.js';
import { DEV_STATE_FILE } from '../../adapters/lightning/dev/dev-store.js';
import { runDecider, runStreamId, type RunCommand } from '../../domain/run/index.js';
import { command, openRunData, RUN_ID, T0 } from '../domain/fixtures.js';

const CLI = 'adapters/cli/trainledger.ts';
/** A spawn plus a PGlite start and an audit: allow for a busy 2-core machine. */
const SPAWN_TIMEOUT_MS = 60_000;

type Ran = { code: number | null; stdout: string; stderr: string };

function audit(args: readonly string[]): Promise<Ran> {
  const env = { ...process.env };
  delete env.TRAINLEDGER_DATA_DIR;
  delete env.DATABASE_URL;
  for (const name of Object.keys(env)) if (name.startsWith('LND_')) delete env[name];
  return new Promise((resolve, reject) => {
    const child = spawn(process.execPath, ['--import', 'tsx', CLI, 'audit', ...args], { env, stdio: ['ignore', 'pipe', 'pipe'], timeout: SPAWN_TIMEOUT_MS });
    let stdout = '';
    let stderr = '';
    child.stdout.on('data', (chunk: Buffer) => (stdout += chunk.toString()));
    child.stderr.on('data', (chunk: Buffer) => (stderr += chunk.toString()));
    child.on('error', reject);
    child.on('close', (code) => resolve({ code, stdout, stderr }));
  });
}

const dataDir = mkdtempSync(join(tmpdir(), 'trainledger-audit-cli-'));

beforeAll(async () => {
  // A real data dir as `npm start` leaves it: PGlite in <dir>/pglite, with a funded run in the log.
  const { store } = await openEventStore({ engine: 'pglite', dataDir: join(dataDir, 'pglite') });
  const run = (cmd: RunCommand) => handleCommand(store, runDecider, runStreamId(RUN_ID), cmd, { newEventId: randomUUID });
  await run(command<RunCommand>('OpenRun', openRunData(), T0));
  await run(command<RunCommand>('FundRun', { runId: RUN_ID, fundingId: 'f1', source: 'customer', amountMsat: 5_000_000n }, T0));
  await store.close();
}, SPAWN_TIMEOUT_MS);

describe('trainledger audit', () => {
  it('exits 2 naming an unknown flag, a flag without its value, or --replay with --replay-sample', async () => {
    const unknown = await audit(['--deep']);
    expect(unknown.code).toBe(2);
    expect(unknown.stderr).toContain('unknown argument "--deep" for audit');
    expect(unknown.stderr).toContain('usage: trainledger audit');
    const noValue = await audit(['--json']);
    expect(noValue.code).toBe(2);
    expect(noValue.stderr).toContain('--json needs a value');
    const both = await audit(['--replay', '--replay-sample', '3']);
    expect(both.code).toBe(2);
  }, 3 * SPAWN_TIMEOUT_MS);

  it('exits 3 with AUDIT_FAILED when there is no database to audit', async () => {
    const ran = await audit(['--data-dir', join(dataDir, 'nowhere')]);
    expect(ran.code).toBe(3);
    expect(ran.stderr).toContain('AUDIT_FAILED: no PGlite database');
  }, SPAWN_TIMEOUT_MS);

  it('exits 0 on a clean log, prints the summary table, writes the JSON report, and shows progress only with --progress', async () => {
    const file = join(dataDir, 'clean.json');
    const ran = await audit(['--data-dir', dataDir, '--json', file, '--progress']);
    expect(ran.code, ran.stderr).toBe(0);
    expect(ran.stdout).toMatch(/^audit CLEAN: 0 finding\(s\) over 2 events/);
    expect(ran.stdout).toContain('EVENT_HASH_MISMATCH');
    expect(ran.stderr).toMatch(/audit \w+: \d+\/\d+ events, \d+ events\/s, ETA \d+ s/);
    const report = JSON.parse(readFileSync(file, 'utf8'));
    expect(report).toMatchObject({ version: 1, clean: true, total: 0, eventsInLog: 2, parts: { integrity: { streams: 1, events: 2 }, ledger: { runs: 1 }, node: { checked: false } } });
    const quiet = await audit(['--data-dir', dataDir]);
    expect(quiet.code).toBe(0);
    expect(quiet.stderr).not.toContain('events/s');
  }, 2 * SPAWN_TIMEOUT_MS);

  it('reads the dev node in the data dir without changing its file, and finds a payment the log never recorded', async () => {
    const nodeDir = mkdtempSync(join(tmpdir(), 'trainledger-audit-cli-node-'));
    const { store } = await openEventStore({ engine: 'pglite', dataDir: join(nodeDir, 'pglite') });
    await store.close();
    const network = await DevLightningNetwork.open({ dataDir: nodeDir, nowMs: Date.now });
    const { bolt11, paymentHash } = await network.wallet('zed').createInvoice({ amountMsat: 7_000n, expirySec: 600, description: 'off the books' });
    const node = network.coordinator();
    expect((await node.pay({ bolt11, paymentHash, amountMsat: 7_000n, maxFeeMsat: 1_000n, maxTimeoutHeight: (await node.blockHeight()) + 1_000 })).status).toBe('succeeded');
    await network.close();
    const before = readFileSync(join(nodeDir, DEV_STATE_FILE), 'utf8');
    const file = join(nodeDir, 'report.json');
    const ran = await audit(['--data-dir', nodeDir, '--json', file]);
    expect(ran.code, ran.stderr).toBe(1);
    const report = JSON.parse(readFileSync(file, 'utf8'));
    expect(report.counts.NODE_PAYMENT_WITHOUT_EVENT).toBe(1);
    expect(report.discrepancies[0]).toMatchObject({ code: 'NODE_PAYMENT_WITHOUT_EVENT', subject: paymentHash });
    expect(readFileSync(join(nodeDir, DEV_STATE_FILE), 'utf8')).toBe(before);
    const skipped = await audit(['--data-dir', nodeDir, '--node', 'none']);
    expect(skipped.code).toBe(0);
  }, 2 * SPAWN_TIMEOUT_MS);

  it('exits 1 when it finds a discrepancy, and the JSON names the edited event', async () => {
    const { store, db } = await openEventStore({ engine: 'pglite', dataDir: join(dataDir, 'pglite') });
    await sql`ALTER TABLE events DISABLE TRIGGER events_append_only`.execute(db);
    await sql`UPDATE events SET data = jsonb_set(data, '{amountMsat}', '"9000000"') WHERE event_type = 'RunFunded'`.execute(db);
    await store.close();
    const file = join(dataDir, 'tampered.json');
    const ran = await audit(['--data-dir', dataDir, '--json', file]);
    expect(ran.code, ran.stderr).toBe(1);
    expect(ran.stdout).toMatch(/^audit FOUND DISCREPANCIES/);
    const report = JSON.parse(readFileSync(file, 'utf8'));
    expect(report.counts.EVENT_HASH_MISMATCH).toBe(1);
    expect(report.discrepancies).toContainEqual(expect.objectContaining({ code: 'EVENT_HASH_MISMATCH', events: [expect.objectContaining({ streamId: runStreamId(RUN_ID), revision: 1, eventType: 'RunFunded' })] }));
  }, 2 * SPAWN_TIMEOUT_MS);
});
