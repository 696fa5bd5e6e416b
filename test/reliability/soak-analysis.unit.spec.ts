// The soak's own checks, on made-up series: a flat sawtooth plateaus, a slow leak or a late step does not; lag bounds; the soak length's parsing; the PNG decodes back to its pixels.

import { inflateSync, crc32 } from 'node:zlib';
import { describe, expect, it } from 'vitest';
import { lagBounded, LAG_BOUNDS, leastSquaresSlope, theilSenSlope, parseSoakSeconds, plateau, RSS_PLATEAU, soakSettings, type SoakSample } from './soak-analysis.js';
import { encodePng, plotPanels, Raster } from './soak-plot.js';

const MIB = 2 ** 20;
const LOAD_MS = 600_000;

/** One sample every 5 s over the load: a base, GC's sawtooth, and whatever `extra` adds. */
function series(extra: (tMs: number) => number): { tMs: number; value: number }[] {
  return Array.from({ length: 121 }, (_, i) => {
    const tMs = i * 5_000;
    return { tMs, value: 300 * MIB + ((i % 7) - 3) * 6 * MIB + extra(tMs) };
  });
}

describe('plateau', () => {
  it('passes a flat sawtooth after a warm-up climb', () => {
    const verdict = plateau(series((t) => (t < 60_000 ? -150 * MIB * (1 - t / 60_000) : 0)), LOAD_MS, RSS_PLATEAU);
    expect(verdict.reasons).toEqual([]);
    expect(verdict.warmupSamples).toBe(24);
    expect(Math.abs(verdict.growthMiB)).toBeLessThan(5);
  });

  it('fails a leak of 6 MiB a minute (60 MiB over the ten minutes), on the slope', () => {
    const verdict = plateau(series((t) => (6 * MIB * t) / 60_000), LOAD_MS, RSS_PLATEAU);
    expect(verdict.ok).toBe(false);
    expect(verdict.slopeMiBPerMin).toBeCloseTo(6, 0);
    expect(verdict.reasons.join(' ')).toMatch(/MiB\/min/);
  });

  it('fails a step of 50 MiB in the last third, on the thirds', () => {
    const verdict = plateau(series((t) => (t > 480_000 ? 50 * MIB : 0)), LOAD_MS, RSS_PLATEAU);
    expect(verdict.ok).toBe(false);
    expect(verdict.reasons.join(' ')).toMatch(/last third/);
  });

  it('passes a plateau with major-GC troughs in the middle third and in the second half', () => {
    const trough = (t: number, at: number) => (t >= at && t < at + 60_000 ? -120 * MIB * (1 - (t - at) / 60_000) : 0);
    const verdict = plateau(series((t) => trough(t, 250_000) + trough(t, 440_000)), LOAD_MS, RSS_PLATEAU);
    expect(verdict.reasons).toEqual([]);
  });

  it('fails a leak of 6 MiB a minute hidden under major-GC troughs', () => {
    const trough = (t: number, at: number) => (t >= at && t < at + 60_000 ? -120 * MIB * (1 - (t - at) / 60_000) : 0);
    const verdict = plateau(series((t) => trough(t, 160_000) + trough(t, 450_000) + (6 * MIB * t) / 60_000), LOAD_MS, RSS_PLATEAU);
    expect(verdict.ok).toBe(false);
  });

  it('refuses to judge too few samples', () => {
    expect(plateau(series(() => 0).slice(0, 6), 30_000, RSS_PLATEAU).ok).toBe(false);
  });

  it('fits a least-squares slope', () => {
    expect(leastSquaresSlope([{ tMs: 0, value: 1 }, { tMs: 10, value: 3 }, { tMs: 20, value: 5 }])).toBeCloseTo(0.2);
    expect(leastSquaresSlope([{ tMs: 0, value: 1 }])).toBeNaN();
    // One wild point moves the median of slopes little and the least-squares line a lot.
    const line = Array.from({ length: 11 }, (_, i) => ({ tMs: i * 10, value: i * 2 }));
    line[9] = { tMs: 90, value: -500 };
    expect(theilSenSlope(line)).toBeCloseTo(0.2);
    expect(Math.abs(leastSquaresSlope(line) - 0.2)).toBeGreaterThan(0.05);
    expect(theilSenSlope([{ tMs: 0, value: 1 }])).toBeNaN();
  });
});

describe('lag', () => {
  const sample = (tMs: number, lagEvents: number, lagSeconds = 0): SoakSample => ({ tMs, rssBytes: 0, heapUsedBytes: 0, heapTotalBytes: 0, externalBytes: 0, lagEvents, lagSeconds });

  it('is bounded under load; drain samples after the load do not count', () => {
    const verdict = lagBounded([sample(0, 0), sample(1_000, 120, 0.4), sample(2_000, 3), sample(3_000, 50_000)], 2_000, LAG_BOUNDS);
    expect(verdict).toMatchObject({ ok: true, maxLagEvents: 120, maxLagSeconds: 0.4 });
  });

  it('fails past either bound', () => {
    expect(lagBounded([sample(0, LAG_BOUNDS.maxLagEvents + 1)], 1_000, LAG_BOUNDS).ok).toBe(false);
    expect(lagBounded([sample(0, 1, LAG_BOUNDS.maxLagSeconds + 1)], 1_000, LAG_BOUNDS).ok).toBe(false);
  });
});

describe('the soak length', () => {
  it('takes whole seconds in range and names the bad ones', () => {
    expect(parseSoakSeconds('600', '--soak')).toBe(600);
    for (const bad of ['', 'ten', '29', '3601', '60.5', '-60', '1e3']) expect(() => parseSoakSeconds(bad, '--soak')).toThrow(/SOAK_SECONDS_INVALID: --soak must be a whole number of seconds in 30\.\.3600/);
  });

  it('defaults to the short soak in npm test and the ten minutes in the full run; samples every 1–5 s', () => {
    expect(soakSettings({}, false)).toEqual({ durationS: 40, sampleMs: 1_000 });
    expect(soakSettings({}, true)).toEqual({ durationS: 600, sampleMs: 5_000 });
    expect(soakSettings({ RELIABILITY_SOAK_S: '120' }, false)).toEqual({ durationS: 120, sampleMs: 2_000 });
    expect(() => soakSettings({ RELIABILITY_SOAK_S: 'x' }, false)).toThrow(/RELIABILITY_SOAK_S/);
  });
});

describe('the PNG', () => {
  it('has valid chunks whose image data inflates back to the raster, row by row', () => {
    const r = new Raster(7, 3);
    r.line(0, 0, 6, 2, [255, 0, 0]);
    const png = encodePng(r);
    expect(png.subarray(0, 8)).toEqual(Buffer.from([0x89, 0x50, 0x4e, 0x47, 0x0d, 0x0a, 0x1a, 0x0a]));
    const chunks: { type: string; data: Buffer }[] = [];
    for (let at = 8; at < png.length;) {
      const length = png.readUInt32BE(at);
      const typed = png.subarray(at + 4, at + 8 + length);
      expect(png.readUInt32BE(at + 8 + length), 'chunk CRC').toBe(crc32(typed) >>> 0);
      chunks.push({ type: typed.subarray(0, 4).toString('ascii'), data: typed.subarray(4) });
      at += 12 + length;
    }
    expect(chunks.map((c) => c.type)).toEqual(['IHDR', 'IDAT', 'IEND']);
    expect([chunks[0]!.data.readUInt32BE(0), chunks[0]!.data.readUInt32BE(4), chunks[0]!.data[8], chunks[0]!.data[9]]).toEqual([7, 3, 8, 2]);
    const raw = inflateSync(chunks[1]!.data);
    expect(raw.length).toBe(3 * (1 + 7 * 3));
    for (let y = 0; y < 3; y += 1) {
      expect(raw[y * 22]).toBe(0);
      expect(Buffer.from(raw.subarray(y * 22 + 1, (y + 1) * 22))).toEqual(Buffer.from(r.pixels.subarray(y * 21, (y + 1) * 21)));
    }
    expect([...r.pixels.subarray(0, 3)]).toEqual([255, 0, 0]);
  });

  it('plots panels into a PNG of the expected size', () => {
    const points = [{ tS: 0, value: 1 }, { tS: 10, value: 3 }];
    const png = plotPanels('TEST', [{ title: 'RSS', unit: 'MIB', series: [{ label: 'RSS', color: [0, 0, 255], points }] }], { warmupEndS: 2, loadEndS: 8, endS: 10 });
    expect(png.readUInt32BE(16)).toBe(1_100);
    expect(png.readUInt32BE(20)).toBe(56 + 230 + 64 + 40);
  });

  it('refuses an absurd raster', () => {
    expect(() => new Raster(100_000, 10)).toThrow(/1\.\.4000 px/);
  });
});
