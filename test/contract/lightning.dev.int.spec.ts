// Runs the Lightning contract against the simulated DevLightningNetwork, in memory and persisted to a data folder.

import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { DevLightningNetwork } from '../../adapters/lightning/dev/index.js';
import { describeLightningContract, type LightningPair } from './lightning.contract.js';

const START_MS = Date.UTC(2026, 0, 1);

async function openDevPair(persisted: boolean): Promise<LightningPair> {
  const dataDir = persisted ? mkdtempSync(join(tmpdir(), 'trainledger-devln-')) : undefined;
  const network = await DevLightningNetwork.open({ dataDir, nowMs: () => START_MS });
  return {
    coordinator: network.coordinator(),
    wallet: network.wallet('contributor-1'),
    spendableMsat: async () => (await network.coordinatorFunds()).spendableMsat,
    close: async () => {
      await network.close();
      if (dataDir) rmSync(dataDir, { recursive: true, force: true });
    },
  };
}

describeLightningContract({ name: 'dev, in memory', open: () => openDevPair(false) });
describeLightningContract({ name: 'dev, in a data folder', open: () => openDevPair(true) });
