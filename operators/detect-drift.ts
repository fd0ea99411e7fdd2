import { defer, filter, map, type OperatorFunction } from 'rxjs';
import type { DetectorKind, DriftDetector, DriftLevel } from '../core/drift/detector.ts';
import { createDetector, type DetectorConfig } from '../core/drift/detectors.ts';

/** A warning or a drift, at the position of the value that raised it. */
export interface DriftEvent {
  readonly type: 'warning' | 'drift';
  readonly detector: DetectorKind;
  /** 0-based position of the value in the stream the operator saw (skipped values count). */
  readonly index: number;
  /** The value that raised it. */
  readonly value: number;
  /** The statistics the detector's test compared (see each detector's `evidence()`). */
  readonly evidence: Readonly<Record<string, number>>;
}

/**
 * Watches a stream of numbers — the per-sample prequential loss, or 0/1 errors of a
 * classifier — with a drift detector and emits a `warning` when the detector enters its
 * warning zone and a `drift` when it detects a change (a warning is emitted once per
 * warning zone, not for every value in it). Values that are not finite numbers (a loss
 * of a skipped step) are not fed to the detector; they still count in `index`.
 *
 * Given a config, each subscription makes its own detector; given a detector, all
 * subscriptions share it, and its owner can checkpoint it (`state()`) and restore it.
 *
 * @example
 * losses$.pipe(detectDrift({ kind: 'adwin' })).subscribe((e) => console.log(e.type, 'at', e.index));
 *
 * @param detector the detector, or the config of one per subscription
 * @param start the index of the first value (e.g. the samples seen before a resume)
 */
export function detectDrift(detector: DriftDetector | DetectorConfig, start = 0): OperatorFunction<number, DriftEvent> {
  return (source) =>
    defer(() => {
      const d = 'update' in detector ? detector : createDetector(detector);
      let index = start - 1;
      let previous: DriftLevel = 'none';
      return source.pipe(
        map((value): DriftEvent | null => {
          index += 1;
          if (!Number.isFinite(value)) return null;
          const level = d.update(value);
          const entered = level === 'drift' || (level === 'warning' && previous !== 'warning');
          previous = level;
          return entered ? { type: level as 'warning' | 'drift', detector: d.kind, index, value, evidence: d.evidence() } : null;
        }),
        filter((event): event is DriftEvent => event !== null),
      );
    });
}
