// The domain's public surface: deciders, stream names, event catalog, reactions, validators and money, all pure.

import type { AssignmentCommand } from './assignment/index.js';
import type { ContributorCommand } from './contributor/index.js';
import type { InvoiceCommand } from './invoice/index.js';
import type { RunCommand } from './run/index.js';

export * from './decider.js';
export * from './errors.js';
export * from './money.js';
export * from './codec.js';
export * from './limits.js';
export * from './ids.js';
export * from './validate.js';
export * from './events.js';
export * from './reactions/escrow.js';
export * from './reactions/payouts.js';

// Each aggregate folder exports decide/evolve/initialState/streamId under the same names, so they
// travel as namespaces; the decider objects, stream helpers and unions also come out by name.
export * as run from './run/index.js';
export * as contributor from './contributor/index.js';
export * as assignment from './assignment/index.js';
export * as invoice from './invoice/index.js';

export { runDecider, runStreamId, type RunCommand, type RunEvent, type RunState } from './run/index.js';
export { contributorDecider, contributorStreamId, type ContributorCommand, type ContributorEvent, type ContributorState } from './contributor/index.js';
export { assignmentDecider, assignmentStreamId, type AssignmentCommand, type AssignmentEvent, type AssignmentState } from './assignment/index.js';
export { invoiceDecider, invoiceStreamId, type InvoiceCommand, type InvoiceEvent, type InvoiceState } from './invoice/index.js';

/** Every command any aggregate accepts. */
export type DomainCommand = RunCommand | ContributorCommand | AssignmentCommand | InvoiceCommand;
