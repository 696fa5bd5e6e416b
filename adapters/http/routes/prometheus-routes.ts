// GET /metrics: Prometheus text exposition of request counts, the log head, projection lag, stopped projectors and the process's memory.

import type { FastifyInstance } from 'fastify';
import { isProjectionStopped, type HealthDeps } from '../health-routes.js';

/** Distinct (route, method, status) series kept; a flood of odd URLs cannot grow it without bound. */
const MAX_SERIES = 1_000;

export async function prometheusRoutes(app: FastifyInstance, deps: HealthDeps): Promise<void> {
  const requests = new Map<string, number>();
  app.addHook('onResponse', async (request, reply) => {
    // The route pattern, not the URL: ids must not become labels.
    const route = request.routeOptions.url ?? 'unmatched';
    const series = `route="${route}",method="${request.method}",status="${reply.statusCode}"`;
    if (requests.has(series) || requests.size < MAX_SERIES) requests.set(series, (requests.get(series) ?? 0) + 1);
  });

  app.get('/metrics', async (_request, reply) => {
    const head = await deps.store.headPosition();
    const lag = deps.projectionLag ? await deps.projectionLag() : [];
    const lines = [
      '# HELP trainledger_http_requests_total HTTP requests by route pattern, method and status.',
      '# TYPE trainledger_http_requests_total counter',
      ...[...requests].map(([series, count]) => `trainledger_http_requests_total{${series}} ${count}`),
      '# HELP trainledger_log_head_position Global position of the newest event a reader may see.',
      '# TYPE trainledger_log_head_position gauge',
      `trainledger_log_head_position ${head.globalPosition}`,
      '# HELP trainledger_projection_lag_events Events a projector has not applied yet.',
      '# TYPE trainledger_projection_lag_events gauge',
      ...lag.map((l) => `trainledger_projection_lag_events{projector="${l.projector}"} ${l.lagEvents}`),
      '# HELP trainledger_projection_lag_seconds Age of the oldest event a projector has not applied yet.',
      '# TYPE trainledger_projection_lag_seconds gauge',
      ...lag.map((l) => `trainledger_projection_lag_seconds{projector="${l.projector}"} ${l.lagSeconds}`),
      '# HELP trainledger_projection_stopped 1 when a projector stopped on an event it cannot apply (the reason is on /health), else 0.',
      '# TYPE trainledger_projection_stopped gauge',
      ...lag.map((l) => `trainledger_projection_stopped{projector="${l.projector}"} ${isProjectionStopped(l) ? 1 : 0}`),
      // The conventional prom-client names, so existing dashboards and the soak (test/reliability/soak.int.spec.ts) read them as is.
      ...memoryLines(process.memoryUsage()),
      '# HELP trainledger_uptime_seconds Seconds since the process started.',
      '# TYPE trainledger_uptime_seconds gauge',
      `trainledger_uptime_seconds ${Math.round((deps.nowMs() - deps.startedAtMs) / 1000)}`,
    ];
    reply.type('text/plain; version=0.0.4');
    return `${lines.join('\n')}\n`;
  });
}

/** Resident memory and the V8 heap: what a soak watches for a leak, read at each scrape (process.memoryUsage is cheap). */
function memoryLines(memory: NodeJS.MemoryUsage): string[] {
  return [
    ...gauge('process_resident_memory_bytes', 'Resident memory of this process in bytes.', memory.rss),
    ...gauge('nodejs_heap_size_used_bytes', 'V8 heap in use, in bytes.', memory.heapUsed),
    ...gauge('nodejs_heap_size_total_bytes', 'V8 heap reserved, in bytes.', memory.heapTotal),
    ...gauge('nodejs_external_memory_bytes', 'Memory of C++ objects bound to JS objects (Buffers, onnxruntime tensors), in bytes.', memory.external),
  ];
}

/** One unlabelled gauge in the Prometheus text format: its HELP, TYPE and sample lines. */
function gauge(name: string, help: string, value: number): string[] {
  return [`# HELP ${name} ${help}`, `# TYPE ${name} gauge`, `${name} ${value}`];
}
