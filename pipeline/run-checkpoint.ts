import { type Checkpoint, encodeCheckpoint, restoreCheckpoint } from './checkpoint.ts';
import type { AdaptationState, DriftAdaptation } from './drift-adaptation.ts';
import { StreamgradError } from '../core/errors.ts';
import { PrequentialEvaluator } from '../core/evaluation.ts';
import type { TrainingRun } from './run.ts';
import type { Trainer } from '../core/trainer.ts';

/**
 * A training run's state in a checkpoint, and back: the trainer (parameters, optimizer
 * moments and step, counters, learning rate), the rolling metrics' windows, the clipping
 * threshold and the source offset, plus whatever the caller adds (normaliser and
 * imputation statistics, dead-letter file length...). A run resumed from it over the
 * rest of the source ends bit for bit where the uninterrupted run ends.
 */
export interface RunCheckpointExtras {
  /** Plain-JSON state of the stages around the run, by name. */
  readonly sections?: Readonly<Record<string, unknown>>;
  /** Float64 state to keep bit for bit, by name. */
  readonly arrays?: Readonly<Record<string, Float64Array>>;
}

const METRICS = 'metrics.';

/** Encodes `run` as it is now; call it from a `Checkpointer`, which runs at a step boundary. */
export function encodeRunCheckpoint(run: TrainingRun, extras: RunCheckpointExtras = {}): Uint8Array {
  const arrays: Record<string, Float64Array> = {};
  for (const [name, state] of Object.entries(run.metrics.state())) arrays[METRICS + name] = state;
  return encodeCheckpoint({
    trainer: run.trainer,
    sourceOffset: run.sourceOffset,
    sections: { ...extras.sections, run: { id: run.id, clipNorm: run.trainer.clipNorm, window: run.metrics.window }, ...(run.drift !== null && { drift: run.drift.state() }) },
    arrays: { ...extras.arrays, ...arrays },
  });
}

/** What a resumed `TrainingRun` is made with: pass both into its options. */
export interface ResumePoint {
  /** `RunOptions.sourceOffset`: the records to skip in the source. */
  readonly sourceOffset: number;
  /** `RunOptions.train.window`: the rolling metrics, as they were. */
  readonly window: PrequentialEvaluator;
}

/**
 * Puts a run checkpoint's state into `trainer` (same topology, loss and optimizer type,
 * else `SG_ERR_CHECKPOINT` naming the mismatch and nothing changes) and returns where the
 * run continues. `window` is the metrics window the new run asks for: it must be the
 * one the checkpoint was written with, so that the metrics continue exactly. A run that
 * detected drift continues its detector, boost or challenger in `drift` (made with the
 * same config); a checkpoint with drift state and no `drift` given, or the reverse, is
 * refused.
 */
export function restoreRun(checkpoint: Checkpoint, trainer: Trainer, window = 1000, drift?: DriftAdaptation): ResumePoint {
  const saved = checkpoint.header.sections.run as { clipNorm?: unknown; window?: unknown } | undefined;
  if (saved?.window !== window) {
    throw new StreamgradError('SG_ERR_CHECKPOINT', `metrics window ${window} does not match the checkpoint's ${String(saved?.window)}`, 'window');
  }
  const evaluator = new PrequentialEvaluator(trainer.loss, window);
  const metrics: Record<string, Float64Array> = {};
  for (const [name, array] of checkpoint.arrays) if (name.startsWith(METRICS)) metrics[name.slice(METRICS.length)] = array;
  try {
    evaluator.restore(metrics);
  } catch (error) {
    throw new StreamgradError('SG_ERR_CHECKPOINT', (error as Error).message, 'metrics', { cause: error });
  }
  const driftState = checkpoint.header.sections.drift as AdaptationState | undefined;
  if ((driftState === undefined) !== (drift === undefined)) {
    throw new StreamgradError('SG_ERR_CHECKPOINT', driftState === undefined ? 'the checkpoint has no drift detection state, but the run detects drift' : 'the checkpoint has drift detection state, but the run does not detect drift', 'drift');
  }
  restoreCheckpoint(trainer, checkpoint);
  if (drift !== undefined) {
    try {
      drift.restore(driftState!);
    } catch (error) {
      throw new StreamgradError('SG_ERR_CHECKPOINT', `drift: ${(error as Error).message}`, 'drift', { cause: error });
    }
  }
  if (saved.clipNorm === null || typeof saved.clipNorm === 'number') trainer.clipNorm = saved.clipNorm;
  return { sourceOffset: checkpoint.header.sourceOffset, window: evaluator };
}
