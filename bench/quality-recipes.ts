import { StreamgradError } from '../core/errors.ts';
import { type InitScheme, initialize } from '../core/init.ts';
import { createModel } from '../core/model.ts';
import type { OptimizerType } from '../core/optimizers.ts';
import { backwardStep, forwardStep, lossStep, updateStep } from '../core/step.ts';
import { createTrainer } from '../core/trainer.ts';
import type { PreparedStream, QualityStream } from './quality-streams.ts';

/** How one streamgrad model is set up: what `--init`, `--optimizer` and `--lr` say. */
export interface Recipe {
  readonly init: InitScheme;
  readonly optimizer: OptimizerType;
  readonly lr: number;
}

/** The whole-stream prequential score of one run. */
export interface RunScore {
  /** Accuracy (classify) or MAE in user units (regress; Infinity once a run diverged). */
  readonly metric: number;
  /** The run stopped with SG_ERR_DIVERGED, or predicted a non-finite value. */
  readonly diverged: boolean;
  /** Steps the numeric guard skipped. */
  readonly skipped: number;
}

/**
 * Trains a fresh model with `recipe` on a prepared stream, one sample per step, one
 * pass, and scores every prediction made *before* the model learns from that sample
 * (prequential), in the user's units. The step functions are the ones the `train`
 * operator composes (`core/step.ts`), with the trainer's defaults otherwise (no
 * gradient clipping, the default backend).
 */
export function runStreamgrad(stream: QualityStream, data: PreparedStream, recipe: Recipe, seed: number): RunScore {
  const model = initialize(createModel({ inputSize: stream.x[0].length, layers: stream.layers.map((l) => ({ ...l })) }), recipe.init, seed);
  const trainer = createTrainer({ model, loss: stream.loss, optimizer: { type: recipe.optimizer, learningRate: recipe.lr } });
  let score = 0;
  let diverged = false;
  for (let i = 0; i < data.x.length; i++) {
    const step = forwardStep(trainer, [{ x: data.x[i], y: data.y[i] }]);
    const out = step.outputs;
    if (stream.task === 'classify') {
      let best = 0;
      for (let k = 1; k < out.length; k++) if (out[k] > out[best]) best = k;
      if (Number.isFinite(out[best]) && best === stream.y[i]) score++;
    } else {
      const prediction = out[0] * data.scale[i] + data.mean[i];
      score += Math.abs(prediction - stream.y[i]);
    }
    try {
      updateStep(trainer, backwardStep(trainer, lossStep(trainer, step)));
    } catch (error) {
      if (!(error instanceof StreamgradError) || error.code !== 'SG_ERR_DIVERGED') throw error;
      diverged = true; // the stream ends here for a user: no model, nothing more predicted
      break;
    }
  }
  const n = data.x.length;
  if (stream.task === 'regress' && (diverged || !Number.isFinite(score))) return { metric: Infinity, diverged: true, skipped: trainer.counters.skipped };
  return { metric: score / n, diverged, skipped: trainer.counters.skipped };
}

/** Majority class so far (classify) or persistence (regress), scored like the models. */
export function runBaselines(stream: QualityStream): { name: string; metric: number }[] {
  const n = stream.y.length;
  if (stream.task === 'classify') {
    const counts = new Array<number>(stream.classes!.length).fill(0);
    let right = 0;
    for (const y of stream.y) {
      let best = 0;
      for (let k = 1; k < counts.length; k++) if (counts[k] > counts[best]) best = k;
      if (best === y) right++;
      counts[y]++;
    }
    return [{ name: 'majority class', metric: right / n }];
  }
  let persistence = 0, mean = 0, runningMean = 0;
  stream.y.forEach((y, i) => {
    persistence += Math.abs(stream.persistence![i] - y);
    mean += Math.abs(runningMean - y);
    runningMean += (y - runningMean) / (i + 1);
  });
  return [{ name: 'persistence', metric: persistence / n }, { name: 'running mean', metric: mean / n }];
}
