// Starts a throwaway PostgreSQL cluster (initdb + pg_ctl in a temporary folder) for the test run, or uses DATABASE_URL.

import { execFileSync } from 'node:child_process';
import { randomBytes } from 'node:crypto';
import { existsSync, mkdtempSync, readdirSync, rmSync, chownSync } from 'node:fs';
import { createServer } from 'node:net';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import pg from 'pg';

export type RunningCluster = { adminUrl: string; durable: boolean; stop: () => void };

export type ClusterOptions = {
  /**
   * Production durability (fsync, synchronous_commit and full_page_writes on), for benchmarks whose
   * figures must include the WAL flush at commit. Off by default: the test suite's cluster is thrown away.
   */
  durable?: boolean;
};

/** Where PostgreSQL's server binaries live: PG_BIN, Debian's versioned folder, or PATH. */
export function findPostgresBinDir(): string {
  if (process.env.PG_BIN) return process.env.PG_BIN;
  const debianRoot = '/usr/lib/postgresql';
  if (existsSync(debianRoot)) {
    const versions = readdirSync(debianRoot)
      .filter((v) => existsSync(join(debianRoot, v, 'bin', 'initdb')))
      .sort((a, b) => Number(b) - Number(a));
    if (versions[0]) return join(debianRoot, versions[0], 'bin');
  }
  try {
    const initdb = execFileSync('sh', ['-c', 'command -v initdb'], { encoding: 'utf8' }).trim();
    if (initdb) return initdb.replace(/\/initdb$/, '');
  } catch {
    // fall through to the explanation below
  }
  throw new Error('PostgreSQL server binaries not found: install Debian\'s postgresql package, set PG_BIN, or set DATABASE_URL to a server');
}

async function freePort(): Promise<number> {
  return new Promise((resolve, reject) => {
    const server = createServer();
    server.once('error', reject);
    server.listen(0, '127.0.0.1', () => {
      const address = server.address();
      server.close(() => (typeof address === 'object' && address ? resolve(address.port) : reject(new Error('no port'))));
    });
  });
}

/** initdb refuses to run as root, so as root every server command runs as the postgres user. */
function runAsServerUser(bin: string, args: string[]): void {
  const asRoot = process.getuid?.() === 0;
  const [command, argv] = asRoot ? ['runuser', ['-u', 'postgres', '--', bin, ...args]] : [bin, args];
  execFileSync(command, argv, { stdio: ['ignore', 'pipe', 'pipe'] });
}

export async function startThrowawayCluster(options: ClusterOptions = {}): Promise<RunningCluster> {
  const durable = options.durable ?? false;
  const binDir = findPostgresBinDir();
  const dir = mkdtempSync(join(tmpdir(), 'trainledger-pg-'));
  if (process.getuid?.() === 0) {
    const uid = Number(execFileSync('id', ['-u', 'postgres'], { encoding: 'utf8' }).trim());
    const gid = Number(execFileSync('id', ['-g', 'postgres'], { encoding: 'utf8' }).trim());
    chownSync(dir, uid, gid);
  }
  const dataDir = join(dir, 'data');
  const port = await freePort();
  runAsServerUser(join(binDir, 'initdb'), ['-D', dataDir, '-U', 'postgres', '-A', 'trust', '--no-sync', '-E', 'UTF8']);
  // fsync off for tests: the cluster is thrown away, and durability is PostgreSQL's job, not this suite's.
  // A durable cluster (benchmarks) commits as production does: every commit waits for its WAL flush.
  const durability = durable ? 'on' : 'off';
  const serverOptions = `-p ${port} -k ${dir} -c listen_addresses=127.0.0.1 -c fsync=${durability} -c synchronous_commit=${durability} -c full_page_writes=${durability} -c max_connections=300`;
  runAsServerUser(join(binDir, 'pg_ctl'), ['-D', dataDir, '-o', serverOptions, '-l', join(dir, 'server.log'), '-w', '-t', '60', 'start']);
  return {
    adminUrl: `postgres://postgres@127.0.0.1:${port}/postgres`,
    durable,
    stop: () => {
      try {
        runAsServerUser(join(binDir, 'pg_ctl'), ['-D', dataDir, '-m', 'immediate', '-w', 'stop']);
      } finally {
        rmSync(dir, { recursive: true, force: true });
      }
    },
  };
}

/** Creates an empty database named `<prefix>_<random hex>` on the server at `adminUrl` and returns its URL. */
export async function createDatabaseOn(adminUrl: string, prefix: string): Promise<string> {
  const name = `${prefix}_${randomBytes(6).toString('hex')}`.toLowerCase().replace(/[^a-z0-9_]/g, '_');
  const admin = new pg.Client({ connectionString: adminUrl });
  await admin.connect();
  try {
    await admin.query(`CREATE DATABASE ${name}`);
  } finally {
    await admin.end();
  }
  const url = new URL(adminUrl);
  url.pathname = `/${name}`;
  return url.toString();
}
