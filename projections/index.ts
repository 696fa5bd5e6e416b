// Every projector the service runs, in one list: the runner, rebuild and the benchmarks take it from here.

import { disputesProjector } from './disputes/disputes-projector.js';
import { ledgerProjector } from './ledger/ledger-projector.js';
import { metricsProjector } from './metrics/metrics-projector.js';
import type { Projector } from './projector.js';
import { rewardsProjector } from './rewards/rewards-projector.js';

export const ALL_PROJECTORS: readonly Projector[] = [ledgerProjector, rewardsProjector, metricsProjector, disputesProjector];
