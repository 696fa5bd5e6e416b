// The soak's plot: resident memory, JS heap and projection lag over time as a PNG, from a tiny raster, a 5x7 font and node:zlib (no charting dependency).

import { crc32, deflateSync } from 'node:zlib';

type Rgb = readonly [number, number, number];

/** Bounds on the picture, so a bad argument cannot ask for gigabytes. */
const MAX_SIDE_PX = 4_000;

/** An RGB raster with the few drawing operations a line chart needs. */
export class Raster {
  readonly pixels: Uint8Array;

  constructor(readonly width: number, readonly height: number, background: Rgb = [255, 255, 255]) {
    if (!Number.isInteger(width) || !Number.isInteger(height) || width < 1 || height < 1 || width > MAX_SIDE_PX || height > MAX_SIDE_PX) {
      throw new Error(`a raster is 1..${MAX_SIDE_PX} px a side, got ${width}x${height}`);
    }
    this.pixels = new Uint8Array(width * height * 3);
    this.fill(0, 0, width, height, background);
  }

  set(x: number, y: number, [r, g, b]: Rgb): void {
    const xi = Math.round(x);
    const yi = Math.round(y);
    if (xi < 0 || yi < 0 || xi >= this.width || yi >= this.height) return;
    const i = (yi * this.width + xi) * 3;
    this.pixels[i] = r;
    this.pixels[i + 1] = g;
    this.pixels[i + 2] = b;
  }

  fill(x0: number, y0: number, w: number, h: number, color: Rgb): void {
    for (let y = Math.max(0, Math.round(y0)); y < Math.min(this.height, Math.round(y0 + h)); y += 1) {
      for (let x = Math.max(0, Math.round(x0)); x < Math.min(this.width, Math.round(x0 + w)); x += 1) this.set(x, y, color);
    }
  }

  /** Bresenham, `thick` pixels wide. */
  line(x0: number, y0: number, x1: number, y1: number, color: Rgb, thick = 1): void {
    let x = Math.round(x0);
    let y = Math.round(y0);
    const xe = Math.round(x1);
    const ye = Math.round(y1);
    const dx = Math.abs(xe - x);
    const dy = -Math.abs(ye - y);
    const sx = x < xe ? 1 : -1;
    const sy = y < ye ? 1 : -1;
    let err = dx + dy;
    for (;;) {
      this.fill(x - Math.floor(thick / 2), y - Math.floor(thick / 2), thick, thick, color);
      if (x === xe && y === ye) return;
      const e2 = 2 * err;
      if (e2 >= dy) {
        err += dy;
        x += sx;
      }
      if (e2 <= dx) {
        err += dx;
        y += sy;
      }
    }
  }

  /** Upper-case text in the 5x7 font, `scale` pixels per font dot; unknown characters draw as blanks. */
  text(x: number, y: number, text: string, color: Rgb, scale = 2): void {
    let cx = x;
    for (const ch of text.toUpperCase()) {
      const glyph = FONT[ch];
      if (glyph) {
        for (let row = 0; row < 7; row += 1) {
          for (let col = 0; col < 5; col += 1) if (glyph[row]![col] === '#') this.fill(cx + col * scale, y + row * scale, scale, scale, color);
        }
      }
      cx += 6 * scale;
    }
  }

  static textWidth(text: string, scale = 2): number {
    return text.length * 6 * scale - scale;
  }
}

/** PNG: signature, IHDR (8-bit RGB), one IDAT of deflated rows (filter 0 each), IEND; every chunk with its CRC-32. */
export function encodePng(raster: Raster): Buffer {
  const rowBytes = raster.width * 3;
  const raw = Buffer.alloc((rowBytes + 1) * raster.height);
  for (let y = 0; y < raster.height; y += 1) {
    raw[y * (rowBytes + 1)] = 0;
    raw.set(raster.pixels.subarray(y * rowBytes, (y + 1) * rowBytes), y * (rowBytes + 1) + 1);
  }
  const header = Buffer.alloc(13);
  header.writeUInt32BE(raster.width, 0);
  header.writeUInt32BE(raster.height, 4);
  header.set([8, 2, 0, 0, 0], 8);
  return Buffer.concat([Buffer.from([0x89, 0x50, 0x4e, 0x47, 0x0d, 0x0a, 0x1a, 0x0a]), chunk('IHDR', header), chunk('IDAT', deflateSync(raw, { level: 9 })), chunk('IEND', Buffer.alloc(0))]);
}

function chunk(type: string, data: Buffer): Buffer {
  const length = Buffer.alloc(4);
  length.writeUInt32BE(data.length);
  const typed = Buffer.concat([Buffer.from(type, 'ascii'), data]);
  const crc = Buffer.alloc(4);
  crc.writeUInt32BE(crc32(typed) >>> 0);
  return Buffer.concat([length, typed, crc]);
}

export type Series = Readonly<{ label: string; color: Rgb; points: readonly Readonly<{ tS: number; value: number }>[] }>;
export type Panel = Readonly<{ title: string; unit: string; series: readonly Series[] }>;

const INK: Rgb = [40, 40, 40];
const GRID: Rgb = [225, 225, 225];
const WARMUP: Rgb = [245, 245, 235];
const DRAIN: Rgb = [235, 242, 250];
const PANEL_HEIGHT_PX = 230;
/** Room under a panel for its time labels and above the next for its title. */
const PANEL_GAP_PX = 64;
const WIDTH_PX = 1_100;
const LEFT_PX = 110;
const RIGHT_PX = 30;
const TOP_PX = 56;

/**
 * Stacked panels over one time axis (seconds since the load began). The warm-up left out of the plateau check is
 * shaded yellow, the drain after the load stopped blue. Each panel's y axis starts at 0.
 */
export function plotPanels(title: string, panels: readonly Panel[], marks: Readonly<{ warmupEndS: number; loadEndS: number; endS: number }>): Buffer {
  const height = TOP_PX + panels.length * (PANEL_HEIGHT_PX + PANEL_GAP_PX) + 40;
  const r = new Raster(WIDTH_PX, height);
  r.text(LEFT_PX, 16, title, INK, 2);
  const plotW = WIDTH_PX - LEFT_PX - RIGHT_PX;
  const xOf = (tS: number): number => LEFT_PX + (tS / Math.max(marks.endS, 1e-9)) * plotW;
  panels.forEach((panel, index) => {
    const top = TOP_PX + index * (PANEL_HEIGHT_PX + PANEL_GAP_PX) + 24;
    const bottom = top + PANEL_HEIGHT_PX;
    const all = panel.series.flatMap((s) => s.points.map((p) => p.value)).filter(Number.isFinite);
    const maxValue = niceCeiling(Math.max(1, ...all));
    const yOf = (v: number): number => bottom - (v / maxValue) * PANEL_HEIGHT_PX;
    r.fill(LEFT_PX, top, xOf(marks.warmupEndS) - LEFT_PX, PANEL_HEIGHT_PX, WARMUP);
    r.fill(xOf(marks.loadEndS), top, xOf(marks.endS) - xOf(marks.loadEndS), PANEL_HEIGHT_PX, DRAIN);
    for (let i = 0; i <= 4; i += 1) {
      const v = (maxValue * i) / 4;
      r.line(LEFT_PX, yOf(v), LEFT_PX + plotW, yOf(v), GRID);
      const label = formatTick(v);
      r.text(LEFT_PX - 10 - Raster.textWidth(label), yOf(v) - 7, label, INK);
    }
    const tickS = niceStep(marks.endS / 6);
    for (let t = 0; t <= marks.endS + 1e-9; t += tickS) {
      r.line(xOf(t), top, xOf(t), bottom, GRID);
      const label = `${Math.round(t)}`;
      r.text(xOf(t) - Raster.textWidth(label) / 2, bottom + 8, label, INK);
    }
    r.line(LEFT_PX, top, LEFT_PX, bottom, INK);
    r.line(LEFT_PX, bottom, LEFT_PX + plotW, bottom, INK);
    let legendX = LEFT_PX + Raster.textWidth(`${panel.title} (${panel.unit})`) + 30;
    r.text(LEFT_PX, top - 20, `${panel.title} (${panel.unit})`, INK);
    for (const s of panel.series) {
      const pts = s.points.filter((p) => Number.isFinite(p.value));
      for (let i = 1; i < pts.length; i += 1) r.line(xOf(pts[i - 1]!.tS), yOf(pts[i - 1]!.value), xOf(pts[i]!.tS), yOf(pts[i]!.value), s.color, 2);
      if (pts.length === 1) r.fill(xOf(pts[0]!.tS) - 2, yOf(pts[0]!.value) - 2, 4, 4, s.color);
      r.fill(legendX, top - 14, 18, 4, s.color);
      r.text(legendX + 24, top - 20, s.label, INK);
      legendX += 24 + Raster.textWidth(s.label) + 30;
    }
  });
  const axis = 'SECONDS SINCE THE LOAD BEGAN  (YELLOW: WARM-UP  BLUE: DRAIN AFTER THE LOAD)';
  r.text(LEFT_PX + (plotW - Raster.textWidth(axis)) / 2, height - 28, axis, INK);
  return encodePng(r);
}

/** 1, 2 or 5 times a power of ten, at least `raw`. */
function niceStep(raw: number): number {
  const power = 10 ** Math.floor(Math.log10(Math.max(raw, 1e-9)));
  return [1, 2, 5, 10].map((m) => m * power).find((s) => s >= raw)!;
}

function niceCeiling(value: number): number {
  const step = niceStep(value / 4);
  return Math.ceil(value / step) * step;
}

function formatTick(value: number): string {
  return Number.isInteger(value) ? String(value) : value.toFixed(1);
}

const G = (...rows: string[]): readonly string[] => rows;
/** A 5x7 bitmap font: upper case, digits and the punctuation the labels use. */
const FONT: Readonly<Record<string, readonly string[]>> = {
  A: G(' ### ', '#   #', '#   #', '#####', '#   #', '#   #', '#   #'),
  B: G('#### ', '#   #', '#   #', '#### ', '#   #', '#   #', '#### '),
  C: G(' ### ', '#   #', '#    ', '#    ', '#    ', '#   #', ' ### '),
  D: G('#### ', '#   #', '#   #', '#   #', '#   #', '#   #', '#### '),
  E: G('#####', '#    ', '#    ', '#### ', '#    ', '#    ', '#####'),
  F: G('#####', '#    ', '#    ', '#### ', '#    ', '#    ', '#    '),
  G: G(' ### ', '#   #', '#    ', '# ###', '#   #', '#   #', ' ####'),
  H: G('#   #', '#   #', '#   #', '#####', '#   #', '#   #', '#   #'),
  I: G(' ### ', '  #  ', '  #  ', '  #  ', '  #  ', '  #  ', ' ### '),
  J: G('  ###', '   # ', '   # ', '   # ', '   # ', '#  # ', ' ##  '),
  K: G('#   #', '#  # ', '# #  ', '##   ', '# #  ', '#  # ', '#   #'),
  L: G('#    ', '#    ', '#    ', '#    ', '#    ', '#    ', '#####'),
  M: G('#   #', '## ##', '# # #', '# # #', '#   #', '#   #', '#   #'),
  N: G('#   #', '#   #', '##  #', '# # #', '#  ##', '#   #', '#   #'),
  O: G(' ### ', '#   #', '#   #', '#   #', '#   #', '#   #', ' ### '),
  P: G('#### ', '#   #', '#   #', '#### ', '#    ', '#    ', '#    '),
  Q: G(' ### ', '#   #', '#   #', '#   #', '# # #', '#  # ', ' ## #'),
  R: G('#### ', '#   #', '#   #', '#### ', '# #  ', '#  # ', '#   #'),
  S: G(' ####', '#    ', '#    ', ' ### ', '    #', '    #', '#### '),
  T: G('#####', '  #  ', '  #  ', '  #  ', '  #  ', '  #  ', '  #  '),
  U: G('#   #', '#   #', '#   #', '#   #', '#   #', '#   #', ' ### '),
  V: G('#   #', '#   #', '#   #', '#   #', '#   #', ' # # ', '  #  '),
  W: G('#   #', '#   #', '#   #', '# # #', '# # #', '# # #', ' # # '),
  X: G('#   #', '#   #', ' # # ', '  #  ', ' # # ', '#   #', '#   #'),
  Y: G('#   #', '#   #', ' # # ', '  #  ', '  #  ', '  #  ', '  #  '),
  Z: G('#####', '    #', '   # ', '  #  ', ' #   ', '#    ', '#####'),
  '0': G(' ### ', '#   #', '#  ##', '# # #', '##  #', '#   #', ' ### '),
  '1': G('  #  ', ' ##  ', '  #  ', '  #  ', '  #  ', '  #  ', ' ### '),
  '2': G(' ### ', '#   #', '    #', '   # ', '  #  ', ' #   ', '#####'),
  '3': G('#####', '   # ', '  #  ', '   # ', '    #', '#   #', ' ### '),
  '4': G('   # ', '  ## ', ' # # ', '#  # ', '#####', '   # ', '   # '),
  '5': G('#####', '#    ', '#### ', '    #', '    #', '#   #', ' ### '),
  '6': G('  ## ', ' #   ', '#    ', '#### ', '#   #', '#   #', ' ### '),
  '7': G('#####', '    #', '   # ', '  #  ', ' #   ', ' #   ', ' #   '),
  '8': G(' ### ', '#   #', '#   #', ' ### ', '#   #', '#   #', ' ### '),
  '9': G(' ### ', '#   #', '#   #', ' ####', '    #', '   # ', ' ##  '),
  '.': G('     ', '     ', '     ', '     ', '     ', ' ##  ', ' ##  '),
  ',': G('     ', '     ', '     ', '     ', ' ##  ', '  #  ', ' #   '),
  '-': G('     ', '     ', '     ', '#####', '     ', '     ', '     '),
  ':': G('     ', ' ##  ', ' ##  ', '     ', ' ##  ', ' ##  ', '     '),
  '(': G('   # ', '  #  ', ' #   ', ' #   ', ' #   ', '  #  ', '   # '),
  ')': G(' #   ', '  #  ', '   # ', '   # ', '   # ', '  #  ', ' #   '),
  '/': G('     ', '    #', '   # ', '  #  ', ' #   ', '#    ', '     '),
  '%': G('##   ', '##  #', '   # ', '  #  ', ' #   ', '#  ##', '   ##'),
  '=': G('     ', '     ', '#####', '     ', '#####', '     ', '     '),
};
