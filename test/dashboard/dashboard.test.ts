import { spawn } from 'node:child_process';
import { existsSync } from 'node:fs';
import { createServer } from 'node:http';
import type { AddressInfo } from 'node:net';
import { join, resolve } from 'node:path';
import { WebSocketServer } from 'ws';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import type { TrainingRun } from '../../pipeline/run.ts';
import { DEFAULT_STATIC_DIR } from '../../server/options.ts';
import { encodeFrame } from '../../server/snapshot-frame.ts';
import { serveStatic } from '../../server/static-files.ts';
import type { StreamgradServer } from '../../server/server.ts';
import { edgePoint, graphLayout } from '../../clients/dashboard/src/views/graph-layout.ts';
import { cellCenter, heatmapLayout } from '../../clients/dashboard/src/views/heatmap-layout.ts';
import { browserForThisFile } from './browser.ts';
import { canvasSize, hue, makeRun, paintedPixels, pixel, screenshot, startServer, TOKEN, until } from './helpers.ts';

/**
 * The dashboard in a real headless Chromium against a real server with real training
 * runs: it loads, draws, follows the weights, steers a run, survives a server restart,
 * and never shows a console error.
 */
const runsToStop: TrainingRun[] = [];
const serversToClose: StreamgradServer[] = [];

beforeAll(() => {
  if (!existsSync(join(DEFAULT_STATIC_DIR, 'app.js'))) throw new Error('the dashboard is not built: run npm run build:dashboard');
});
const browser = browserForThisFile();

afterAll(async () => {
  for (const run of runsToStop) run.dispose();
  await Promise.all(serversToClose.map((s) => s.close()));
});

function track<T extends TrainingRun | StreamgradServer>(thing: T): T {
  if ('addRun' in thing) serversToClose.push(thing);
  else runsToStop.push(thing);
  return thing;
}

const lossPoints = async (page: import('playwright-core').Page) => Number(await page.getAttribute('#loss-chart .chart', 'data-points') ?? '0');

describe('the live dashboard in Chromium', () => {
  it('loads from a live training server: curves grow, the network and heatmaps are drawn, no console error', async () => {
    const wide = track(makeRun({ id: 'wide', layers: [[24, 'relu'], [1, 'linear']], seed: 2 }));
    const deep = track(makeRun({ id: 'deep', layers: [[8, 'relu'], [8, 'relu'], [1, 'linear']], seed: 3 }));
    const server = track(await startServer([wide, deep]));
    void wide.start();
    void deep.start();
    const response = await fetch(`${server.url}/`);
    expect(response.headers.get('content-security-policy')).toContain("script-src 'self'");
    const page = await browser.newPage();
    const violations: string[] = [];
    page.on('console', (m) => { if (/Content Security Policy/i.test(m.text())) violations.push(m.text()); });
    await page.goto(`${server.url}/`);
    await page.waitForSelector('body[data-connection="open"]');
    await page.waitForSelector('.run-name[data-run="deep"]');
    await until(async () => (await lossPoints(page)) >= 3, 'the loss chart to get points');
    const before = await lossPoints(page);
    await until(async () => (await lossPoints(page)) > before + 3, 'the loss chart to gain points');
    await until(async () => (await paintedPixels(page, 'canvas[data-view="network"]')) > 1000, 'the network graph');
    await until(async () => (await paintedPixels(page, 'canvas[data-view="heatmap"][data-layer="0"]')) > 1000, 'the first heatmap');
    // both runs overlaid, each with its legend entry
    const legend = await page.locator('#loss-chart .u-legend .u-series').allTextContents();
    expect(legend.join(' ')).toMatch(/wide/);
    expect(legend.join(' ')).toMatch(/deep/);
    expect(await page.locator('script:not([src])').count()).toBe(0);
    // read-only: no controls
    expect(await page.locator('[data-control="pause"]').isVisible()).toBe(false);
    // runs without delayed labels show no label counters
    expect(await page.locator('.run-labels:visible').count()).toBe(0);
    await page.waitForTimeout(300);
    await screenshot(page, 'race');
    expect(violations).toEqual([]);
    expect(browser.errors).toEqual([]);
    await page.close();
  });

  it('draws a known model with the right colours, follows a weight change, and the scrubber brings the old weights back', async () => {
    // 2 → 2 tanh → 1 linear; every first-layer weight +2 (orange), biases 0
    const params = [2, 2, 2, 2, 0, 0, 1, 1, 0];
    const run = track(makeRun({ id: 'known', inputs: 2, layers: [[2, 'tanh'], [1, 'linear']], paused: true, params, learningRate: 1e-12 }));
    const server = track(await startServer([run], { historyIntervalMs: 0 }));
    void run.start();
    const page = await browser.newPage();
    await page.goto(`${server.url}/`);
    await page.waitForSelector('body[data-connection="open"]');
    const graph = 'canvas[data-view="network"]', heat = 'canvas[data-view="heatmap"][data-layer="0"]';
    await until(async () => (await paintedPixels(page, graph)) > 500 && (await paintedPixels(page, heat)) > 100, 'the first drawing');

    const edgeColour = async () => {
      const size = (await canvasSize(page, graph))!;
      const point = edgePoint(graphLayout([2, 2, 1], size.width, size.height), 0, 0, 0)!;
      return hue(await pixel(page, graph, point.x, point.y));
    };
    const cellColour = async () => {
      const size = (await canvasSize(page, heat))!;
      const c = cellCenter(heatmapLayout(2, 2, size.width, size.height), 0, 0);
      return hue(await pixel(page, heat, c.x, c.y));
    };
    await until(async () => (await edgeColour()) === 'orange' && (await cellColour()) === 'orange', 'orange for w = +2');
    await screenshot(page, 'known-positive');

    // flip the weight of input 0 → neuron 0, then one (negligible) training step publishes it
    run.trainer.model.layers[0].weights[0] = -2;
    await run.step();
    await until(async () => (await edgeColour()) === 'blue' && (await cellColour()) === 'blue', 'blue for w = −2');
    await screenshot(page, 'known-negative');

    // the timeline: back to step 0, where the weight was +2
    await until(async () => Number(await page.locator('.scrubber-range').getAttribute('max')) >= 1, 'a history to scrub');
    await page.locator('.scrubber-range').focus();
    await page.keyboard.press('Home');
    await until(async () => (await edgeColour()) === 'orange' && (await cellColour()) === 'orange', 'the old weights from the history');
    expect(await page.locator('.scrubber-label').textContent()).toMatch(/step 0 · 1 steps ago/);
    await screenshot(page, 'known-scrubbed');
    await page.locator('[data-control="live"]').click();
    await until(async () => (await edgeColour()) === 'blue', 'live weights again');

    // weights corrupted in memory: the server withholds them, the page says so (RELIABILITY 19)
    run.trainer.model.params[1] = Number.NaN;
    await run.step().catch(() => undefined);
    await until(async () => (await page.locator('.run .badge').textContent()) === 'diverged', 'the diverged status');
    expect(await page.locator('#network .note').textContent()).toMatch(/^diverged/);
    expect(browser.errors).toEqual([]);
    await page.close();
  });

  it('with the token typed in, pause from the UI stops the step counter on the server; step and resume work', async () => {
    const run = track(makeRun({ id: 'steer' }));
    const server = track(await startServer([run]));
    void run.start();
    const page = await browser.newPage();
    await page.goto(`${server.url}/`);
    await page.waitForSelector('body[data-connection="open"]');
    expect(await page.locator('[data-control="pause"]').isVisible()).toBe(false);
    await page.fill('#token-input', TOKEN);
    await page.click('#token-submit');
    await page.waitForSelector('body[data-access="control"]');
    expect(page.url()).not.toContain(TOKEN);
    expect(await page.evaluate(() => (globalThis as unknown as { sessionStorage: { getItem(k: string): string | null } }).sessionStorage.getItem('streamgrad.token'))).toBe(TOKEN);

    await page.click('[data-control="pause"]');
    await until(async () => /✓ paused/.test(await page.locator('[data-status="pause"]').textContent() ?? ''), 'the pause ack');
    expect(run.state).toBe('paused');
    const paused = run.trainer.counters.steps;
    await new Promise((r) => setTimeout(r, 400));
    expect(run.trainer.counters.steps).toBe(paused);

    await page.click('[data-control="step"]');
    await until(async () => /✓ step/.test(await page.locator('[data-status="step"]').textContent() ?? ''), 'the step ack');
    expect(run.trainer.counters.steps).toBe(paused + 1);

    // the learning-rate slider (log scale) and reset, each with its ack
    await page.locator('.lr-slider').fill('-3');
    await until(async () => /✓ learning rate 0\.001/.test(await page.locator('[data-status="setLearningRate"]').textContent() ?? ''), 'the learning-rate ack');
    expect(run.trainer.optimizer.learningRate).toBeCloseTo(0.001, 12);
    await page.click('[data-control="reset"]');
    await until(async () => /✓ weights reset/.test(await page.locator('[data-status="reset"]').textContent() ?? ''), 'the reset ack');

    // an error shows too: checkpoint without a checkpoint location
    await page.click('[data-control="checkpoint"]');
    await until(async () => /✗ SG_ERR_STATE/.test(await page.locator('[data-status="checkpoint"]').textContent() ?? ''), 'the checkpoint error');
    await screenshot(page, 'controls');

    await page.click('[data-control="resume"]');
    await until(() => run.trainer.counters.steps > paused + 10, 'training to go on');
    // a reload keeps the token (session storage) and the control access
    await page.reload();
    await page.waitForSelector('body[data-access="control"]');
    expect(browser.errors).toEqual([]);
    await page.close();
  });

  it('reconnects after a server restart and resumes the views', async () => {
    const first = track(makeRun({ id: 'phoenix', seed: 4 }));
    const server = await startServer([first]);
    const port = server.port;
    void first.start();
    const page = await browser.newPage();
    await page.goto(`${server.url}/`);
    await page.waitForSelector('body[data-connection="open"]');
    await until(async () => (await lossPoints(page)) >= 3, 'points before the restart');
    first.stop();
    await server.close();
    await page.waitForSelector('body[data-connection="reconnecting"]');
    const second = track(makeRun({ id: 'phoenix', seed: 5 }));
    const again = track(await startServer([second], { port }));
    void second.start();
    await page.waitForSelector('body[data-connection="open"]', { timeout: 15_000 });
    // the run restarted from step 0: a fresh curve, growing again
    await until(async () => (await lossPoints(page)) >= 3, 'points after the restart');
    const stats = await page.locator('#wire-stats').textContent();
    expect(stats).toMatch(/1 reconnects/);
    expect(again.stats.clients).toBe(1);
    await screenshot(page, 'reconnected');
    // the browser itself logs the refused connection attempts while the server was down
    expect(browser.errors.filter((e) => !/WebSocket connection to .* failed/.test(e))).toEqual([]);
    browser.errors.length = 0;
    await page.close();
  });

  it('ignores and counts malformed or unknown messages, never crashes, and shows wire text as text only (RELIABILITY 40)', async () => {
    // a stand-in server: the real static files, and a socket that speaks badly on purpose
    const markup = '<img src=x onerror="globalThis.__xss=1">';
    const run = {
      id: markup, state: 'running', loss: 'mse', parameters: 9, step: 0,
      topology: { inputSize: 2, layers: [{ units: 2, activation: 'tanh' }, { units: 1, activation: 'linear' }] },
      optimizer: { type: 'sgd', learningRate: 0.01 },
    };
    const metrics = (step: number) => JSON.stringify({
      type: 'metrics', run: markup, step, size: 1, loss: 0.5 / step, gradNorm: 1, learningRate: 0.01, updated: true,
      metrics: { window: 100, count: step, loss: 1 / step, mae: 0.5 / step }, samplesPerSecond: 100, counters: { steps: step, samples: step }, state: 'running',
    });
    const bad = [
      'not json', '{"type":"nope"}', '[]', 'null', '42', '{"type":"metrics","run":5}',
      JSON.stringify({ type: 'metrics', run: markup, step: 'seven' }),
      JSON.stringify({ type: 'hello', protocol: 2, access: 'control', runs: [] }),
      JSON.stringify({ type: 'run', run: { ...run, topology: { inputSize: -1, layers: [] } } }),
      JSON.stringify({ type: 'predictions', run: markup, step: 1, samples: 1, rows: 2, outputSize: 1, outputs: [1], targets: [1, 2] }),
      JSON.stringify({ type: 'event', run: markup, event: 'exploded', step: 1, time: 0 }),
    ];
    const params = encodeFrame('parameters', 'float32', markup, 3, { inputSize: 2, units: [2, 1] }, Float64Array.of(1, -1, 1, -1, 0, 0, 1, 1, 0));
    const badFrames = [Buffer.from('garbage!'), Buffer.from(params.subarray(0, params.length - 4)), Buffer.alloc(64)];
    const http = createServer((req, res) => void serveStatic(req, res, DEFAULT_STATIC_DIR));
    const wss = new WebSocketServer({ server: http, path: '/ws' });
    wss.on('connection', (ws) => {
      ws.send(JSON.stringify({ type: 'hello', protocol: 1, server: 'stand-in', access: 'read-only', runs: [run], limits: { maxPayload: 65536, maxRateHz: 30, commandsPerMinute: 100, heartbeatMs: 15000 } }));
      for (const text of bad) ws.send(text);
      for (const frame of badFrames) ws.send(frame);
      for (let step = 1; step <= 3; step++) ws.send(metrics(step));
      ws.send(params);
      ws.send(JSON.stringify({ type: 'event', run: markup, event: 'failed', step: 3, time: Date.now(), detail: { code: 'SG_ERR_SOURCE', message: markup } }));
      ws.on('message', () => undefined);
    });
    await new Promise<void>((ok) => http.listen(0, '127.0.0.1', ok));
    const url = `http://127.0.0.1:${(http.address() as AddressInfo).port}/`;
    try {
      const page = await browser.newPage();
      await page.goto(url);
      await page.waitForSelector('body[data-connection="open"]');
      await until(async () => Number(await page.getAttribute('#wire-stats', 'data-ignored')) === bad.length + badFrames.length, 'every bad message counted');
      await until(async () => (await lossPoints(page)) === 3, 'the good messages shown');
      await until(async () => (await paintedPixels(page, 'canvas[data-view="network"]')) > 500, 'the good frame drawn');
      expect(await page.locator('.run-name').textContent()).toBe(markup);
      expect(await page.locator('#events').textContent()).toContain(markup);
      expect(await page.locator('img').count()).toBe(0);
      expect(await page.evaluate('globalThis.__xss')).toBeUndefined();
      await page.waitForTimeout(300);
      const fps = Number(/^(\d+) fps/.exec(await page.locator('#wire-stats').textContent() ?? '')?.[1] ?? '0');
      expect(fps).toBeGreaterThan(0); // still rendering
      await screenshot(page, 'hostile-wire');
      expect(browser.errors).toEqual([]);
      await page.close();
    } finally {
      for (const ws of wss.clients) ws.terminate();
      wss.close();
      await new Promise<void>((done) => http.close(() => done()));
    }
  });

  it('streamgrad start --serve 0 prints a URL that opens the page with both runs of the race overlaid', async () => {
    const bin = resolve(import.meta.dirname, '../../bin/streamgrad.mjs');
    const child = spawn(process.execPath, [bin, 'start', '--serve', '0'], { stdio: ['ignore', 'ignore', 'pipe'], env: { ...process.env, STREAMGRAD_TOKEN: '', PORT: '' } });
    let stderr = '';
    child.stderr.setEncoding('utf8').on('data', (d: string) => { stderr += d; });
    try {
      await until(() => /dashboard at (http:\/\/\S+)/.test(stderr), 'the dashboard URL', 20_000);
      const url = /dashboard at (http:\/\/\S+)/.exec(stderr)![1];
      const page = await browser.newPage();
      await page.goto(url);
      await page.waitForSelector('body[data-connection="open"]');
      await page.waitForSelector('.run-name[data-run="wide"]');
      await page.waitForSelector('.run-name[data-run="deep"]');
      await until(async () => (await lossPoints(page)) >= 5, 'the race curves');
      const legend = (await page.locator('#loss-chart .u-legend .u-series').allTextContents()).join(' ');
      expect(legend).toMatch(/wide/);
      expect(legend).toMatch(/deep/);
      await until(async () => (await paintedPixels(page, 'canvas[data-view="heatmap"][data-layer="0"]')) > 1000, 'the weights');
      await page.waitForTimeout(1500);
      await screenshot(page, 'start-race');
      expect(browser.errors).toEqual([]);
      await page.close();
    } finally {
      child.kill('SIGINT');
      await new Promise((done) => child.once('exit', done));
    }
  });

  it('streamgrad run examples/delayed-labels.json --serve 0: the run list shows the label join\'s counters beside the run\'s other counters (joined, waiting, expired), every counter in its tooltip', async () => {
    const root = resolve(import.meta.dirname, '../..');
    const bin = join(root, 'bin/streamgrad.mjs');
    const child = spawn(process.execPath, [bin, 'run', 'examples/delayed-labels.json', '--serve', '0'], { cwd: root, stdio: ['ignore', 'ignore', 'pipe'], env: { ...process.env, STREAMGRAD_TOKEN: '', PORT: '' } });
    let stderr = '';
    child.stderr.setEncoding('utf8').on('data', (d: string) => { stderr += d; });
    try {
      await until(() => /dashboard at (http:\/\/\S+)/.test(stderr), 'the dashboard URL', 30_000);
      const url = /dashboard at (http:\/\/\S+)/.exec(stderr)![1];
      const page = await browser.newPage();
      await page.goto(url);
      await page.waitForSelector('body[data-connection="open"]');
      const line = page.locator('.run-labels[data-run="delayed"]');
      await line.waitFor({ state: 'visible', timeout: 30_000 });
      // while it trains: joined and waiting move on
      expect(await line.textContent()).toMatch(/^labels [\d\u202f]+ joined · [\d\u202f]+ waiting/);
      // 20,000 samples, 1% of the labels lost: at the last step every label that came is joined, the lost ones expired
      await until(() => /labels: 20000 features and 19800 labels in; 19800 joined/.test(stderr), 'the run to finish', 120_000);
      await until(async () => /^labels 19\u202f800 joined · \d+ waiting · \d+ expired$/.test(await line.textContent() ?? ''), 'the last step\'s label counters', 15_000);
      const title = await line.getAttribute('title') ?? '';
      for (const key of ['features', 'labels', 'joined', 'expired', 'duplicateFeatures', 'duplicateLabels', 'unknownLabels', 'late', 'invalid', 'waiting', 'holding']) expect(title).toMatch(new RegExp(`^${key}: `, 'm'));
      expect(title).toMatch(/^joined: 19\u202f800$/m);
      await screenshot(page, 'delayed-labels');
      expect(browser.errors).toEqual([]);
      await page.close();
    } finally {
      child.kill('SIGINT');
      await new Promise((done) => child.once('exit', done));
    }
  }, 240_000);
});
