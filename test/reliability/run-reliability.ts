// `npm run test:reliability`: the reliability suite's full versions through vitest; `--soak SECONDS` runs the soak alone for that long (vitest itself refuses unknown flags).

import { spawn } from 'node:child_process';
import { existsSync } from 'node:fs';
import { constants } from 'node:os';
import { dirname, join, resolve } from 'node:path';
import { fileURLToPath } from 'node:url';
import { FULL_SOAK_S, parseSoakSeconds, SOAK_SECONDS_RANGE } from './soak-analysis.js';

const ROOT = resolve(dirname(fileURLToPath(import.meta.url)), '../..');
const VITEST = join(ROOT, 'node_modules', 'vitest', 'vitest.mjs');
const SUITE = 'test/reliability';
const SOAK_SPEC = 'test/reliability/soak.int.spec.ts';

export const USAGE = `usage: npm run test:reliability -- [--soak SECONDS] [vitest arguments…]

  (no flags)        every part of test/reliability at its full size (RELIABILITY_FULL=1), the soak for ${FULL_SOAK_S} s
  --soak SECONDS    the soak alone, SECONDS of simulated load on PostgreSQL (${SOAK_SECONDS_RANGE.min}..${SOAK_SECONDS_RANGE.max});
                    its plot, JSON report and table go to test-artifacts/soak/soak-<SECONDS>s.{png,json,txt}
  --help            this text

Anything else goes to \`vitest run\` as is: a file filter (replacing ${SUITE}), -t NAME, --reporter=verbose, …
Environment: RELIABILITY_SEED=N replays a run; RELIABILITY_FUZZ_RUNS, RELIABILITY_LIGHTNING_SEEDS, RELIABILITY_SIGKILLS, RELIABILITY_SOAK_S as in the README.`;

export type Plan = Readonly<{ vitestArgs: readonly string[]; env: Readonly<Record<string, string>> }> | Readonly<{ help: true }>;

/** What to run, from the script's arguments; throws an Error whose message starts with a stable code on bad input. */
export function plan(argv: readonly string[]): Plan {
  const forwarded: string[] = [];
  let soakS: number | null = null;
  for (let i = 0; i < argv.length; i += 1) {
    const arg = argv[i]!;
    if (arg === '--help' || arg === '-h') return { help: true };
    if (arg === '--soak' || arg.startsWith('--soak=')) {
      const value = arg === '--soak' ? argv[++i] : arg.slice('--soak='.length);
      if (value === undefined) throw new Error('SOAK_SECONDS_MISSING: --soak needs a number of seconds, e.g. --soak 600');
      if (soakS !== null) throw new Error('SOAK_SECONDS_REPEATED: --soak is given twice');
      soakS = parseSoakSeconds(value, '--soak');
      continue;
    }
    if (arg === 'run' || arg === 'watch' || arg === '--watch') throw new Error(`RELIABILITY_ARG_UNSUPPORTED: ${arg}: the suite always runs once (vitest run)`);
    forwarded.push(arg);
  }
  // A positional argument is a file filter: it replaces the suite's folder (or the soak's file) rather than widening it.
  const hasFilter = forwarded.some((a, i) => !a.startsWith('-') && !(i > 0 && VALUE_FLAGS.has(forwarded[i - 1]!)));
  const target = hasFilter ? [] : [soakS === null ? SUITE : SOAK_SPEC];
  return { vitestArgs: ['run', ...target, ...forwarded], env: { RELIABILITY_FULL: '1', ...(soakS === null ? {} : { RELIABILITY_SOAK_S: String(soakS) }) } };
}

/** vitest flags that take the next argument as their value, so that value is not taken for a file filter. */
const VALUE_FLAGS = new Set(['-t', '--testNamePattern', '--reporter', '--project', '--config', '-c', '--root', '-r', '--dir', '--outputFile', '--pool', '--maxWorkers', '--shard', '--bail', '--retry', '--testTimeout', '--hookTimeout', '--exclude']);

async function main(argv: readonly string[]): Promise<number> {
  let p: Plan;
  try {
    p = plan(argv);
  } catch (error) {
    console.error(`test:reliability: ${error instanceof Error ? error.message : String(error)}\n\n${USAGE}`);
    return 2;
  }
  if ('help' in p) {
    console.info(USAGE);
    return 0;
  }
  if (!existsSync(VITEST)) {
    console.error(`test:reliability: VITEST_MISSING: ${VITEST} is not installed; run npm run setup`);
    return 2;
  }
  console.info(`test:reliability: ${Object.entries(p.env).map(([k, v]) => `${k}=${v}`).join(' ')} vitest ${p.vitestArgs.join(' ')}`);
  // The project's own Node (the one this script runs on), not whatever `node` the PATH finds first.
  const child = spawn(process.execPath, [VITEST, ...p.vitestArgs], { cwd: ROOT, env: { ...process.env, ...p.env }, stdio: 'inherit' });
  // npm passes a stop on to its child; pass it on to vitest, which stops its workers (and the soak its server).
  for (const signal of ['SIGINT', 'SIGTERM'] as const) process.on(signal, () => child.kill(signal));
  return new Promise((done) => child.once('exit', (code, signal) => done(code ?? 128 + (signal ? constants.signals[signal] : 0))));
}

if (process.argv[1] && resolve(process.argv[1]) === fileURLToPath(import.meta.url)) {
  process.exitCode = await main(process.argv.slice(2));
}
