import { readdirSync, readFileSync, statSync } from 'node:fs';
import { dirname, join, relative, resolve } from 'node:path';
import { describe, expect, it } from 'vitest';

/**
 * Imports between the source folders point one way (issue #16): the math and the types
 * every layer shares (`core/`) ← one operator per file (`operators/`) ← compositions and
 * runs (`pipeline/`) ← sources and the server ← the experiment runtime (`runtime/`: what a
 * config file says, run from code) ← the cluster ← the clients ← the command line. A folder
 * imports only from folders before it in `LAYERS`, so there is no cycle between folders;
 * inside a folder, files import each other without a cycle either (a type two files need
 * lives in the one the other imports), except in the folders of `FILE_CYCLES_LEFT`.
 * Type-only imports count too: a type that two layers need lives in the lower one.
 */
const LAYERS = ['core', 'operators', 'pipeline', 'net', 'sources', 'server', 'runtime', 'cluster', 'clients', 'cli'];

/** Folders whose files still import each other in a circle: none since cli/checkpointing.ts ↔ label-options.ts was cut (runtime/checkpointed-state.ts); never to grow. */
const FILE_CYCLES_LEFT: string[] = [];

const root = resolve(import.meta.dirname, '..');
const IMPORT = /(?:from\s+|import\s*\(\s*|import\s+)['"](\.{1,2}\/[^'"]+)['"]/g;

function sourceFiles(dir: string): string[] {
  const out: string[] = [];
  for (const name of readdirSync(dir)) {
    if (name === 'node_modules' || name === 'dist') continue;
    const path = join(dir, name);
    if (statSync(path).isDirectory()) out.push(...sourceFiles(path));
    else if (/\.tsx?$/.test(name) && !name.endsWith('.d.ts')) out.push(path);
  }
  return out;
}

const folderOf = (file: string) => relative(root, file).split('/')[0];

/** Every import that crosses from one source folder to another: [from file, to file]. */
function crossings(): [string, string][] {
  const out: [string, string][] = [];
  for (const layer of LAYERS) {
    for (const file of sourceFiles(join(root, layer))) {
      for (const m of readFileSync(file, 'utf8').matchAll(IMPORT)) {
        const target = resolve(dirname(file), m[1]);
        if (folderOf(target) !== layer) out.push([relative(root, file), relative(root, target)]);
      }
    }
  }
  return out;
}

/** The strongly connected groups of two or more files (Tarjan) in the import graph of one folder. */
function fileCycles(layer: string): string[][] {
  const files = sourceFiles(join(root, layer));
  const edges = new Map(files.map((file) => [file, [...readFileSync(file, 'utf8').matchAll(IMPORT)].map((m) => resolve(dirname(file), m[1])).filter((t) => folderOf(t) === layer && files.includes(t))]));
  const index = new Map<string, number>(), low = new Map<string, number>(), stack: string[] = [], out: string[][] = [];
  const visit = (v: string) => {
    index.set(v, index.size);
    low.set(v, index.get(v)!);
    stack.push(v);
    for (const w of edges.get(v)!) {
      if (!index.has(w)) {
        visit(w);
        low.set(v, Math.min(low.get(v)!, low.get(w)!));
      } else if (stack.includes(w)) low.set(v, Math.min(low.get(v)!, index.get(w)!));
    }
    if (low.get(v) === index.get(v)) {
      const group = stack.splice(stack.indexOf(v));
      if (group.length > 1) out.push(group.map((f) => relative(root, f)).sort());
    }
  };
  for (const file of files) if (!index.has(file)) visit(file);
  return out;
}

describe('layering', () => {
  it('no folder but the listed ones has files that import each other in a circle', () => {
    for (const layer of LAYERS.filter((l) => !FILE_CYCLES_LEFT.includes(l))) expect(fileCycles(layer), layer).toEqual([]);
  });

  it('every source folder is in the list', () => {
    const folders = readdirSync(root).filter((name) => statSync(join(root, name)).isDirectory() && sourceFiles(join(root, name)).length > 0);
    const outside = new Set(['test', 'bench', 'assembly', 'node_modules', 'dist', 'examples', 'bin', 'docs', 'test-artifacts']);
    expect(folders.filter((f) => !outside.has(f) && !f.startsWith('.') && !LAYERS.includes(f))).toEqual([]);
  });

  it('a folder imports only from the folders below it', () => {
    const wrong = crossings().filter(([from, to]) => {
      const a = LAYERS.indexOf(folderOf(from)), b = LAYERS.indexOf(folderOf(to));
      return b < 0 ? false : b > a;
    });
    expect(wrong.map(([from, to]) => `${from} → ${to}`)).toEqual([]);
  });

  it('core is free of RxJS, Node built-ins and the rest of the package', () => {
    const bad: string[] = [];
    for (const file of sourceFiles(join(root, 'core'))) {
      const text = readFileSync(file, 'utf8');
      for (const m of text.matchAll(/from\s+['"]([^'"]+)['"]/g)) {
        if (m[1] === 'rxjs' || m[1].startsWith('node:') || (m[1].startsWith('.') && folderOf(resolve(dirname(file), m[1])) !== 'core')) bad.push(`${relative(root, file)} → ${m[1]}`);
      }
    }
    expect(bad).toEqual([]);
  });
});
