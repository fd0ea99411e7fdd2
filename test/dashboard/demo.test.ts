import { existsSync } from 'node:fs';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import type { Page } from 'playwright-core';
import { formatTicks } from '../../clients/dashboard/src/views/ticks.ts';
import { confusionCounts } from '../../clients/dashboard/src/views/confusion-counts.ts';
import { RowRing } from '../../clients/dashboard/src/ring.ts';
import { runColor } from '../../clients/dashboard/src/palette.ts';
import { DriftAdaptation } from '../../pipeline/drift-adaptation.ts';
import { initialize } from '../../core/init.ts';
import { createModel } from '../../core/model.ts';
import { TrainingRun } from '../../pipeline/run.ts';
import { createTrainer } from '../../core/trainer.ts';
import { DEFAULT_STATIC_DIR } from '../../server/options.ts';
import type { StreamgradServer } from '../../server/server.ts';
import { serveInThread } from '../../server/threaded-server.ts';
import { blobsSamples } from '../../sources/blobs.ts';
import { Normalizer } from '../../core/normalizer.ts';
import { Rng } from '../../core/rng.ts';
import { normalize } from '../../operators/normalize.ts';
import { preprocessingOf } from '../../pipeline/model-artifact.ts';
import { samples } from '../server/helpers.ts';
import { browserForThisFile } from './browser.ts';
import { makeRun, screenshot, startServer, TOKEN, until } from './helpers.ts';

/**
 * Issue 13's dashboard in a real headless Chromium: a page opened after a run finished
 * shows its whole curve, the header says what it shows and who leads, the hover shows every
 * run, colours come from run names, stale runs grey out, axes never repeat a tick, drift
 * alarms are markers and events, the pinned step is marked and the prediction view follows
 * the pinned weights, and classifiers get a live confusion matrix.
 */
const cleanups: (() => unknown)[] = [];

beforeAll(() => {
  if (!existsSync(join(DEFAULT_STATIC_DIR, 'app.js'))) throw new Error('the dashboard is not built: run npm run build:dashboard');
});
const browser = browserForThisFile();

afterAll(async () => {
  for (const cleanup of cleanups.splice(0).reverse()) await cleanup();
});

function keep<T extends TrainingRun | StreamgradServer>(thing: T): T {
  cleanups.push(() => ('addRun' in thing ? thing.close() : thing.dispose()));
  return thing;
}

const points = async (page: Page) => Number(await page.getAttribute('#loss-chart .chart', 'data-points') ?? '0');

/** A finite run with drift on: the target flips sign at sample `flip`, Page-Hinkley sees it and the learning rate is boosted. */
function driftingRun(id: string, seed: number, total: number, flip: number): TrainingRun {
  const model = initialize(createModel({ inputSize: 3, layers: [{ units: 8, activation: 'tanh' }, { units: 1, activation: 'linear' }] }), 'auto', seed);
  const trainer = createTrainer({ model, loss: 'mse', optimizer: { type: 'adam', learningRate: 0.01 } });
  function* source() {
    let i = 0;
    for (const s of samples(3, 1, seed, total)) yield { x: s.x, y: s.y.map((v) => (i++ < flip ? v : -v)) };
  }
  return new TrainingRun({
    id, trainer, source: source(),
    drift: new DriftAdaptation(trainer, { detector: { kind: 'page-hinkley', delta: 0.005, threshold: 5, minInstances: 500, mode: 'up' }, reaction: { kind: 'boost-lr', factor: 3, samples: 200 } }),
  });
}

describe('the dashboard tells the story (issue 13)', () => {
  it('tick labels never repeat, run colours come from the name, the confusion counts are right (units)', () => {
    expect(formatTicks([1.2e6, 1.225e6, 1.25e6, 1.275e6])).toEqual(['1.20e6', '1.23e6', '1.25e6', '1.28e6']);
    expect(new Set(formatTicks([1_200_000, 1_200_500, 1_201_000])).size).toBe(3);
    expect(formatTicks([0, 0.5, 1])).toEqual(['0', '0.5', '1']);
    expect(runColor('deep')).toBe(runColor('deep'));
    expect(runColor('wide')).not.toBe(runColor('deep'));
    const ring = new RowRing(8, 2 * 3 + 2);
    // [targets(3), outputs(3), in0, in1]: two right (class 0, class 2), one wrong (true 1, predicted 2)
    ring.push([1, 0, 0, 0.9, 0.05, 0.05, 0, 0]);
    ring.push([0, 0, 1, 0.1, 0.1, 0.8, 0, 0]);
    ring.push([0, 1, 0, 0.1, 0.2, 0.7, 0, 0]);
    const { k, counts, rows } = confusionCounts(ring, 3, 'cross_entropy');
    expect({ k, rows }).toEqual({ k: 3, rows: 3 });
    expect(Array.from(counts)).toEqual([1, 0, 0, 0, 0, 1, 0, 0, 1]);
  });

  it('a page opened after the runs finished (threaded server) shows the whole curves, the experiment, the leader, drift markers and events', async () => {
    const server = keep(await serveInThread({ port: 0, token: TOKEN, experiment: { description: 'two networks on a flipping target', task: 'regression: predict y from x', target: 'y (m)' } }) as unknown as StreamgradServer);
    const a = keep(driftingRun('alpha', 3, 8000, 4000));
    const b = keep(driftingRun('beta', 4, 8000, 4000));
    server.addRun(a);
    server.addRun(b);
    await Promise.all([a.start(), b.start()]);
    await new Promise((resolve) => setTimeout(resolve, 400)); // the last publish
    const page = await browser.newPage();
    await page.goto(`${server.url}/`);
    await page.waitForSelector('body[data-connection="open"]');
    // the whole run, from the history (a page opened after the end used to show nothing)
    await until(async () => (await points(page)) >= 1000, 'the finished runs\' curves');
    expect(await page.textContent('#about-description')).toBe('two networks on a flipping target');
    expect(await page.textContent('#about-task')).toBe('regression: predict y from x');
    // the prediction plot names the target and its unit on its axes
    await until(async () => (await page.getAttribute('.prediction', 'data-target')) === 'y (m)', 'the target on the prediction axes');
    expect(await page.locator('.prediction .u-legend').textContent()).toMatch(/target: y \(m\)/);
    await until(async () => /^leader: (alpha|beta) · rolling mse (alpha|beta) [\d.e-]+ vs (alpha|beta) [\d.e-]+$/.test(await page.textContent('#about-leader') ?? ''), 'the leader line');
    const leader = await page.getAttribute('#about-leader', 'data-leader');
    const losses = [a, b].map((r) => ({ id: r.id, loss: r.latest!.metrics.loss })).sort((x, y) => x.loss - y.loss);
    expect(leader).toBe(losses[0].id);
    // drift alarms and reactions: markers on the loss chart, lines in the events list
    await until(async () => Number(await page.getAttribute('#loss-chart .chart', 'data-marks') ?? '0') >= 2, 'drift markers');
    await page.locator('.run-name[data-run="alpha"]').click();
    await until(async () => (await page.locator('#events .event-drift').count()) >= 1, 'a drift in the events list');
    expect(await page.locator('#events .event-drift').first().textContent()).toMatch(/drift step [\d\u202f]+ · page-hinkley at sample/);
    expect(await page.locator('#events .event-drift-reaction').first().textContent()).toMatch(/boost-lr/);
    // the swatches have the colours of the names
    const swatch = await page.locator('.run-name[data-run="alpha"] ~ .swatch, .run-head:has(.run-name[data-run="alpha"]) .swatch').first().evaluate((el) => (globalThis as unknown as Style).getComputedStyle(el).backgroundColor);
    expect(swatch).toBe(hexToRgb(runColor('alpha')));
    await screenshot(page, 'demo-finished');

    // hovering the loss chart shows every run's value at that point
    const over = page.locator('#loss-chart .u-over');
    const box = (await over.boundingBox())!;
    await page.mouse.move(box.x + box.width * 0.6, box.y + box.height / 2);
    await until(async () => (await page.getAttribute('#loss-chart .hover-readout', 'data-values')) !== null, 'the hover readout');
    const values = JSON.parse((await page.getAttribute('#loss-chart .hover-readout', 'data-values'))!) as [string, number | null][];
    expect(values.map(([label]) => label).sort()).toEqual(['alpha', 'beta']);
    expect(values.every(([, v]) => typeof v === 'number' && v > 0)).toBe(true);
    expect(await page.textContent('#loss-chart .hover-readout')).toMatch(/^step [\d.ek]+ · alpha [\d.e-]+ · beta [\d.e-]+$/);

    // a reload shows the whole curve again
    await page.reload();
    await page.waitForSelector('body[data-connection="open"]');
    await until(async () => (await points(page)) >= 1000, 'the curves after a reload');

    // the server goes away: the runs are greyed (stale)
    await server.close();
    await until(async () => (await page.getAttribute('#loss-chart .chart', 'data-stale')) === 'true', 'stale curves');
    // the run list greys too (its opacity may be fading in a transition: wait for it)
    const opacity = () => page.locator('.run').first().evaluate((el) => Number((globalThis as unknown as Style).getComputedStyle(el).opacity));
    await until(async () => (await opacity()) < 1, 'the run list greyed');
    expect(await opacity()).toBeLessThan(1);
    await screenshot(page, 'demo-stale');
    expect(browser.errors.filter((e) => !/WebSocket|ERR_CONNECTION_REFUSED|Failed to load resource/.test(e))).toEqual([]);
    await page.close();
  });

  it('the pinned step is marked on the loss chart and the prediction view follows the pinned weights', async () => {
    const run = keep(makeRun({ id: 'pin', inputs: 2, layers: [[8, 'tanh'], [1, 'linear']], learningRate: 0.05 }));
    const server = keep(await startServer([run], { historyIntervalMs: 0 }));
    void run.start();
    const page = await browser.newPage();
    await page.goto(`${server.url}/`);
    await page.waitForSelector('body[data-connection="open"]');
    await until(async () => (await points(page)) > 20 && Number(await page.locator('.scrubber-range').getAttribute('max')) >= 3, 'a history to scrub');
    expect(await page.getAttribute('.prediction', 'data-weights')).toBe('live');
    await page.locator('.scrubber-range').focus();
    // pin a step in the middle of the history (inside the loss chart's x range)
    await page.locator('.scrubber-range').evaluate((el) => {
      const input = el as unknown as { max: string; value: string; dispatchEvent(e: unknown): void };
      input.value = String(Math.floor(Number(input.max) / 2));
      input.dispatchEvent(new Event('input'));
    });
    const label = await page.textContent('.scrubber-label') ?? '';
    const step = Number(/^step ([\d\u202f]+)/.exec(label)?.[1].replace(/\u202f/g, '') ?? Number.NaN);
    expect(step, label).toBeGreaterThan(1);
    // the prediction view now shows that step's weights' outputs for the same samples
    await until(async () => (await page.getAttribute('.prediction', 'data-weights')) === String(step), 'predictions on the pinned weights');
    expect((await page.textContent('.prediction-caption'))!.replace(/\u202f/g, '')).toContain(`through the weights of step ${step}`);
    // the marker is drawn on the loss chart at the pinned step: a red dashed line
    const red = await page.locator('#loss-chart canvas').evaluate((el) => {
      const canvas = el as unknown as { width: number; height: number; getContext(kind: '2d'): { getImageData(x: number, y: number, w: number, h: number): { data: ArrayLike<number> } } };
      const ctx = canvas.getContext('2d');
      const d = ctx.getImageData(0, 0, canvas.width, canvas.height).data;
      let n = 0;
      for (let i = 0; i < d.length; i += 4) if (d[i] > 200 && d[i + 1] < 70 && d[i + 2] < 70) n++;
      return n;
    });
    expect(red).toBeGreaterThan(20);
    await screenshot(page, 'demo-pinned');
    await page.locator('[data-control="live"]').click();
    await until(async () => (await page.getAttribute('.prediction', 'data-weights')) === 'live', 'live predictions again');
    await page.close();
  });

  it('a run that standardises its target (--normalize) draws predictions and targets in the user\'s units, live and through pinned weights', async () => {
    // y = 1000 + 200·x: in z-units the targets would lie within ±2, in the user's around 1000
    const normalizer = new Normalizer({ inputs: 1, outputs: 1, target: true });
    const model = initialize(createModel({ inputSize: 1, layers: [{ units: 8, activation: 'tanh' }, { units: 1, activation: 'linear' }] }), 'auto', 2);
    const trainer = createTrainer({ model, loss: 'mse', optimizer: { type: 'adam', learningRate: 0.02 } });
    function* source() {
      const rng = new Rng(5);
      for (;;) {
        const x = rng.uniform(-1, 1);
        yield { x: [x], y: [1000 + 200 * x] };
      }
    }
    const run = keep(new TrainingRun({ id: 'units', trainer, source: source(), prepare: normalize(normalizer), preprocessing: () => preprocessingOf({ normalizer }) }));
    const server = keep(await startServer([run], { historyIntervalMs: 0 }));
    void run.start();
    const page = await browser.newPage();
    await page.goto(`${server.url}/`);
    await page.waitForSelector('body[data-connection="open"]');
    const rangeOf = async (what: 'targets' | 'outputs') => ((await page.getAttribute('.prediction', `data-${what}`)) ?? '').split(' ').filter((v) => v !== '').map(Number);
    // the targets as the user gave them (800 … 1200), and a model that has learned predicts there too
    await until(async () => {
      const [lo, hi] = await rangeOf('targets'), [olo, ohi] = await rangeOf('outputs');
      return lo >= 795 && hi <= 1205 && hi - lo > 200 && olo > 700 && ohi < 1300;
    }, 'predictions and targets in the user\'s units', 30_000);
    // pinned weights: the page runs the same rows through them and maps them the same way
    await until(async () => Number(await page.locator('.scrubber-range').getAttribute('max')) >= 3, 'a history to scrub');
    await page.locator('.scrubber-range').evaluate((el) => {
      const input = el as unknown as { max: string; value: string; dispatchEvent(e: unknown): void };
      input.value = input.max;
      input.dispatchEvent(new Event('input'));
    });
    await until(async () => /^\d+$/.test(await page.getAttribute('.prediction', 'data-weights') ?? ''), 'predictions on the pinned weights');
    const [plo, phi] = await rangeOf('outputs');
    expect(plo, 'pinned outputs in the user\'s units').toBeGreaterThan(500);
    expect(phi).toBeLessThan(1500);
    await screenshot(page, 'demo-user-units');
    await page.close();
  });

  it('a classifier gets a live confusion matrix beside prediction vs target', async () => {
    const model = initialize(createModel({ inputSize: 2, layers: [{ units: 8, activation: 'tanh' }, { units: 3, activation: 'softmax' }] }), 'auto', 5);
    const trainer = createTrainer({ model, loss: 'cross_entropy', optimizer: { type: 'adam', learningRate: 0.01 } });
    const run = keep(new TrainingRun({ id: 'classes', trainer, source: blobsSamples({ seed: 1, classes: 3 }) }));
    const server = keep(await startServer([run]));
    void run.start();
    const page = await browser.newPage();
    await page.goto(`${server.url}/`);
    await page.waitForSelector('body[data-connection="open"]');
    await until(async () => Number(await page.getAttribute('.confusion', 'data-rows') ?? '0') >= 100, 'the confusion matrix');
    expect(await page.locator('.confusion').isVisible()).toBe(true);
    expect(await page.locator('.confusion td.cm').count()).toBe(9);
    // blobs are easy: most samples end up on the diagonal
    await until(async () => {
      const cells = await page.locator('.confusion td.cm').evaluateAll((tds) => tds.map((td) => ({ t: td.getAttribute('data-true'), p: td.getAttribute('data-predicted'), n: Number((td.textContent ?? '0').replace(/\s/g, '')) })));
      const right = cells.filter((c) => c.t === c.p).reduce((s, c) => s + c.n, 0);
      const all = cells.reduce((s, c) => s + c.n, 0);
      return all > 0 && right / all > 0.8;
    }, 'a mostly diagonal matrix', 30_000);
    expect(await page.textContent('.confusion .note')).toMatch(/right \(\d+\.\d %\)/);
    await screenshot(page, 'demo-confusion');
    await page.close();
  });
});

/** The page's getComputedStyle, as the test functions see it (the tests are typed for Node, not the DOM). */
interface Style {
  getComputedStyle(el: unknown): { backgroundColor: string; opacity: string };
}

function hexToRgb(hex: string): string {
  const n = Number.parseInt(hex.slice(1), 16);
  return `rgb(${(n >> 16) & 255}, ${(n >> 8) & 255}, ${n & 255})`;
}
