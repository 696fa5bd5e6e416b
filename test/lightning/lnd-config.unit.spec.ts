// LND settings from the environment: both groups, none, files or base64/hex, and a group set in part is INVALID_CONFIG.

import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, describe, expect, it } from 'vitest';
import { ConfigError } from '../../adapters/config.js';
import { loadLndConfig } from '../../adapters/lightning/lnd/lnd-config.js';

/** The shape of LND's tls.cert: PEM text (the body here is not a real key; the adapter only checks the PEM frame). */
const CERT_PEM = '-----BEGIN CERTIFICATE-----\nMIICJjCCAc2gAwIBAgIRAIDmIyHUfWKgvfFMHWOGwV8wCgYIKoZIzj0EAwIwMTEf\n-----END CERTIFICATE-----\n';
/** A V2 macaroon starts with version byte 2, then the location "lnd" (0x01 0x03 'lnd'). */
const MACAROON = Buffer.concat([Buffer.from('0201036c6e6402f801030a10', 'hex'), Buffer.alloc(48, 7)]);

const dir = mkdtempSync(join(tmpdir(), 'trainledger-lnd-config-'));
const certFile = join(dir, 'tls.cert');
const macaroonFile = join(dir, 'admin.macaroon');
writeFileSync(certFile, CERT_PEM);
writeFileSync(macaroonFile, MACAROON);
afterAll(() => rmSync(dir, { recursive: true, force: true }));

const coordinatorEnv = {
  LND_SOCKET: '127.0.0.1:10009',
  LND_CERT: Buffer.from(CERT_PEM).toString('base64'),
  LND_MACAROON: MACAROON.toString('base64'),
};
const walletEnv = { LND_WALLET_SOCKET: 'localhost:10010', LND_WALLET_CERT: certFile, LND_WALLET_MACAROON: macaroonFile };

function configError(env: NodeJS.ProcessEnv): ConfigError {
  try {
    loadLndConfig(env);
  } catch (error) {
    expect(error).toBeInstanceOf(ConfigError);
    expect(error).toMatchObject({ code: 'INVALID_CONFIG' });
    return error as ConfigError;
  }
  throw new Error('expected INVALID_CONFIG');
}

describe('loadLndConfig', () => {
  it('reads both nodes: base64 values and file paths end up as the same hex', () => {
    const config = loadLndConfig({ ...coordinatorEnv, ...walletEnv });
    const expected = { certHex: Buffer.from(CERT_PEM).toString('hex'), macaroonHex: MACAROON.toString('hex') };
    expect(config.coordinator).toEqual({ socket: '127.0.0.1:10009', ...expected });
    expect(config.wallet).toEqual({ socket: 'localhost:10010', ...expected });
  });

  it('accepts hex, PEM text, wrapped base64 and bracketed IPv6 sockets', () => {
    const base64 = Buffer.from(CERT_PEM).toString('base64');
    const wrapped = base64.replace(/(.{76})/g, '$1\n');
    for (const cert of [CERT_PEM, wrapped, Buffer.from(CERT_PEM).toString('hex')]) {
      const config = loadLndConfig({ LND_SOCKET: '[::1]:10009', LND_CERT: cert, LND_MACAROON: MACAROON.toString('hex') });
      // Pasted PEM text loses its trailing newline to trimming, which TLS does not mind.
      expect(Buffer.from(config.coordinator!.certHex, 'hex').toString('utf8').trim()).toBe(CERT_PEM.trim());
      expect(config.coordinator?.socket).toBe('[::1]:10009');
    }
  });

  it('is empty, not an error, when nothing is set (blank values count as unset)', () => {
    expect(loadLndConfig({})).toEqual({ coordinator: null, wallet: null });
    expect(loadLndConfig({ LND_SOCKET: '', LND_WALLET_CERT: '  ' })).toEqual({ coordinator: null, wallet: null });
  });

  it('takes the coordinator alone (production) without a wallet node', () => {
    expect(loadLndConfig(coordinatorEnv).wallet).toBeNull();
  });

  it('refuses a group set in part and names what is missing', () => {
    const partCoordinator = configError({ LND_SOCKET: '127.0.0.1:10009', LND_MACAROON: coordinatorEnv.LND_MACAROON });
    expect(partCoordinator.message).toContain('LND_CERT');
    expect(partCoordinator.message).toContain('set all of LND_SOCKET, LND_CERT, LND_MACAROON');
    const partWallet = configError({ ...coordinatorEnv, LND_WALLET_SOCKET: 'localhost:10010' });
    expect(partWallet.message).toMatch(/LND_WALLET_CERT, LND_WALLET_MACAROON are not/);
  });

  it('refuses a bad socket, something that is not a certificate, and something that is not a macaroon', () => {
    expect(configError({ ...coordinatorEnv, LND_SOCKET: 'localhost' }).message).toContain('host:port');
    expect(configError({ ...coordinatorEnv, LND_SOCKET: 'localhost:70000' }).message).toContain('host:port');
    expect(configError({ ...coordinatorEnv, LND_CERT: Buffer.from('not a cert').toString('base64') }).message).toContain('tls.cert');
    expect(configError({ ...coordinatorEnv, LND_MACAROON: Buffer.alloc(40, 1).toString('base64') }).message).toContain('macaroon');
    expect(configError({ ...coordinatorEnv, LND_MACAROON: join(dir, 'missing.macaroon') }).message).toContain('neither a readable file');
  });
});
