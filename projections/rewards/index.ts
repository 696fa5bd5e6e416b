// The rewards read model: its projector and its queries.

export { rewardsProjector } from './rewards-projector.js';
export { contributorRewards, listContributorRewards, listRunBudgets, runBudget, type ContributorRewards, type RunBudget } from './queries.js';
export { remainingMsat } from './rewards-book.js';
export type { RewardsTables } from './schema.js';
