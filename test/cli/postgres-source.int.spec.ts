// The audit-side CLI on PostgreSQL (--database-url), beside a live API on the same database: export --bundle, audit-bundle, replay's refusals, rebuild finding and fixing a corrupt read model.

import { spawn } from 'node:child_process';
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join, resolve } from 'node:path';
import { fileURLToPath } from 'node:url';
import { sql } from 'kysely';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { apiHarness, type ApiHarness } from '../http/api-harness.js';

const ROOT = resolve(fileURLToPath(new URL('../..', import.meta.url)));
const CLI = join(ROOT, 'adapters/cli/trainledger.ts');
const TSX = import.meta.resolve('tsx');
const SPAWN_TIMEOUT_MS = 60_000;

function trainledger(args: readonly string[]): Promise<{ code: number | null; stdout: string; stderr: string }> {
  const env = { ...process.env };
  for (const name of ['DATABASE_URL', 'TRAINLEDGER_ADMIN_KEY', 'TRAINLEDGER_DATA_DIR', 'INIT_CWD']) delete env[name];
  return new Promise((done, fail) => {
    const child = spawn(process.execPath, ['--import', TSX, CLI, ...args], { cwd: ROOT, env, stdio: ['ignore', 'pipe', 'pipe'], timeout: SPAWN_TIMEOUT_MS });
    let stdout = '';
    let stderr = '';
    child.stdout.on('data', (c: Buffer) => (stdout += c.toString()));
    child.stderr.on('data', (c: Buffer) => (stderr += c.toString()));
    child.on('error', fail);
    child.on('close', (code) => done({ code, stdout, stderr }));
  });
}

let h: ApiHarness;
let url: string;
const outDir = mkdtempSync(join(tmpdir(), 'trainledger-pg-cli-'));

beforeAll(async () => {
  h = await apiHarness('postgres');
  url = h.databaseUrl!;
  await h.seedRun('run-pg', await h.contributor('c-pg'), 'a-pg-1');
});

afterAll(async () => {
  await h.close();
  rmSync(outDir, { recursive: true, force: true });
});

describe('the audit-side CLI on PostgreSQL', () => {
  it('exports a run as a bundle that audits clean, with its one assignment still pending', async () => {
    const file = join(outDir, 'run-pg.bundle');
    const exported = await trainledger(['export', '--run', 'run-pg', '--bundle', file, '--database-url', url]);
    expect(exported.code, exported.stderr).toBe(0);
    expect(JSON.parse(exported.stdout)).toMatchObject({ runId: 'run-pg', source: 'PostgreSQL', withBlobs: false });
    const audited = await trainledger(['audit-bundle', '--bundle', file, '--json']);
    expect(audited.code, audited.stderr).toBe(0);
    const report = JSON.parse(audited.stdout) as { ok: boolean; streams: number; settlements: { assignmentId: string; settlement: string }[] };
    expect(report.ok).toBe(true);
    expect(report.streams).toBe(3);
    expect(report.settlements).toEqual([expect.objectContaining({ assignmentId: 'a-pg-1', settlement: 'pending' })]);
  }, 2 * SPAWN_TIMEOUT_MS);

  it('replay refuses an assignment with no verdict yet (exit 4, NO_RECORDED_RECIPE) and one that does not exist (exit 4)', async () => {
    const pending = await trainledger(['replay', 'a-pg-1', '--database-url', url, '--blobs', outDir]);
    expect(pending.code, pending.stderr).toBe(4);
    expect(pending.stderr).toContain('NO_RECORDED_RECIPE');
    expect(pending.stderr).toContain('no verdict yet (status assigned)');
    const unknown = await trainledger(['replay', 'a-pg-2', '--database-url', url, '--blobs', outDir]);
    expect(unknown.code).toBe(4);
    expect(unknown.stderr).toContain('ASSIGNMENT_NOT_FOUND: no assignment a-pg-2 in PostgreSQL');
  }, 2 * SPAWN_TIMEOUT_MS);

  it('rebuild beside the live API: --dry-run finds a corrupted read model (exit 3), a rebuild swaps it back, and then it is identical', async () => {
    const first = await trainledger(['rebuild', '--database-url', url, '--projection', 'ledger']);
    expect(first.code, first.stderr).toBe(0);
    const deleted = await sql`DELETE FROM ledger.accounts WHERE account_id = (SELECT min(account_id) FROM ledger.accounts)`.execute(h.db);
    expect(Number(deleted.numAffectedRows)).toBe(1);
    const dry = await trainledger(['rebuild', '--database-url', url, '--projection', 'ledger', '--dry-run']);
    expect(dry.code, dry.stderr).toBe(3);
    expect(dry.stdout).toMatch(/^ledger\s+\d+\s+NO\s+no$/m);
    expect(dry.stderr).toContain('REBUILD_DIFFERS');
    const fixed = await trainledger(['rebuild', '--database-url', url, '--projection', 'ledger']);
    expect(fixed.code, fixed.stderr).toBe(0);
    expect(fixed.stdout).toMatch(/^ledger\s+\d+\s+NO\s+yes$/m);
    const again = await trainledger(['rebuild', '--database-url', url, '--dry-run', '--json']);
    expect(again.code, again.stderr).toBe(0);
    expect((JSON.parse(again.stdout) as { identical: boolean }[]).every((r) => r.identical)).toBe(true);
  }, 4 * SPAWN_TIMEOUT_MS);
});
