// ESDB_URL: validates an esdb:// or kurrentdb:// connection string, says whether TLS is on, and names it without credentials.

import { ConfigError } from '../config.js';

/** Longest connection string accepted: five nodes with credentials and every option fit in far less. */
export const MAX_ESDB_URL_CHARS = 2_048;

export type EsdbTarget = Readonly<{
  engine: 'eventstoredb';
  /** What the 6.x client parses: kurrentdb:// is rewritten to esdb:// (the same format under the new name). */
  connectionString: string;
  /** On unless the string says tls=false: a cluster is reached over TLS by default, as the client does. */
  tls: boolean;
  /** The connection string with any user:password replaced, for logs and errors. */
  display: string;
}>;

const URL_PATTERN = /^(esdb|esdb\+discover|kurrentdb|kurrentdb\+discover|kurrent|kurrent\+discover):\/\/(?:([^@/?]*)@)?([^/?@]+)\/?(\?[^#]*)?$/i;
const HOST_PATTERN = /^[A-Za-z0-9.-]+(?::\d{1,5})?$|^\[[0-9A-Fa-f:.]+\](?::\d{1,5})?$/;

export function parseEsdbUrl(text: string): EsdbTarget {
  if (text.length === 0 || text.length > MAX_ESDB_URL_CHARS) throw new ConfigError(`ESDB_URL must be 1-${MAX_ESDB_URL_CHARS} characters`);
  const match = URL_PATTERN.exec(text.trim());
  if (!match) {
    throw new ConfigError(`ESDB_URL must look like esdb://host:2113,host2:2113?tls=true (or kurrentdb://, esdb+discover://); got ${redact(text)}`);
  }
  const scheme = match[1]!.toLowerCase();
  const userInfo = match[2];
  const hosts = match[3]!.split(',');
  const query = match[4] ?? '';
  for (const host of hosts) {
    if (!HOST_PATTERN.test(host)) throw new ConfigError(`ESDB_URL names host ${JSON.stringify(host)}, which is not host:port`);
    const port = /:(\d+)$/.exec(host)?.[1];
    if (port !== undefined && (Number(port) < 1 || Number(port) > 65_535)) throw new ConfigError(`ESDB_URL port ${port} is not 1-65535`);
  }
  const params = new URLSearchParams(query.replace(/^\?/, ''));
  let tls = true;
  for (const [key, value] of params) {
    if (key.toLowerCase() !== 'tls') continue;
    const v = value.toLowerCase();
    if (v !== 'true' && v !== 'false') throw new ConfigError(`ESDB_URL tls= must be true or false, got ${JSON.stringify(value)}`);
    tls = v === 'true';
  }
  const clientScheme = scheme.endsWith('+discover') ? 'esdb+discover' : 'esdb';
  const rest = `${hosts.join(',')}${query}`;
  return {
    engine: 'eventstoredb',
    connectionString: `${clientScheme}://${userInfo !== undefined ? `${userInfo}@` : ''}${rest}`,
    tls,
    display: `${scheme}://${userInfo !== undefined ? '***@' : ''}${rest}`,
  };
}

/** Hides user:password in whatever text might carry a connection string. */
export function redact(text: string): string {
  return text.replace(/:\/\/[^@/?]*@/g, '://***@').slice(0, 300);
}
