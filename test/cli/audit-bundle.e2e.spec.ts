// A real simulated run, then the audit-side CLI on what it left: export --bundle (store and HTTP), audit-bundle offline, tampering, replay and rebuild.

import { spawn } from 'node:child_process';
import { mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join, resolve } from 'node:path';
import { fileURLToPath } from 'node:url';
import fc from 'fast-check';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { simulate, type SimulationSummary } from '../../adapters/cli/simulate.js';
import { loadConfig } from '../../adapters/config.js';
import { newApiKey } from '../../adapters/http/auth/api-keys.js';
import { startSystem } from '../../adapters/system.js';
import { chainHash } from '../../domain/hash-chain.js';
import { BundleEncoder, type BundleRecord, type EventRecord, type TrailerRecord } from '../../replay/bundle/bundle-format.js';
import { verifyBundle, type BundleAudit } from '../../replay/bundle/verify-bundle.js';

const ROOT = resolve(fileURLToPath(new URL('../..', import.meta.url)));
const CLI = join(ROOT, 'adapters/cli/trainledger.ts');
/** Absolute, so a child in a temp cwd (no node_modules near it) still finds tsx. */
const TSX = import.meta.resolve('tsx');
const SPAWN_TIMEOUT_MS = 60_000;

type Ran = { code: number | null; stdout: string; stderr: string };

/** The CLI in a fresh process, with no DATABASE_URL, no admin key and no data dir from this process's environment. */
function trainledger(args: readonly string[], options: { cwd?: string; env?: NodeJS.ProcessEnv } = {}): Promise<Ran> {
  const env = { ...process.env };
  for (const name of ['DATABASE_URL', 'TRAINLEDGER_ADMIN_KEY', 'TRAINLEDGER_DATA_DIR', 'INIT_CWD']) delete env[name];
  Object.assign(env, options.env);
  return new Promise((done, fail) => {
    const child = spawn(process.execPath, ['--import', TSX, CLI, ...args], { cwd: options.cwd ?? ROOT, env, stdio: ['ignore', 'pipe', 'pipe'], timeout: SPAWN_TIMEOUT_MS });
    let stdout = '';
    let stderr = '';
    child.stdout.on('data', (c: Buffer) => (stdout += c.toString()));
    child.stderr.on('data', (c: Buffer) => (stderr += c.toString()));
    child.on('error', fail);
    child.on('close', (code) => done({ code, stdout, stderr }));
  });
}

const adminKey = newApiKey('coordinator');
const dataDir = mkdtempSync(join(tmpdir(), 'trainledger-bundle-'));
const outDir = mkdtempSync(join(tmpdir(), 'trainledger-bundle-out-'));
const bundleFull = join(outDir, 'run-with-blobs.bundle');
const bundleLean = join(outDir, 'run.bundle');
const bundleHttp = join(outDir, 'run-http.bundle');
let summary: SimulationSummary;
let accepted: string;
let rejected: string;
let busy: Ran;
let fullBytes: Buffer;

async function* chunksOf(bytes: Uint8Array, size = 64 * 1024): AsyncGenerator<Uint8Array> {
  for (let i = 0; i < bytes.byteLength; i += size) yield bytes.subarray(i, i + size);
}

const audit = (bytes: Uint8Array): Promise<BundleAudit> => verifyBundle(chunksOf(bytes), { replay: { mode: 'none' } });

function records(bytes: Buffer): BundleRecord[] {
  return bytes.toString('utf8').split('\n').filter((l) => l !== '').map((l) => JSON.parse(l.slice(65)) as BundleRecord);
}

/** What a forger with the format in hand writes: every line digest and the trailer recomputed over edited records. */
function reseal(edited: BundleRecord[]): Buffer {
  const encoder = new BundleEncoder();
  const body = edited.filter((r) => r.kind !== 'trailer');
  const heads = new Map<string, { revision: number; headHash: string }>();
  for (const r of body) if (r.kind === 'event') heads.set(r.event.streamId, { revision: r.event.revision, headHash: r.event.hash });
  const events = body.filter((r) => r.kind === 'event').length;
  const trailer: TrailerRecord = { kind: 'trailer', records: body.length, events, streams: [...heads].map(([streamId, h]) => ({ streamId, ...h })) };
  return Buffer.from([...body, trailer].map((r) => encoder.line(r)).join(''));
}

/** A forger's edit of one stream, with its hash chain recomputed so the chain check alone cannot see it. */
function rechain(all: BundleRecord[], streamId: string, edit: (event: EventRecord['event']) => EventRecord['event']): BundleRecord[] {
  let prevHash = '0'.repeat(64);
  return all.map((r) => {
    if (r.kind !== 'event' || r.event.streamId !== streamId) return r;
    let event = { ...edit(r.event), prevHash };
    event = { ...event, hash: chainHash(prevHash, event) };
    prevHash = event.hash;
    return { ...r, event };
  });
}

beforeAll(async () => {
  const config = loadConfig(['--data-dir', dataDir, '--port', '0'], {});
  const system = await startSystem({ config, env: { TRAINLEDGER_ADMIN_KEY: adminKey }, log: () => {} });
  try {
    // Three contributors, one step: one honest, one scaled cheat (caught by the sampled replay), one noise cheat (caught on quality); both dispute.
    summary = await simulate({ baseUrl: system.address, adminKey, contributors: 3, steps: 1, cheaters: 0.67, disputeShare: 1, seed: '11', roundTimeoutMs: 120_000, progress: () => {} });
    busy = await trainledger(['rebuild', '--data-dir', dataDir]);
    const http = await trainledger(['export', '--run', summary.runId, '--bundle', bundleHttp, '--url', system.address], { env: { TRAINLEDGER_ADMIN_KEY: adminKey } });
    if (http.code !== 0) throw new Error(`export --url failed: ${http.stderr}`);
  } finally {
    await system.stop();
  }
  for (const [file, extra] of [[bundleFull, ['--with-blobs']], [bundleLean, []]] as const) {
    const ran = await trainledger(['export', '--run', summary.runId, '--bundle', file, '--data-dir', dataDir, ...extra]);
    if (ran.code !== 0) throw new Error(`export --data-dir failed: ${ran.stderr}`);
  }
  fullBytes = readFileSync(bundleFull);
  const all = records(fullBytes).filter((r): r is EventRecord => r.kind === 'event').map((r) => r.event);
  accepted = all.find((e) => e.type === 'SubmissionAccepted')!.data.assignmentId as string;
  // The rejection a replay verdict upheld: its recipe is the dispute's.
  rejected = all.find((e) => e.type === 'ReplayVerdictRecorded')!.data.assignmentId as string;
}, 400_000);

afterAll(() => {
  rmSync(dataDir, { recursive: true, force: true });
  rmSync(outDir, { recursive: true, force: true });
});

describe('export --bundle', () => {
  it('writes the same events from the stopped store and from the running server over HTTP', () => {
    const events = (file: string) => records(readFileSync(file)).filter((r) => r.kind === 'event');
    expect(events(bundleHttp).length).toBeGreaterThan(10);
    expect(events(bundleHttp)).toEqual(events(bundleLean));
    expect(summary.assignments).toBe(3);
  });

  it('holds the run, its three assignments, their invoices and contributors, the recipes and the digests', () => {
    const all = records(fullBytes);
    const streams = new Set(all.filter((r): r is EventRecord => r.kind === 'event').map((r) => r.event.streamId));
    expect(streams).toContain(`run-${summary.runId}`);
    for (const id of summary.assignmentIds) expect(streams).toContain(`assignment-${id}`);
    expect([...streams].filter((s) => s.startsWith('contributor-'))).toHaveLength(3);
    expect([...streams].some((s) => s.startsWith('invoice-'))).toBe(true);
    expect(all.filter((r) => r.kind === 'recipe').map((r) => (r as { assignmentId: string }).assignmentId)).toEqual(expect.arrayContaining([accepted, rejected]));
    const digests = all.find((r) => r.kind === 'digests') as { gradients: unknown[]; checkpoints: string[] };
    expect(digests.gradients).toHaveLength(3);
    const blobs = new Set(all.filter((r) => r.kind === 'blob').map((r) => (r as { digest: string }).digest));
    for (const d of digests.checkpoints) expect(blobs).toContain(d);
    expect(records(readFileSync(bundleLean)).some((r) => r.kind === 'blob')).toBe(false);
  });

  it('refuses while a server holds the PGlite folder (exit 5), an unknown run (exit 4) and an existing file (exit 1)', async () => {
    expect(busy.code, busy.stderr).toBe(5);
    expect(busy.stderr).toContain('DATA_DIR_IN_USE');
    const unknown = await trainledger(['export', '--run', 'no-such-run', '--bundle', join(outDir, 'x.bundle'), '--data-dir', dataDir]);
    expect(unknown.code, unknown.stderr).toBe(4);
    expect(unknown.stderr).toContain('RUN_NOT_FOUND');
    const exists = await trainledger(['export', '--run', summary.runId, '--bundle', bundleLean, '--data-dir', dataDir]);
    expect(exists.code).toBe(1);
    expect(exists.stderr).toContain('BUNDLE_EXISTS');
    const missing = await trainledger(['export', '--run', summary.runId]);
    expect(missing.code).toBe(2);
    expect(missing.stderr).toContain('--run and --bundle are required');
  }, 3 * SPAWN_TIMEOUT_MS);
});

describe('audit-bundle offline', () => {
  it('audits clean in a fresh process with no database, no server and a temp cwd, replaying every verdict from the bundled blobs', async () => {
    const cwd = mkdtempSync(join(tmpdir(), 'trainledger-offline-'));
    const ran = await trainledger(['audit-bundle', '--bundle', bundleFull, '--replay', '--json'], { cwd });
    expect(ran.code, ran.stderr).toBe(0);
    const report = JSON.parse(ran.stdout) as { ok: boolean; problems: unknown[]; settlements: { assignmentId: string; settlement: string }[]; replays: { assignmentId: string; reproduced: boolean }[] };
    expect(report.problems).toEqual([]);
    expect(report.ok).toBe(true);
    expect(report.settlements).toHaveLength(3);
    expect(report.settlements.find((s) => s.assignmentId === accepted)!.settlement).toBe('pay');
    expect(report.settlements.find((s) => s.assignmentId === rejected)!.settlement).toBe('forfeit');
    expect(report.replays.length).toBeGreaterThanOrEqual(2);
    expect(report.replays.every((r) => r.reproduced)).toBe(true);
    rmSync(cwd, { recursive: true, force: true });
  }, SPAWN_TIMEOUT_MS);

  it('says where a changed byte is: record, bytes, stream and revision (exit 3)', async () => {
    const bytes = Buffer.from(fullBytes);
    const at = bytes.indexOf('"type":"InvoiceSettled"') + 10;
    bytes[at] = bytes[at]! ^ 0x01;
    const file = join(outDir, 'tampered.bundle');
    writeFileSync(file, bytes);
    const ran = await trainledger(['audit-bundle', '--bundle', file]);
    expect(ran.code).toBe(3);
    expect(ran.stdout).toMatch(/BUNDLE_RECORD_DIGEST at record \d+, bytes \d+\.\.\d+, stream invoice-[0-9a-f]{64}, revision \d+/);
    expect(ran.stderr).toContain('BUNDLE_PROBLEMS');
  }, SPAWN_TIMEOUT_MS);

  it('refuses a missing --bundle (exit 2), a missing file (exit 4) and an unknown flag (exit 2, naming it)', async () => {
    const none = await trainledger(['audit-bundle']);
    expect(none.code).toBe(2);
    expect(none.stderr).toContain('--bundle FILE is required');
    const missing = await trainledger(['audit-bundle', '--bundle', join(outDir, 'nope.bundle')]);
    expect(missing.code).toBe(4);
    expect(missing.stderr).toContain('BUNDLE_NOT_FOUND');
    const unknown = await trainledger(['audit-bundle', '--bundle', bundleLean, '--deep']);
    expect(unknown.code).toBe(2);
    expect(unknown.stderr).toContain('unknown argument "--deep" for audit-bundle');
  }, 3 * SPAWN_TIMEOUT_MS);
});

describe('verifyBundle against tampering', () => {
  it('audits the exported bundle clean in-process', async () => {
    const result = await audit(fullBytes);
    expect(result.problems).toEqual([]);
    expect(result.events).toBeGreaterThan(10);
  });

  it('any one flipped byte fails the audit, and the first problem names a byte range that contains it', async () => {
    await fc.assert(
      fc.asyncProperty(fc.nat({ max: fullBytes.byteLength - 1 }), fc.integer({ min: 1, max: 255 }), async (offset, xor) => {
        const bytes = Buffer.from(fullBytes);
        bytes[offset] = bytes[offset]! ^ xor;
        const result = await audit(bytes);
        expect(result.ok).toBe(false);
        const first = result.problems[0]!;
        expect(first.byteOffset, JSON.stringify(first)).toBeLessThanOrEqual(offset);
        expect(first.byteEnd!, JSON.stringify(first)).toBeGreaterThan(offset);
      }),
      { numRuns: 150 },
    );
  }, 120_000);

  it('a resealed edit of an amount breaks that stream\'s hash chain, named by stream and revision', async () => {
    const edited = records(fullBytes).map((r) => {
      if (r.kind === 'event' && r.event.type === 'BudgetReleased') return { ...r, event: { ...r.event, data: { ...r.event.data, spentMsat: '1' } } };
      return r;
    });
    const result = await audit(reseal(edited));
    const chain = result.problems.find((p) => p.code === 'CHAIN_BROKEN')!;
    expect(chain.streamId).toBe(`run-${summary.runId}`);
    expect(chain.message).toContain('hash-mismatch');
    expect(typeof chain.revision).toBe('number');
  });

  it('a forger who re-chains the hashes too is caught by the settlement re-derivation: a rejected assignment cannot be settled', async () => {
    const all = records(fullBytes);
    const escrow = all.find((r): r is EventRecord => r.kind === 'event' && r.event.type === 'InvoiceOpened' && r.event.data.assignmentId === rejected && r.event.data.kind === 'escrow')!;
    const forged = rechain(all, escrow.event.streamId, (event) => {
      const ref = () => Object.fromEntries(Object.entries(event.data).filter(([key]) => !['reason', 'wasHeld', 'expiresAtMs'].includes(key)));
      // The cancel becomes a release and the cancellation a settlement: a well-formed invoice history, just not the one the verdict allows.
      if (event.type === 'EscrowCancelRequested') return { ...event, type: 'EscrowReleaseRequested', data: { ...ref(), preimageHex: 'ab'.repeat(32) } };
      if (event.type === 'InvoiceCanceled' || event.type === 'InvoiceExpired') return { ...event, type: 'InvoiceSettled', data: { ...ref(), preimageHex: 'ab'.repeat(32), feeMsat: '0' } };
      return event;
    });
    const result = await audit(reseal(forged));
    expect(result.problems.filter((p) => p.code === 'CHAIN_BROKEN')).toEqual([]);
    const mismatch = result.problems.find((p) => p.code === 'SETTLEMENT_MISMATCH')!;
    expect(mismatch.assignmentId).toBe(rejected);
    expect(mismatch.message).toContain('yet the base reward was paid');
  });

  it('a bundle cut short at a record boundary has no trailer', async () => {
    const cut = fullBytes.subarray(0, fullBytes.lastIndexOf('\n', fullBytes.byteLength - 2) + 1);
    const result = await audit(cut);
    expect(result.problems.map((p) => p.code)).toContain('BUNDLE_TRAILER_MISSING');
  });
});

describe('trainledger replay', () => {
  const replay = (args: readonly string[]) => trainledger(['replay', ...args]);

  for (const [label, source] of [
    ['the live store', () => ['--data-dir', dataDir]],
    ['a bundle with its blobs', () => ['--bundle', bundleFull]],
    ['a bundle and a blob folder', () => ['--bundle', bundleLean, '--blobs', join(dataDir, 'blobs')]],
  ] as const) {
    it(`reproduces an accepted and a rejected verdict from ${label}`, async () => {
      const ok = await replay([accepted, ...source(), '--json']);
      expect(ok.code, ok.stderr).toBe(0);
      const match = JSON.parse(ok.stdout) as { reproduced: boolean; outcome: string; recorded: { verdict: string; outcome: string }; submittedDigest: string; recomputedDigest: string; distance: { relativeL2: number } };
      expect(match).toMatchObject({ reproduced: true, outcome: 'match', recorded: { verdict: 'accepted', outcome: 'match' } });
      expect(match.recomputedDigest).toBe(match.submittedDigest);
      expect(match.distance.relativeL2).toBe(0);
      const bad = await replay([rejected, ...source()]);
      expect(bad.code, bad.stderr).toBe(0);
      expect(bad.stdout).toContain('validator rejected');
      expect(bad.stdout).toContain("dispute's replay verdict");
      expect(bad.stdout).toMatch(/replay outcome\s+recorded mismatch \(REPLAY_[A-Z_]+\)\s+re-run mismatch \(REPLAY_[A-Z_]+\)/);
      expect(bad.stdout).toMatch(/threshold\s+relativeL2 <= /);
      expect(bad.stdout).toContain('REPRODUCED');
    }, 2 * SPAWN_TIMEOUT_MS);
  }

  it('names an unknown assignment (exit 4), a missing id and conflicting sources (exit 2)', async () => {
    const unknown = await replay(['no-such-assignment', '--data-dir', dataDir]);
    expect(unknown.code, unknown.stderr).toBe(4);
    expect(unknown.stderr).toContain('ASSIGNMENT_NOT_FOUND');
    const inBundle = await replay(['no-such-assignment', '--bundle', bundleFull]);
    expect(inBundle.code).toBe(4);
    expect(inBundle.stderr).toContain('ASSIGNMENT_NOT_FOUND');
    const none = await replay(['--data-dir', dataDir]);
    expect(none.code).toBe(2);
    expect(none.stderr).toContain('name the assignment');
    const both = await replay([accepted, '--bundle', bundleFull, '--data-dir', dataDir]);
    expect(both.code).toBe(2);
    const provider = await replay([accepted, '--provider', 'tpu']);
    expect(provider.code).toBe(2);
    expect(provider.stderr).toContain('--provider must be');
  }, 5 * SPAWN_TIMEOUT_MS);

  it('exits 3 with VERDICT_NOT_REPRODUCED when the recorded verdict is not what the recipe gives (and audit-bundle --replay says so)', async () => {
    // A forged acceptance whose sampled replay claims a mismatch: the chain is recomputed, so only a re-run can tell.
    const forged = rechain(records(fullBytes), `assignment-${accepted}`, (event) => {
      if (event.type !== 'SubmissionAccepted') return event;
      const evidence = event.data.evidence as { replay: Record<string, unknown> };
      return { ...event, data: { ...event.data, evidence: { ...evidence, replay: { ...evidence.replay, outcome: 'mismatch', reasonCode: 'REPLAY_MISMATCH' } } } };
    });
    const file = join(outDir, 'forged-verdict.bundle');
    writeFileSync(file, reseal(forged));
    const ran = await replay([accepted, '--bundle', file]);
    expect(ran.code, ran.stderr).toBe(3);
    expect(ran.stderr).toContain('VERDICT_NOT_REPRODUCED');
    expect(ran.stdout).toContain('NOT REPRODUCED');
    const audited = await trainledger(['audit-bundle', '--bundle', file, '--replay']);
    expect(audited.code).toBe(3);
    expect(audited.stdout).toContain(`REPLAY_NOT_REPRODUCED at stream assignment-${accepted}`);
  }, 2 * SPAWN_TIMEOUT_MS);

  it('--replay-sample replays as many verdicts as asked, the same ones for the same seed', async () => {
    const sampled = (seed: string) => verifyBundle(chunksOf(fullBytes), { replay: { mode: 'sample', count: 1, seed } });
    const [a, b] = [await sampled('5'), await sampled('5')];
    expect(a.replays).toHaveLength(1);
    expect(a.replays[0]!.reproduced).toBe(true);
    expect(b.replays.map((r) => r.assignmentId)).toEqual(a.replays.map((r) => r.assignmentId));
  });

  it('refuses a tampered bundle (exit 3, BUNDLE_INVALID)', async () => {
    const bytes = Buffer.from(fullBytes);
    bytes[200] = bytes[200]! ^ 0x04;
    const file = join(outDir, 'tampered-for-replay.bundle');
    writeFileSync(file, bytes);
    const ran = await replay([accepted, '--bundle', file]);
    expect(ran.code).toBe(3);
    expect(ran.stderr).toContain('BUNDLE_INVALID');
  }, SPAWN_TIMEOUT_MS);
});

describe('trainledger rebuild', () => {
  it('--dry-run compares every projection without swapping; a rebuild of one swaps it in; exit 0', async () => {
    const dry = await trainledger(['rebuild', '--data-dir', dataDir, '--dry-run']);
    expect(dry.code, dry.stderr).toBe(0);
    const rows = dry.stdout.trim().split('\n');
    expect(rows[0]).toMatch(/^projector\s+events applied\s+identical\s+swapped$/);
    for (const name of ['ledger', 'rewards', 'metrics', 'disputes']) expect(rows.find((r) => r.startsWith(name))).toMatch(new RegExp(`^${name}\\s+\\d+\\s+yes\\s+no$`));
    const one = await trainledger(['rebuild', '--data-dir', dataDir, '--projection', 'ledger', '--json']);
    expect(one.code, one.stderr).toBe(0);
    const [report] = JSON.parse(one.stdout) as { projector: string; identical: boolean; swapped: boolean; eventsApplied: number }[];
    expect(report).toMatchObject({ projector: 'ledger', identical: true, swapped: true });
    expect(report!.eventsApplied).toBeGreaterThan(10);
  }, 2 * SPAWN_TIMEOUT_MS);

  it('names an unknown projection and an unknown flag (exit 2), and a folder with no store (exit 4)', async () => {
    const unknown = await trainledger(['rebuild', '--data-dir', dataDir, '--projection', 'ledgers']);
    expect(unknown.code).toBe(2);
    expect(unknown.stderr).toContain('unknown projection "ledgers"');
    const flag = await trainledger(['rebuild', '--swap']);
    expect(flag.code).toBe(2);
    expect(flag.stderr).toContain('unknown argument "--swap" for rebuild');
    const empty = await trainledger(['rebuild', '--data-dir', mkdtempSync(join(tmpdir(), 'trainledger-empty-'))]);
    expect(empty.code).toBe(4);
    expect(empty.stderr).toContain('DATA_DIR_NOT_FOUND');
  }, 3 * SPAWN_TIMEOUT_MS);
});
