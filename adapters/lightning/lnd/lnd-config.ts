// LND connection settings from the environment: a coordinator node (LND_*) and a contributor-side node (LND_WALLET_*).

import { readFileSync, statSync } from 'node:fs';
import { ConfigError } from '../../config.js';

/** One LND node's gRPC endpoint and credentials, normalised to hex so ln-service never has to guess the encoding. */
export type LndConnection = Readonly<{
  socket: string;
  certHex: string;
  macaroonHex: string;
}>;

export type LndConfig = Readonly<{
  /** The coordinator's node: null when none of LND_SOCKET, LND_CERT, LND_MACAROON is set. */
  coordinator: LndConnection | null;
  /** A contributor-side node (the regtest pair's payee): null when none of LND_WALLET_* is set. */
  wallet: LndConnection | null;
}>;

export type LndLimits = Readonly<{
  rpcTimeoutMs: number;
  payStartTimeoutMs: number;
  pathfindingTimeoutMs: number;
  credentialMaxBytes: number;
}>;

/** Every limit of the LND adapters, named once with its unit. */
export const LND_LIMITS: LndLimits = Object.freeze({
  /** Longest wait for one unary LND call (getInfo, decode, lookup, settle, cancel). */
  rpcTimeoutMs: 30_000,
  /** Longest wait for a new payment to reach in flight or a final state before pay() gives up asking. */
  payStartTimeoutMs: 90_000,
  /** How long LND may keep trying new routes for one payment (sendPaymentV2 timeout_seconds). */
  pathfindingTimeoutMs: 60_000,
  /** Credentials larger than this are not LND files: refuse rather than load them. */
  credentialMaxBytes: 64 * 1024,
});

const GROUPS = [
  { key: 'coordinator', socket: 'LND_SOCKET', cert: 'LND_CERT', macaroon: 'LND_MACAROON' },
  { key: 'wallet', socket: 'LND_WALLET_SOCKET', cert: 'LND_WALLET_CERT', macaroon: 'LND_WALLET_MACAROON' },
] as const;

/** Reads both groups; a group set only in part is an INVALID_CONFIG error that names what is missing. */
export function loadLndConfig(env: NodeJS.ProcessEnv): LndConfig {
  const [coordinator, wallet] = GROUPS.map((group) => loadGroup(env, group));
  return { coordinator: coordinator ?? null, wallet: wallet ?? null };
}

function loadGroup(env: NodeJS.ProcessEnv, group: (typeof GROUPS)[number]): LndConnection | null {
  const names = [group.socket, group.cert, group.macaroon];
  const set = names.filter((name) => (env[name] ?? '').trim() !== '');
  if (set.length === 0) return null;
  if (set.length < names.length) {
    const missing = names.filter((name) => !set.includes(name));
    throw new ConfigError(`${set.join(', ')} ${set.length === 1 ? 'is' : 'are'} set but ${missing.join(', ')} ${missing.length === 1 ? 'is' : 'are'} not: set all of ${names.join(', ')} to use that LND node, or none`);
  }
  return {
    socket: parseSocket(group.socket, env[group.socket]!.trim()),
    certHex: parseCert(group.cert, env[group.cert]!.trim()),
    macaroonHex: parseMacaroon(group.macaroon, env[group.macaroon]!.trim()),
  };
}

/** host:port, with IPv6 hosts in brackets ([::1]:10009). */
export function parseSocket(name: string, value: string): string {
  const match = /^(\[[0-9a-fA-F:.]+\]|[A-Za-z0-9.-]+):(\d{1,5})$/.exec(value);
  const port = match ? Number(match[2]) : NaN;
  if (!match || port < 1 || port > 65_535) throw new ConfigError(`${name} must be host:port of LND's gRPC listener (for example 127.0.0.1:10009), got ${JSON.stringify(value)}`);
  return value;
}

/** A file path, PEM text, or the PEM file as base64 (`base64 -w0 tls.cert`) or hex. */
export function parseCert(name: string, value: string): string {
  const bytes = value.startsWith('-----BEGIN') ? Buffer.from(value, 'utf8') : decodeFileOrText(name, value);
  if (!bytes.toString('latin1').includes('-----BEGIN CERTIFICATE-----')) {
    throw new ConfigError(`${name} must be LND's tls.cert (a file path, or the file as base64: base64 -w0 tls.cert); what it holds is not a PEM certificate`);
  }
  return bytes.toString('hex');
}

/** A file path, or the macaroon as base64 (`base64 -w0 admin.macaroon`) or hex. */
export function parseMacaroon(name: string, value: string): string {
  const bytes = decodeFileOrText(name, value);
  // LND writes binary V2 macaroons, whose first byte is the version, 2.
  if (bytes.length < 32 || bytes[0] !== 0x02) {
    throw new ConfigError(`${name} must be an LND macaroon (a file path, or the file as base64: base64 -w0 admin.macaroon, or hex); what it holds is not a version 2 macaroon`);
  }
  return bytes.toString('hex');
}

function decodeFileOrText(name: string, value: string): Buffer {
  const file = fileSize(value);
  if (file !== null) {
    if (file > LND_LIMITS.credentialMaxBytes) throw new ConfigError(`${name} points at ${value}, ${file} bytes: larger than any LND credential (${LND_LIMITS.credentialMaxBytes} bytes)`);
    return readFileSync(value);
  }
  // `base64` without -w0 wraps lines; the line breaks carry nothing.
  const text = value.replace(/\s+/g, '');
  if (text.length % 2 === 0 && /^[0-9a-fA-F]+$/.test(text)) return Buffer.from(text, 'hex');
  if (/^[A-Za-z0-9+/]+={0,2}$/.test(text) && text.length % 4 === 0) return Buffer.from(text, 'base64');
  throw new ConfigError(`${name} is neither a readable file, nor base64, nor hex`);
}

function fileSize(path: string): number | null {
  try {
    const stat = statSync(path);
    return stat.isFile() ? stat.size : null;
  } catch {
    return null;
  }
}
