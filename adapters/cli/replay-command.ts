// `trainledger replay <assignmentId>`: re-runs the recipe of an assignment's verdict from a live store or a bundle and says whether it reproduces.

import { createReadStream } from 'node:fs';
import { resolve } from 'node:path';
import { assignmentStreamId } from '../../domain/assignment/index.js';
import { runStreamId } from '../../domain/run/index.js';
import type { RecordedEvent } from '../../domain/ports/event-store.js';
import type { Reproduction } from '../../replay/audit/reproduce-verdict.js';
import type { BlobStore } from '../../replay/ports/blob-store.js';
import { EXECUTION_PROVIDERS, type ProviderRequest } from '../../replay/step/execution-providers.js';
import { blobStoreAt, CliFailure, EXIT, openLiveStore, parseArgs, readWholeStream, toJson } from './cli-support.js';
import { REPLAY_USAGE } from './audit-usage.js';
import { UsageError } from './trainledger.js';


type Source = Readonly<{ assignmentEvents: RecordedEvent[]; runEvents: RecordedEvent[]; blobs: BlobStore | null; describe: string; close: () => Promise<void> }>;

export async function replayCommand(argv: readonly string[], env: NodeJS.ProcessEnv): Promise<number> {
  const { flags, positionals } = parseArgs('replay', argv, { values: ['data-dir', 'database-url', 'bundle', 'blobs', 'provider'], switches: ['json'], positionals: 1 }, REPLAY_USAGE);
  const assignmentId = positionals[0];
  if (assignmentId === undefined) throw new UsageError('name the assignment: trainledger replay <assignmentId>', REPLAY_USAGE);
  const provider = (flags.get('provider') ?? 'cpu') as ProviderRequest;
  if (provider !== 'auto' && !EXECUTION_PROVIDERS.includes(provider)) throw new UsageError(`--provider must be auto, ${EXECUTION_PROVIDERS.join(', ')}; got ${JSON.stringify(provider)}`, REPLAY_USAGE);
  if (flags.has('bundle') && (flags.has('data-dir') || flags.has('database-url'))) throw new UsageError('--bundle replaces --data-dir and --database-url: give one source', REPLAY_USAGE);
  const source = flags.has('bundle') ? await fromBundle(resolve(flags.get('bundle')!), assignmentId, flags.get('blobs')) : await fromStore(flags, env, assignmentId);
  try {
    if (source.assignmentEvents.length === 0) throw new CliFailure('ASSIGNMENT_NOT_FOUND', `no assignment ${assignmentId} in ${source.describe}`, EXIT.notFound);
    if (!source.blobs) throw new CliFailure('GRADIENT_BLOB_MISSING', 'no blob folder: pass --blobs DIR or --data-dir', EXIT.notFound);
    const { reproduceVerdict, ReproduceError } = await import('../../replay/audit/reproduce-verdict.js');
    const { loadCalibration } = await import('../../replay/compare/calibration.js');
    let result: Reproduction;
    try {
      result = await reproduceVerdict({ assignmentEvents: source.assignmentEvents, runEvents: source.runEvents }, { blobs: source.blobs, calibration: loadCalibration(), provider });
    } catch (error) {
      if (error instanceof ReproduceError) throw new CliFailure(error.code, error.message, error.code === 'RECORDED_RECIPE_INVALID' ? EXIT.failed : EXIT.notFound);
      throw error;
    }
    process.stdout.write(flags.has('json') ? `${toJson({ ...result, source: source.describe })}\n` : formatReproduction(result, source.describe));
    if (!result.reproduced) {
      process.stderr.write(`trainledger: VERDICT_NOT_REPRODUCED: the recorded ${result.recorded.outcome} did not reproduce (re-run: ${result.outcome})\n`);
      return EXIT.verificationFailed;
    }
    return EXIT.ok;
  } finally {
    await source.close();
  }
}

async function fromStore(flags: Map<string, string>, env: NodeJS.ProcessEnv, assignmentId: string): Promise<Source> {
  const live = await openLiveStore(flags, env);
  try {
    const assignmentEvents = await readWholeStream(live.store, assignmentStreamId(assignmentId));
    const runId = assignmentEvents[0]?.data.runId;
    const runEvents = typeof runId === 'string' ? await readWholeStream(live.store, runStreamId(runId)) : [];
    return { assignmentEvents, runEvents, blobs: blobStoreAt(live.blobDir), describe: live.describe, close: live.close };
  } catch (error) {
    await live.close();
    if ((error as { code?: string }).code === 'INVALID_ID') throw new CliFailure('ASSIGNMENT_NOT_FOUND', `${JSON.stringify(assignmentId)} is not an assignment id`, EXIT.notFound);
    throw error;
  }
}

async function fromBundle(file: string, assignmentId: string, blobDir: string | undefined): Promise<Source> {
  const { verifyBundle } = await import('../../replay/bundle/verify-bundle.js');
  const audit = await verifyBundle(openBundleFile(file), { replay: { mode: 'none' } });
  const first = audit.problems[0];
  if (first) throw new CliFailure('BUNDLE_INVALID', `${file} does not verify (${audit.problems.length + audit.moreProblems} problem(s); first: ${first.code} at record ${first.record ?? '?'}: ${first.message}); run trainledger audit-bundle --bundle ${file}`, EXIT.verificationFailed);
  const streams = audit.contents.streams;
  const assignmentEvents = [...(streams.get(`assignment-${assignmentId}`) ?? [])];
  const runEvents = [...(streams.get(`run-${audit.runId}`) ?? [])];
  const external = blobStoreAt(blobDir === undefined ? null : resolve(blobDir));
  const blobs = external ? audit.contents.blobs.withFallback(external) : audit.contents.blobs;
  return { assignmentEvents, runEvents, blobs, describe: `bundle ${file}`, close: async () => {} };
}

/** The bundle as a byte stream; a missing file is a failure with a code, not a stack trace. */
export async function* openBundleFile(file: string): AsyncGenerator<Uint8Array> {
  const stream = createReadStream(file, { highWaterMark: 1024 * 1024 });
  try {
    for await (const chunk of stream) yield chunk as Buffer;
  } catch (error) {
    if ((error as NodeJS.ErrnoException).code === 'ENOENT') throw new CliFailure('BUNDLE_NOT_FOUND', `no bundle at ${file}`, EXIT.notFound);
    throw error;
  }
}

/** Ten significant digits: a calibrated cosine bound such as 0.99999999 must not print as 1. */
const num = (x: number) => (Number.isFinite(x) ? String(Number(x.toPrecision(10))) : String(x));

export function formatReproduction(r: Reproduction, source: string): string {
  const rec = r.recorded;
  const verdict = `${rec.verdict}${rec.validatorReasonCode ? ` (${rec.validatorReasonCode})` : ''}${rec.resolution ? `, dispute ${rec.resolution}` : ''}`;
  const outcome = (o: string, code: string | null) => `${o}${code ? ` (${code})` : ''}`;
  return [
    `assignment ${r.assignmentId} from ${source}: validator ${verdict}; recipe from the ${rec.source === 'replay-verdict' ? "dispute's replay verdict" : "validator's sampled replay"}`,
    `recipe            ${JSON.stringify(r.recipe)}`,
    `ran on            ${r.provider} (${r.device}) in ${Math.round(r.durationMs)} ms`,
    `gradient digest   submitted ${r.submittedDigest}`,
    `                  recorded replay ${r.recordedReplayedDigest ?? '(not recorded)'}`,
    `                  recomputed ${r.recomputedDigest}`,
    `loss              claimed ${num(r.claimedLoss)}  recomputed ${num(r.recomputedLoss)}`,
    `distance          relativeL2 ${num(r.distance.relativeL2)}  cosine ${num(r.distance.cosine)}  maxAbs ${num(r.distance.maxAbs)}`,
    `threshold         relativeL2 <= ${num(r.threshold.relativeL2Max)}  cosine >= ${num(r.threshold.cosineMin)}  maxAbs <= ${num(r.threshold.maxAbsMax)}`,
    `replay outcome    recorded ${outcome(rec.outcome, rec.reasonCode)}  re-run ${outcome(r.outcome, r.reasonCode)}`,
    `verdict           ${r.reproduced ? 'REPRODUCED' : 'NOT REPRODUCED'}`,
    '',
  ].join('\n');
}
