import { type ChildProcess, execFile, spawn } from 'node:child_process';
import { cpSync, existsSync, mkdirSync, mkdtempSync, readdirSync, readFileSync, rmSync, symlinkSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join, resolve } from 'node:path';
import { promisify } from 'node:util';
import { build } from 'esbuild';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { browserForThisFile } from './dashboard/browser.ts';

/**
 * The package as a user gets it: `npm pack` (which builds dist/ through `prepare`), the
 * tarball installed into a new project from the local npm cache, then the installed CLI,
 * a TypeScript program and a browser bundle that import `streamgrad` by name. Nothing here
 * uses tsx or the repository's sources: a file missing from the tarball, a `.ts` import
 * left in the JavaScript, a type that does not resolve or a Node built-in reaching the
 * browser entry fails it.
 */

const root = resolve(import.meta.dirname, '..');
const fixtures = join(root, 'test/fixtures/package');
const run = promisify(execFile);
const npm = process.platform === 'win32' ? 'npm.cmd' : 'npm';
const tsc = join(root, 'node_modules/typescript/bin/tsc');

let temp: string;
let project: string;
let tarball: string;
let files: string[];
let installLog: string;

beforeAll(async () => {
  temp = mkdtempSync(join(tmpdir(), 'streamgrad-package-'));
  // dist/ as `prepare` builds it (its last step; `npm test`'s pretest has built the WebAssembly
  // and the dashboard), then a pack without scripts: `prepare` would also rebuild the
  // dashboard in place while the dashboard tests of other workers read it
  await run(process.execPath, [join(root, 'build-package.mjs')], { cwd: root });
  const { stdout } = await run(npm, ['pack', root, '--ignore-scripts', '--pack-destination', temp, '--json'], { cwd: temp, maxBuffer: 16 << 20 });
  const [packed] = JSON.parse(stdout) as { filename: string; files: { path: string }[] }[];
  tarball = join(temp, packed.filename);
  files = packed.files.map((f) => f.path);
  project = join(temp, 'consumer');
  mkdirSync(project);
  writeFileSync(join(project, 'package.json'), JSON.stringify({ name: 'consumer', private: true, type: 'module' }));
  // the package's `install` script builds the native kernels here (node-gyp, this Node's headers, no download)
  const installed = await run(npm, ['install', '--prefer-offline', '--no-audit', '--no-fund', tarball], { cwd: project, maxBuffer: 16 << 20 });
  installLog = `${installed.stdout}${installed.stderr}`;
  for (const name of readdirSync(fixtures)) cpSync(join(fixtures, name), join(project, name));
  // Node's types, the consumer's own dev dependency (often already there through a dependency's types)
  if (!existsSync(join(project, 'node_modules/@types/node'))) {
    mkdirSync(join(project, 'node_modules/@types'), { recursive: true });
    symlinkSync(join(root, 'node_modules/@types/node'), join(project, 'node_modules/@types/node'), 'dir');
  }
}, 240_000);

afterAll(() => {
  if (temp !== undefined) rmSync(temp, { recursive: true, force: true });
});

describe('the packed tarball', () => {
  it('ships the compiled library, its declarations, the WebAssembly and the dashboard, and nothing else', () => {
    expect(files).toContain('package.json');
    expect(files).toContain('LICENSE');
    expect(files).toContain('README.md');
    for (const f of ['dist/index.js', 'dist/index.d.ts', 'dist/cli/main.js', 'dist/core/kernels-wasm-bytes.js', 'dist/clients/dashboard/dist/index.html', 'dist/clients/dashboard/dist/app.js']) {
      expect(files).toContain(f);
    }
    expect(files).toContain('experiment.schema.json');
    // and the native kernels' sources, which the install builds (never a prebuilt binary)
    for (const f of ['native/binding.gyp', 'native/build.mjs', 'native/src/addon.c', 'native/src/kernels.c', 'native/src/gemm-avx512.c']) expect(files).toContain(f);
    const native = (f: string) => f === 'native/binding.gyp' || f === 'native/build.mjs' || /^native\/src\/[\w-]+\.[ch]$/.test(f);
    const stray = files.filter((f) => !['package.json', 'LICENSE', 'README.md', 'experiment.schema.json'].includes(f) && !f.startsWith('dist/') && !native(f));
    expect(stray).toEqual([]);
    expect(files.filter((f) => /\.ts$/.test(f) && !f.endsWith('.d.ts'))).toEqual([]);
    expect(files.filter((f) => /(^|\/)(test|bench|examples|assembly)\//.test(f))).toEqual([]);
    const pkg = JSON.parse(readFileSync(join(project, 'node_modules/streamgrad/package.json'), 'utf8')) as { dependencies: Record<string, string> };
    expect(Object.keys(pkg.dependencies)).not.toContain('tsx');
    expect(Object.keys(pkg.dependencies)).toContain('protobufjs'); // streamgrad export writes ONNX with it
    expect(Object.keys(pkg.dependencies)).not.toContain('onnxruntime-node');
  });

  it('names one repository: repository, homepage and bugs all point at it', () => {
    const pkg = JSON.parse(readFileSync(join(project, 'node_modules/streamgrad/package.json'), 'utf8')) as { repository: { type: string; url: string }; homepage: string; bugs: { url: string } };
    expect(pkg.repository).toEqual({ type: 'git', url: 'git+https://github.com/streamgrad/streamgrad.git' });
    const home = pkg.repository.url.replace(/^git\+/, '').replace(/\.git$/, '');
    expect(pkg.homepage).toBe(`${home}#readme`);
    expect(pkg.bugs.url).toBe(`${home}/issues`);
  });
});

describe('the installed command line (plain node, no tsx)', () => {
  it('prints its version (--version and -v)', async () => {
    const { version } = JSON.parse(readFileSync(join(root, 'package.json'), 'utf8')) as { version: string };
    for (const option of ['--version', '-v']) {
      const { stdout } = await run(npm, ['exec', '--offline', '--', 'streamgrad', option], { cwd: project });
      expect(stdout).toBe(`streamgrad ${version}\n`);
    }
  });

  it('runs `start --samples 2000 --port 0`, serves the dashboard, and stops on SIGINT with exit 0', async () => {
    const bin = join(project, 'node_modules/.bin/streamgrad');
    const { PORT: _port, ...env } = process.env;
    const child = spawn(bin, ['start', '--samples', '2000', '--port', '0'], { cwd: project, env, stdio: ['ignore', 'pipe', 'pipe'] });
    let stderr = '';
    child.stderr.setEncoding('utf8').on('data', (d: string) => { stderr += d; });
    const exited = new Promise<number | null>((done) => child.on('close', (code) => done(code)));
    try {
      await until(() => /still serving (http:\/\/\S+)/.test(stderr), child, () => stderr);
      expect(stderr).toMatch(/wide .*step 2000\s+samples 2000/);
      expect(stderr).toMatch(/deep .*step 2000\s+samples 2000/);
      const url = /still serving (http:\/\/\S+)/.exec(stderr)![1];
      const page = await fetch(url);
      expect(page.status).toBe(200);
      expect(await page.text()).toContain('<script');
      expect((await fetch(new URL('app.js', url))).status).toBe(200);
    } finally {
      child.kill('SIGINT');
    }
    expect(await exited).toBe(0);
    expect(stderr).not.toMatch(/internal error|ERR_MODULE_NOT_FOUND/);
  });

  it('exports a model to ONNX (protobufjs from the installed dependencies); onnxruntime runs the file', async () => {
    const model = { format: 'streamgrad/model@1', inputSize: 2, layers: [{ activation: 'sigmoid', weights: [[0.5, -0.25]], bias: [0.125] }] };
    writeFileSync(join(project, 'tiny.json'), JSON.stringify(model));
    const { stdout } = await run(join(project, 'node_modules/.bin/streamgrad'), ['export', '--model', 'tiny.json', '--format', 'onnx', '--out', 'tiny.onnx'], { cwd: project });
    expect(stdout).toMatch(/^exported tiny\.json as onnx \(float64\): tiny\.onnx/);
    const { InferenceSession, Tensor } = await import('onnxruntime-node');
    const session = await InferenceSession.create(join(project, 'tiny.onnx'));
    const out = await session.run({ x: new Tensor('float64', Float64Array.from([2, 4]), [1, 2]) });
    await session.release();
    expect((out.y.data as Float64Array)[0]).toBeCloseTo(1 / (1 + Math.exp(-(0.5 * 2 - 0.25 * 4 + 0.125))), 15);
  });
});

describe('the native kernels in a consumer install', () => {
  it('are built by the package\'s install script, and the auto backend takes them', async () => {
    expect(installLog).not.toMatch(/native kernels not built/);
    expect(existsSync(join(project, 'node_modules/streamgrad/native/build/Release/streamgrad_native.node'))).toBe(true);
    const code = "import { selectKernels } from 'streamgrad'; console.log(selectKernels('auto').name)";
    const { stdout, stderr } = await run(process.execPath, ['--input-type=module', '-e', code], { cwd: project });
    expect(stdout.trim()).toBe('native');
    expect(stderr).toBe('');
  });

  it('denied by the consumer\'s allowScripts, the install still succeeds and auto falls back to wasm with a one-line note', async () => {
    const denied = join(temp, 'denied');
    mkdirSync(denied);
    // npm 11 matches a tarball by its file: spec (from the registry it would be `streamgrad`)
    writeFileSync(join(denied, 'package.json'), JSON.stringify({ name: 'denied', private: true, type: 'module', allowScripts: { [`file:${tarball}`]: false } }));
    await run(npm, ['install', '--prefer-offline', '--no-audit', '--no-fund', tarball], { cwd: denied, maxBuffer: 16 << 20 });
    expect(existsSync(join(denied, 'node_modules/streamgrad/native/build'))).toBe(false);
    const code = "import { selectKernels } from 'streamgrad'; console.log(selectKernels('auto').name)";
    const { stdout, stderr } = await run(process.execPath, ['--input-type=module', '-e', code], { cwd: denied });
    expect(stdout.trim()).toBe('wasm');
    expect(stderr).toMatch(/^streamgrad: native kernels unavailable \(the addon was not built [^\n]*\); the auto backend uses wasm\n$/);
  }, 300_000);
});

describe('a TypeScript project importing streamgrad', () => {
  it('type-checks with moduleResolution node16 and bundler', async () => {
    // both at once (two cores); tsc reports on stdout, so a failure shows its errors
    const configs = ['tsconfig.bundler.json', 'tsconfig.node16.json'];
    const checked = await Promise.all(configs.map((config) =>
      run(process.execPath, [tsc, '-p', config], { cwd: project }).catch((error: { stdout?: string }) => ({ stdout: error.stdout ?? String(error) }))));
    checked.forEach(({ stdout }, i) => expect(stdout, configs[i]).toBe(''));
    expect(existsSync(join(project, 'out/consumer.js'))).toBe(true);
  });

  it('trains under plain node, composed and by hand, and round-trips a model and a checkpoint', async () => {
    const { stdout } = await run(process.execPath, ['out/consumer.js', '--serve'], { cwd: project });
    expect(JSON.parse(stdout)).toEqual({
      steps: 8, lastStep: 7, finiteLoss: true, manualSteps: 1, rejected: ['SG_ERR_NONFINITE_INPUT'], predictionLength: 1,
      copyParameters: true, checkpointStep: 8, isError: true, queue: true, protocol: 1,
      experiment: ['finished', 256, true, 'source.ndjson', 'SG_ERR_CONFIG', 'models[0].save'],
    });
  });
});

describe('a browser bundle of streamgrad', () => {
  const browser = browserForThisFile({ width: 800, height: 600 });

  it('builds with esbuild for the browser (no Node built-ins) and trains in headless Chromium', async () => {
    const bundle = await build({
      entryPoints: [join(project, 'browser.ts')], absWorkingDir: project, bundle: true, platform: 'browser', format: 'esm',
      target: 'es2022', write: false, metafile: true, logLevel: 'silent',
    });
    const inputs = Object.keys(bundle.metafile.inputs);
    expect(inputs.some((f) => f.includes('node_modules/streamgrad/dist/index.js'))).toBe(true);
    expect(inputs.filter((f) => f.startsWith('node:') || /node_modules\/(ws|mqtt|csv-parse|prom-client)\//.test(f))).toEqual([]);

    const page = await browser.newPage();
    const origin = 'http://streamgrad.test';
    await page.route(`${origin}/**`, (route) => {
      const path = new URL(route.request().url()).pathname;
      if (path === '/bundle.js') return route.fulfill({ contentType: 'text/javascript', body: bundle.outputFiles[0].text });
      return route.fulfill({ contentType: 'text/html', body: '<!doctype html><script type="module" src="/bundle.js"></script>' });
    });
    await page.goto(`${origin}/`);
    await page.waitForFunction(() => 'streamgradResult' in globalThis);
    const result = await page.evaluate(() => (globalThis as unknown as { streamgradResult: Promise<unknown> }).streamgradResult);
    expect(result).toEqual({ wasm: true, steps: 50, samples: 400, finite: true, badFrame: null, parsed: 'hello' });
    expect(browser.errors).toEqual([]);
  });
});

/** Resolves once `ready()` holds; rejects if the child exits first or after 60 s (a loaded machine). */
function until(ready: () => boolean, child: ChildProcess, output: () => string): Promise<void> {
  return new Promise((done, fail) => {
    const timer = setInterval(() => {
      if (ready()) {
        clearInterval(timer);
        done();
      } else if (child.exitCode !== null) {
        clearInterval(timer);
        fail(new Error(`exited with ${child.exitCode} before it was ready:\n${output()}`));
      }
    }, 50);
    setTimeout(() => {
      clearInterval(timer);
      fail(new Error(`not ready after 60 s:\n${output()}`));
    }, 60_000).unref();
  });
}
