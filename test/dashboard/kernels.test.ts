import { readFile } from 'node:fs/promises';
import { createServer } from 'node:http';
import type { AddressInfo } from 'node:net';
import { join } from 'node:path';
import { afterAll, describe, expect, it } from 'vitest';
import type { Activation } from '../../core/activations.ts';
import { selectKernels } from '../../core/backend.ts';
import type { Kernels } from '../../core/kernels.ts';
import { createModel } from '../../core/model.ts';
import { forwardPass } from '../../core/network.ts';
import type { TrainingRun } from '../../pipeline/run.ts';
import { createWorkspace } from '../../core/workspace.ts';
import { DEFAULT_STATIC_DIR } from '../../server/options.ts';
import type { StreamgradServer } from '../../server/server.ts';
import { SECURITY_HEADERS, serveStatic } from '../../server/static-files.ts';
import { browserForThisFile, type Page } from './browser.ts';
import { makeRun, screenshot, startServer, until } from './helpers.ts';

/**
 * The dashboard computes its fitted curve and surface with the engine's forward pass in the
 * page, on the WebAssembly SIMD kernels where the browser has them and on the JavaScript
 * ones otherwise; either way the numbers are the engine's (checked against the same model
 * run here, in Node, on both backends).
 */
const runsToStop: TrainingRun[] = [];
const serversToClose: StreamgradServer[] = [];
const browser = browserForThisFile();

afterAll(async () => {
  for (const run of runsToStop) run.dispose();
  await Promise.all(serversToClose.map((s) => s.close()));
});

type Layers = readonly (readonly [number, Activation])[];

/** Parameters in [-2, 2) that float32 holds exactly (the page receives float32 weights). */
const exactParams = (count: number): number[] => Array.from({ length: count }, (_, i) => (((i * 37) % 64) - 32) / 16);

const parameterCount = (inputs: number, layers: Layers): number => {
  let n = 0, from = inputs;
  for (const [units] of layers) { n += units * from + units; from = units; }
  return n;
};

/** Two paused runs of known weights: a curve (1 input, tanh and relu) and a surface (2 inputs, sigmoid and softmax). */
const CURVE = { id: 'curve', inputs: 1, layers: [[8, 'tanh'], [8, 'relu'], [1, 'linear']] as Layers };
const SURFACE = { id: 'surface', inputs: 2, layers: [[16, 'sigmoid'], [3, 'softmax']] as Layers };

async function serveKnownRuns(): Promise<StreamgradServer> {
  const runs = [CURVE, SURFACE].map((spec) => {
    const run = makeRun({ ...spec, paused: true, params: exactParams(parameterCount(spec.inputs, spec.layers)) });
    runsToStop.push(run);
    return run;
  });
  const server = await startServer(runs);
  serversToClose.push(server);
  for (const run of runs) void run.start();
  return server;
}

interface PageEvaluation { rows: number; inputs: number[]; outputs: number[] }

/** The page's last fitted curve or surface, once it is the `rows` rows asked for. */
async function pageEvaluation(page: Page, rows: number): Promise<PageEvaluation> {
  let e: PageEvaluation | null = null;
  await until(async () => {
    // null until the page's module has set its hook (a page just loaded, or reloaded with WebAssembly refused, may not have yet)
    e = await page.evaluate<PageEvaluation | null>('globalThis.streamgrad?.lastEvaluation() ?? null');
    return e !== null && e.rows === rows;
  }, `a page evaluation of ${rows} rows`);
  return e!;
}

/** The same model's outputs for the page's inputs, computed here by the engine in one pass. */
function engineOutputs(kernels: Kernels, spec: { inputs: number; layers: Layers }, e: PageEvaluation): Float64Array {
  const model = createModel({ inputSize: spec.inputs, layers: spec.layers.map(([units, activation]) => ({ units, activation })) }, kernels);
  model.params.set(exactParams(model.params.length));
  const ws = createWorkspace(model, e.rows, kernels.allocate);
  ws.x.set(e.inputs);
  forwardPass(kernels, model, ws, e.rows, ws.x);
  return ws.a[model.layers.length - 1].slice(0, e.rows * model.outputSize);
}

const maxDifference = (a: ArrayLike<number>, b: ArrayLike<number>): number => {
  expect(a.length).toBe(b.length);
  let d = 0;
  for (let i = 0; i < a.length; i++) d = Math.max(d, Math.abs(a[i] - b[i]));
  return d;
};

/**
 * Checks the page's curve (160 points) and surface (64 × 64, 3 outputs) against the engine
 * here on both backends. Within 1e-12, not bit for bit: the curve (tanh, relu) is bitwise the
 * same, but Chromium's V8 and Node's round `Math.exp` differently in the last bit for about
 * one argument in ten, which the surface's sigmoid and softmax show (3e-16).
 */
async function expectEngineNumbers(page: Page, url: string): Promise<{ curve: PageEvaluation; surface: PageEvaluation }> {
  await page.goto(`${url}/#run=curve`);
  await page.waitForSelector('body[data-connection="open"]');
  const curve = await pageEvaluation(page, 160);
  await page.goto(`${url}/#run=surface`);
  const surface = await pageEvaluation(page, 64 * 64);
  expect(surface.outputs.length).toBe(64 * 64 * 3);
  for (const backend of ['js', 'wasm'] as const) {
    const kernels = selectKernels(backend);
    expect(maxDifference(curve.outputs, engineOutputs(kernels, CURVE, curve))).toBeLessThanOrEqual(1e-12);
    expect(maxDifference(surface.outputs, engineOutputs(kernels, SURFACE, surface))).toBeLessThanOrEqual(1e-12);
  }
  return { curve, surface };
}

const backendShown = (page: Page) => page.getAttribute('#kernels', 'data-backend');

/** Records the page's CSP violations (`securitypolicyviolation` events: Chromium logs no console error for a refused WebAssembly compilation). */
const recordViolations = (page: Page) => page.addInitScript(`
  globalThis.__violations = [];
  document.addEventListener('securitypolicyviolation', (e) => globalThis.__violations.push(e.effectiveDirective + ' ' + e.blockedURI));
`);
const violations = (page: Page) => page.evaluate<string[]>('globalThis.__violations');

describe('the dashboard’s kernels in Chromium', () => {
  it('the page’s own CSP (its meta tag, for when something else serves it) allows what the server’s header allows', async () => {
    const index = await readFile(join(DEFAULT_STATIC_DIR, 'index.html'), 'utf8');
    const meta = /<meta http-equiv="Content-Security-Policy" content="([^"]*)">/.exec(index)?.[1];
    // the header adds frame-ancestors, which a meta tag cannot carry
    expect(`${meta}; frame-ancestors 'none'`).toBe(SECURITY_HEADERS['Content-Security-Policy']);
  });

  it('loads the WebAssembly kernels under the served CSP, says so, and its curve and surface are the engine’s numbers', async () => {
    const server = await serveKnownRuns();
    const page = await browser.newPage();
    await recordViolations(page);
    await expectEngineNumbers(page, server.url);
    expect(await backendShown(page)).toBe('wasm');
    expect(await page.locator('#kernels').textContent()).toMatch(/on the wasm kernels \(WebAssembly SIMD\)/);
    // a plain memory: no cross-origin isolation needed (or given)
    expect(await page.evaluate('globalThis.crossOriginIsolated')).toBe(false);
    expect(await violations(page)).toEqual([]);
    await screenshot(page, 'kernels-wasm');
    expect(browser.errors).toEqual([]);
    await page.close();
  });

  it('falls back to the js kernels, with the same numbers, in a browser whose WebAssembly refuses the SIMD kernels', async () => {
    const server = await serveKnownRuns();
    const wasmPage = await browser.newPage();
    await wasmPage.goto(`${server.url}/#run=surface`);
    const withWasm = await pageEvaluation(wasmPage, 64 * 64);
    expect(await backendShown(wasmPage)).toBe('wasm');
    await wasmPage.close();
    const page = await browser.newPage();
    // an engine without SIMD: it neither validates nor compiles a module that uses it (here: any module)
    await page.addInitScript(`(() => {
      const refuse = () => { throw new WebAssembly.CompileError('SIMD unsupported (test)'); };
      WebAssembly.validate = () => false;
      WebAssembly.compile = async () => refuse();
      WebAssembly.instantiate = async () => refuse();
      WebAssembly.Module = function () { refuse(); };
    })()`);
    const { surface } = await expectEngineNumbers(page, server.url);
    expect(await backendShown(page)).toBe('js');
    expect(await page.locator('#kernels').textContent()).toMatch(/on the js kernels \(no WebAssembly SIMD in this browser\)/);
    // in one browser the two backends agree bit for bit (same inputs: the same sample-less domain)
    expect(surface.inputs).toEqual(withWasm.inputs);
    expect(surface.outputs).toEqual(withWasm.outputs);
    expect(browser.errors).toEqual([]);
    await page.close();
  });

  it('falls back to js in a browser without WebAssembly at all', async () => {
    const server = await serveKnownRuns();
    const page = await browser.newPage();
    await page.addInitScript('delete globalThis.WebAssembly');
    await page.goto(`${server.url}/#run=curve`);
    await pageEvaluation(page, 160);
    expect(await backendShown(page)).toBe('js');
    expect(browser.errors).toEqual([]);
    await page.close();
  });

  it('needs \'wasm-unsafe-eval\': under a CSP without it the page falls back to js and says the kernels did not load', async () => {
    // the real files, the page with the CSP of before (the meta tag's policy must go too: both apply)
    const strict = SECURITY_HEADERS['Content-Security-Policy'].replace(" 'wasm-unsafe-eval'", '');
    const index = (await readFile(join(DEFAULT_STATIC_DIR, 'index.html'), 'utf8')).replace(/<meta http-equiv="Content-Security-Policy"[^>]*>/, '');
    const http = createServer((req, res) => {
      if (req.url === '/') {
        res.writeHead(200, { 'Content-Type': 'text/html; charset=utf-8', 'Content-Security-Policy': strict });
        res.end(index);
      } else {
        void serveStatic(req, res, DEFAULT_STATIC_DIR);
      }
    });
    await new Promise<void>((ok) => http.listen(0, '127.0.0.1', ok));
    try {
      const page = await browser.newPage();
      await recordViolations(page);
      // the page's socket goes to its own origin: this server has none, so only the kernels are checked
      await page.goto(`http://127.0.0.1:${(http.address() as AddressInfo).port}/`);
      await until(async () => (await backendShown(page)) !== null, 'the kernels note');
      expect(await backendShown(page)).toBe('js');
      expect(await page.locator('#kernels').textContent()).toMatch(/the WebAssembly kernels did not load/);
      expect(await violations(page)).toEqual(['script-src wasm-eval']);
      await page.close();
    } finally {
      http.closeAllConnections();
      await new Promise<void>((done) => http.close(() => done()));
      browser.errors.length = 0; // the refused compilation and the missing socket, both expected here
    }
  });
});
