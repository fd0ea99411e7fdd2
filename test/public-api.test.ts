import { readFileSync } from 'node:fs';
import { dirname, join, resolve } from 'node:path';
import { describe, expect, it } from 'vitest';

/**
 * The package's entry points (package.json `exports`) re-export their public surface by
 * name, never `export *`, and every name they export is documented: its declaration has a
 * TSDoc comment right above it.
 */

const root = resolve(import.meta.dirname, '..');
const pkg = JSON.parse(readFileSync(join(root, 'package.json'), 'utf8')) as { exports: Record<string, string | { default: string }> };

/** `./dist/server/index.js` → `server/index.ts`. */
function sourceOf(target: string): string {
  return target.replace(/^\.\/dist\//, '').replace(/\.js$/, '.ts');
}

const entries = Object.entries(pkg.exports)
  // code entries: package.json and the config files' JSON Schema are data
  .filter(([subpath]) => !subpath.endsWith('.json'))
  .map(([subpath, target]) => ({ subpath, file: sourceOf(typeof target === 'string' ? target : target.default) }));

/** The names `file` re-exports, with the module each comes from. */
function reExports(file: string): { name: string; from: string }[] {
  const text = readFileSync(join(root, file), 'utf8');
  const out: { name: string; from: string }[] = [];
  for (const m of text.matchAll(/export\s+(?:type\s+)?\{([^}]*)\}\s*from\s*'([^']+)'/g)) {
    for (const item of m[1].split(',').map((s) => s.trim()).filter(Boolean)) {
      out.push({ name: item.replace(/^type\s+/, '').split(/\s+as\s+/).pop()!, from: resolve(dirname(join(root, file)), m[2]) });
    }
  }
  return out;
}

/** Whether `name`'s declaration in `module` (followed through re-exports) has a TSDoc comment above it. */
function documented(name: string, module: string, seen = new Set<string>()): boolean {
  if (seen.has(module)) return false;
  seen.add(module);
  const lines = readFileSync(module, 'utf8').split('\n');
  const declaration = new RegExp(`^export\\s+(?:declare\\s+)?(?:async\\s+)?(?:abstract\\s+)?(?:function\\*?|const|let|class|interface|type|enum)\\s+${name}\\b`);
  const at = lines.findIndex((line) => declaration.test(line));
  if (at >= 0) {
    let i = at - 1;
    while (i >= 0 && lines[i].trim() === '') i--;
    return i >= 0 && lines[i].trim().endsWith('*/');
  }
  const text = lines.join('\n');
  for (const m of text.matchAll(/export\s+(?:type\s+)?\{([^}]*)\}\s*from\s*'([^']+)'/g)) {
    if (m[1].split(',').some((s) => s.trim().replace(/^type\s+/, '') === name)) return documented(name, resolve(dirname(module), m[2]), seen);
  }
  return false;
}

describe('the public API', () => {
  it('has an entry file for each subpath of package.json exports', () => {
    expect(entries.map((e) => e.subpath)).toEqual(['.', './node', './sources', './server', './client', './protocol', './runtime', './cluster']);
  });

  it.each(entries)('$subpath ($file) re-exports names explicitly, each documented', ({ file }) => {
    const text = readFileSync(join(root, file), 'utf8');
    expect(text).not.toMatch(/export\s*\*/);
    expect(text.trimStart().startsWith('/**'), `${file} starts with a TSDoc comment`).toBe(true);
    const names = reExports(file);
    expect(names.length).toBeGreaterThan(0);
    const undocumented = names.filter(({ name, from }) => !documented(name, from)).map(({ name, from }) => `${name} (${from.slice(root.length + 1)})`);
    expect(undocumented).toEqual([]);
  });
});
