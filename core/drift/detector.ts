import { StreamgradError } from '../errors.ts';

/**
 * What a drift detector says after a value: nothing, a warning (the change may be
 * starting), or a drift (it has happened).
 */
export type DriftLevel = 'none' | 'warning' | 'drift';

/** The detectors streamgrad has, each in its own file beside this one. */
export const DETECTOR_KINDS = ['adwin', 'page-hinkley', 'ddm', 'hddm-a', 'kswin'] as const;
/** The name of a drift detector: one of `DETECTOR_KINDS`. */
export type DetectorKind = (typeof DETECTOR_KINDS)[number];

/**
 * A change detector over a stream of numbers: the per-sample prequential loss, or 0/1
 * errors of a classifier (1 = wrong). It follows River's `DriftDetector`: feed it values
 * one at a time; after a drift it starts over by itself on the next value.
 *
 * Its whole learned state is `state()`, plain JSON, so a checkpoint carries it and
 * `restore` continues bit for bit.
 */
export interface DriftDetector {
  readonly kind: DetectorKind;
  /** Takes one value; says whether this value raised a warning or a drift. */
  update(x: number): DriftLevel;
  /**
   * Why it says what it says: the statistics its test compared (for events and logs), and
   * `direction`: at a drift, +1 when the values went up (a loss or error rate getting
   * worse), −1 when they went down (a model that learned), 0 otherwise.
   */
  evidence(): Readonly<Record<string, number>>;
  /** Its learned state, as JSON. */
  state(): DetectorState;
  /** Continues from a state `state()` gave. */
  restore(state: DetectorState): void;
  /** Forgets everything it has seen. */
  reset(): void;
}

/** A detector's learned state: its kind and plain JSON. */
export interface DetectorState {
  readonly kind: DetectorKind;
  readonly [key: string]: unknown;
}

/** Throws a typed config error unless `ok` (one line, naming the parameter). */
export function requireParameter(ok: boolean, detector: DetectorKind, name: string, what: string, got: unknown): void {
  if (!ok) throw new StreamgradError('SG_ERR_CONFIG', `${detector}: ${name} ${what}, got ${String(got)}`, name);
}

/** Throws unless `x` is a finite number (and within [0, 1] for detectors of 0/1 errors). */
export function requireValue(x: number, detector: DetectorKind, unitInterval = false): void {
  if (!Number.isFinite(x)) throw new StreamgradError('SG_ERR_NONFINITE_INPUT', `${detector}: got ${x}, a detector takes finite numbers`, 'x');
  if (unitInterval && (x < 0 || x > 1)) throw new StreamgradError('SG_ERR_CONFIG', `${detector}: got ${x}, it takes error indicators in [0, 1] (1 = wrong)`, 'x');
}

/** Checks that a restored state is of the right kind, naming what was found. */
export function requireState(state: DetectorState, kind: DetectorKind): void {
  if (state?.kind !== kind) throw new StreamgradError('SG_ERR_CHECKPOINT', `a ${kind} detector cannot restore the state of ${String(state?.kind)}`, 'detector.kind');
}

/** A running mean (River's `stats.Mean`): count and mean, updated incrementally. */
export interface Mean {
  n: number;
  mean: number;
}

export function updateMean(m: Mean, x: number): void {
  m.n += 1;
  m.mean += (x - m.mean) / m.n;
}
