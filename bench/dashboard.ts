/**
 * Dashboard benchmark (npm run bench:dashboard): does the page keep up with a big model?
 * One process trains a 64→256→256→10 MLP (85 002 parameters, relu, mse, Adam, batch 16)
 * as a TrainingRun served by `serve()`; a real headless Chromium (Debian's, as in the
 * tests) opens the dashboard, which subscribes to every channel at 10 Hz: metrics,
 * events, predictions, and float32 snapshots and gradients (about 680 KB per tick).
 *
 * Measured in the browser, for `--seconds` (default 60; `--minutes 10` for the long check):
 * - frames per second: requestAnimationFrame callbacks counted per one-second window
 *   (p50 and the worst window), and the longest gap between two frames;
 * - the JS heap: `Performance.getMetrics` (CDP) every 5 s → start, end and the slope of a
 *   least-squares line (MiB per minute), plus the heap right after a forced GC at the
 *   start and at the end (what the page really retains);
 * - what arrived: messages, binary frames, ignored messages, and the training speed.
 *
 * Usage: npm run bench:dashboard [-- --seconds S | --minutes M] [--json]
 */
import { mkdtemp, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { parseArgs } from 'node:util';
import { chromium } from 'playwright-core';
import { initialize } from '../core/init.ts';
import { createModel } from '../core/model.ts';
import { Rng } from '../core/rng.ts';
import { TrainingRun } from '../pipeline/run.ts';
import { createTrainer } from '../core/trainer.ts';
import { serve } from '../server/server.ts';
import { CHROMIUM, CHROMIUM_ARGS } from '../test/dashboard/browser.ts';

const { values: args } = parseArgs({
  options: {
    seconds: { type: 'string' },
    minutes: { type: 'string' },
    json: { type: 'boolean', default: false },
  },
});
const seconds = args.minutes !== undefined ? Number(args.minutes) * 60 : Number(args.seconds ?? 60);
if (!Number.isFinite(seconds) || seconds < 10) throw new RangeError('--seconds must be at least 10 (or --minutes ≥ 1/6)');

const say = (line: string) => { if (!args.json) process.stderr.write(`${line}\n`); };

/** Endless samples: 64 inputs in [-1, 1], 10 targets that are a fixed nonlinear function of them. */
function* samples(): Generator<{ x: number[]; y: number[] }> {
  const rng = new Rng(11);
  const mix = Array.from({ length: 10 }, () => Array.from({ length: 64 }, () => rng.uniform(-1, 1) / 8));
  for (;;) {
    const x = Array.from({ length: 64 }, () => rng.uniform(-1, 1));
    const y = mix.map((w) => Math.tanh(w.reduce((s, wi, i) => s + wi * x[i], 0)));
    yield { x, y };
  }
}

const model = initialize(createModel({ inputSize: 64, layers: [{ units: 256, activation: 'relu' }, { units: 256, activation: 'relu' }, { units: 10, activation: 'linear' }] }), 'auto', 1);
const trainer = createTrainer({ model, loss: 'mse', optimizer: { type: 'adam', learningRate: 1e-3 } });
const run = new TrainingRun({ id: 'big', trainer, source: samples(), train: { batch: 16 } });
const server = await serve({ port: 0 });
server.addRun(run);
void run.start().catch(() => undefined);

const profile = await mkdtemp(join(tmpdir(), 'streamgrad-bench-chromium-'));
const context = await chromium.launchPersistentContext(profile, {
  executablePath: CHROMIUM,
  args: CHROMIUM_ARGS,
  headless: true,
  viewport: { width: 1440, height: 1000 },
  deviceScaleFactor: 1,
});
const errors: string[] = [];
const page = context.pages()[0] ?? await context.newPage();
page.on('console', (m) => { if (m.type() === 'error') errors.push(m.text()); });
page.on('pageerror', (e) => errors.push(e.message));
const cdp = await context.newCDPSession(page);
await cdp.send('Performance.enable');

const heapNow = async (): Promise<number> => {
  const { metrics } = await cdp.send('Performance.getMetrics');
  return metrics.find((m) => m.name === 'JSHeapUsedSize')?.value ?? Number.NaN;
};
const heapAfterGc = async (): Promise<number> => {
  await cdp.send('HeapProfiler.collectGarbage');
  return heapNow();
};

say(`bench:dashboard: 64→256→256→10 (${model.params.length} parameters) at 10 Hz, ${seconds} s in ${CHROMIUM}`);
await page.goto(`${server.url}/`);
await page.waitForSelector('body[data-connection="open"]');
await page.waitForFunction(() => {
  const canvas = (globalThis as unknown as { document: { querySelector(s: string): { width: number } | null } }).document.querySelector('canvas[data-view="heatmap"]');
  return canvas !== null && canvas.width > 0;
}, undefined, { timeout: 30_000 });
await page.waitForTimeout(3000); // warm-up: first summaries, JIT, history index

const gcStart = await heapAfterGc(); // before counting frames: a forced GC stalls the page
await page.waitForTimeout(500);
// the frame counter lives in the page: timestamps of every animation frame (a string:
// tsx's helpers must not leak into code that runs in the page)
await page.evaluate(`(() => {
  globalThis.__bench = [];
  const tick = (t) => { globalThis.__bench.push(t); requestAnimationFrame(tick); };
  requestAnimationFrame(tick);
})()`);
const stepsStart = trainer.counters.steps;
const heap: [number, number][] = [];
const t0 = performance.now();
while (performance.now() - t0 < seconds * 1000) {
  heap.push([(performance.now() - t0) / 1000, await heapNow()]);
  await new Promise((r) => setTimeout(r, Math.min(5000, Math.max(0, seconds * 1000 - (performance.now() - t0)))));
}
const elapsed = (performance.now() - t0) / 1000;
const stamps = await page.evaluate<number[]>('globalThis.__bench.splice(0)');
heap.push([elapsed, await heapNow()]);
const gcEnd = await heapAfterGc();
const steps = trainer.counters.steps - stepsStart;
const wire = await page.locator('#wire-stats').textContent();

// frames per one-second window
const perSecond: number[] = [];
if (stamps.length > 1) {
  const first = stamps[0];
  for (const t of stamps) {
    const w = Math.floor((t - first) / 1000);
    perSecond[w] = (perSecond[w] ?? 0) + 1;
  }
  perSecond.pop(); // the last window is partial
}
let longestGap = 0;
for (let i = 1; i < stamps.length; i++) longestGap = Math.max(longestGap, stamps[i] - stamps[i - 1]);
const sorted = [...perSecond].sort((a, b) => a - b);
const p50 = sorted[Math.floor(sorted.length / 2)] ?? 0;
const min = sorted[0] ?? 0;

// least squares slope of heap over time
const n = heap.length;
const mx = heap.reduce((s, [x]) => s + x, 0) / n, my = heap.reduce((s, [, y]) => s + y, 0) / n;
const slope = heap.reduce((s, [x, y]) => s + (x - mx) * (y - my), 0) / Math.max(1e-9, heap.reduce((s, [x]) => s + (x - mx) ** 2, 0));
const MiB = 1024 * 1024;

const result = {
  model: '64→256→256→10',
  parameters: model.params.length,
  seconds: Number(elapsed.toFixed(1)),
  fps: { p50, min, windows: perSecond.length, longestGapMs: Number(longestGap.toFixed(1)) },
  heapMiB: {
    start: Number((heap[0][1] / MiB).toFixed(2)),
    end: Number((heap[n - 1][1] / MiB).toFixed(2)),
    slopePerMinute: Number(((slope * 60) / MiB).toFixed(3)),
    afterGcStart: Number((gcStart / MiB).toFixed(2)),
    afterGcEnd: Number((gcEnd / MiB).toFixed(2)),
  },
  trainingStepsPerSecond: Math.round(steps / elapsed),
  wire,
  consoleErrors: errors.length,
};

if (args.json) process.stdout.write(`${JSON.stringify(result)}\n`);
else {
  say(`fps            p50 ${p50}, worst 1-s window ${min} (${perSecond.length} windows), longest frame gap ${longestGap.toFixed(0)} ms   [target ≥ 30]`);
  say(`JS heap        start ${result.heapMiB.start} MiB → end ${result.heapMiB.end} MiB, slope ${result.heapMiB.slopePerMinute} MiB/min (sampled every 5 s: garbage between collections included)`);
  say(`after GC       start ${result.heapMiB.afterGcStart} MiB → end ${result.heapMiB.afterGcEnd} MiB (what the page retains)`);
  say(`training       ${result.trainingStepsPerSecond} steps/s (batch 16) while serving`);
  say(`page           ${wire ?? ''}`);
  say(`console errors ${errors.length}`);
}

await context.close();
await rm(profile, { recursive: true, force: true });
run.dispose();
await server.close();
process.exit(p50 >= 30 && errors.length === 0 ? 0 : 1);
