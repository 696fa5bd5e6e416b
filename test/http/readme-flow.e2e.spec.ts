// The README's curl flow, run as written: its `readme-flow` shell blocks against a fresh embedded server, so the documented commands stay true.

import { spawn } from 'node:child_process';
import { mkdtempSync, readFileSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { dirname, join, resolve } from 'node:path';
import { fileURLToPath } from 'node:url';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { loadConfig } from '../../adapters/config.js';
import { startSystem, type RunningSystem } from '../../adapters/system.js';
import { checkExchanges, recordExchanges, type OpenApiDoc, type Recorder } from './openapi-conformance.js';

const ROOT = resolve(dirname(fileURLToPath(import.meta.url)), '..', '..');
const README = readFileSync(join(ROOT, 'README.md'), 'utf8');

/** The ```sh block that follows `<!-- readme-flow: NAME -->` in the README. */
function readmeBlock(name: string): string {
  const match = new RegExp(`<!-- readme-flow: ${name} -->\\s*\`\`\`sh\\n([\\s\\S]*?)\`\`\`` ).exec(README);
  if (!match) throw new Error(`README.md has no sh block after <!-- readme-flow: ${name} -->`);
  return match[1]!;
}

/**
 * Runs a block with bash -e in `cwd`. `npm` is pointed at this checkout (as if typed in its root),
 * while INIT_CWD stays the working folder, exactly as when a user runs the README from the repository.
 */
function bash(script: string, cwd: string, env: NodeJS.ProcessEnv): Promise<{ code: number | null; stdout: string; stderr: string }> {
  const prelude = `set -euo pipefail\nnpm() { command npm --prefix ${JSON.stringify(ROOT)} "$@"; }\n`;
  return new Promise((done, fail) => {
    const child = spawn('bash', ['-c', prelude + script], { cwd, env: { ...process.env, ...env }, stdio: ['ignore', 'pipe', 'pipe'] });
    let stdout = '';
    let stderr = '';
    child.stdout.on('data', (chunk: Buffer) => (stdout += chunk.toString()));
    child.stderr.on('data', (chunk: Buffer) => (stderr += chunk.toString()));
    child.on('error', fail);
    child.on('close', (code) => done({ code, stdout, stderr }));
  });
}

/** Each JSON document a block printed (curl -s answers are concatenated without newlines). */
function jsonDocuments(text: string): unknown[] {
  const out: unknown[] = [];
  let depth = 0;
  let start = -1;
  let inString = false;
  for (let i = 0; i < text.length; i += 1) {
    const c = text[i]!;
    if (inString) {
      if (c === '\\') i += 1;
      else if (c === '"') inString = false;
      continue;
    }
    if (c === '"') inString = true;
    else if (c === '{' || c === '[') {
      if (depth === 0) start = i;
      depth += 1;
    } else if (c === '}' || c === ']') {
      depth -= 1;
      if (depth === 0) out.push(JSON.parse(text.slice(start, i + 1)));
    }
  }
  return out;
}

const dataDir = mkdtempSync(join(tmpdir(), 'trainledger-readme-'));
const workDir = mkdtempSync(join(tmpdir(), 'trainledger-readme-work-'));
let system: RunningSystem;
let recorder: Recorder;

beforeAll(async () => {
  const config = loadConfig(['--data-dir', dataDir, '--host', '127.0.0.1', '--port', '0'], {});
  system = await startSystem({ config, env: {}, log: () => {}, beforeListen: (app) => (recorder = recordExchanges(app)) });
}, 120_000);

afterAll(async () => {
  await system?.stop();
  rmSync(dataDir, { recursive: true, force: true });
  rmSync(workDir, { recursive: true, force: true });
});

describe("the README's coordinator flow with curl", () => {
  it('registers alice, then uploads a checkpoint, opens and funds a run and assigns her step 0, as printed', async () => {
    const env = { BASE: system.address, DATA_DIR: dataDir };
    const register = await bash(readmeBlock('register'), workDir, env);
    expect(register.stderr).toBe('');
    expect(register.code).toBe(0);
    expect(jsonDocuments(register.stdout)).toEqual([{ status: 'appended', events: [expect.objectContaining({ type: 'ContributorRegistered', data: expect.objectContaining({ contributorId: 'alice' }) })] }]);

    const coordinator = await bash(readmeBlock('coordinator'), workDir, env);
    expect(coordinator.code, coordinator.stderr).toBe(0);
    const answers = jsonDocuments(coordinator.stdout) as Array<Record<string, any>>;
    // checkpoint (CLI), open, two fundings, assign, then the run.
    expect(answers.map((a) => a.events?.[0]?.type ?? a.model ?? a.runId)).toEqual(['softmax-regression', 'RunOpened', 'RunFunded', 'RunFunded', 'WorkAssigned', 'tour-1']);
    expect(answers[0]!.file).toBe(join(workDir, 'initial.ckpt'));
    expect(answers[4]!.paymentHash).toMatch(/^[0-9a-f]{64}$/);
    // What the README says the run then shows.
    expect(answers[5]).toMatchObject({ funded: { customerMsat: '1000000', subsidyMsat: '200000' }, reservedMsat: '131000' });
    expect(README).toContain('"funded":{"customerMsat":"1000000","subsidyMsat":"200000"}');
    expect(README).toContain('"reservedMsat":"131000"');
  }, 120_000);

  it('got only answers the OpenAPI document describes, for requests it accepts', async () => {
    const doc = (await (await fetch(`${system.address}/docs/json`)).json()) as OpenApiDoc;
    const { problems, operations } = checkExchanges(doc, recorder.exchanges);
    expect(recorder.dropped).toBe(0);
    expect(problems).toEqual([]);
    expect([...operations]).toEqual(expect.arrayContaining(['registerContributor', 'uploadCheckpoint', 'openRun', 'fundRun', 'assignWork', 'getRun']));
  });
});
