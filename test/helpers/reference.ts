import { readdirSync, readFileSync } from 'node:fs';
import { dirname, join, resolve } from 'node:path';
import { fileURLToPath } from 'node:url';
import { expect } from 'vitest';
import type { ModelDocument } from '../../pipeline/model-file.ts';
import type { Loss } from '../../pipeline/losses.ts';
import type { OptimizerConfig } from '../../pipeline/optimizers.ts';

/** A `streamgrad/reference@1` fixture (shared/reference/FORMAT.md). */
export interface Fixture {
  readonly name: string;
  readonly model: ModelDocument;
  readonly loss: Loss;
  readonly optimizer: OptimizerConfig;
  readonly batchSize: number;
  readonly samples: readonly { x: number[]; y: number[] }[];
  readonly steps: readonly {
    size: number;
    loss: number;
    outputs?: number[][];
    gradients?: { weights: number[][]; bias: number[] }[];
    model: ModelDocument;
  }[];
}

const here = dirname(fileURLToPath(import.meta.url));
/** The fixtures live in shared/ beside the checkout; STREAMGRAD_REFERENCE_DIR overrides. */
export const REFERENCE_DIR = process.env.STREAMGRAD_REFERENCE_DIR ?? resolve(here, '../../../shared/reference');

export function loadFixtures(): Fixture[] {
  const files = readdirSync(REFERENCE_DIR).filter((f) => f.endsWith('.json')).sort();
  if (files.length === 0) throw new Error(`no reference fixtures in ${REFERENCE_DIR}`);
  return files.map((f) => {
    const doc = JSON.parse(readFileSync(join(REFERENCE_DIR, f), 'utf8'));
    if (doc.format !== 'streamgrad/reference@1') throw new Error(`${f}: not a streamgrad/reference@1 file`);
    return doc as Fixture;
  });
}

/**
 * FORMAT.md's comparison: element i passes when
 * |mine_i − ref_i| ≤ tol · max(|mine_i|, |ref_i|, max_j |ref_j|).
 * Returns the worst ratio of error to allowance (≤ 1 passes).
 */
export function scaledError(mine: ArrayLike<number>, ref: ArrayLike<number>, tol: number): number {
  let scale = 0;
  for (let j = 0; j < ref.length; j++) scale = Math.max(scale, Math.abs(ref[j]));
  let worst = 0;
  for (let i = 0; i < ref.length; i++) {
    const allowed = tol * Math.max(Math.abs(mine[i]), Math.abs(ref[i]), scale);
    const err = Math.abs(mine[i] - ref[i]);
    const ratio = allowed === 0 ? (err === 0 ? 0 : Infinity) : err / allowed;
    if (!(ratio <= worst)) worst = ratio;
  }
  return worst;
}

export function expectClose(mine: ArrayLike<number>, ref: ArrayLike<number>, what: string, tol = 1e-9): void {
  expect(mine.length, `${what}: length`).toBe(ref.length);
  const worst = scaledError(mine, ref, tol);
  if (!(worst <= 1)) {
    throw new Error(`${what}: differs from the reference beyond tol ${tol} (worst error/allowance ${worst.toExponential(3)})\n mine: ${Array.from(mine).slice(0, 8).join(', ')}\n ref:  ${Array.from(ref).slice(0, 8).join(', ')}`);
  }
}

/** Compares a model's parameters to a model@1 document, array by array. */
export function expectModelClose(params: { weights: Float64Array; bias: Float64Array }[], doc: ModelDocument, what: string, tol = 1e-9): void {
  expect(params.length, `${what}: layer count`).toBe(doc.layers.length);
  doc.layers.forEach((layer, l) => {
    expectClose(params[l].weights, layer.weights.flat(), `${what} layers[${l}].weights`, tol);
    expectClose(params[l].bias, layer.bias, `${what} layers[${l}].bias`, tol);
  });
}
