// `trainledger start`, the replay worker and the audit with ESDB_URL at a port where no cluster listens: each exits non-zero with one clear line.

import { spawn } from 'node:child_process';
import { mkdtempSync } from 'node:fs';
import { createServer, type AddressInfo } from 'node:net';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { describe, expect, it } from 'vitest';

const CLI = 'adapters/cli/trainledger.ts';
/** A fresh node with tsx, then a refused connection: seconds, with room on a busy machine. */
const SPAWN_TIMEOUT_MS = 45_000;

type Ran = { code: number | null; stdout: string; stderr: string; elapsedMs: number };

function trainledger(args: readonly string[], env: NodeJS.ProcessEnv): Promise<Ran> {
  const childEnv: NodeJS.ProcessEnv = { ...process.env, ...env };
  delete childEnv.DATABASE_URL;
  delete childEnv.TRAINLEDGER_ADMIN_KEY;
  const startedMs = Date.now();
  return new Promise((resolve, reject) => {
    const child = spawn(process.execPath, ['--import', 'tsx', CLI, ...args], { env: childEnv, stdio: ['ignore', 'pipe', 'pipe'], timeout: SPAWN_TIMEOUT_MS });
    let stdout = '';
    let stderr = '';
    child.stdout.on('data', (chunk: Buffer) => (stdout += chunk.toString()));
    child.stderr.on('data', (chunk: Buffer) => (stderr += chunk.toString()));
    child.on('error', reject);
    child.on('close', (code) => resolve({ code, stdout, stderr, elapsedMs: Date.now() - startedMs }));
  });
}

/** A port nothing listens on: bound by the OS, then released. */
async function unusedPort(): Promise<number> {
  const server = createServer();
  await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
  const { port } = server.address() as AddressInfo;
  await new Promise<void>((resolve) => server.close(() => resolve()));
  return port;
}

describe('ESDB_URL with no cluster answering', () => {
  it('trainledger start exits 1 with EVENT_STORE_UNREACHABLE, naming the URL without its credentials', async () => {
    const port = await unusedPort();
    const dataDir = mkdtempSync(join(tmpdir(), 'trainledger-esdb-'));
    const ran = await trainledger(['start', '--data-dir', dataDir, '--port', '0'], { ESDB_URL: `esdb://admin:s3cret@127.0.0.1:${port}?tls=false` });
    expect(ran.code).toBe(1);
    const lines = ran.stderr.trim().split('\n');
    expect(lines).toHaveLength(1);
    expect(lines[0]).toMatch(new RegExp(`^trainledger: EVENT_STORE_UNREACHABLE: no EventStoreDB/KurrentDB cluster answered at esdb://\\*\\*\\*@127\\.0\\.0\\.1:${port}\\?tls=false: `));
    expect(ran.stderr).not.toContain('s3cret');
    expect(ran.stdout).toBe('');
  });

  it('does the same for a kurrentdb:// string with TLS on by default, and for --esdb-url', async () => {
    const port = await unusedPort();
    const dataDir = mkdtempSync(join(tmpdir(), 'trainledger-esdb-'));
    const ran = await trainledger(['start', '--data-dir', dataDir, '--port', '0', '--esdb-url', `kurrentdb://127.0.0.1:${port}`], {});
    expect(ran.code).toBe(1);
    expect(ran.stderr.trim()).toMatch(new RegExp(`^trainledger: EVENT_STORE_UNREACHABLE: .*kurrentdb://127\\.0\\.0\\.1:${port}`));
  });

  it('refuses a malformed ESDB_URL with INVALID_CONFIG before trying any network', async () => {
    const ran = await trainledger(['start', '--data-dir', mkdtempSync(join(tmpdir(), 'trainledger-esdb-')), '--port', '0'], { ESDB_URL: 'https://user:pw@node1:2113' });
    expect(ran.code).toBe(1);
    expect(ran.stderr.trim()).toMatch(/^trainledger: INVALID_CONFIG: ESDB_URL must look like esdb:\/\//);
    expect(ran.stderr).not.toContain('pw@');
  });

  it('the replay worker and the audit fail the same way', async () => {
    const port = await unusedPort();
    const env = { ESDB_URL: `esdb://127.0.0.1:${port}?tls=false` };
    const dataDir = mkdtempSync(join(tmpdir(), 'trainledger-esdb-'));
    const [worker, audit] = await Promise.all([
      trainledger(['replay-worker', '--data-dir', dataDir], env),
      trainledger(['audit', '--data-dir', dataDir], env),
    ]);
    expect(worker.code).not.toBe(0);
    expect(worker.stderr).toMatch(/replay-worker: EVENT_STORE_UNREACHABLE: .*127\.0\.0\.1/);
    expect(audit.code).not.toBe(0);
    expect(audit.stderr).toMatch(/audit: AUDIT_FAILED: no EventStoreDB\/KurrentDB cluster answered at esdb:\/\/127\.0\.0\.1/);
  });
});
