// Bundles the dashboard (src/main.ts with its CSS, uPlot's included) into dist/: app.js,
// app.css, index.html and favicon.svg, everything the server sends; nothing is loaded from
// elsewhere. Run by `npm run build:dashboard`, `npm run build` (and so `npm install`) and
// before the tests.
import { build } from 'esbuild';
import { copyFile, mkdir, readFile, rm } from 'node:fs/promises';
import { dirname, join } from 'node:path';
import { fileURLToPath } from 'node:url';

const here = dirname(fileURLToPath(import.meta.url));
const dist = join(here, 'dist');
const dev = process.argv.includes('--dev');

/**
 * The page runs the WebAssembly kernels on a plain memory: a shared one needs cross-origin
 * isolation, which the server does not ask for (no COOP/COEP headers). So the bundle leaves
 * out the shared variant's bytes (35 KB of base64); core/kernels-wasm.ts then finds
 * shared memory unsupported even on a page that is isolated, and uses the plain one.
 */
const unsharedKernelsOnly = {
  name: 'unshared-kernels-only',
  setup(b) {
    b.onLoad({ filter: /[\\/]pipeline[\\/]kernels-wasm-bytes\.ts$/ }, async (args) => {
      const text = await readFile(args.path, 'utf8');
      const contents = text.replace(/(export const WASM_SHARED: string = )'[^']*'/, "$1''");
      if (contents === text && !text.includes("WASM_SHARED: string = ''")) throw new Error(`${args.path}: no WASM_SHARED to leave out`);
      return { contents, loader: 'ts' };
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
  plugins: [unsharedKernelsOnly],
});
await copyFile(join(here, 'index.html'), join(dist, 'index.html'));
await copyFile(join(here, 'favicon.svg'), join(dist, 'favicon.svg'));
const outputs = Object.entries(result.metafile.outputs).filter(([file]) => !file.endsWith('.map'));
const sizes = outputs.map(([file, o]) => `${file.split('/').pop()} ${(o.bytes / 1024).toFixed(0)} KiB`).join(', ');
console.log(`dashboard built: ${sizes}`);
