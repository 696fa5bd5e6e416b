// `trainledger export --run R --bundle FILE`: one run's audit bundle, from a stopped server's store or a running server over HTTP.

import { once } from 'node:events';
import { createWriteStream, existsSync, renameSync, rmSync } from 'node:fs';
import { resolve } from 'node:path';
import type { RecordedEvent } from '../../domain/ports/event-store.js';
import { blobStoreAt, CliFailure, EXIT, openLiveStore, wholeLog } from './cli-support.js';
import { UsageError } from './trainledger.js';

export const BUNDLE_EXPORT_FLAGS = ['run', 'bundle', 'url', 'data-dir', 'database-url', 'blobs', 'admin-key-file'] as const;

/** Events asked for per HTTP page. */
const HTTP_PAGE_EVENTS = 1_000;

export type BundleExportArgs = Readonly<{ flags: Map<string, string>; withBlobs: boolean; usage: string; adminKey: () => string }>;

export async function exportBundle(args: BundleExportArgs, env: NodeJS.ProcessEnv): Promise<number> {
  const { flags, usage } = args;
  const runId = flags.get('run');
  const out = flags.get('bundle');
  if (runId === undefined || out === undefined) throw new UsageError('--run and --bundle are required for a bundle', usage);
  if (flags.has('after')) throw new UsageError('--after applies to the NDJSON export; a bundle always holds whole streams', usage);
  if (flags.has('url') && flags.has('database-url')) throw new UsageError('--url and --database-url are two sources: give one', usage);
  const file = resolve(env.INIT_CWD ?? process.cwd(), out);
  if (existsSync(file)) throw new CliFailure('BUNDLE_EXISTS', `${file} exists; choose another --bundle or remove it`);
  const { bundleLines, selectRunEvents, BundleExportError } = await import('../../replay/bundle/write-bundle.js');
  const source = flags.has('url') ? httpSource(flags.get('url')!, args.adminKey(), flags.get('blobs')) : await storeSource(flags, env);
  try {
    if (args.withBlobs && !source.blobs) throw new UsageError('--with-blobs needs a blob folder: --blobs DIR (the server\'s <data dir>/blobs), or --data-dir', usage);
    let events: RecordedEvent[];
    try {
      events = await selectRunEvents(source.log(), runId);
    } catch (error) {
      if (error instanceof BundleExportError) throw new CliFailure(error.code, error.message, error.code === 'RUN_NOT_FOUND' ? EXIT.notFound : EXIT.failed);
      throw error;
    }
    // Written beside the target and renamed at the end: a failed export never leaves half a bundle under the name.
    const partial = `${file}.partial`;
    const output = createWriteStream(partial, { flags: 'wx' });
    await once(output, 'open').catch((error: NodeJS.ErrnoException) => {
      throw new CliFailure('BUNDLE_EXISTS', `cannot create ${partial}: ${error.code ?? error.message}`);
    });
    let bytes = 0;
    try {
      for await (const line of bundleLines({ runId, events, exportedAtMs: Date.now(), source: source.describe, blobs: args.withBlobs ? source.blobs : null })) {
        bytes += Buffer.byteLength(line);
        if (!output.write(line)) await once(output, 'drain');
      }
      output.end();
      await once(output, 'finish');
    } catch (error) {
      output.destroy();
      rmSync(partial, { force: true });
      if (error instanceof BundleExportError) throw new CliFailure(error.code, error.message, EXIT.notFound);
      throw error;
    }
    try {
      renameSync(partial, file);
    } catch (error) {
      rmSync(partial, { force: true });
      throw error;
    }
    process.stdout.write(`${JSON.stringify({ bundle: file, runId, events: events.length, bytes, withBlobs: args.withBlobs, source: source.describe })}\n`);
    return EXIT.ok;
  } finally {
    await source.close();
  }
}

type Source = Readonly<{ log: () => AsyncIterable<RecordedEvent>; blobs: ReturnType<typeof blobStoreAt>; describe: string; close: () => Promise<void> }>;

async function storeSource(flags: Map<string, string>, env: NodeJS.ProcessEnv): Promise<Source> {
  const live = await openLiveStore(flags, env);
  return { log: () => wholeLog(live.store), blobs: blobStoreAt(live.blobDir), describe: live.describe, close: live.close };
}

/** The running server's GET /v1/events, page after page: the same events, hashes and positions the store holds. */
function httpSource(baseUrl: string, key: string, blobDir: string | undefined): Source {
  async function* log(): AsyncGenerator<RecordedEvent> {
    const { StaffClient } = await import('../client/trainledger-client.js');
    const staff = new StaffClient({ baseUrl }, key);
    let after: string | undefined;
    for (;;) {
      const text = await staff.exportEvents({ ...(after ? { after } : {}), limit: HTTP_PAGE_EVENTS });
      const lines = text.split('\n').filter((line) => line !== '');
      for (const line of lines) {
        const wire = JSON.parse(line) as RecordedEvent & { position: { transactionId: string; globalPosition: string } };
        yield { ...wire, position: { transactionId: BigInt(wire.position.transactionId), globalPosition: BigInt(wire.position.globalPosition) } };
        after = `${wire.position.transactionId}:${wire.position.globalPosition}`;
      }
      if (lines.length === 0) return;
    }
  }
  return { log, blobs: blobStoreAt(blobDir === undefined ? null : resolve(blobDir)), describe: `server ${baseUrl}`, close: async () => {} };
}
