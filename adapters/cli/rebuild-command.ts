// `trainledger rebuild`: blue/green rebuild of one or every projection from the log, with progress, a table of results and exit codes.

import { ALL_PROJECTORS } from '../../projections/index.js';
import { rebuildProjection, type RebuildReport } from '../../projections/rebuild.js';
import { CliFailure, EXIT, openLiveStore, parseArgs, toJson } from './cli-support.js';
import { REBUILD_USAGE } from './audit-usage.js';
import { UsageError } from './trainledger.js';


export async function rebuildCommand(argv: readonly string[], env: NodeJS.ProcessEnv): Promise<number> {
  const { flags } = parseArgs('rebuild', argv, { values: ['data-dir', 'database-url', 'projection'], switches: ['dry-run', 'json'] }, REBUILD_USAGE);
  const name = flags.get('projection');
  const projectors = name === undefined ? ALL_PROJECTORS : ALL_PROJECTORS.filter((p) => p.name === name);
  if (projectors.length === 0) throw new UsageError(`unknown projection ${JSON.stringify(name)}; one of ${ALL_PROJECTORS.map((p) => p.name).join(', ')}`, REBUILD_USAGE);
  const dryRun = flags.has('dry-run');
  const live = await openLiveStore(flags, env);
  const reports: RebuildReport[] = [];
  try {
    for (const projector of projectors) {
      const startedMs = performance.now();
      const progress = process.stderr.isTTY
        ? (applied: number) => {
            const seconds = (performance.now() - startedMs) / 1000;
            process.stderr.write(`\rrebuilding ${projector.name}: ${applied} events applied, ${Math.round(applied / Math.max(seconds, 1e-3))} events/s   `);
          }
        : undefined;
      reports.push(await rebuildProjection({ store: live.store, projector, swap: !dryRun, ...(progress ? { onProgress: progress } : {}) }));
      if (progress) process.stderr.write('\n');
    }
  } finally {
    await live.close();
  }
  process.stdout.write(flags.has('json') ? `${toJson(reports)}\n` : formatRebuild(reports));
  const differs = reports.filter((r) => !r.identical);
  if (dryRun && differs.length > 0) {
    const failure = new CliFailure('REBUILD_DIFFERS', `${differs.map((r) => r.projector).join(', ')}: live tables differ from a rebuild from the log; run without --dry-run to swap the rebuilt tables in`, EXIT.verificationFailed);
    process.stderr.write(`trainledger: ${failure.message}\n`);
    return EXIT.verificationFailed;
  }
  return EXIT.ok;
}

export function formatRebuild(reports: readonly RebuildReport[]): string {
  const rows = [['projector', 'events applied', 'identical', 'swapped'], ...reports.map((r) => [r.projector, String(r.eventsApplied), r.identical ? 'yes' : 'NO', r.swapped ? 'yes' : 'no'])];
  const widths = rows[0]!.map((_, c) => Math.max(...rows.map((row) => row[c]!.length)));
  const lines = rows.map((row) => row.map((cell, c) => cell.padEnd(widths[c]!)).join('  ').trimEnd());
  for (const r of reports) if (r.liveError) lines.push(`${r.projector}: the live tables could not reach the rebuilt position: ${r.liveError}`);
  return `${lines.join('\n')}\n`;
}
