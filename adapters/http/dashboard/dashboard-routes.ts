// The analyst dashboard at GET /: a static page, its script and styles, and uPlot served from node_modules (no CDN), plus its read routes.

import { readFileSync } from 'node:fs';
import { createRequire } from 'node:module';
import { dirname, join } from 'node:path';
import { fileURLToPath } from 'node:url';
import type { FastifyInstance, FastifyReply } from 'fastify';
import type { ApiDeps } from '../api-context.js';
import { dashboardReadRoutes } from './dashboard-read-routes.js';

type Asset = Readonly<{ body: Buffer; type: string }>;

/**
 * Everything the page loads comes from this origin; the key travels only in the Authorization
 * header of fetch calls, never in a URL, and no inline script may run.
 */
const CONTENT_SECURITY_POLICY = "default-src 'none'; script-src 'self'; style-src 'self'; img-src 'self' data:; connect-src 'self'; base-uri 'none'; form-action 'none'; frame-ancestors 'none'";

function loadAssets(): Map<string, Asset> {
  const here = join(dirname(fileURLToPath(import.meta.url)), 'assets');
  const uplotDist = dirname(createRequire(import.meta.url).resolve('uplot'));
  const assets = new Map<string, Asset>();
  const add = (path: string, file: string, type: string) => assets.set(path, { body: readFileSync(file), type });
  add('/', join(here, 'index.html'), 'text/html; charset=utf-8');
  add('/dashboard/app.js', join(here, 'app.js'), 'text/javascript; charset=utf-8');
  add('/dashboard/app.css', join(here, 'app.css'), 'text/css; charset=utf-8');
  add('/dashboard/favicon.svg', join(here, 'favicon.svg'), 'image/svg+xml');
  add('/dashboard/vendor/uPlot.iife.min.js', join(uplotDist, 'uPlot.iife.min.js'), 'text/javascript; charset=utf-8');
  add('/dashboard/vendor/uPlot.min.css', join(uplotDist, 'uPlot.min.css'), 'text/css; charset=utf-8');
  return assets;
}

export async function dashboardRoutes(app: FastifyInstance, deps: ApiDeps): Promise<void> {
  const assets = loadAssets();
  for (const [path, asset] of assets) {
    app.get(path, { schema: { hide: true } }, async (_request, reply: FastifyReply) => {
      reply.header('content-security-policy', CONTENT_SECURITY_POLICY);
      reply.header('x-content-type-options', 'nosniff');
      reply.header('referrer-policy', 'no-referrer');
      reply.header('cache-control', 'no-cache');
      reply.type(asset.type);
      return asset.body;
    });
  }
  await dashboardReadRoutes(app, deps);
}
