// `trainledger audit-bundle --bundle FILE` (to become `audit --bundle`): verifies an audit bundle offline, with no database and no server.

import { statSync } from 'node:fs';
import { resolve } from 'node:path';
import { BUNDLE_LIMITS } from '../../replay/bundle/bundle-format.js';
import type { BundleAudit, ReplayChoice } from '../../replay/bundle/verify-bundle.js';
import { EXECUTION_PROVIDERS, type ProviderRequest } from '../../replay/step/execution-providers.js';
import { blobStoreAt, CliFailure, EXIT, parseArgs, toJson } from './cli-support.js';
import { openBundleFile } from './replay-command.js';
import { BUNDLE_AUDIT_USAGE } from './audit-usage.js';
import { UsageError } from './trainledger.js';


/**
 * The entry the \`audit\` command calls for --bundle: argv is everything after the command name; `usage` and
 * `command` are what a usage error prints (the audit command passes its own).
 */
export async function runBundleAudit(argv: readonly string[], usage = BUNDLE_AUDIT_USAGE, command = 'audit-bundle'): Promise<number> {
  const { flags } = parseArgs(command, argv, { values: ['bundle', 'blobs', 'replay-sample', 'seed', 'provider'], switches: ['replay', 'json'] }, usage);
  const bundle = flags.get('bundle');
  if (bundle === undefined) throw new UsageError('--bundle FILE is required', usage);
  const provider = (flags.get('provider') ?? 'cpu') as ProviderRequest;
  if (provider !== 'auto' && !EXECUTION_PROVIDERS.includes(provider)) throw new UsageError(`--provider must be auto, ${EXECUTION_PROVIDERS.join(', ')}; got ${JSON.stringify(provider)}`, usage);
  if (flags.has('replay') && flags.has('replay-sample')) throw new UsageError('--replay and --replay-sample exclude each other', usage);
  let replay: ReplayChoice = { mode: 'none' };
  if (flags.has('replay')) replay = { mode: 'all' };
  if (flags.has('replay-sample')) {
    const count = Number(flags.get('replay-sample'));
    if (!Number.isSafeInteger(count) || count < 1 || count > 1_000_000) throw new UsageError(`--replay-sample must be a whole number from 1 to 1000000; got ${JSON.stringify(flags.get('replay-sample'))}`, usage);
    replay = { mode: 'sample', count, seed: flags.get('seed') ?? '1' };
  }
  const file = resolve(bundle);
  let sizeBytes: number;
  try {
    sizeBytes = statSync(file).size;
  } catch {
    throw new CliFailure('BUNDLE_NOT_FOUND', `no bundle at ${file}`, EXIT.notFound);
  }
  if (sizeBytes > BUNDLE_LIMITS.maxBundleBytes) throw new CliFailure('BUNDLE_TOO_LARGE', `${file} is ${sizeBytes} bytes; the limit is ${BUNDLE_LIMITS.maxBundleBytes}`, EXIT.verificationFailed);
  const { verifyBundle } = await import('../../replay/bundle/verify-bundle.js');
  const { loadCalibration } = await import('../../replay/compare/calibration.js');
  const progress = process.stderr.isTTY ? (line: string) => process.stderr.write(`${line}\n`) : undefined;
  const audit = await verifyBundle(openBundleFile(file), {
    replay, provider, calibration: loadCalibration(), blobs: blobStoreAt(flags.has('blobs') ? resolve(flags.get('blobs')!) : null),
    ...(progress ? { onProgress: progress } : {}),
  });
  const { contents: _contents, ...report } = audit;
  process.stdout.write(flags.has('json') ? `${toJson({ bundle: file, ...report })}\n` : formatAudit(audit, file));
  if (!audit.ok) {
    process.stderr.write(`trainledger: BUNDLE_PROBLEMS: ${audit.problems.length + audit.moreProblems} problem(s) in ${file}\n`);
    return EXIT.verificationFailed;
  }
  return EXIT.ok;
}

export function formatAudit(audit: BundleAudit, file: string): string {
  const lines = [`bundle ${file}: run ${audit.runId ?? '(unknown)'}, ${audit.records} records, ${audit.events} events in ${audit.streams} streams, ${audit.blobs} blobs`];
  const count = (settlement: string) => audit.settlements.filter((s) => s.settlement === settlement).length;
  const unfinished = audit.settlements.filter((s) => s.unfinished.length > 0);
  lines.push(`settlements: ${audit.settlements.length} assignments re-derived (${count('pay')} pay, ${count('forfeit')} forfeit, ${count('pending')} pending); ${unfinished.length} with payouts unfinished at export`);
  for (const s of unfinished) lines.push(`  ${s.assignmentId}: ${s.unfinished.join(', ')}`);
  if (audit.replays.length > 0) {
    lines.push(`replays: ${audit.replays.filter((r) => r.reproduced).length} of ${audit.replays.length} reproduced`);
    for (const r of audit.replays) lines.push(`  ${r.assignmentId}: ${r.reproduced ? 'reproduced' : 'NOT reproduced'} ${r.reproduction ? `(${r.reproduction.recorded.outcome} -> ${r.reproduction.outcome})` : r.error}`);
  }
  if (audit.ok) lines.push('OK: no problems');
  for (const p of audit.problems) {
    const where = [p.record !== undefined ? `record ${p.record}` : null, p.byteOffset !== undefined ? `bytes ${p.byteOffset}..${p.byteEnd}` : null, p.streamId ? `stream ${p.streamId}` : null, p.revision !== undefined ? `revision ${p.revision}` : null]
      .filter(Boolean)
      .join(', ');
    lines.push(`${p.code}${where ? ` at ${where}` : ''}: ${p.message}`);
  }
  if (audit.moreProblems > 0) lines.push(`... and ${audit.moreProblems} more`);
  return `${lines.join('\n')}\n`;
}
