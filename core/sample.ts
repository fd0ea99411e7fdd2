import { StreamgradError, typeError } from './errors.ts';
import type { Origin } from './record.ts';

/**
 * The prediction a model made for a sample when its features arrived, kept until its
 * label comes (delayed labels, `joinLabels`): the prequential metrics score *this*
 * prediction, not the one the model makes when the joined sample is finally trained (as
 * MOA's delayed prequential evaluation does). Plain arrays: it goes into checkpoints.
 */
export interface FeatureTimePrediction {
  /** The output layer's pre-activations (what the classification losses are computed from). */
  readonly z: Float64Array;
  /** The outputs (activations), in the model's units. */
  readonly a: Float64Array;
  /**
   * With a normalised target: the outputs mapped back to the target's units with the
   * statistics of that moment (undefined otherwise).
   */
  readonly user?: Float64Array;
  /** The trainer's step count when the prediction was made. */
  readonly step: number;
}

/**
 * One training example: features `x` and targets `y`. A single-output model also takes
 * a bare number for `y`. Samples are read, never mutated, so one sample object can feed
 * several pipelines at once.
 */
export interface Sample {
  readonly x: ArrayLike<number>;
  readonly y: ArrayLike<number> | number;
}

/**
 * How to read a normalised sample's target in the user's units: its target as it
 * arrived, and the mean and scale it was standardised with (z = (y − mean) / scale), so
 * that a prediction made on it maps back with the very statistics the sample saw
 * (`y = z · scale + mean`), not with statistics that have moved on since.
 */
export interface TargetUnits {
  readonly y: ArrayLike<number>;
  readonly mean: Float64Array;
  readonly scale: Float64Array;
}

/**
 * A sample as ingestion passes it on: where its record came from (`validateRecords`),
 * and, once `normalize` standardised its target, how to map it back (`units`), and with
 * delayed labels the prediction made when its features came (`prediction`). All are
 * optional: training reads only `x` and `y`.
 */
export interface TracedSample extends Sample {
  readonly origin?: Origin;
  readonly units?: TargetUnits;
  /**
   * Delayed labels (`joinLabels`): the prediction the model made when the sample's
   * features arrived, before its label. The prequential metrics score this one instead
   * of the prediction made when the sample is trained.
   */
  readonly prediction?: FeatureTimePrediction;
}

/** How many features and targets a model takes. */
export interface SampleShape {
  readonly inputs: number;
  readonly outputs: number;
}

/** A sample turned away before it could reach the weights, and why. */
export interface Rejection {
  readonly error: StreamgradError;
  /** The value as it arrived (not copied). */
  readonly sample: unknown;
}

const isNumericArray = (v: unknown): v is ArrayLike<unknown> =>
  Array.isArray(v) || (ArrayBuffer.isView(v) && !(v instanceof DataView));

function checkVector(v: unknown, field: 'x' | 'y', expected: number, scalarOk: boolean): StreamgradError | null {
  if (v === undefined) return new StreamgradError('SG_ERR_MISSING', `${field}: missing (expected ${expected} number${expected === 1 ? '' : 's'})`, field);
  if (typeof v === 'number') {
    if (!scalarOk) return new StreamgradError('SG_ERR_TYPE', `${field}: must be an array of ${expected} numbers, got a single number`, field);
    return Number.isFinite(v) ? null : new StreamgradError('SG_ERR_NONFINITE_INPUT', `${field}: ${v} is not finite`, field);
  }
  if (!isNumericArray(v)) {
    return typeError(field, `must be an array of ${expected} numbers`, v);
  }
  if (v.length !== expected) {
    return new StreamgradError('SG_ERR_ARITY', `${field}: has ${v.length} value${v.length === 1 ? '' : 's'}, the model takes ${expected}`, field);
  }
  // float arrays hold only numbers: one pass for finiteness, the loop below only to name a bad element
  if ((v instanceof Float64Array || v instanceof Float32Array) && allFinite(v)) return null;
  for (let i = 0; i < v.length; i++) {
    const e = v[i];
    if (typeof e !== 'number') {
      return typeError(`${field}[${i}]`, 'must be a number', e);
    }
    if (!Number.isFinite(e)) {
      return new StreamgradError('SG_ERR_NONFINITE_INPUT', `${field}[${i}]: ${e} is not finite`, `${field}[${i}]`);
    }
  }
  return null;
}

/**
 * Whether every element is finite, without a branch per element: x·0 is ±0 for a finite x
 * and NaN for NaN and ±Infinity, and one NaN makes the sum NaN.
 */
function allFinite(v: Float64Array | Float32Array): boolean {
  let zero = 0;
  for (let i = 0; i < v.length; i++) zero += v[i] * 0;
  return zero === 0;
}

/**
 * Checks a sample against a model's shape without coercing anything: `"1.0"`, `null`,
 * `true` are type errors, NaN and ±Infinity are non-finite, a wrong length is an arity
 * error. Returns the error (naming the field, e.g. `x[2]`), or null when the sample is fine.
 */
export function checkSample(sample: unknown, shape: SampleShape): StreamgradError | null {
  if (typeof sample !== 'object' || sample === null || Array.isArray(sample)) {
    return typeError('sample', 'must be an object {x, y}', sample);
  }
  const s = sample as { x?: unknown; y?: unknown };
  const x = s.x, y = s.y;
  if (isFiniteFloat64(x, shape.inputs) && isFiniteFloat64(y, shape.outputs)) return null;
  return checkVector(x, 'x', shape.inputs, false) ?? checkTarget(y, shape.outputs);
}

/**
 * Checks a target alone, as `checkSample` checks `y`: `outputs` finite numbers (or one number
 * for a single output). For a delayed label that comes before its features (`labelCheck`).
 *
 * @example checkTarget([1, 2], 1); // SG_ERR_ARITY: y: has 2 values, the model takes 1
 */
export function checkTarget(y: unknown, outputs: number): StreamgradError | null {
  return checkVector(y, 'y', outputs, outputs === 1);
}

/**
 * The common case of `checkVector`, alone: a Float64Array of `expected` finite numbers, which
 * `checkVector` lets through too (the same tests in the same order, so the same values pass
 * and the same throw). `checkVector`, with its messages, is too large for V8 to inline; this
 * is not: a W1 step (batch 1, ~1.7 µs) spent ~80 ns validating its sample before.
 */
function isFiniteFloat64(v: unknown, expected: number): boolean {
  return ArrayBuffer.isView(v) && v instanceof Float64Array && v.length === expected && allFinite(v);
}
