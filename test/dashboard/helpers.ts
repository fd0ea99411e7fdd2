import { mkdir } from 'node:fs/promises';
import { join } from 'node:path';
import type { Page } from 'playwright-core';
import type { Activation } from '../../core/activations.ts';
import { createModel } from '../../core/model.ts';
import { initialize } from '../../core/init.ts';
import { TrainingRun } from '../../pipeline/run.ts';
import { createTrainer } from '../../core/trainer.ts';
import { serve, type ServeOptions, type StreamgradServer } from '../../server/server.ts';
import { samples } from '../server/helpers.ts';

/** Where the screenshots of the browser tests go (gitignored; CI keeps them as artifacts). */
export const ARTIFACTS = join(import.meta.dirname, '..', '..', 'test-artifacts');

export async function screenshot(page: Page, name: string): Promise<string> {
  await mkdir(ARTIFACTS, { recursive: true });
  const path = join(ARTIFACTS, `dashboard-${name}.png`);
  await page.screenshot({ path, fullPage: true });
  return path;
}

export const TOKEN = 'dashboard-test-token';

/** A server on `port` (0: any) serving the built dashboard, with the given runs. */
export async function startServer(runs: readonly TrainingRun[], options: ServeOptions = {}): Promise<StreamgradServer> {
  const server = await serve({ port: 0, token: TOKEN, ...options });
  for (const run of runs) server.addRun(run);
  return server;
}

export interface RunSpec {
  readonly id: string;
  readonly inputs?: number;
  readonly layers?: readonly (readonly [number, Activation])[];
  readonly seed?: number;
  readonly learningRate?: number;
  readonly paused?: boolean;
  /** Set the parameters before the run exists (so they are its initial ones). */
  readonly params?: readonly number[];
}

/** A TrainingRun on an endless generated regression stream (not started). */
export function makeRun(spec: RunSpec): TrainingRun {
  const inputs = spec.inputs ?? 3;
  const layers = spec.layers ?? [[8, 'tanh'], [1, 'linear']];
  const model = initialize(createModel({ inputSize: inputs, layers: layers.map(([units, activation]) => ({ units, activation })) }), 'auto', spec.seed ?? 1);
  if (spec.params !== undefined) model.params.set(spec.params);
  const trainer = createTrainer({ model, loss: 'mse', optimizer: { type: 'sgd', learningRate: spec.learningRate ?? 0.01 } });
  return new TrainingRun({ id: spec.id, trainer, source: samples(inputs, layers[layers.length - 1][0], spec.seed ?? 7), paused: spec.paused ?? false });
}

/** Waits until `check()` holds (polling), or throws naming `what`. */
export async function until(check: () => boolean | Promise<boolean>, what: string, timeoutMs = 15_000): Promise<void> {
  const deadline = Date.now() + timeoutMs;
  while (!(await check())) {
    if (Date.now() > deadline) throw new Error(`timed out waiting for ${what}`);
    await new Promise((resolve) => setTimeout(resolve, 50));
  }
}

/** The page's DOM as the test functions see it (the tests are typed for Node, not the DOM). */
interface CanvasLike {
  readonly width: number;
  readonly height: number;
  getContext(kind: '2d'): { getImageData(x: number, y: number, w: number, h: number): { data: ArrayLike<number> } } | null;
}
interface DocumentLike {
  querySelector(selector: string): CanvasLike | null;
}

/** RGBA of one canvas pixel (canvas pixel coordinates), or null when there is no such canvas. */
export async function pixel(page: Page, selector: string, x: number, y: number): Promise<[number, number, number, number] | null> {
  return page.evaluate(({ selector, x, y }) => {
    const canvas = (globalThis as unknown as { document: DocumentLike }).document.querySelector(selector);
    const ctx = canvas?.getContext('2d') ?? null;
    if (ctx === null) return null;
    const d = ctx.getImageData(Math.round(x), Math.round(y), 1, 1).data;
    return [d[0], d[1], d[2], d[3]] as [number, number, number, number];
  }, { selector, x, y });
}

/** Width and height (canvas pixels) of a canvas. */
export async function canvasSize(page: Page, selector: string): Promise<{ width: number; height: number } | null> {
  return page.evaluate((selector) => {
    const canvas = (globalThis as unknown as { document: DocumentLike }).document.querySelector(selector);
    return canvas === null ? null : { width: canvas.width, height: canvas.height };
  }, selector);
}

/** How many pixels of a canvas are not fully transparent (drawn at all). */
export async function paintedPixels(page: Page, selector: string): Promise<number> {
  return page.evaluate((selector) => {
    const canvas = (globalThis as unknown as { document: DocumentLike }).document.querySelector(selector);
    const ctx = canvas?.getContext('2d') ?? null;
    if (canvas === null || ctx === null) return 0;
    const d = ctx.getImageData(0, 0, canvas.width, canvas.height).data;
    let n = 0;
    for (let i = 3; i < d.length; i += 4) if (d[i] !== 0) n++;
    return n;
  }, selector);
}

/** Orange (positive on the diverging palette) or blue (negative)? */
export function hue(rgba: readonly number[] | null): 'orange' | 'blue' | 'other' {
  if (rgba === null) return 'other';
  const [r, g, b] = rgba;
  if (r > 200 && g > 90 && g < 160 && b < 60) return 'orange';
  if (b > 150 && r < 60) return 'blue';
  return 'other';
}
