// Vitest global setup: one PostgreSQL server for the whole run, handed to test files through `inject('postgresAdminUrl')`.

import type { TestProject } from 'vitest/node';
import { startThrowawayCluster } from './postgres-cluster.js';

declare module 'vitest' {
  export interface ProvidedContext {
    postgresAdminUrl: string;
  }
}

export default async function setup(project: TestProject): Promise<() => void> {
  if (process.env.DATABASE_URL) {
    console.log(`[trainledger tests] PostgreSQL: using DATABASE_URL (${redact(process.env.DATABASE_URL)})`);
    project.provide('postgresAdminUrl', process.env.DATABASE_URL);
    return () => {};
  }
  const cluster = await startThrowawayCluster();
  console.log(`[trainledger tests] PostgreSQL: started a throwaway cluster at ${cluster.adminUrl}`);
  project.provide('postgresAdminUrl', cluster.adminUrl);
  return () => cluster.stop();
}

function redact(url: string): string {
  return url.replace(/:\/\/([^:@/]+):[^@/]*@/, '://$1:***@');
}
