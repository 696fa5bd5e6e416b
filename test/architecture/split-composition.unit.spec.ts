// The split composition holds only if the running parts take the store through its ports: no part above the port may
// import the SQL event store (its appendAtomically, appendInTransaction or table layout) except where the SQL log is the point.

import { readdirSync, readFileSync } from 'node:fs';
import { dirname, join, relative, resolve } from 'node:path';
import { fileURLToPath } from 'node:url';
import ts from 'typescript';
import { describe, expect, it } from 'vitest';

const ROOT = resolve(dirname(fileURLToPath(import.meta.url)), '..', '..');
const SQL_STORE = resolve(ROOT, 'adapters/postgres/postgres-event-store.ts');

/**
 * Where the SQL event store may be named, and why. Everything else (the HTTP API, escrow and Lightning, the
 * command handler, verification, start and the worker) runs on the split composition and must not.
 */
const ALLOWED: Readonly<Record<string, string>> = {
  'adapters/postgres': 'the SQL store itself, its audit log and migrations',
  'adapters/event-store/open-event-store.ts': 'opens the SQL store, or the split one',
  'adapters/audit/audit-deps.ts': 'picks the audit\'s log reader: SQL keyset pages on the SQL log, the log catalog on the split',
  'adapters/cli': 'offline tools on a SQL data folder (export, rebuild, audit)',
};

function sourceFilesUnder(dir: string): string[] {
  return readdirSync(dir, { withFileTypes: true }).flatMap((entry) => {
    const path = join(dir, entry.name);
    if (entry.isDirectory()) return sourceFilesUnder(path);
    return entry.isFile() && /\.ts$/.test(entry.name) ? [path] : [];
  });
}

function allowed(file: string): boolean {
  const rel = relative(ROOT, file);
  return Object.keys(ALLOWED).some((prefix) => rel === prefix || rel.startsWith(`${prefix}/`));
}

/** Static and dynamic import specifiers, type-only included, resolved to the file they name. */
function importsOf(file: string): string[] {
  const { importedFiles } = ts.preProcessFile(readFileSync(file, 'utf8'), true, true);
  return importedFiles.map((f) => f.fileName).filter((s) => s.startsWith('.')).map((s) => resolve(dirname(file), s.replace(/\.js$/, '.ts')));
}

describe('the split composition', () => {
  it('no running part above the event-store port imports the SQL event store', () => {
    const offenders = sourceFilesUnder(join(ROOT, 'adapters'))
      .filter((file) => !allowed(file))
      .filter((file) => importsOf(file).includes(SQL_STORE))
      .map((file) => relative(ROOT, file));
    expect(offenders).toEqual([]);
  });

  it('no running part calls what only the SQL store has (appendInTransaction, appendPaths, forgetKnownHeads)', () => {
    const offenders = sourceFilesUnder(join(ROOT, 'adapters'))
      .filter((file) => !allowed(file))
      .filter((file) => /\.(appendInTransaction|appendPaths|forgetKnownHeads)\(/.test(readFileSync(file, 'utf8')))
      .map((file) => relative(ROOT, file));
    expect(offenders).toEqual([]);
  });

  it('sees the imports it checks: the allowed files do import the SQL store', () => {
    expect(importsOf(join(ROOT, 'adapters/event-store/open-event-store.ts'))).toContain(SQL_STORE);
  });
});
