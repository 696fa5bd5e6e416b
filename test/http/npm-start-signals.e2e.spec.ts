// `npm start` as an operator runs it: SIGTERM or SIGINT to the npm process stops the whole process tree gracefully, a later second signal forces the exit, and the deadline bounds a stuck stop.

import { spawn, type ChildProcess } from 'node:child_process';
import { mkdtempSync, readdirSync, readFileSync, rmSync } from 'node:fs';
import { connect, type Socket } from 'node:net';
import { tmpdir } from 'node:os';
import { dirname, join, resolve } from 'node:path';
import { fileURLToPath } from 'node:url';
import { afterAll, afterEach, describe, expect, it } from 'vitest';
import { REPEAT_SIGNAL_GRACE_MS } from '../../adapters/main.js';

const ROOT = resolve(dirname(fileURLToPath(import.meta.url)), '../..');
const LISTENING_LINE = /trainledger listening on (http:\/\/[\d.]+:\d+)/;
/** Bounds on each wait: a first boot on two busy cores takes seconds, never a minute. */
const START_TIMEOUT_MS = 90_000;
const EXIT_TIMEOUT_MS = 30_000;
const TEST_TIMEOUT_MS = 240_000;

/** One data folder for the file: every start after the first is a restart on what the one before left. */
const dataDir = mkdtempSync(join(tmpdir(), 'trainledger-npm-start-'));
const started: Started[] = [];

type Exit = { code: number | null; signal: NodeJS.Signals | null };

type Started = {
  npm: ChildProcess;
  address: string;
  /** Every process under npm once it answered (the shell's exec'd node, esbuild's service), by pid and start time. */
  tree: readonly ProcessId[];
  exited: Promise<Exit>;
  output: () => string;
};

type ProcessId = { pid: number; startTime: string };

/** `npm start` in its own process group (as a terminal gives it one), on a free port, until /health answers. */
async function npmStart(env: NodeJS.ProcessEnv = {}): Promise<Started> {
  const npm = spawn('npm', ['start'], {
    cwd: ROOT,
    detached: true,
    env: { ...process.env, TRAINLEDGER_DATA_DIR: dataDir, TRAINLEDGER_PORT: '0', TRAINLEDGER_HOST: '127.0.0.1', ...env },
    stdio: ['ignore', 'pipe', 'pipe'],
  });
  let text = '';
  npm.stdout!.on('data', (chunk: Buffer) => (text += chunk.toString()));
  npm.stderr!.on('data', (chunk: Buffer) => (text += chunk.toString()));
  const exited = new Promise<Exit>((done) => npm.once('exit', (code, signal) => done({ code, signal })));
  const entry: Started = { npm, address: '', tree: [], exited, output: () => text };
  started.push(entry);
  entry.address = await poll(() => LISTENING_LINE.exec(text)?.[1] ?? null, START_TIMEOUT_MS, 'the service to listen', entry);
  await poll(async () => ((await fetch(new URL('/health', entry.address)).catch(() => null))?.ok ? true : null), START_TIMEOUT_MS, '/health to answer', entry);
  entry.tree = descendants(npm.pid!);
  expect(entry.tree.length, 'npm runs the service in a child process').toBeGreaterThan(0);
  return entry;
}

/** Waits for npm to exit, then for every process that was under it to be gone; returns npm's exit status. */
async function treeExit(s: Started): Promise<Exit> {
  const exit = await Promise.race([s.exited, new Promise<null>((done) => setTimeout(() => done(null), EXIT_TIMEOUT_MS).unref())]);
  if (exit === null) throw new Error(`npm start did not exit within ${EXIT_TIMEOUT_MS} ms; output:\n${s.output().slice(-4_000)}`);
  await poll(() => (s.tree.some(isAlive) ? null : true), EXIT_TIMEOUT_MS, `the processes under npm (${s.tree.map((p) => p.pid).join(', ')}) to exit`, null);
  return exit;
}

async function expectPortClosed(address: string): Promise<void> {
  const outcome = await fetch(new URL('/health', address)).then(
    (response) => `answered ${response.status}`,
    (error: unknown) => ((error as { cause?: { code?: string } }).cause?.code ?? String(error)),
  );
  expect(outcome).toBe('ECONNREFUSED');
}

async function logHead(address: string): Promise<unknown> {
  return ((await (await fetch(new URL('/health', address))).json()) as { logHead: unknown }).logHead;
}

/** A request whose headers never end: the HTTP server cannot drain it, so the stop waits on it until the deadline. */
async function holdRequestOpen(address: string): Promise<Socket> {
  const { hostname, port } = new URL(address);
  const socket = connect(Number(port), hostname);
  await new Promise<void>((done, fail) => socket.once('connect', done).once('error', fail));
  socket.on('error', () => {});
  socket.write(`GET /health HTTP/1.1\r\nHost: ${hostname}\r\n`);
  return socket;
}

describe('npm start under SIGTERM and SIGINT sent to npm', () => {
  it('SIGTERM to npm stops the service gracefully: npm exits 0, the whole tree exits, the port closes, and a restart finds the same log', async () => {
    const first = await npmStart();
    const head = await logHead(first.address);
    process.kill(first.npm.pid!, 'SIGTERM');
    expect(await treeExit(first)).toEqual({ code: 0, signal: null });
    expect(first.output()).toMatch(/SIGTERM received: closing HTTP/);
    expect(first.output()).toMatch(/stopped in \d+ ms/);
    await expectPortClosed(first.address);

    const second = await npmStart();
    expect(await logHead(second.address)).toEqual(head);
    process.kill(second.npm.pid!, 'SIGTERM');
    expect(await treeExit(second)).toEqual({ code: 0, signal: null });
  }, TEST_TIMEOUT_MS);

  it('SIGINT to npm stops it the same way', async () => {
    const s = await npmStart();
    process.kill(s.npm.pid!, 'SIGINT');
    expect(await treeExit(s)).toEqual({ code: 0, signal: null });
    expect(s.output()).toMatch(/SIGINT received: closing HTTP/);
    expect(s.output()).toMatch(/stopped in \d+ ms/);
    await expectPortClosed(s.address);
  }, TEST_TIMEOUT_MS);

  it('Ctrl-C (SIGINT to the whole process group: node gets the terminal\'s copy and npm\'s, or one if the kernel merges them) is one graceful stop', async () => {
    const s = await npmStart();
    process.kill(-s.npm.pid!, 'SIGINT');
    expect(await treeExit(s)).toEqual({ code: 0, signal: null });
    expect(s.output()).toMatch(/stopped in \d+ ms/);
    expect(s.output()).not.toMatch(/received again/);
    await expectPortClosed(s.address);
  }, TEST_TIMEOUT_MS);

  it("the terminal's and npm's copies of one Ctrl-C, delivered apart, are one stop, not a forced exit", async () => {
    const s = await npmStart({ TRAINLEDGER_SHUTDOWN_TIMEOUT_MS: '120000' });
    const service = s.tree.find((p) => readFileSync(`/proc/${p.pid}/cmdline`, 'utf8').includes('adapters/cli/trainledger.ts'))!.pid;
    // Held open, so the stop is still running when the second copy arrives, and that copy cannot merge with the first.
    const held = await holdRequestOpen(s.address);
    try {
      process.kill(s.npm.pid!, 'SIGINT');
      await poll(() => (/SIGINT received: closing HTTP/.test(s.output()) ? true : null), EXIT_TIMEOUT_MS, 'the stop to begin', s);
      // Well inside the repeat window: the stop began a poll interval ago.
      process.kill(service, 'SIGINT');
      await poll(() => (/SIGINT again within \d+ ms: the same stop/.test(s.output()) ? true : null), EXIT_TIMEOUT_MS, 'the service to take the copy for the same stop', s);
    } finally {
      held.destroy();
    }
    expect(await treeExit(s)).toEqual({ code: 0, signal: null });
    expect(s.output()).not.toMatch(/received again/);
    expect(s.output()).toMatch(/stopped in \d+ ms/);
  }, TEST_TIMEOUT_MS);

  it('a second signal during a stop that is waiting on a request exits at once with status 1, and the data folder still opens', async () => {
    // A deadline far beyond the test's waits: only the second signal can explain a quick exit.
    const s = await npmStart({ TRAINLEDGER_SHUTDOWN_TIMEOUT_MS: '120000' });
    const held = await holdRequestOpen(s.address);
    try {
      const firstSignalMs = Date.now();
      process.kill(s.npm.pid!, 'SIGTERM');
      await poll(() => (/SIGTERM received: closing HTTP/.test(s.output()) ? true : null), EXIT_TIMEOUT_MS, 'the stop to begin', s);
      // Past the window in which a repeat counts as the same signal delivered twice.
      await poll(() => (Date.now() - firstSignalMs > REPEAT_SIGNAL_GRACE_MS ? true : null), REPEAT_SIGNAL_GRACE_MS * 4, 'the repeat window to pass', null);
      expect(s.output()).not.toMatch(/stopped in/);
      const secondSignalMs = Date.now();
      process.kill(s.npm.pid!, 'SIGTERM');
      expect(await treeExit(s)).toEqual({ code: 1, signal: null });
      expect(Date.now() - secondSignalMs).toBeLessThan(EXIT_TIMEOUT_MS);
      expect(s.output()).toMatch(/SIGTERM received again while shutting down; exiting now/);
    } finally {
      held.destroy();
    }
    await expectPortClosed(s.address);

    const again = await npmStart();
    process.kill(again.npm.pid!, 'SIGTERM');
    expect(await treeExit(again)).toEqual({ code: 0, signal: null });
  }, TEST_TIMEOUT_MS);

  it('a stop that cannot drain ends at the shutdown deadline with status 1', async () => {
    const deadlineMs = 1_500;
    const s = await npmStart({ TRAINLEDGER_SHUTDOWN_TIMEOUT_MS: String(deadlineMs) });
    const held = await holdRequestOpen(s.address);
    try {
      const signalMs = Date.now();
      process.kill(s.npm.pid!, 'SIGTERM');
      expect(await treeExit(s)).toEqual({ code: 1, signal: null });
      expect(Date.now() - signalMs).toBeGreaterThanOrEqual(deadlineMs);
      expect(s.output()).toMatch(new RegExp(`shutdown took longer than ${deadlineMs} ms; exiting`));
    } finally {
      held.destroy();
    }
  }, TEST_TIMEOUT_MS);
});

afterEach(() => {
  // A failed assertion must not leave a server behind: kill what is still running, group and stragglers.
  for (const s of started.splice(0)) {
    if (s.npm.exitCode === null && s.npm.signalCode === null) signal(-s.npm.pid!, 'SIGKILL');
    for (const p of s.tree) if (isAlive(p)) signal(p.pid, 'SIGKILL');
  }
});

afterAll(() => rmSync(dataDir, { recursive: true, force: true }));

function signal(pid: number, name: NodeJS.Signals): void {
  try {
    process.kill(pid, name);
  } catch {
    // Already gone.
  }
}

/** Polls `probe` until it yields a value; the probe is the synchronisation, the pause only spaces the checks. */
async function poll<T>(probe: () => T | null | Promise<T | null>, timeoutMs: number, what: string, s: Started | null): Promise<T> {
  const startedMs = Date.now();
  while (Date.now() - startedMs < timeoutMs) {
    const value = await probe();
    if (value !== null) return value;
    if (s && (s.npm.exitCode !== null || s.npm.signalCode !== null)) break;
    await new Promise((done) => setTimeout(done, 50));
  }
  throw new Error(`gave up waiting for ${what}${s ? `; npm start output:\n${s.output().slice(-4_000)}` : ''}`);
}

/** /proc/<pid>/stat after the command name: state, ppid, ... and start time (field 22), which tells a reused pid apart. */
function stat(pid: number): { state: string; ppid: number; startTime: string } | null {
  let text: string;
  try {
    text = readFileSync(`/proc/${pid}/stat`, 'utf8');
  } catch {
    return null;
  }
  const fields = text.slice(text.lastIndexOf(')') + 2).split(' ');
  return { state: fields[0]!, ppid: Number(fields[1]), startTime: fields[19]! };
}

function descendants(root: number): ProcessId[] {
  const children = new Map<number, number[]>();
  for (const name of readdirSync('/proc')) {
    if (!/^\d+$/.test(name)) continue;
    const s = stat(Number(name));
    if (s) children.set(s.ppid, [...(children.get(s.ppid) ?? []), Number(name)]);
  }
  const found: ProcessId[] = [];
  const queue = [...(children.get(root) ?? [])];
  while (queue.length > 0) {
    const pid = queue.shift()!;
    const s = stat(pid);
    if (!s) continue;
    found.push({ pid, startTime: s.startTime });
    queue.push(...(children.get(pid) ?? []));
  }
  return found;
}

/** Alive: the same process (same start time) exists and is not a zombie waiting to be reaped. */
function isAlive(p: ProcessId): boolean {
  const s = stat(p.pid);
  return s !== null && s.startTime === p.startTime && s.state !== 'Z';
}
