// Small statistics helpers for benchmarks: percentiles over latency samples, rates, peak memory.

export function percentile(sortedMs: readonly number[], p: number): number {
  if (sortedMs.length === 0) return Number.NaN;
  const index = Math.min(sortedMs.length - 1, Math.max(0, Math.ceil((p / 100) * sortedMs.length) - 1));
  return sortedMs[index]!;
}

export type Timing = { operations: number; events: number; elapsedMs: number; eventsPerSec: number; latencyMsP50: number; latencyMsP99: number };

/** Runs `operation` `count` times sequentially and summarises per-operation latency. */
export async function timeSequential(count: number, eventsPerOperation: number, operation: (i: number) => Promise<unknown>): Promise<Timing> {
  const samplesMs: number[] = [];
  const start = performance.now();
  for (let i = 0; i < count; i += 1) {
    const t0 = performance.now();
    await operation(i);
    samplesMs.push(performance.now() - t0);
  }
  const elapsedMs = performance.now() - start;
  samplesMs.sort((a, b) => a - b);
  const events = count * eventsPerOperation;
  return {
    operations: count,
    events,
    elapsedMs: round(elapsedMs),
    eventsPerSec: round((events / elapsedMs) * 1000),
    latencyMsP50: round(percentile(samplesMs, 50), 3),
    latencyMsP99: round(percentile(samplesMs, 99), 3),
  };
}

export function round(value: number, digits = 1): number {
  const f = 10 ** digits;
  return Math.round(value * f) / f;
}

/** Tracks peak RSS and heap by sampling; maxRSS from the kernel is the authoritative peak. */
export class PeakMemory {
  private peakHeapBytes = 0;
  private readonly timer: NodeJS.Timeout;
  constructor(intervalMs = 50) {
    this.timer = setInterval(() => this.sample(), intervalMs);
    this.timer.unref();
  }
  sample(): void {
    this.peakHeapBytes = Math.max(this.peakHeapBytes, process.memoryUsage().heapUsed);
  }
  stop(): { peakRssMiB: number; peakHeapMiB: number } {
    clearInterval(this.timer);
    this.sample();
    return { peakRssMiB: round(process.resourceUsage().maxRSS / 1024), peakHeapMiB: round(this.peakHeapBytes / 1024 / 1024) };
  }
}

/**
 * Runs `operations` operations over `writers` concurrent loops (writer w runs its share
 * sequentially, `operation(w, i)` for i = 0, 1, ...), and summarises throughput over the wall time
 * of the whole run and per-operation latency over every operation of every writer.
 */
export async function timeConcurrent(
  writers: number,
  operations: number,
  eventsPerOperation: number,
  operation: (writer: number, i: number) => Promise<unknown>,
): Promise<Timing> {
  const samplesMs: number[] = [];
  const start = performance.now();
  await Promise.all(
    Array.from({ length: writers }, async (_, writer) => {
      const share = Math.floor(operations / writers) + (writer < operations % writers ? 1 : 0);
      for (let i = 0; i < share; i += 1) {
        const t0 = performance.now();
        await operation(writer, i);
        samplesMs.push(performance.now() - t0);
      }
    }),
  );
  const elapsedMs = performance.now() - start;
  samplesMs.sort((a, b) => a - b);
  const events = operations * eventsPerOperation;
  return {
    operations,
    events,
    elapsedMs: round(elapsedMs),
    eventsPerSec: round((events / elapsedMs) * 1000),
    latencyMsP50: round(percentile(samplesMs, 50), 3),
    latencyMsP99: round(percentile(samplesMs, 99), 3),
  };
}

/** The run with the median events/s of several (the lower middle one of an even count). */
export function medianTiming(runs: readonly Timing[]): Timing {
  if (runs.length === 0) throw new Error('medianTiming needs at least one run');
  const sorted = [...runs].sort((a, b) => a.eventsPerSec - b.eventsPerSec);
  return sorted[Math.floor((sorted.length - 1) / 2)]!;
}
