// Builds the published package into dist/ (npm run build:package, part of `npm run build`,
// so of `prepare` and `npm pack`): JavaScript and declarations compiled by tsc from the
// entry points in tsconfig.build.json (`.ts` import specifiers rewritten to `.js`), then the
// dashboard's built files copied to dist/clients/dashboard/dist, where the compiled
// server/options.js finds them by the same relative path as the sources do. Needs the
// WebAssembly (core/kernels-wasm-bytes.ts) and the dashboard built first.
import { execFileSync } from 'node:child_process';
import { cpSync, existsSync, rmSync } from 'node:fs';
import { createRequire } from 'node:module';
import { dirname, join } from 'node:path';
import { fileURLToPath } from 'node:url';

const root = dirname(fileURLToPath(import.meta.url));
const dist = join(root, 'dist');
for (const [path, how] of [
  ['core/kernels-wasm-bytes.ts', 'npm run build:wasm'],
  ['clients/dashboard/dist/index.html', 'npm run build:dashboard'],
]) {
  if (!existsSync(join(root, path))) throw new Error(`build-package: ${path} is missing; run ${how} first`);
}

rmSync(dist, { recursive: true, force: true });
const tsc = join(dirname(createRequire(import.meta.url).resolve('typescript/package.json')), 'bin/tsc');
execFileSync(process.execPath, [tsc, '-p', join(root, 'tsconfig.build.json')], { stdio: 'inherit' });
// without the source maps: they point at the dashboard's sources, which are not shipped
cpSync(join(root, 'clients/dashboard/dist'), join(dist, 'clients/dashboard/dist'), { recursive: true, filter: (path) => !path.endsWith('.map') });
console.log('package built: dist/');
