// Opens and closes ln-service's gRPC clients for one LND node, and bounds every call with a deadline.

import { authenticatedLndGrpc, type AuthenticatedLnd } from 'ln-service';
import { LightningError } from '../../../domain/ports/lightning.js';
import type { LndConnection } from './lnd-config.js';
import { toLightningError } from './lnd-errors.js';

export type { AuthenticatedLnd };

/** gRPC connects lazily: an unreachable node shows up as NODE_UNAVAILABLE on the first call, not here. */
export function connectLnd(connection: LndConnection): AuthenticatedLnd {
  return authenticatedLndGrpc({ socket: connection.socket, cert: connection.certHex, macaroon: connection.macaroonHex }).lnd;
}

/** ln-service has no close; each service in `lnd` is a grpc-js Client, and closing them lets the process exit. */
export function closeLnd(lnd: AuthenticatedLnd): void {
  for (const client of Object.values(lnd) as unknown[]) {
    const close = (client as { close?: unknown } | null)?.close;
    if (typeof close === 'function') close.call(client);
  }
}

/**
 * Runs one ln-service call, maps its rejection to a LightningError, and gives up after `timeoutMs`
 * (ln-service sets no deadline, so a half-open connection would otherwise wait forever).
 */
export async function callLnd<T>(action: string, timeoutMs: number, call: () => Promise<T>): Promise<T> {
  let timer: NodeJS.Timeout | undefined;
  const deadline = new Promise<never>((_, reject) => {
    timer = setTimeout(() => reject(new LightningError('TIMEOUT', `LND did not answer within ${timeoutMs} ms while trying to ${action}; retry`, true)), timeoutMs);
  });
  try {
    return await Promise.race([call(), deadline]);
  } catch (error) {
    throw toLightningError(error, action);
  } finally {
    clearTimeout(timer);
  }
}
