// ESDB_URL selects EventStoreDB for start, the workers and the audit: the target, or null for the SQL log.

import { parseEsdbUrl, type EsdbTarget } from './esdb-url.js';

/** The ESDB_URL target, or null when it is unset (the SQL store is used). */
export function esdbTargetFrom(env: NodeJS.ProcessEnv, flag?: string): EsdbTarget | null {
  const text = flag ?? env.ESDB_URL;
  return text === undefined || text === '' ? null : parseEsdbUrl(text);
}
