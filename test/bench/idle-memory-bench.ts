// Idle memory benchmark: the real service (`node --import tsx adapters/main.ts`) in a temporary data folder, its resident set once settled, on first boot and on restart.

import { spawn, type ChildProcess } from 'node:child_process';
import { mkdtempSync, readFileSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { dirname, join, resolve } from 'node:path';
import { fileURLToPath } from 'node:url';
import { round } from './stats.js';

const ROOT = resolve(dirname(fileURLToPath(import.meta.url)), '../..');

/** RSS is sampled this often while waiting for it to settle. */
const SAMPLE_INTERVAL_MS = 500;
/** Settled: this many consecutive samples within SETTLED_SPREAD_MIB of each other (10 s). */
const SETTLED_SAMPLES = 20;
const SETTLED_SPREAD_MIB = 4;
/** Bounds on each wait, so a service that never starts or never settles fails the bench instead of hanging it. */
const START_TIMEOUT_MS = 120_000;
const SETTLE_TIMEOUT_MS = 90_000;
const STOP_TIMEOUT_MS = 30_000;

/**
 * Preloaded into the service: on SIGUSR2 it writes process.memoryUsage() to stderr, then collects
 * garbage (the service runs with --expose-gc for this alone) and writes it again, so the report can
 * tell what idle memory is live from what the collector simply had not reached yet.
 */
const PROBE = `
const mib = (b) => Math.round((b / 2 ** 20) * 10) / 10;
const usage = () => { const m = process.memoryUsage(); return { heapTotalMib: mib(m.heapTotal), heapUsedMib: mib(m.heapUsed), externalMib: mib(m.external), arrayBuffersMib: mib(m.arrayBuffers) }; };
process.on('SIGUSR2', () => {
  const before = usage();
  globalThis.gc?.();
  setTimeout(() => { globalThis.gc?.(); process.stderr.write('idle-memory-probe ' + JSON.stringify({ before, afterGc: usage() }) + '\\n'); }, 100);
});
`;
const PROBE_LINE = /^idle-memory-probe (\{.*\})$/m;
const LISTENING_LINE = /trainledger listening on (http:\/\/[\d.]+:\d+)/;

type V8Usage = { heapTotalMib: number; heapUsedMib: number; externalMib: number; arrayBuffersMib: number };

export type IdleMemorySample = {
  /** VmRSS once settled, MiB. */
  idleRssMb: number;
  /** VmHWM: the most the process held, start-up included, MiB. */
  peakRssMb: number;
  /** Of the idle RSS: anonymous memory (V8 heap, WebAssembly memory, malloc) and mapped files (node, native libraries). */
  rssAnonMb: number;
  rssFileMb: number;
  /** From process.memoryUsage() in the service at idle: V8's own heap, and memory outside it that V8 tracks (PGlite's WebAssembly heap, buffers). */
  v8: V8Usage;
  /** The same after a forced full collection, with VmRSS then: what idle holds that is garbage not yet collected. */
  afterGc: V8Usage & { rssMb: number };
  startMs: number;
  settleMs: number;
  settled: boolean;
};

export type IdleMemoryResult = {
  /** First boot on a new data folder: what `npm start` holds on a fresh checkout. */
  idleRssMb: number;
  breakdown: { firstBoot: IdleMemorySample; restart: IdleMemorySample };
  command: string;
};

const SERVICE_ARGS = ['--expose-gc', '--import', 'tsx', '--import', `data:text/javascript,${encodeURIComponent(PROBE)}`, 'adapters/main.ts'];

/** Starts the service twice on one temporary data folder (first boot, then restart) and measures each at idle. */
export async function runIdleMemoryBench(log: (line: string) => void): Promise<IdleMemoryResult> {
  const dataDir = mkdtempSync(join(tmpdir(), 'trainledger-idle-'));
  try {
    log('idle memory: first boot...');
    const firstBoot = await measureOnce(dataDir, log);
    log('idle memory: restart on the same data folder...');
    const restart = await measureOnce(dataDir, log);
    return { idleRssMb: firstBoot.idleRssMb, breakdown: { firstBoot, restart }, command: `node ${SERVICE_ARGS.slice(0, 3).join(' ')} adapters/main.ts (TRAINLEDGER_DATA_DIR=<temp>, TRAINLEDGER_PORT=0), plus a memory probe` };
  } finally {
    rmSync(dataDir, { recursive: true, force: true });
  }
}

async function measureOnce(dataDir: string, log: (line: string) => void): Promise<IdleMemorySample> {
  const startedMs = performance.now();
  const child = spawn(process.execPath, SERVICE_ARGS, {
    cwd: ROOT,
    env: { ...process.env, TRAINLEDGER_DATA_DIR: dataDir, TRAINLEDGER_PORT: '0', TRAINLEDGER_HOST: '127.0.0.1' },
    stdio: ['ignore', 'pipe', 'pipe'],
  });
  const output = collect(child);
  const exited = new Promise<{ code: number | null; signal: NodeJS.Signals | null }>((done) => child.once('exit', (code, signal) => done({ code, signal })));
  try {
    const address = await waitFor(() => LISTENING_LINE.exec(output.text())?.[1] ?? null, START_TIMEOUT_MS, 'the service to listen', exited, output);
    await waitFor(async () => ((await fetch(new URL('/health', address)).catch(() => null))?.ok ? true : null), START_TIMEOUT_MS, '/health to answer', exited, output);
    const startMs = performance.now() - startedMs;
    const settle = await settleRss(child.pid!);
    const status = procStatus(child.pid!);
    const probeFrom = output.text().length;
    child.kill('SIGUSR2');
    const probe = JSON.parse(await waitFor(() => PROBE_LINE.exec(output.text().slice(probeFrom))?.[1] ?? null, 10_000, 'the memory probe', exited, output)) as { before: V8Usage; afterGc: V8Usage };
    const rssAfterGcMb = procStatus(child.pid!).VmRSS;
    const sample: IdleMemorySample = {
      idleRssMb: status.VmRSS, peakRssMb: status.VmHWM, rssAnonMb: status.RssAnon, rssFileMb: status.RssFile,
      v8: probe.before, afterGc: { ...probe.afterGc, rssMb: rssAfterGcMb },
      startMs: round(startMs, 0), settleMs: round(settle.elapsedMs, 0), settled: settle.settled,
    };
    log(`  idle ${sample.idleRssMb} MiB (peak ${sample.peakRssMb}, after a forced GC ${rssAfterGcMb}), settled ${settle.settled} in ${sample.settleMs} ms`);
    return sample;
  } finally {
    if (child.exitCode === null && child.signalCode === null) child.kill('SIGTERM');
    const stop = await Promise.race([exited, new Promise<null>((done) => setTimeout(() => done(null), STOP_TIMEOUT_MS).unref())]);
    if (stop === null) {
      child.kill('SIGKILL');
      throw new Error(`the service did not stop within ${STOP_TIMEOUT_MS} ms of SIGTERM`);
    }
  }
}

/** Samples VmRSS until SETTLED_SAMPLES in a row lie within SETTLED_SPREAD_MIB: the readiness signal for "idle", in place of a fixed sleep. */
async function settleRss(pid: number): Promise<{ settled: boolean; elapsedMs: number }> {
  const startedMs = performance.now();
  const window: number[] = [];
  while (performance.now() - startedMs < SETTLE_TIMEOUT_MS) {
    window.push(procStatus(pid).VmRSS);
    if (window.length > SETTLED_SAMPLES) window.shift();
    if (window.length === SETTLED_SAMPLES && Math.max(...window) - Math.min(...window) <= SETTLED_SPREAD_MIB) return { settled: true, elapsedMs: performance.now() - startedMs };
    await new Promise((done) => setTimeout(done, SAMPLE_INTERVAL_MS));
  }
  return { settled: false, elapsedMs: performance.now() - startedMs };
}

/** The kB fields of /proc/<pid>/status this bench reads, in MiB. */
function procStatus(pid: number): Record<'VmRSS' | 'VmHWM' | 'RssAnon' | 'RssFile', number> {
  const text = readFileSync(`/proc/${pid}/status`, 'utf8');
  const field = (name: string) => {
    const match = new RegExp(`^${name}:\\s+(\\d+) kB$`, 'm').exec(text);
    if (!match) throw new Error(`/proc/${pid}/status has no ${name}`);
    return round(Number(match[1]) / 1024);
  };
  return { VmRSS: field('VmRSS'), VmHWM: field('VmHWM'), RssAnon: field('RssAnon'), RssFile: field('RssFile') };
}

function collect(child: ChildProcess): { text: () => string } {
  let text = '';
  child.stdout!.on('data', (chunk: Buffer) => (text += chunk.toString()));
  child.stderr!.on('data', (chunk: Buffer) => (text += chunk.toString()));
  return { text: () => text };
}

/** Polls `probe` until it yields a value; fails early, with the service's output, if the service exits. */
async function waitFor<T>(probe: () => T | null | Promise<T | null>, timeoutMs: number, what: string, exited: Promise<unknown>, output: { text: () => string }): Promise<T> {
  let gone = false;
  void exited.then(() => (gone = true));
  const startedMs = performance.now();
  while (performance.now() - startedMs < timeoutMs) {
    const value = await probe();
    if (value !== null) return value;
    if (gone) break;
    await new Promise((done) => setTimeout(done, 100));
  }
  throw new Error(`timed out or exited waiting for ${what}; service output:\n${output.text().slice(-4_000)}`);
}

// `npx tsx test/bench/idle-memory-bench.ts` runs it alone and prints JSON.
if (process.argv[1] && resolve(process.argv[1]) === fileURLToPath(import.meta.url)) {
  runIdleMemoryBench((line) => process.stderr.write(`${line}\n`))
    .then((result) => process.stdout.write(`${JSON.stringify(result, null, 2)}\n`))
    .catch((error: unknown) => {
      console.error(error);
      process.exit(1);
    });
}
