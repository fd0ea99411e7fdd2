import { Adwin, type AdwinOptions } from './adwin.ts';
import { Ddm, type DdmOptions } from './ddm.ts';
import type { DetectorKind, DetectorState, DriftDetector } from './detector.ts';
import { HddmA, type HddmAOptions } from './hddm-a.ts';
import { Kswin, type KswinOptions } from './kswin.ts';
import { PageHinkley, type PageHinkleyOptions } from './page-hinkley.ts';

/** A detector by name with its parameters (River's names in camelCase; every one optional). */
export type DetectorConfig =
  | ({ readonly kind: 'adwin' } & AdwinOptions)
  | ({ readonly kind: 'page-hinkley' } & PageHinkleyOptions)
  | ({ readonly kind: 'ddm' } & DdmOptions)
  | ({ readonly kind: 'hddm-a' } & HddmAOptions)
  | ({ readonly kind: 'kswin' } & Omit<KswinOptions, 'sampler'>);

/**
 * Makes a detector from its config, e.g. from a config file or the command line; with a
 * `state` from a checkpoint it continues where that one stopped.
 *
 * @example
 * const detector = createDetector({ kind: 'adwin', delta: 0.002 });
 */
export function createDetector(config: DetectorConfig, state?: DetectorState): DriftDetector {
  const detector = make(config);
  if (state !== undefined) detector.restore(state);
  return detector;
}

function make(config: DetectorConfig): DriftDetector {
  switch (config.kind) {
    case 'adwin': return new Adwin(config);
    case 'page-hinkley': return new PageHinkley(config);
    case 'ddm': return new Ddm(config);
    case 'hddm-a': return new HddmA(config);
    case 'kswin': return new Kswin(config);
  }
}

/** Which detectors take 0/1 errors (the others take any numbers, e.g. a loss). */
export const BINARY_DETECTORS: ReadonlySet<DetectorKind> = new Set(['ddm', 'hddm-a']);
