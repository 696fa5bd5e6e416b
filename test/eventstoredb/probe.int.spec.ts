// The start-up probe's deadline: a port that accepts TCP but never speaks gRPC (a hung node, a wrong service) fails within it, not never.

import { createServer, type Server, type Socket } from 'node:net';
import type { AddressInfo } from 'node:net';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { parseEsdbUrl } from '../../adapters/eventstoredb/esdb-url.js';
import { openEsdbEventStore } from '../../adapters/eventstoredb/open-esdb.js';

describe('the EventStoreDB start-up probe', () => {
  let server: Server;
  let port: number;
  const sockets = new Set<Socket>();

  beforeAll(async () => {
    // Accepts every connection and says nothing: what a node stuck in start-up looks like to a client.
    server = createServer((socket) => {
      sockets.add(socket);
      socket.on('close', () => sockets.delete(socket));
      socket.on('error', () => {});
    });
    await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
    port = (server.address() as AddressInfo).port;
  });
  afterAll(async () => {
    for (const socket of sockets) socket.destroy();
    await new Promise<void>((resolve) => server.close(() => resolve()));
  });

  for (const tls of ['false', 'true']) {
    it(`gives up at its deadline with EVENT_STORE_UNREACHABLE on a silent node (tls=${tls})`, async () => {
      const deadlineMs = 600;
      const startedMs = Date.now();
      const error = await openEsdbEventStore(parseEsdbUrl(`esdb://127.0.0.1:${port}?tls=${tls}`), { probeDeadlineMs: deadlineMs }).then(
        () => new Error('the probe answered'),
        (e: unknown) => e,
      );
      const elapsedMs = Date.now() - startedMs;
      expect(error).toMatchObject({ code: 'EVENT_STORE_UNREACHABLE', message: expect.stringContaining(`esdb://127.0.0.1:${port}?tls=${tls}`) });
      expect((error as Error).message).toContain(`probe deadline ${deadlineMs} ms`);
      // Not before the deadline (the node was reachable, only silent), and not long after it.
      expect(elapsedMs).toBeGreaterThanOrEqual(deadlineMs - 50);
      expect(elapsedMs).toBeLessThan(deadlineMs + 5_000);
    });
  }
});
