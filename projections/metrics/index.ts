// The metrics read model: its projector and its queries.

export { metricsProjector } from './metrics-projector.js';
export { GRANULARITIES, metricsByPeriod, metricsByRun, type Figures, type Granularity, type PeriodMetrics, type PeriodQuery, type RunMetrics } from './queries.js';
export { subsidyShareMsat } from './metrics-book.js';
export type { MetricsTables } from './schema.js';
