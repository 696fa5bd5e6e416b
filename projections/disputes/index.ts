// The disputes projection: every rejection and the dispute, replay verdict and resolution that followed it.

export { disputesProjector } from './disputes-projector.js';
export { disputeOf, recentDisputes, type DisputeDetail, type DisputeSummary } from './queries.js';
