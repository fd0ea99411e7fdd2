// Bundles the dashboard (src/main.ts with its CSS, uPlot's included) into dist/: app.js,
// app.css, index.html and favicon.svg, everything the server sends; nothing is loaded from
// elsewhere. Run by `npm run build:dashboard`, `npm run build` (and so `npm install`) and
// before the tests.
import { build } from 'esbuild';
import { copyFile, mkdir, rm } from 'node:fs/promises';
import { dirname, join } from 'node:path';
import { fileURLToPath } from 'node:url';

const here = dirname(fileURLToPath(import.meta.url));
const dist = join(here, 'dist');
const dev = process.argv.includes('--dev');

/**
 * The page runs the engine's model and forward pass (pipeline/) on the JavaScript kernels:
 * pipeline/backend.ts (which can load the WebAssembly backend) is swapped for a
 * browser stand-in that only offers those.
 */
const browserBackend = {
  name: 'browser-backend',
  setup(b) {
    b.onResolve({ filter: /\/backend\.ts$/ }, (args) => {
      if (!args.importer.includes(`${join('pipeline')}`)) return undefined;
      return { path: join(here, 'src', 'engine', 'backend.ts') };
    });
  },
};

await rm(dist, { recursive: true, force: true });
await mkdir(dist, { recursive: true });
const result = await build({
  entryPoints: { app: join(here, 'src', 'main.ts') },
  outdir: dist,
  bundle: true,
  format: 'esm',
  platform: 'browser',
  target: ['es2022', 'chrome100', 'firefox100', 'safari15'],
  minify: !dev,
  sourcemap: 'linked',
  legalComments: 'linked',
  metafile: true,
  logLevel: 'warning',
  plugins: [browserBackend],
});
await copyFile(join(here, 'index.html'), join(dist, 'index.html'));
await copyFile(join(here, 'favicon.svg'), join(dist, 'favicon.svg'));
const outputs = Object.entries(result.metafile.outputs).filter(([file]) => !file.endsWith('.map'));
const sizes = outputs.map(([file, o]) => `${file.split('/').pop()} ${(o.bytes / 1024).toFixed(0)} KiB`).join(', ');
console.log(`dashboard built: ${sizes}`);
