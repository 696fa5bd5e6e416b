// The audit-side --help texts are plain strings (so --help loads no heavy module): they must name what the code knows.

import { describe, expect, it } from 'vitest';
import { PROJECTION_NAMES, PROVIDER_NAMES } from '../../adapters/cli/audit-usage.js';
import { ALL_PROJECTORS } from '../../projections/index.js';
import { EXECUTION_PROVIDERS } from '../../replay/step/execution-providers.js';

describe('audit usage texts', () => {
  it('list exactly the execution providers and projections of this build', () => {
    expect(PROVIDER_NAMES).toBe(EXECUTION_PROVIDERS.join(', '));
    expect(PROJECTION_NAMES).toBe(ALL_PROJECTORS.map((p) => p.name).join(', '));
  });
});
