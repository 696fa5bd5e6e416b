// `trainledger start`'s wiring: LND when LND_* are set (checked at start), the dev network otherwise, and any subset of its parts.

import { mkdtempSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { describe, expect, it } from 'vitest';
import { DEFAULT_CONFIG, loadConfig } from '../../adapters/config.js';
import { startSystem } from '../../adapters/system.js';

/** Files shaped like LND's credentials (a PEM certificate, a version 2 macaroon); no LND is behind them. */
function lndEnv(network?: string): NodeJS.ProcessEnv {
  const dir = mkdtempSync(join(tmpdir(), 'trainledger-lnd-'));
  writeFileSync(join(dir, 'tls.cert'), '-----BEGIN CERTIFICATE-----\nMIIB\n-----END CERTIFICATE-----\n');
  writeFileSync(join(dir, 'admin.macaroon'), Buffer.concat([Buffer.from([2]), Buffer.alloc(40, 7)]));
  return { LND_SOCKET: '127.0.0.1:9', LND_CERT: join(dir, 'tls.cert'), LND_MACAROON: join(dir, 'admin.macaroon'), ...(network ? { TRAINLEDGER_LND_NETWORK: network } : {}) };
}

const config = (...extra: string[]) => loadConfig(['--data-dir', mkdtempSync(join(tmpdir(), 'trainledger-sys-')), '--port', '0', ...extra], {});

describe('the Lightning node of a started system', () => {
  it('runs on the development network, and says so, when no LND is configured', async () => {
    const system = await startSystem({ config: config(), env: {}, log: () => {} });
    try {
      expect(system.lightning).toContain('NOT real money');
      const health = await fetch(new URL('/health', system.address));
      expect(health.status).toBe(200);
    } finally {
      await system.stop();
    }
  });

  it('refuses an unknown LND network with INVALID_CONFIG before connecting', async () => {
    await expect(startSystem({ config: config(), env: lndEnv('moonnet'), log: () => {} })).rejects.toMatchObject({ code: 'INVALID_CONFIG' });
  });

  it('fails at start, not at the first payment, when the configured LND cannot be reached', async () => {
    await expect(startSystem({ config: config(), env: lndEnv('regtest'), log: () => {} })).rejects.toMatchObject({ code: expect.stringMatching(/NODE_UNAVAILABLE|TIMEOUT|LND_/) });
  });
});

describe('one part alone', () => {
  it('runs only the parts asked for: projections without the API still report their lag on /health', async () => {
    const system = await startSystem({ config: config('--parts', 'projections'), env: {}, log: () => {} });
    try {
      const health = (await (await fetch(new URL('/health', system.address))).json()) as { projections: { projector: string }[] };
      expect(health.projections.map((p) => p.projector)).toEqual(['ledger', 'rewards', 'metrics', 'disputes']);
      const api = await fetch(new URL('/v1/step-graphs', system.address));
      expect(api.status).toBe(404);
      expect(((await api.json()) as { code: string }).code).toBe('ROUTE_NOT_FOUND');
    } finally {
      await system.stop();
    }
  });

  it('refuses an unknown part with INVALID_CONFIG', () => {
    expect(() => config('--parts', 'api,gossip')).toThrow(expect.objectContaining({ code: 'INVALID_CONFIG' }));
  });
});

describe('the shutdown deadline', () => {
  it('comes from --shutdown-timeout-ms, then TRAINLEDGER_SHUTDOWN_TIMEOUT_MS, then the default, and is refused out of its range', () => {
    expect(config().shutdownTimeoutMs).toBe(DEFAULT_CONFIG.shutdownTimeoutMs);
    expect(loadConfig(['--port', '0'], { TRAINLEDGER_SHUTDOWN_TIMEOUT_MS: '2500' }).shutdownTimeoutMs).toBe(2_500);
    expect(loadConfig(['--shutdown-timeout-ms', '700'], { TRAINLEDGER_SHUTDOWN_TIMEOUT_MS: '2500' }).shutdownTimeoutMs).toBe(700);
    for (const bad of ['0', '99', '600001', '1.5', 'soon']) {
      expect(() => config('--shutdown-timeout-ms', bad)).toThrow(expect.objectContaining({ code: 'INVALID_CONFIG' }));
    }
  });
});

describe("the embedded PGlite's buffer cache", () => {
  it('is 32 MB unless --pglite-shared-buffers-mb or TRAINLEDGER_PGLITE_SHARED_BUFFERS_MB says otherwise, within 1 to 1024 MB', () => {
    expect(config().database).toMatchObject({ engine: 'pglite', sharedBuffersMb: DEFAULT_CONFIG.pgliteSharedBuffersMb });
    expect(DEFAULT_CONFIG.pgliteSharedBuffersMb).toBe(32);
    expect(loadConfig([], { TRAINLEDGER_PGLITE_SHARED_BUFFERS_MB: '128' }).database).toMatchObject({ sharedBuffersMb: 128 });
    expect(loadConfig(['--pglite-shared-buffers-mb', '16'], { TRAINLEDGER_PGLITE_SHARED_BUFFERS_MB: '128' }).database).toMatchObject({ sharedBuffersMb: 16 });
    for (const bad of ['0', '1025', '2.5', 'big']) {
      expect(() => config('--pglite-shared-buffers-mb', bad)).toThrow(expect.objectContaining({ code: 'INVALID_CONFIG' }));
    }
  });
});
