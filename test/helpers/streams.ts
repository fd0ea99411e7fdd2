import { createHash } from 'node:crypto';
import { Observable, Subscription, type SchedulerAction, type SchedulerLike } from 'rxjs';
import { expect } from 'vitest';
import type { Activation } from '../../core/activations.ts';
import { StreamgradError, type ErrorCode } from '../../core/errors.ts';
import { initialize } from '../../core/init.ts';
import type { Kernels } from '../../core/kernels.ts';
import { jsKernels } from '../../core/kernels-js.ts';
import type { Loss } from '../../core/losses.ts';
import { createModel, type Model } from '../../core/model.ts';
import { forwardPass } from '../../core/network.ts';
import type { OptimizerConfig } from '../../core/optimizers.ts';
import { Rng } from '../../core/rng.ts';
import { createTrainer, type Trainer } from '../../core/trainer.ts';
import { createWorkspace } from '../../core/workspace.ts';
import { type ModelArtifact, preprocessingFromJSON } from '../../pipeline/model-artifact.ts';

/** SHA-256 of exactly the bytes a typed array views (RELIABILITY's "W" measure). */
export function hashOf(a: Float64Array): string {
  return createHash('sha256').update(new Uint8Array(a.buffer, a.byteOffset, a.byteLength)).digest('hex');
}

/** SHA-256 of a model's parameter vector. */
export const weightsHash = (model: Model): string => hashOf(model.params);

export const allFinite = (a: ArrayLike<number>): boolean => Array.prototype.every.call(a, Number.isFinite as (v: unknown) => boolean);

/** A small seeded MLP: `inputSize` inputs, then `units:activation` per layer. */
export function seededModel(inputSize: number, layers: readonly (readonly [number, Activation])[], seed = 1): Model {
  return initialize(createModel({ inputSize, layers: layers.map(([units, activation]) => ({ units, activation })) }), 'auto', seed);
}

/**
 * A small classifier with its preprocessing (2 → 5 tanh → 3 softmax; features a, b; classes
 * fog, rain, sun; `a` imputed by its mean, `b` required; normalised): what the export tests
 * hold ONNX and TF.js against.
 */
export function classifierArtifact(): ModelArtifact {
  const model = seededModel(2, [[5, 'tanh'], [3, 'softmax']], 4);
  const preprocessing = preprocessingFromJSON({
    version: 1, features: ['a', 'b'], targets: ['kind'], classes: ['fog', 'rain', 'sun'], missing: ['mean', 'reject'],
    imputation: { seen: [10, 10], mean: [0.5, -1], last: [0, 0] },
    normalizer: { warmup: 2, clip: 10, x: { count: 10, mean: [0.5, -1], m2: [10, 40] }, y: null },
  }, model);
  return { model, preprocessing };
}

export interface TinyTrainerOptions {
  readonly seed?: number;
  readonly inputs?: number;
  readonly layers?: readonly (readonly [number, Activation])[];
  readonly loss?: Loss;
  readonly optimizer?: OptimizerConfig;
  readonly clipNorm?: number;
  readonly maxConsecutiveSkips?: number;
  readonly kernels?: Kernels;
}

/** A trainer on a tiny seeded regression net (3 → 4 tanh → 1 linear, mse, SGD 0.05) unless told otherwise. */
export function tinyTrainer(o: TinyTrainerOptions = {}): Trainer {
  const model = seededModel(o.inputs ?? 3, o.layers ?? [[4, 'tanh'], [1, 'linear']], o.seed ?? 1);
  return createTrainer({
    model,
    loss: o.loss ?? 'mse',
    optimizer: o.optimizer ?? { type: 'sgd', learningRate: 0.05 },
    ...(o.clipNorm !== undefined ? { clipNorm: o.clipNorm } : {}),
    ...(o.maxConsecutiveSkips !== undefined ? { maxConsecutiveSkips: o.maxConsecutiveSkips } : {}),
    ...(o.kernels !== undefined ? { kernels: o.kernels } : {}),
  });
}

/** Deterministic regression samples: x ∈ [-1, 1)^inputs, y = a fixed linear map of x plus a sine. */
export function regressionSamples(count: number, inputs = 3, outputs = 1, seed = 7): { x: number[]; y: number[] }[] {
  const rng = new Rng(seed);
  const out: { x: number[]; y: number[] }[] = [];
  for (let i = 0; i < count; i++) {
    const x = Array.from({ length: inputs }, () => rng.uniform(-1, 1));
    const y = Array.from({ length: outputs }, (_, k) => x.reduce((s, v, j) => s + v * ((j + k) % 3 - 1 + 0.5), 0) + 0.3 * Math.sin(3 * x[0]));
    out.push({ x, y });
  }
  return out;
}

/** The network's outputs (rows × outputSize) for `xs`, computed outside any pipeline. */
export function outputsOf(model: Model, xs: readonly ArrayLike<number>[], kernels: Kernels = jsKernels): Float64Array {
  const ws = createWorkspace(model, Math.max(1, xs.length));
  const n = model.inputSize;
  xs.forEach((x, r) => { for (let k = 0; k < n; k++) ws.x[r * n + k] = x[k]; });
  forwardPass(kernels, model, ws, xs.length);
  return ws.a[model.layers.length - 1].slice(0, xs.length * model.outputSize);
}

/** Everything a finite stream did: its values, its error (if any), whether it completed. */
export interface Outcome<T> {
  readonly values: T[];
  readonly error: unknown;
  readonly completed: boolean;
}

/** Subscribes and waits for the stream to end (or for `settle` when it never does). */
export function collect<T>(source: Observable<T>): Promise<Outcome<T>> {
  return new Promise((resolve) => {
    const values: T[] = [];
    source.subscribe({
      next: (v) => values.push(v),
      error: (error: unknown) => resolve({ values, error, completed: false }),
      complete: () => resolve({ values, error: undefined, completed: true }),
    });
  });
}

/** Subscribes synchronously and returns what a synchronous stream did. */
export function collectSync<T>(source: Observable<T>): Outcome<T> {
  const values: T[] = [];
  let error: unknown, completed = false, ended = false;
  source.subscribe({
    next: (v) => values.push(v),
    error: (e: unknown) => { error = e; ended = true; },
    complete: () => { completed = true; ended = true; },
  });
  if (!ended) throw new Error('collectSync: the stream did not end synchronously');
  return { values, error, completed };
}

/** Asserts `e` is a StreamgradError with this code (and field, when given). */
export function expectSgError(e: unknown, code: ErrorCode, field?: string): StreamgradError {
  expect(e).toBeInstanceOf(StreamgradError);
  const err = e as StreamgradError;
  expect(err.code).toBe(code);
  if (field !== undefined) expect(err.field).toBe(field);
  return err;
}

/** Calls `f` and returns what it threw (fails the test when it does not throw). */
export function thrown(f: () => unknown): unknown {
  try {
    f();
  } catch (e) {
    return e;
  }
  throw new Error('expected the call to throw');
}

/**
 * A hand-driven scheduler that counts what it is asked to do: how many actions were
 * scheduled, how many were cancelled before running, and which are still pending.
 * `advance(ms)` runs the due actions in time order.
 */
export class ManualScheduler {
  private time = 0;
  private seq = 0;
  readonly pending = new Set<{ at: number; seq: number; run: () => void }>();
  scheduled = 0;
  cancelled = 0;
  ran = 0;

  now(): number {
    return this.time;
  }

  schedule<T>(work: (this: SchedulerAction<T>, state?: T) => void, delay = 0, state?: T): Subscription {
    this.scheduled++;
    const subscription = new Subscription(() => {
      if (this.pending.delete(entry)) this.cancelled++;
    });
    const action = Object.assign(subscription, {
      schedule: (s?: T, d = 0) => this.schedule(work, d, s),
    }) as SchedulerAction<T>;
    const entry = { at: this.time + delay, seq: this.seq++, run: () => work.call(action, state) };
    this.pending.add(entry);
    return subscription;
  }

  advance(ms: number): void {
    const end = this.time + ms;
    for (;;) {
      let due: { at: number; seq: number; run: () => void } | null = null;
      for (const e of this.pending) if (e.at <= end && (due === null || e.at < due.at || (e.at === due.at && e.seq < due.seq))) due = e;
      if (due === null) break;
      this.pending.delete(due);
      this.time = due.at;
      this.ran++;
      due.run();
    }
    this.time = end;
  }

  get asScheduler(): SchedulerLike {
    return this as unknown as SchedulerLike;
  }
}

/** Wraps a source so that every subscribe and every finalize is counted. */
export function counted<T>(source: Observable<T>): { source: Observable<T>; subscribed: () => number; finalized: () => number } {
  let subscribed = 0, finalized = 0;
  const wrapped = new Observable<T>((subscriber) => {
    subscribed++;
    const inner = source.subscribe(subscriber);
    return () => { finalized++; inner.unsubscribe(); };
  });
  return { source: wrapped, subscribed: () => subscribed, finalized: () => finalized };
}
