// The `trainledger` command: start, replay-worker, simulate and export, each with its own flags.

import { readFileSync } from 'node:fs';
import { pathToFileURL } from 'node:url';
import { failStart, startCommand } from '../main.js';
import { failWorker, replayWorkerCommand } from '../replay-worker-main.js';
import { StaffClient } from '../client/trainledger-client.js';
import { DEFAULT_SIMULATION_DISPUTE_WINDOW_MS, formatSummary, simulate } from './simulate.js';

const USAGE = `usage: trainledger <command> [flags]
  start            the whole system, embedded (flags: --port --host --data-dir --database-url)
  replay-worker    replay workers alone (flags: --database-url --data-dir --provider --threads --workers --lease-ms --validator)
  simulate         drive a real run over HTTP: --contributors N --steps S --cheaters FRACTION [--disputes FRACTION] [--dispute-window-ms MS] [--url URL] [--seed N]
  export           the log as NDJSON on stdout: [--url URL] [--after TX:POS]
staff commands read the coordinator key from TRAINLEDGER_ADMIN_KEY or --admin-key-file (default ./data/admin-key)`;

type Flags = Map<string, string>;

function parseFlags(argv: readonly string[], known: readonly string[]): Flags {
  const flags: Flags = new Map();
  for (let i = 0; i < argv.length; i += 1) {
    const match = /^--([a-z-]+)(?:=(.*))?$/.exec(argv[i]!);
    if (!match || !known.includes(match[1]!)) throw new Error(`unknown argument ${JSON.stringify(argv[i])}\n${USAGE}`);
    const value = match[2] ?? argv[(i += 1)];
    if (value === undefined) throw new Error(`--${match[1]} needs a value`);
    flags.set(match[1]!, value);
  }
  return flags;
}

function fraction(flags: Flags, name: string, fallback: number): number {
  const value = Number(flags.get(name) ?? fallback);
  if (!(value >= 0 && value <= 1)) throw new Error(`--${name} must be a fraction from 0 to 1`);
  return value;
}

async function adminKey(flags: Flags): Promise<string> {
  if (process.env.TRAINLEDGER_ADMIN_KEY) return process.env.TRAINLEDGER_ADMIN_KEY;
  const file = flags.get('admin-key-file') ?? './data/admin-key';
  try {
    return readFileSync(file, 'utf8').trim();
  } catch {
    throw new Error(`no coordinator key: set TRAINLEDGER_ADMIN_KEY or pass --admin-key-file (tried ${file})`);
  }
}

async function simulateCommand(argv: readonly string[]): Promise<void> {
  const flags = parseFlags(argv, ['contributors', 'steps', 'cheaters', 'disputes', 'url', 'seed', 'admin-key-file', 'timeout-ms', 'dispute-window-ms']);
  const summary = await simulate({
    baseUrl: flags.get('url') ?? 'http://127.0.0.1:8080',
    adminKey: await adminKey(flags),
    contributors: Number(flags.get('contributors') ?? 4),
    steps: Number(flags.get('steps') ?? 3),
    cheaters: fraction(flags, 'cheaters', 0.25),
    disputeShare: fraction(flags, 'disputes', 0.5),
    seed: flags.get('seed') ?? '1',
    roundTimeoutMs: Number(flags.get('timeout-ms') ?? 120_000),
    disputeWindowMs: Number(flags.get('dispute-window-ms') ?? DEFAULT_SIMULATION_DISPUTE_WINDOW_MS),
    progress: (line) => process.stderr.write(`${line}\n`),
  });
  process.stdout.write(`${formatSummary(summary)}\n`);
}

async function exportCommand(argv: readonly string[]): Promise<void> {
  const flags = parseFlags(argv, ['url', 'after', 'admin-key-file']);
  const staff = new StaffClient({ baseUrl: flags.get('url') ?? 'http://127.0.0.1:8080' }, await adminKey(flags));
  process.stdout.write(await staff.exportEvents(flags.has('after') ? { after: flags.get('after')! } : {}));
}

export async function trainledger(argv: readonly string[]): Promise<void> {
  const [command, ...rest] = argv;
  if (command === 'start') return startCommand(rest, process.env).catch(failStart);
  if (command === 'replay-worker') return replayWorkerCommand(rest, process.env).catch(failWorker);
  if (command === 'simulate') return simulateCommand(rest);
  if (command === 'export') return exportCommand(rest);
  throw new Error(USAGE);
}

if (process.argv[1] && import.meta.url === pathToFileURL(process.argv[1]).href) {
  trainledger(process.argv.slice(2)).catch((error: unknown) => {
    console.error(`trainledger: ${error instanceof Error ? error.message : String(error)}`);
    process.exit(2);
  });
}
