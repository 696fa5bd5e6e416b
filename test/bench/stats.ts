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
