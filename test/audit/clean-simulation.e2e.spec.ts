// A clean system audits clean: a real simulation with cheaters and disputes (the whole embedded system), then the audit with every replay re-run, on PGlite and PostgreSQL; and a forged replay verdict is caught.

import { randomUUID } from 'node:crypto';
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { describe, expect, it } from 'vitest';
import { auditOptions, openStepReplayer } from '../../adapters/audit/audit-deps.js';
import { simulate } from '../../adapters/cli/simulate.js';
import { handleCommand, loadAggregate } from '../../adapters/commands/command-handler.js';
import { loadConfig } from '../../adapters/config.js';
import { openEventStore } from '../../adapters/event-store/open-event-store.js';
import { newApiKey } from '../../adapters/http/auth/api-keys.js';
import { DevLightningNetwork } from '../../adapters/lightning/dev/dev-lightning-network.js';
import { startSystem } from '../../adapters/system.js';
import { assignmentDecider, assignmentStreamId, type AssignmentCommand } from '../../domain/assignment/index.js';
import { runAudit } from '../../replay/audit/run-audit.js';
import { createPostgresDatabase } from '../support/databases.js';
import { foundCodes } from './audit-world.js';

const ENGINES = ['pglite', 'postgres'] as const;

describe.each(ENGINES)('a simulated system on %s', (engine) => {
  it('audits clean with every replay verdict re-run, and names a forged verdict whose recipe does not reproduce', async () => {
    const dataDir = mkdtempSync(join(tmpdir(), `trainledger-audit-${engine}-`));
    const databaseUrl = engine === 'postgres' ? await createPostgresDatabase('audit') : null;
    try {
      const adminKey = newApiKey('coordinator');
      const config = loadConfig(['--data-dir', dataDir, '--port', '0', ...(databaseUrl ? ['--database-url', databaseUrl] : [])], {});
      const system = await startSystem({ config, env: { TRAINLEDGER_ADMIN_KEY: adminKey }, log: () => {} });
      let summary;
      try {
        summary = await simulate({ baseUrl: system.address, adminKey, contributors: 3, steps: 1, cheaters: 0.34, disputeShare: 1, seed: '11', roundTimeoutMs: 120_000, progress: () => {} });
      } finally {
        await system.stop();
      }
      expect(summary.disputesByOutcome).toEqual({ upheld: 1 });

      // The stopped server's own files: its database, its dev network, its blobs.
      const { store } = await openEventStore(config.database);
      const network = await DevLightningNetwork.open({ dataDir, nowMs: Date.now });
      const replayer = await openStepReplayer(store, join(dataDir, 'blobs'));
      try {
        const audit = () => runAudit(auditOptions(store, network.coordinator(), replayer, Date.now, { replay: { mode: 'all' } }));
        const clean = await audit();
        expect(clean.discrepancies).toEqual([]);
        expect(clean.parts.settlement.assignments).toBe(summary.assignments);
        expect(clean.parts.replay).toEqual({ mode: 'all', verdicts: 1, replayed: 1 });
        expect(clean.parts.node.payments).toBeGreaterThan(0);

        // A writer records a 'match' for the cheater's gradient on a copy of its assignment: the recipe gives 'mismatch'.
        let disputed: string | undefined;
        for (const id of summary.assignmentIds) if ((await loadAggregate(store, assignmentDecider, assignmentStreamId(id))).state.verdict) disputed = id;
        const original = (await loadAggregate(store, assignmentDecider, assignmentStreamId(disputed!))).state;
        const forged = `forged-${randomUUID()}`;
        const at = original.submission!.submittedAtMs;
        const act = (type: AssignmentCommand['type'], data: Record<string, unknown>, nowMs = at) =>
          handleCommand(store, assignmentDecider, assignmentStreamId(forged), { type, data: { assignmentId: forged, ...data }, metadata: { nowMs } } as AssignmentCommand, { newEventId: randomUUID });
        const { assignmentId: _, ...terms } = original.terms!;
        await act('AssignWork', terms, original.assignedAtMs!);
        const { submittedAtMs: __, ...submission } = original.submission!;
        await act('SubmitGradient', { contributorId: terms.contributorId, ...submission });
        await act('RejectSubmission', { validatorId: 'v', reasonCode: original.rejection!.reasonCode, evidence: {} });
        await act('DisputeRejection', { contributorId: terms.contributorId, disputeId: 'd-forged', reason: 'forged' });
        await act('RequestReplay', { replayJobId: 'job-forged' });
        const { recordedAtMs: ___, ...verdict } = original.verdict!;
        await act('RecordReplayVerdict', { ...verdict, replayJobId: 'job-forged', outcome: 'match' });
        const found = await audit();
        expect(foundCodes(found)).toEqual({ REPLAY_NOT_REPRODUCED: 1 });
        expect(found.discrepancies[0]).toMatchObject({ subject: forged, details: { logged: 'match', replayed: 'mismatch' }, events: [expect.objectContaining({ streamId: assignmentStreamId(forged), eventType: 'ReplayVerdictRecorded' })] });
      } finally {
        await replayer.close();
        await network.close();
        await store.close();
      }
    } finally {
      rmSync(dataDir, { recursive: true, force: true });
    }
  }, 400_000);
});
