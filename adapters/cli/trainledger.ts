// The `trainledger` command: start, replay-worker, simulate, export, checkpoint, audit, replay, rebuild and audit-bundle, each with its own flags and its own --help.

import { readFileSync, writeFileSync } from 'node:fs';
import { join, resolve } from 'node:path';
import { pathToFileURL } from 'node:url';
import { AUDIT_USAGE, AuditUsageError } from './audit-command.js';
import { BUNDLE_AUDIT_USAGE, REBUILD_USAGE, REPLAY_USAGE } from './audit-usage.js';

/** Exit status of a command line the CLI could not make sense of (unknown command or flag, a bad value). */
export const USAGE_EXIT_CODE = 2;

const DEFAULT_URL = 'http://127.0.0.1:8080';
const DEFAULT_DATA_DIR = './data';
/** The file the server writes its first coordinator key to, under its data dir (ADMIN_KEY_FILE_NAME in adapters/http/auth/api-keys.ts). */
const ADMIN_KEY_FILE_NAME = 'admin-key';

const KEY_LOOKUP = `the coordinator key comes from TRAINLEDGER_ADMIN_KEY, else --admin-key-file, else <data dir>/admin-key,
where the data dir is --data-dir, else TRAINLEDGER_DATA_DIR, else ./data (what \`npm start\` uses and writes on its first start)`;

type CommandHelp = Readonly<{ summary: string; usage: string }>;

export const COMMANDS: Readonly<Record<string, CommandHelp>> = {
  start: {
    summary: 'the whole system, embedded: API, projections, escrow, validator and replay',
    usage: `usage: trainledger start [flags]
Runs the whole system in one process until SIGINT or SIGTERM (PGlite and the dev Lightning network unless told otherwise).
  --data-dir DIR        PGlite's files, blobs, the coordinator secret and the admin key (env TRAINLEDGER_DATA_DIR; default ./data)
  --port N              HTTP port (env TRAINLEDGER_PORT; default 8080)
  --host HOST           HTTP interface (env TRAINLEDGER_HOST; default 127.0.0.1)
  --database-url URL    PostgreSQL instead of the embedded PGlite (env DATABASE_URL)
  --esdb-url URL        the log on an EventStoreDB/KurrentDB cluster, esdb://h1:2113,h2:2113?tls=true (env ESDB_URL);
                        start probes it and exits EVENT_STORE_UNREACHABLE when none answers
  --parts LIST          a comma-separated subset of api, projections, escrow, validator, replay (env TRAINLEDGER_PARTS; default all)
  -h, --help            this help
Flags win over environment variables, which win over defaults.`,
  },
  'replay-worker': {
    summary: 'replay workers alone, against a shared database',
    usage: `usage: trainledger replay-worker [flags]
Runs dispute replays (and, with --validator, sampled validation replays) apart from the API, until SIGINT or SIGTERM.
  --database-url URL    PostgreSQL to share with the API (env DATABASE_URL; default the embedded PGlite in the data dir)
  --data-dir DIR        PGlite's files and the blobs (env TRAINLEDGER_DATA_DIR; default ./data)
  --provider NAME       auto, or an ONNX execution provider such as cpu or cuda (env TRAINLEDGER_REPLAY_PROVIDER; default auto)
  --threads N           intra-op threads per session
  --workers N           workers in this process (default 1)
  --lease-ms MS         how long a worker holds a job before another may take it (default 60000)
  --validator           also run the validator's sampled replays (a switch, no value)
  -h, --help            this help`,
  },
  simulate: {
    summary: 'drive a real run over HTTP with honest and cheating contributors, then print a summary',
    usage: `usage: trainledger simulate [flags]     (npm run simulate -- [flags])
Drives a run against a server that is already running (\`npm start\` in another terminal), on the dev Lightning network.
  --contributors N        contributors, 1..64 (default 4)
  --steps S               training steps, 1..15 (default 3)
  --cheaters FRACTION     share of contributors who cheat, 0..1 (default 0.25)
  --disputes FRACTION     share of rejected contributors who dispute, 0..1 (default 0.5)
  --dispute-window-ms MS  the run's dispute window (default 20000)
  --seed N                seed of the initial checkpoint and the batches (default 1)
  --timeout-ms MS         longest wait for one round's verdicts and settlements (default 120000)
  --url URL               the server (default ${DEFAULT_URL})
  --data-dir DIR          the server's data dir, to read its admin key from (env TRAINLEDGER_DATA_DIR; default ./data)
  --admin-key-file PATH   read the coordinator key from this file instead
  -h, --help              this help
${KEY_LOOKUP}`,
  },
  export: {
    summary: 'the log as NDJSON on stdout, or one run as an audit bundle file (--bundle)',
    usage: `usage: trainledger export [flags]
         trainledger export --run R --bundle FILE [--with-blobs] [source flags]
Writes the event log as NDJSON, one event per line, from the start or from a position.
  --url URL               the server (default ${DEFAULT_URL})
  --after TX:POS          resume after this position (the x-next-after of an earlier export)
  --data-dir DIR          the server's data dir, to read its admin key from (env TRAINLEDGER_DATA_DIR; default ./data)
  --admin-key-file PATH   read the coordinator key from this file instead
  -h, --help              this help
${KEY_LOOKUP}
With --bundle, writes one file holding run R's whole streams (run, assignments, invoices, the contributors they touch)
in checkpoint order with their hash chains, the verdicts' replay recipes, and the digests of the step graph, shards,
checkpoints and gradients; audit it anywhere with \`trainledger audit-bundle --bundle FILE\`. Its source is, in order:
--url (a running server over HTTP, with the coordinator key), --database-url (PostgreSQL), else the PGlite store in
--data-dir, which needs the server stopped (PGlite is single-process). It refuses to overwrite FILE.
  --run R                 the run to export
  --bundle FILE           where to write the bundle
  --with-blobs            also embed the checkpoints and gradients (a switch); blobs from --blobs or <data dir>/blobs
  --database-url URL      PostgreSQL as the source
  --blobs DIR             the blob folder (needed with --with-blobs and --url or --database-url)
exit (bundle): 0 written; 1 failed; 2 usage; 4 RUN_NOT_FOUND, BLOB_MISSING, DATA_DIR_NOT_FOUND; 5 DATA_DIR_IN_USE`,
  },
  checkpoint: {
    summary: "write a reference model's initial checkpoint, to upload before opening a run",
    usage: `usage: trainledger checkpoint --model NAME --out FILE [flags]
Writes the initial parameters of a reference model (the same bytes the server accepts at PUT /v1/checkpoints) and prints their SHA-256 digest.
  --model NAME            softmax-regression or mlp (GET /v1/step-graphs lists the models and their graph digests)
  --out FILE              where to write the bytes (refuses to overwrite an existing file)
  --seed N                seed of the initial parameters (default 1)
  -h, --help              this help`,
  },
  audit: { summary: 'check the log end to end: integrity, rebuilt projections, settlements against the node, the ledger; --bundle FILE checks an offline bundle', usage: `${AUDIT_USAGE}\n\nWith --bundle FILE it checks an audit bundle offline instead (no database, no server): the flags of trainledger audit-bundle.` },
  replay: {
    summary: "re-run the recipe of an assignment's verdict and say whether it reproduces",
    usage: REPLAY_USAGE,
  },
  rebuild: {
    summary: 'blue/green rebuild of the projections from the log, with a table of results',
    usage: REBUILD_USAGE,
  },
  'audit-bundle': {
    summary: 'verify an audit bundle offline: chains, settlements, digests, replays (no database, no server)',
    usage: BUNDLE_AUDIT_USAGE,
  },
};

export const USAGE = `usage: trainledger <command> [flags]
commands:
${Object.entries(COMMANDS).map(([name, { summary }]) => `  ${name.padEnd(15)}  ${summary}`).join('\n')}
Run \`trainledger <command> --help\` for a command's flags.`;

/** A command line the CLI cannot run: printed with the usage that applies, exit status 2. */
export class UsageError extends Error {
  override readonly name = 'UsageError';
  constructor(message: string, readonly usage: string) {
    super(message);
  }
}

type Flags = Map<string, string>;

function parseFlags(command: string, argv: readonly string[], known: readonly string[]): Flags {
  const usage = COMMANDS[command]!.usage;
  const flags: Flags = new Map();
  for (let i = 0; i < argv.length; i += 1) {
    const match = /^--([a-z-]+)(?:=(.*))?$/.exec(argv[i]!);
    if (!match || !known.includes(match[1]!)) throw new UsageError(`unknown argument ${JSON.stringify(argv[i])} for ${command}`, usage);
    const value = match[2] ?? argv[(i += 1)];
    if (value === undefined) throw new UsageError(`--${match[1]} needs a value`, usage);
    flags.set(match[1]!, value);
  }
  return flags;
}

function count(flags: Flags, name: string, fallback: number): number {
  const raw = flags.get(name);
  const value = Number(raw ?? fallback);
  if (!Number.isSafeInteger(value) || value < 0) throw new UsageError(`--${name} must be a whole number; got ${JSON.stringify(raw)}`, COMMANDS.simulate!.usage);
  return value;
}

function fraction(flags: Flags, name: string, fallback: number): number {
  const value = Number(flags.get(name) ?? fallback);
  if (!(value >= 0 && value <= 1)) throw new UsageError(`--${name} must be a fraction from 0 to 1`, COMMANDS.simulate!.usage);
  return value;
}

/** Where a staff command finds the coordinator key, in order; the error names every way to give one. */
export function adminKey(flags: Flags, env: NodeJS.ProcessEnv): string {
  if (env.TRAINLEDGER_ADMIN_KEY) return env.TRAINLEDGER_ADMIN_KEY.trim();
  const explicit = flags.get('admin-key-file');
  const dataDir = flags.get('data-dir') ?? env.TRAINLEDGER_DATA_DIR ?? DEFAULT_DATA_DIR;
  const file = explicit ?? join(dataDir, ADMIN_KEY_FILE_NAME);
  let key: string;
  try {
    key = readFileSync(file, 'utf8').trim();
  } catch {
    throw new Error(
      explicit
        ? `no coordinator key: cannot read --admin-key-file ${resolve(file)}`
        : `no coordinator key: TRAINLEDGER_ADMIN_KEY is unset and ${resolve(file)} does not exist. The server writes <data dir>/admin-key on its first start: ` +
            `pass --data-dir with the server's data dir, or --admin-key-file PATH, or set TRAINLEDGER_ADMIN_KEY to its coordinator key`,
    );
  }
  if (key.length === 0) throw new Error(`no coordinator key: ${resolve(file)} is empty`);
  return key;
}

/**
 * Before a long simulation: is a server there, and does it take the key? Either failure is named with what to do,
 * instead of a connection error or a 401 in the middle of the first round.
 */
async function preflight(baseUrl: string, key: string, keySource: string): Promise<void> {
  let health: Response;
  try {
    health = await fetch(new URL('/health', baseUrl));
  } catch {
    throw new Error(`no TrainLedger server answers at ${baseUrl}: start one with \`npm start\` (in another terminal), or pass --url`);
  }
  if (!health.ok) throw new Error(`the server at ${baseUrl} answered GET /health with ${health.status}; is it a TrainLedger server?`);
  const probe = await fetch(new URL('/v1/runs/-', baseUrl), { headers: { authorization: `Bearer ${key}` } });
  if (probe.status === 401 || probe.status === 403) {
    throw new Error(`the server at ${baseUrl} refused the coordinator key from ${keySource} (${probe.status}): it is another server's key; pass the server's --data-dir or --admin-key-file, or set TRAINLEDGER_ADMIN_KEY`);
  }
}

function keySource(flags: Flags, env: NodeJS.ProcessEnv): string {
  if (env.TRAINLEDGER_ADMIN_KEY) return 'TRAINLEDGER_ADMIN_KEY';
  return resolve(flags.get('admin-key-file') ?? join(flags.get('data-dir') ?? env.TRAINLEDGER_DATA_DIR ?? DEFAULT_DATA_DIR, ADMIN_KEY_FILE_NAME));
}

async function simulateCommand(argv: readonly string[], env: NodeJS.ProcessEnv): Promise<void> {
  const flags = parseFlags('simulate', argv, ['contributors', 'steps', 'cheaters', 'disputes', 'url', 'seed', 'admin-key-file', 'data-dir', 'timeout-ms', 'dispute-window-ms']);
  const baseUrl = flags.get('url') ?? DEFAULT_URL;
  const options = {
    contributors: count(flags, 'contributors', 4),
    steps: count(flags, 'steps', 3),
    cheaters: fraction(flags, 'cheaters', 0.25),
    disputeShare: fraction(flags, 'disputes', 0.5),
    seed: flags.get('seed') ?? '1',
    roundTimeoutMs: count(flags, 'timeout-ms', 120_000),
  };
  const key = adminKey(flags, env);
  await preflight(baseUrl, key, keySource(flags, env));
  // Loaded only now: the simulator brings onnxruntime, which --help and a usage error need not wait for.
  const { DEFAULT_SIMULATION_DISPUTE_WINDOW_MS, formatSummary, simulate } = await import('./simulate.js');
  const summary = await simulate({
    baseUrl,
    adminKey: key,
    ...options,
    disputeWindowMs: count(flags, 'dispute-window-ms', DEFAULT_SIMULATION_DISPUTE_WINDOW_MS),
    progress: (line) => process.stderr.write(`${line}\n`),
  });
  process.stdout.write(`${formatSummary(summary)}\n`);
}

async function exportCommand(argv: readonly string[], env: NodeJS.ProcessEnv): Promise<number | void> {
  if (argv.some((arg) => /^--(bundle|run|with-blobs|database-url|blobs)(=|$)/.test(arg))) {
    const { BUNDLE_EXPORT_FLAGS, exportBundle } = await import('./bundle-export.js');
    const { parseArgs } = await import('./cli-support.js');
    const { flags } = parseArgs('export', argv, { values: [...BUNDLE_EXPORT_FLAGS, 'after'], switches: ['with-blobs'] }, COMMANDS.export!.usage);
    return exportBundle({ flags, withBlobs: flags.has('with-blobs'), usage: COMMANDS.export!.usage, adminKey: () => adminKey(flags, env) }, env);
  }
  const flags = parseFlags('export', argv, ['url', 'after', 'admin-key-file', 'data-dir']);
  const { StaffClient } = await import('../client/trainledger-client.js');
  const staff = new StaffClient({ baseUrl: flags.get('url') ?? DEFAULT_URL }, adminKey(flags, env));
  process.stdout.write(await staff.exportEvents(flags.has('after') ? { after: flags.get('after')! } : {}));
}

async function checkpointCommand(argv: readonly string[]): Promise<void> {
  const flags = parseFlags('checkpoint', argv, ['model', 'out', 'seed']);
  const usage = COMMANDS.checkpoint!.usage;
  const model = flags.get('model');
  const out = flags.get('out');
  if (model === undefined || out === undefined) throw new UsageError('--model and --out are required', usage);
  const seed = flags.get('seed') ?? '1';
  if (!/^[0-9]{1,20}$/.test(seed)) throw new UsageError(`--seed must be a whole number; got ${JSON.stringify(seed)}`, usage);
  // Loaded only now: the graphs bring onnx protobufs, which --help and a usage error need not wait for.
  const { referenceSteps } = await import('../../replay/graphs/reference-steps.js');
  const { checkpointDigest, encodeCheckpoint, initialParameters } = await import('../../replay/model/checkpoint.js');
  const step = referenceSteps().find((s) => s.model.name === model);
  if (!step) throw new UsageError(`unknown model ${JSON.stringify(model)}; one of ${referenceSteps().map((s) => s.model.name).join(', ')}`, usage);
  const parameters = initialParameters(step.model, seed);
  // `npm run` runs scripts in the package root; INIT_CWD is where the user typed the command, which is what a relative --out means.
  const file = resolve(process.env.INIT_CWD ?? process.cwd(), out);
  try {
    writeFileSync(file, encodeCheckpoint(step.model, parameters), { flag: 'wx' });
  } catch (error) {
    if ((error as NodeJS.ErrnoException).code === 'EEXIST') throw new Error(`${file} exists; choose another --out or remove it`);
    throw error;
  }
  process.stdout.write(`${JSON.stringify({ model: step.model.name, graphDigest: step.graphDigest, checkpointDigest: checkpointDigest(step.model, parameters), file })}\n`);
}

const HELP_FLAGS = new Set(['-h', '--help']);

/** What one command line asks for: help (exit 0), a usage error (exit 2), or a command to run. */
export function route(argv: readonly string[]): { help: string } | { error: UsageError } | { run: string; rest: readonly string[] } {
  const [command, ...rest] = argv;
  if (command === undefined) return { error: new UsageError('no command given', USAGE) };
  if (HELP_FLAGS.has(command)) return { help: USAGE };
  if (command === 'help') {
    if (rest[0] === undefined) return { help: USAGE };
    return COMMANDS[rest[0]] ? { help: COMMANDS[rest[0]]!.usage } : { error: new UsageError(`unknown command ${JSON.stringify(rest[0])}`, USAGE) };
  }
  const known = Object.hasOwn(COMMANDS, command) ? COMMANDS[command] : undefined;
  if (!known) return { error: new UsageError(`unknown command ${JSON.stringify(command)}`, USAGE) };
  if (rest.some((arg) => HELP_FLAGS.has(arg))) return { help: known.usage };
  return { run: command, rest };
}

export async function trainledger(argv: readonly string[], env: NodeJS.ProcessEnv = process.env): Promise<void> {
  const routed = route(argv);
  if ('help' in routed) {
    process.stdout.write(`${routed.help}\n`);
    return;
  }
  if ('error' in routed) throw routed.error;
  const { run, rest } = routed;
  if (run === 'start') {
    const { failStart, startCommand } = await import('../main.js');
    return startCommand(rest, env).catch(failStart);
  }
  if (run === 'replay-worker') {
    const { failWorker, replayWorkerCommand } = await import('../replay-worker-main.js');
    return replayWorkerCommand(rest, env).catch(failWorker);
  }
  if (run === 'simulate') return simulateCommand(rest, env);
  if (run === 'checkpoint') return checkpointCommand(rest);
  if (run === 'audit') {
    // An offline bundle needs no database: its verifier takes the whole command line.
    if (rest.some((a) => a === '--bundle' || a.startsWith('--bundle='))) return setExitCode((await import('./bundle-audit-command.js')).runBundleAudit(rest, BUNDLE_AUDIT_USAGE, 'audit'));
    const { auditCommand } = await import('./audit-command.js');
    process.exitCode = await auditCommand(rest, env).catch((error: unknown) => {
      throw error instanceof AuditUsageError ? new UsageError(error.message, AUDIT_USAGE) : error;
    });
    return;
  }
  if (run === 'replay') return setExitCode((await import('./replay-command.js')).replayCommand(rest, env));
  if (run === 'rebuild') return setExitCode((await import('./rebuild-command.js')).rebuildCommand(rest, env));
  if (run === 'audit-bundle') return setExitCode((await import('./bundle-audit-command.js')).runBundleAudit(rest));
  return setExitCode(exportCommand(rest, env));
}

/** The audit-side commands return their exit status (3 verification failed, 4 not found, 5 store busy: see their --help). */
async function setExitCode(result: Promise<number | void>): Promise<void> {
  const code = await result;
  if (typeof code === 'number') process.exitCode = code;
}

if (process.argv[1] && import.meta.url === pathToFileURL(process.argv[1]).href) {
  trainledger(process.argv.slice(2)).catch((error: unknown) => {
    if (error instanceof UsageError) {
      console.error(`trainledger: ${error.message}\n${error.usage}`);
      process.exit(USAGE_EXIT_CODE);
    }
    console.error(`trainledger: ${error instanceof Error ? error.message : String(error)}`);
    // A CliFailure (adapters/cli/cli-support.ts) carries its exit status beside its stable code.
    const exitCode = (error as { exitCode?: unknown }).exitCode;
    process.exit(typeof exitCode === 'number' ? exitCode : 1);
  });
}
