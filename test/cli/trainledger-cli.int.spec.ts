// The `trainledger` command line as a user runs it: spawned with tsx, its exit status and what it prints.

import { spawn } from 'node:child_process';
import { createHash } from 'node:crypto';
import { mkdtempSync, readFileSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import type { AddressInfo } from 'node:net';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { COMMANDS } from '../../adapters/cli/trainledger.js';
import { apiHarness, type ApiHarness } from '../http/api-harness.js';

const CLI = 'adapters/cli/trainledger.ts';
/** Each spawn is a fresh node with tsx: about a second on a busy 2-core machine, so leave room. */
const SPAWN_TIMEOUT_MS = 30_000;

type Ran = { code: number | null; stdout: string; stderr: string };

/** Runs a command without blocking this process (a test may serve the HTTP the child calls). */
function run(command: string, args: readonly string[], env: NodeJS.ProcessEnv = {}): Promise<Ran> {
  const childEnv = { ...process.env, ...env };
  delete childEnv.TRAINLEDGER_ADMIN_KEY;
  delete childEnv.TRAINLEDGER_DATA_DIR;
  Object.assign(childEnv, env);
  return new Promise((resolve, reject) => {
    const child = spawn(command, args, { env: childEnv, stdio: ['ignore', 'pipe', 'pipe'], timeout: SPAWN_TIMEOUT_MS });
    let stdout = '';
    let stderr = '';
    child.stdout.on('data', (chunk: Buffer) => (stdout += chunk.toString()));
    child.stderr.on('data', (chunk: Buffer) => (stderr += chunk.toString()));
    child.on('error', reject);
    child.on('close', (code) => resolve({ code, stdout, stderr }));
  });
}

const trainledger = (args: readonly string[], env: NodeJS.ProcessEnv = {}) => run(process.execPath, ['--import', 'tsx', CLI, ...args], env);

/** The flags each command's help must list. */
const EXPECTED_FLAGS: Record<string, readonly string[]> = {
  start: ['--data-dir', '--port', '--host', '--database-url', '--parts', '--help'],
  'replay-worker': ['--database-url', '--data-dir', '--provider', '--threads', '--workers', '--lease-ms', '--validator', '--help'],
  simulate: ['--contributors', '--steps', '--cheaters', '--disputes', '--dispute-window-ms', '--seed', '--timeout-ms', '--url', '--data-dir', '--admin-key-file', '--help'],
  export: ['--url', '--after', '--data-dir', '--admin-key-file', '--run', '--bundle', '--with-blobs', '--database-url', '--blobs', '--help'],
  replay: ['--data-dir', '--database-url', '--bundle', '--blobs', '--provider', '--json', '--help'],
  rebuild: ['--data-dir', '--database-url', '--projection', '--dry-run', '--json', '--help'],
  'audit-bundle': ['--bundle', '--blobs', '--replay', '--replay-sample', '--seed', '--provider', '--json', '--help'],
  checkpoint: ['--model', '--out', '--seed', '--help'],
  audit: ['--data-dir', '--database-url', '--parts', '--json', '--progress', '--replay', '--replay-sample', '--node', '--settlement-grace-ms', '--max-findings', '--help'],
};

describe('trainledger --help', () => {
  it('prints the commands and exits 0, for --help, -h and help', async () => {
    for (const args of [['--help'], ['-h'], ['help']]) {
      const ran = await trainledger(args);
      expect(ran.code, ran.stderr).toBe(0);
      expect(ran.stdout).toMatch(/^usage: trainledger <command> \[flags\]/);
      for (const name of Object.keys(COMMANDS)) expect(ran.stdout).toContain(`  ${name} `);
    }
  }, 3 * SPAWN_TIMEOUT_MS);

  it('every command answers --help with its flags and exits 0', async () => {
    expect(Object.keys(COMMANDS).sort()).toEqual(Object.keys(EXPECTED_FLAGS).sort());
    for (const [name, flags] of Object.entries(EXPECTED_FLAGS)) {
      // --help wins over any other flag, even one the command would refuse.
      const ran = await trainledger([name, '--port', '1', '--help']);
      expect(ran.code, `${name}: ${ran.stderr}`).toBe(0);
      expect(ran.stdout).toMatch(new RegExp(`^usage: trainledger ${name} `));
      for (const flag of flags) expect(ran.stdout, `${name} --help lists ${flag}`).toContain(flag);
    }
  }, 6 * SPAWN_TIMEOUT_MS);

  it('npm run simulate -- --help prints the simulate usage and exits 0', async () => {
    const ran = await run('npm', ['run', '--silent', 'simulate', '--', '--help']);
    expect(ran.code, ran.stderr).toBe(0);
    expect(ran.stdout).toContain('usage: trainledger simulate [flags]');
    expect(ran.stdout).toContain('--admin-key-file');
  }, SPAWN_TIMEOUT_MS);

  it('npm start -- --help and npm run replay-worker -- --help print their usage and exit 0 (the scripts go through the CLI)', async () => {
    for (const [script, usage] of [['start', 'usage: trainledger start [flags]'], ['replay-worker', 'usage: trainledger replay-worker']] as const) {
      const ran = await run('npm', ['run', '--silent', script, '--', '--help']);
      expect(ran.code, `${script}: ${ran.stderr}`).toBe(0);
      expect(ran.stdout).toContain(usage);
    }
  }, 2 * SPAWN_TIMEOUT_MS);
});

describe('trainledger usage errors exit 2 and print the usage', () => {
  it('names an unknown command', async () => {
    const ran = await trainledger(['serve']);
    expect(ran.code).toBe(2);
    expect(ran.stderr).toContain('trainledger: unknown command "serve"');
    expect(ran.stderr).toContain('usage: trainledger <command> [flags]');
    expect(ran.stdout).toBe('');
  }, SPAWN_TIMEOUT_MS);

  it('says when no command is given', async () => {
    const ran = await trainledger([]);
    expect(ran.code).toBe(2);
    expect(ran.stderr).toContain('no command given');
    expect(ran.stderr).toContain('usage: trainledger <command> [flags]');
  }, SPAWN_TIMEOUT_MS);

  it('names an unknown flag with the command\'s own usage', async () => {
    const ran = await trainledger(['simulate', '--workers', '3']);
    expect(ran.code).toBe(2);
    expect(ran.stderr).toContain('unknown argument "--workers" for simulate');
    expect(ran.stderr).toContain('usage: trainledger simulate [flags]');
  }, SPAWN_TIMEOUT_MS);
});

describe('trainledger simulate finds its key or says how to give one', () => {
  let h: ApiHarness;
  let baseUrl: string;

  beforeAll(async () => {
    h = await apiHarness('pglite');
    await h.app.listen({ host: '127.0.0.1', port: 0 });
    baseUrl = `http://127.0.0.1:${(h.app.server.address() as AddressInfo).port}`;
  });

  afterAll(async () => {
    await h.close();
  });

  it('without a key anywhere: exit 1, naming --data-dir, --admin-key-file and TRAINLEDGER_ADMIN_KEY', async () => {
    const empty = mkdtempSync(join(tmpdir(), 'trainledger-cli-'));
    const ran = await trainledger(['simulate', '--data-dir', empty, '--url', baseUrl]);
    expect(ran.code).toBe(1);
    expect(ran.stderr).toContain(`${join(empty, 'admin-key')} does not exist`);
    for (const way of ['--data-dir', '--admin-key-file', 'TRAINLEDGER_ADMIN_KEY']) expect(ran.stderr).toContain(way);
  }, SPAWN_TIMEOUT_MS);

  it('reads <data dir>/admin-key, and says when that server does not take it', async () => {
    const dataDir = mkdtempSync(join(tmpdir(), 'trainledger-cli-'));
    writeFileSync(join(dataDir, 'admin-key'), `tl_coordinator_${'A'.repeat(43)}\n`);
    const ran = await trainledger(['simulate', '--url', baseUrl], { TRAINLEDGER_DATA_DIR: dataDir });
    expect(ran.code).toBe(1);
    expect(ran.stderr).toContain(`refused the coordinator key from ${join(dataDir, 'admin-key')} (401)`);
  }, SPAWN_TIMEOUT_MS);

  it('with the server\'s own key, gets past the checks to the simulation (which refuses --steps 0 here)', async () => {
    const dataDir = mkdtempSync(join(tmpdir(), 'trainledger-cli-'));
    writeFileSync(join(dataDir, 'admin-key'), `${h.keys.coordinator}\n`);
    const ran = await trainledger(['simulate', '--url', baseUrl, '--data-dir', dataDir, '--steps', '0']);
    expect(ran.code).toBe(1);
    expect(ran.stderr).toContain('--steps must be 1..15');
    expect(ran.stderr).not.toContain('refused');
  }, SPAWN_TIMEOUT_MS);

  it('says when no server answers at the URL', async () => {
    const ran = await trainledger(['simulate', '--url', 'http://127.0.0.1:9'], { TRAINLEDGER_ADMIN_KEY: h.keys.coordinator });
    expect(ran.code).toBe(1);
    expect(ran.stderr).toContain('no TrainLedger server answers at http://127.0.0.1:9');
    expect(ran.stderr).toContain('npm start');
  }, SPAWN_TIMEOUT_MS);
});

describe('trainledger checkpoint', () => {
  let h: ApiHarness;

  beforeAll(async () => {
    h = await apiHarness('pglite');
  });

  afterAll(async () => {
    await h.close();
  });

  it('writes the initial checkpoint the server accepts, under the digest it prints', async () => {
    const out = join(mkdtempSync(join(tmpdir(), 'trainledger-cli-')), 'initial.ckpt');
    const ran = await trainledger(['checkpoint', '--model', 'softmax-regression', '--seed', '7', '--out', out]);
    expect(ran.code).toBe(0);
    const printed = JSON.parse(ran.stdout) as { model: string; graphDigest: string; checkpointDigest: string; file: string };
    expect(printed.model).toBe('softmax-regression');
    const bytes = readFileSync(out);
    expect(createHash('sha256').update(bytes).digest('hex')).toBe(printed.checkpointDigest);
    const uploaded = await h.app.inject({
      method: 'PUT', url: '/v1/checkpoints', payload: bytes,
      headers: { authorization: `Bearer ${h.keys.coordinator}`, 'content-type': 'application/octet-stream', 'idempotency-key': 'cli-checkpoint-1' },
    });
    expect(uploaded.statusCode).toBe(201);
    expect(uploaded.json()).toMatchObject({ digest: printed.checkpointDigest, model: 'softmax-regression' });
    const graphs = (await h.app.inject({ method: 'GET', url: '/v1/step-graphs' })).json() as Array<{ model: string; graphDigest: string }>;
    expect(graphs.find((g) => g.model === 'softmax-regression')!.graphDigest).toBe(printed.graphDigest);
  }, SPAWN_TIMEOUT_MS);

  it('refuses to overwrite a file (exit 1), and names an unknown model or a missing --out (exit 2)', async () => {
    const dir = mkdtempSync(join(tmpdir(), 'trainledger-cli-'));
    writeFileSync(join(dir, 'taken'), 'keep me');
    const taken = await trainledger(['checkpoint', '--model', 'mlp', '--out', join(dir, 'taken')]);
    expect(taken.code).toBe(1);
    expect(taken.stderr).toContain('exists');
    expect(readFileSync(join(dir, 'taken'), 'utf8')).toBe('keep me');
    const unknown = await trainledger(['checkpoint', '--model', 'resnet', '--out', join(dir, 'x')]);
    expect(unknown.code).toBe(2);
    expect(unknown.stderr).toContain('unknown model "resnet"; one of softmax-regression, mlp');
    const noOut = await trainledger(['checkpoint', '--model', 'mlp']);
    expect(noOut.code).toBe(2);
    expect(noOut.stderr).toContain('--model and --out are required');
  }, SPAWN_TIMEOUT_MS * 3);
});
