// The rewards projection's ordered migrations; a landed one is never edited.

import type { Migration } from 'kysely/migration';
import * as rewards from './0001_rewards.js';

export const REWARDS_MIGRATIONS: Readonly<Record<string, Migration>> = { '0001_rewards': rewards };
