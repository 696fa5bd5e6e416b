// Opens the EventStoreDB adapter from ESDB_URL and proves a cluster answers, within a short deadline, before anything starts on it.

import { BACKWARDS, END, EventStoreDBClient } from '@eventstore/db-client';
import { EventStoreUnreachableError, mapClientError } from './errors.js';
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
    for await (const _ of client.readAll({ direction: BACKWARDS, fromPosition: END, maxCount: 1n, deadline: deadlineMs })) break;
  })();
  read.catch(() => {});
  try {
    await Promise.race([read, timeout]);
  } finally {
    clearTimeout(timer);
  }
}

function redactMessage(error: unknown): string {
  const text = error instanceof Error ? error.message : String(error);
  return text.replace(/:\/\/[^@/?\s]*@/g, '://***@').slice(0, 300);
}
