// Reads a bundle's lines from a byte stream, with their record numbers and byte ranges, checking each line's chained digest.

import { BUNDLE_LIMITS, lineDigest, type BundleRecord } from './bundle-format.js';

/** Where a problem is: record number (0-based line), byte range [byteOffset, byteEnd), and the event's stream and revision when known. */
export type BundleLocation = Readonly<{ record?: number; byteOffset?: number; byteEnd?: number; streamId?: string; revision?: number }>;

export type BundleProblem = BundleLocation & Readonly<{ code: string; message: string; assignmentId?: string }>;

export type BundleLine = Readonly<{ record: number; byteOffset: number; byteEnd: number; bytes: Uint8Array; terminated: boolean; oversized: boolean }>;

/** Splits a byte stream on newlines; a line longer than maxRecordBytes is reported oversized and its bytes dropped. */
export async function* splitLines(chunks: AsyncIterable<Uint8Array>, limits = BUNDLE_LIMITS): AsyncGenerator<BundleLine> {
  let pending: Uint8Array[] = [];
  let pendingBytes = 0;
  let oversized = false;
  let offset = 0;
  let lineStart = 0;
  let record = 0;
  for await (const chunk of chunks) {
    let from = 0;
    for (;;) {
      const nl = chunk.indexOf(0x0a, from);
      const end = nl === -1 ? chunk.byteLength : nl;
      const piece = chunk.subarray(from, end);
      if (!oversized && pendingBytes + piece.byteLength > limits.maxRecordBytes) {
        oversized = true;
        pending = [];
      }
      if (!oversized) {
        pending.push(piece);
        pendingBytes += piece.byteLength;
      }
      if (nl === -1) break;
      const byteEnd = offset + nl + 1;
      yield { record, byteOffset: lineStart, byteEnd, bytes: concat(pending, pendingBytes), terminated: true, oversized };
      record += 1;
      lineStart = byteEnd;
      pending = [];
      pendingBytes = 0;
      oversized = false;
      from = nl + 1;
    }
    offset += chunk.byteLength;
    if (offset > limits.maxBundleBytes) throw new RangeError(`bundle is larger than ${limits.maxBundleBytes} bytes`);
  }
  if (lineStart < offset) yield { record, byteOffset: lineStart, byteEnd: offset, bytes: concat(pending, pendingBytes), terminated: false, oversized };
}

function concat(parts: readonly Uint8Array[], total: number): Uint8Array {
  if (parts.length === 1) return parts[0]!;
  const out = new Uint8Array(total);
  let at = 0;
  for (const part of parts) {
    out.set(part, at);
    at += part.byteLength;
  }
  return out;
}

export type CheckedLine = Readonly<{ line: BundleLine; record: BundleRecord | null; problem: BundleProblem | null }>;

const HEX64 = /^[0-9a-f]{64}$/;
const decoder = new TextDecoder('utf-8', { fatal: true });

/**
 * Each line is "<digest> <json>" where digest = SHA-256(previous line's digest ‖ json). The previous digest
 * is taken as both the one written and the one recomputed, so one damaged line is reported once, not again
 * on every line after it.
 */
export async function* checkedLines(chunks: AsyncIterable<Uint8Array>, limits = BUNDLE_LIMITS): AsyncGenerator<CheckedLine> {
  let previous = ['0'.repeat(64)];
  for await (const line of splitLines(chunks, limits)) {
    const at = { record: line.record, byteOffset: line.byteOffset, byteEnd: line.byteEnd };
    if (line.record >= limits.maxRecords) {
      yield { line, record: null, problem: { ...at, code: 'BUNDLE_TOO_MANY_RECORDS', message: `more than ${limits.maxRecords} records` } };
      return;
    }
    if (line.oversized) {
      yield { line, record: null, problem: { ...at, code: 'BUNDLE_RECORD_TOO_LARGE', message: `record longer than ${limits.maxRecordBytes} bytes` } };
      previous = [];
      continue;
    }
    const written = line.bytes.byteLength >= 65 ? Buffer.from(line.bytes.subarray(0, 64)).toString('latin1') : '';
    const json = line.bytes.subarray(65);
    if (!HEX64.test(written) || line.bytes[64] !== 0x20) {
      yield { line, record: null, problem: { ...at, ...guessEvent(line.bytes), code: 'BUNDLE_RECORD_MALFORMED', message: 'a record must be "<64 hex digest> <json>"' } };
      previous = [];
      continue;
    }
    const recomputed = previous.length > 0 ? lineDigest(previous[0]!, json) : null;
    const fits = previous.some((p, i) => (i === 0 ? recomputed : lineDigest(p, json)) === written);
    previous = recomputed && recomputed !== written ? [written, recomputed] : [written];
    let record: BundleRecord | null = null;
    try {
      record = JSON.parse(decoder.decode(json)) as BundleRecord;
    } catch {
      record = null;
    }
    const where = { ...at, ...(record?.kind === 'event' ? eventWhere(record.event) : guessEvent(json)) };
    if (!fits) {
      yield { line, record: null, problem: { ...where, code: 'BUNDLE_RECORD_DIGEST', message: 'the record does not hash to its digest (chained over the record before): it was changed, or a record before it was' } };
      continue;
    }
    if (record === null || typeof record !== 'object' || typeof record.kind !== 'string') {
      yield { line, record: null, problem: { ...where, code: 'BUNDLE_RECORD_MALFORMED', message: 'the record is not a JSON object with a kind' } };
      continue;
    }
    if (!line.terminated) {
      yield { line, record, problem: { ...where, code: 'BUNDLE_TRUNCATED', message: 'the last record has no newline: the bundle was cut or its last byte changed' } };
      continue;
    }
    yield { line, record, problem: null };
  }
}

function eventWhere(event: unknown): { streamId?: string; revision?: number } {
  const e = event as { streamId?: unknown; revision?: unknown } | null;
  return { ...(typeof e?.streamId === 'string' ? { streamId: e.streamId } : {}), ...(typeof e?.revision === 'number' ? { revision: e.revision } : {}) };
}

/** Best effort for a damaged line: the stream and revision as written, when they can still be read. */
function guessEvent(bytes: Uint8Array): { streamId?: string; revision?: number } {
  const text = Buffer.from(bytes.subarray(0, 4096)).toString('latin1');
  const stream = /"streamId":"([^"\\]{1,300})"/.exec(text);
  const revision = /"revision":(\d{1,12})/.exec(text);
  return { ...(stream ? { streamId: stream[1]! } : {}), ...(revision ? { revision: Number(revision[1]) } : {}) };
}
