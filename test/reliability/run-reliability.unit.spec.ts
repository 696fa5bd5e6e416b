// `npm run test:reliability`'s argument parsing: --soak's bounds and errors, --help, and what reaches vitest.

import { describe, expect, it } from 'vitest';
import { plan } from './run-reliability.js';

describe('test:reliability arguments', () => {
  it('without flags runs every part at full size', () => {
    expect(plan([])).toEqual({ vitestArgs: ['run', 'test/reliability'], env: { RELIABILITY_FULL: '1' } });
  });

  it('--soak SECONDS runs the soak alone for that long, either spelling', () => {
    const soak = { vitestArgs: ['run', 'test/reliability/soak.int.spec.ts'], env: { RELIABILITY_FULL: '1', RELIABILITY_SOAK_S: '600' } };
    expect(plan(['--soak', '600'])).toEqual(soak);
    expect(plan(['--soak=600'])).toEqual(soak);
  });

  it('forwards the rest to vitest; a file filter replaces the folder, a flag value is not a filter', () => {
    expect(plan(['--soak', '60', 'test/reliability'])).toMatchObject({ vitestArgs: ['run', 'test/reliability'] });
    expect(plan(['-t', 'plateaus', '--reporter=verbose'])).toMatchObject({ vitestArgs: ['run', 'test/reliability', '-t', 'plateaus', '--reporter=verbose'] });
    expect(plan(['hostile'])).toMatchObject({ vitestArgs: ['run', 'hostile'] });
  });

  it('--help asks for the usage', () => {
    expect(plan(['--soak', '60', '--help'])).toEqual({ help: true });
  });

  it('names what is wrong with a bad --soak', () => {
    expect(() => plan(['--soak'])).toThrow(/^SOAK_SECONDS_MISSING/);
    expect(() => plan(['--soak', 'ten'])).toThrow(/^SOAK_SECONDS_INVALID: --soak must be a whole number of seconds in 30\.\.3600, got "ten"/);
    expect(() => plan(['--soak', '20'])).toThrow(/^SOAK_SECONDS_INVALID/);
    expect(() => plan(['--soak', '99999'])).toThrow(/^SOAK_SECONDS_INVALID/);
    expect(() => plan(['--soak', '60', '--soak', '90'])).toThrow(/^SOAK_SECONDS_REPEATED/);
    expect(() => plan(['watch'])).toThrow(/^RELIABILITY_ARG_UNSUPPORTED/);
  });
});
