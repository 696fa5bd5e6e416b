// The import direction (DESIGN.md §4): the inner rings (domain/, projections/, replay/) import no adapters and no tests.
// Every source file under them is parsed with the TypeScript compiler; each module specifier it names (import and
// export-from, type-only included, dynamic import(...), import x = require(...), require(...) and import('...').T
// type queries) is resolved relative to the file, and one that lands in adapters/ or test/ fails the test by name.
// A specifier the scanner cannot read (a computed import()) or that could route around the paths (the package's
// own name, a '#' subpath import) fails too: a rule that can be dodged by spelling is no rule.

import { readdirSync, readFileSync } from 'node:fs';
import { dirname, join, relative, resolve, sep } from 'node:path';
import { fileURLToPath } from 'node:url';
import ts from 'typescript';
import { describe, expect, it } from 'vitest';

const ROOT = resolve(dirname(fileURLToPath(import.meta.url)), '..', '..');
const INNER_RINGS = ['domain', 'projections', 'replay'] as const;
const FORBIDDEN: readonly string[] = ['adapters', 'test'];
const PACKAGE_NAME = (JSON.parse(readFileSync(join(ROOT, 'package.json'), 'utf8')) as { name: string }).name;
/** Marks a specifier whose target the scanner cannot know; it always counts as a violation. */
const UNRESOLVABLE = '<unresolvable>';

/** Every source file below `dir` (absolute paths, sorted); .js too, so a hand-written module cannot slip past. */
function sourceFilesUnder(dir: string): string[] {
  const files: string[] = [];
  for (const entry of readdirSync(dir, { withFileTypes: true })) {
    const path = join(dir, entry.name);
    if (entry.isDirectory()) {
      if (entry.name !== 'node_modules') files.push(...sourceFilesUnder(path));
    } else if (entry.isFile() && /\.[cm]?[jt]sx?$/.test(entry.name)) {
      files.push(path);
    }
  }
  return files.sort();
}

/** The module specifiers one source text names, in order of appearance; a computed one as `<non-literal: ...>`. */
function moduleSpecifiers(fileName: string, text: string): string[] {
  const source = ts.createSourceFile(fileName, text, ts.ScriptTarget.Latest, true, ts.ScriptKind.TS);
  const found: string[] = [];
  const literal = (node: ts.Node | undefined): void => {
    if (node !== undefined && ts.isStringLiteralLike(node)) found.push(node.text);
  };
  const visit = (node: ts.Node): void => {
    if (ts.isImportDeclaration(node) || ts.isExportDeclaration(node)) {
      literal(node.moduleSpecifier);
    } else if (ts.isImportEqualsDeclaration(node) && ts.isExternalModuleReference(node.moduleReference)) {
      literal(node.moduleReference.expression);
    } else if (ts.isCallExpression(node)) {
      const isDynamicImport = node.expression.kind === ts.SyntaxKind.ImportKeyword;
      const isRequire = ts.isIdentifier(node.expression) && node.expression.text === 'require';
      if (isDynamicImport || isRequire) {
        const first = node.arguments[0];
        if (first !== undefined && ts.isStringLiteralLike(first)) literal(first);
        else if (first !== undefined) found.push(`<non-literal: ${first.getText(source)}>`);
      }
    } else if (ts.isImportTypeNode(node) && ts.isLiteralTypeNode(node.argument)) {
      literal(node.argument.literal);
    } else if (ts.isModuleDeclaration(node) && ts.isStringLiteral(node.name)) {
      literal(node.name);
    }
    ts.forEachChild(node, visit);
  };
  visit(source);
  return found;
}

/**
 * The top-level folder (relative to the repository root) a specifier resolves into; undefined for another
 * package; UNRESOLVABLE when the scanner cannot tell where it leads.
 */
function resolvedFolder(file: string, specifier: string): string | undefined {
  if (specifier.startsWith('<non-literal') || specifier.startsWith('#')) return UNRESOLVABLE;
  if (specifier === PACKAGE_NAME || specifier.startsWith(`${PACKAGE_NAME}/`)) return UNRESOLVABLE;
  if (!specifier.startsWith('.') && !specifier.startsWith('/')) return undefined;
  const target = specifier.startsWith('/') ? specifier : resolve(dirname(file), specifier);
  const rel = relative(ROOT, target);
  if (rel === '..' || rel.startsWith(`..${sep}`)) return '<outside the repository>';
  return rel.split(sep)[0];
}

interface Violation {
  readonly file: string;
  readonly specifier: string;
  readonly into: string;
}

/** The forbidden imports in one file's text: the whole rule, without the file system, so it can be shown to fail. */
function violationsIn(file: string, text: string): Violation[] {
  const found: Violation[] = [];
  for (const specifier of moduleSpecifiers(file, text)) {
    const into = resolvedFolder(file, specifier);
    if (into === undefined) continue;
    if (FORBIDDEN.includes(into) || into.startsWith('<')) found.push({ file: relative(ROOT, file), specifier, into });
  }
  return found;
}

function violations(): Violation[] {
  return INNER_RINGS.flatMap((ring) => sourceFilesUnder(join(ROOT, ring)).flatMap((file) => violationsIn(file, readFileSync(file, 'utf8'))));
}

describe('import direction: inner rings import no adapters', () => {
  it('the parser sees every form of import', () => {
    const text = [
      "import a from '../adapters/a.js';",
      "import type { B } from '../adapters/b.js';",
      "import { type C } from '../adapters/c.js';",
      "import '../adapters/side-effect.js';",
      "export * from '../adapters/d.js';",
      "export { e } from '../adapters/e.js';",
      "export type { F } from '../adapters/f.js';",
      "const g = await import('../adapters/g.js');",
      "import h = require('../adapters/h.js');",
      "type I = import('../adapters/i.js').I;",
      "const j = require('../adapters/j.js');",
      "async function k() { return import(`../adapters/k.js`); }",
      "let l: typeof import('../adapters/l.js');",
      "const notAnImport = '../adapters/string-only.js';",
      "// import x from '../adapters/comment.js';",
    ].join('\n');
    expect(moduleSpecifiers('sample.ts', text)).toEqual([
      '../adapters/a.js',
      '../adapters/b.js',
      '../adapters/c.js',
      '../adapters/side-effect.js',
      '../adapters/d.js',
      '../adapters/e.js',
      '../adapters/f.js',
      '../adapters/g.js',
      '../adapters/h.js',
      '../adapters/i.js',
      '../adapters/j.js',
      '../adapters/k.js',
      '../adapters/l.js',
    ]);
  });

  it('resolves specifiers relative to the importing file', () => {
    const file = join(ROOT, 'replay', 'workers', 'x.ts');
    expect(resolvedFolder(file, '../../adapters/commands/command-handler.js')).toBe('adapters');
    expect(resolvedFolder(file, '../ports/replay-jobs.js')).toBe('replay');
    expect(resolvedFolder(file, '../../domain/index.js')).toBe('domain');
    expect(resolvedFolder(file, '../../test/support/x.js')).toBe('test');
    expect(resolvedFolder(file, '../../../elsewhere/x.js')).toBe('<outside the repository>');
    expect(resolvedFolder(file, 'kysely')).toBeUndefined();
    expect(resolvedFolder(file, 'node:crypto')).toBeUndefined();
    expect(resolvedFolder(file, `${PACKAGE_NAME}/adapters/system.js`)).toBe(UNRESOLVABLE);
    expect(resolvedFolder(file, '#adapters/system.js')).toBe(UNRESOLVABLE);
  });

  it('fails on a forbidden import in a synthetic file and passes the allowed ones beside it', () => {
    const file = join(ROOT, 'replay', 'workers', 'synthetic.ts');
    const allowed = [
      "import type { CommandBus } from '../ports/commands.js';",
      "import { decodeEvent } from '../../domain/codec.js';",
      "import { migrateToLatest } from '../../projections/migrate.js';",
      "import { sql } from 'kysely';",
      "import { randomUUID } from 'node:crypto';",
    ];
    expect(violationsIn(file, allowed.join('\n'))).toEqual([]);
    const forbidden = [
      "import { handleCommand } from '../../adapters/commands/command-handler.js';",
      "import type { ReplayWorld } from '../../test/replay/replay-world.js';",
      'const lazy = await import(`../../adapters/${name}.js`);',
      "import { startSystem } from 'trainledger/adapters/system.js';",
    ];
    const at = 'replay/workers/synthetic.ts';
    expect(violationsIn(file, [...allowed, ...forbidden].join('\n'))).toEqual([
      { file: at, specifier: '../../adapters/commands/command-handler.js', into: 'adapters' },
      { file: at, specifier: '../../test/replay/replay-world.js', into: 'test' },
      { file: at, specifier: '<non-literal: `../../adapters/${name}.js`>', into: UNRESOLVABLE },
      { file: at, specifier: 'trainledger/adapters/system.js', into: UNRESOLVABLE },
    ]);
  });

  it('finds the inner rings’ files', () => {
    for (const ring of INNER_RINGS) expect(sourceFilesUnder(join(ROOT, ring)).length).toBeGreaterThan(0);
  });

  it(`no file under ${INNER_RINGS.join('/, ')}/ imports from ${FORBIDDEN.join('/ or ')}/`, () => {
    const report = violations().map((v) => `${v.file} imports '${v.specifier}' (into ${v.into.startsWith('<') ? v.into : `${v.into}/`})`);
    expect(report, `inner rings must not import outer rings:\n  ${report.join('\n  ')}`).toEqual([]);
  });
});
