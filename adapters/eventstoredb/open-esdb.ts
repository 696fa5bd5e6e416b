// Opens the EventStoreDB adapter from ESDB_URL and proves a cluster answers, within a short deadline, before anything starts on it.

import { BACKWARDS, END, EventStoreDBClient, FORWARDS, type Position } from '@eventstore/db-client';
import { EventStoreError } from '../../domain/ports/event-store-errors.js';
import { unsupportedServer } from './envelope.js';
import { hasLogPosition } from './positions.js';
import { EventStoreUnavailableError, EventStoreUnreachableError, mapClientError } from './errors.js';
import { EsdbEventStore } from './esdb-event-store.js';
import type { EsdbTarget } from './esdb-url.js';

/** How long start-up waits for a cluster: long enough for a leader election's first answer, short enough to fail fast. */
export const ESDB_PROBE_DEADLINE_MS = 5_000;

export type OpenedEsdbStore = { store: EsdbEventStore; target: EsdbTarget };

export async function openEsdbEventStore(target: EsdbTarget, options: { nowMs?: () => number; probeDeadlineMs?: number; liveWakeups?: boolean } = {}): Promise<OpenedEsdbStore> {
  let client: EventStoreDBClient;
  try {
    client = EventStoreDBClient.connectionString(target.connectionString);
  } catch (error) {
    // The client's parser has the last word on options this module does not know; its message may quote the string.
    throw new EventStoreUnreachableError(target.display, 0, `the client refused the connection string: ${redactMessage(error)}`);
  }
  const deadlineMs = options.probeDeadlineMs ?? ESDB_PROBE_DEADLINE_MS;
  try {
    await probe(client, deadlineMs);
  } catch (error) {
    await client.dispose().catch(() => {});
    if (error instanceof EventStoreError && error.code === 'EVENT_STORE_UNSUPPORTED_SERVER') throw error;
    // An unreachable cluster and refused credentials both stop the start; the client's own words say which.
    const mapped = mapClientError(error, { streamId: '$all' });
    const code = typeof (mapped as { code?: unknown }).code === 'string' ? (mapped as { code: string }).code : 'EVENT_STORE_FAILED';
    throw new EventStoreUnreachableError(target.display, deadlineMs, `${code}: ${redactMessage(error).replace(/\s+/g, ' ').trim()}`);
  }
  return { store: new EsdbEventStore(client, { nowMs: options.nowMs ?? Date.now, liveWakeups: options.liveWakeups ?? true }), target };
}

/** Reads the newest event of $all (any event; an empty cluster still has its system events) under the deadline. */
async function probe(client: EventStoreDBClient, deadlineMs: number): Promise<void> {
  let timer: NodeJS.Timeout | undefined;
  const timeout = new Promise<never>((_, reject) => {
    timer = setTimeout(() => reject(new Error(`no answer in ${deadlineMs} ms`)), deadlineMs);
  });
  const read = (async () => {
    let newest: { streamId: string; revision: bigint } | null = null;
    for await (const resolved of client.readAll({ direction: BACKWARDS, fromPosition: END, maxCount: 1n, deadline: deadlineMs })) {
      if (resolved.event) newest = { streamId: resolved.event.streamId, revision: resolved.event.revision };
      break;
    }
    if (newest) await checkStreamReadPositions(client, newest, deadlineMs);
  })();
  read.catch(() => {});
  try {
    await Promise.race([read, timeout]);
  } finally {
    clearTimeout(timer);
  }
}

/**
 * Reads that newest event again through its stream: a server that answers stream reads without $all
 * positions (2^64 - 1) is refused now rather than at the first append. Best effort: a stream these
 * credentials may not read (a '$' system stream needs admin) leaves the check to the first read.
 */
async function checkStreamReadPositions(client: EventStoreDBClient, newest: { streamId: string; revision: bigint }, deadlineMs: number): Promise<void> {
  let position: Position | undefined;
  try {
    for await (const resolved of client.readStream(newest.streamId, { direction: FORWARDS, fromRevision: newest.revision, maxCount: 1n, deadline: deadlineMs })) {
      position = resolved.event?.position;
      if (resolved.event) break;
    }
  } catch (error) {
    if (mapClientError(error) instanceof EventStoreUnavailableError) throw error;
    return;
  }
  if (!hasLogPosition(position)) throw unsupportedServer(`a read of ${newest.streamId} came back without $all positions`);
}

function redactMessage(error: unknown): string {
  const text = error instanceof Error ? error.message : String(error);
  return text.replace(/:\/\/[^@/?\s]*@/g, '://***@').slice(0, 300);
}
