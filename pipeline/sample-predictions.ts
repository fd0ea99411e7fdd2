import { argmax, isCorrect } from '../core/evaluation.ts';
import type { TracedSample } from '../core/sample.ts';
import type { GradientStep } from '../core/step.ts';
import { toUserUnits, userLoss } from '../core/target-units.ts';
import type { Trainer } from '../core/trainer.ts';
import { lossValue } from '../core/losses.ts';

/** What a per-sample record is labelled with: the model's name and, for a classifier, its class names in output order. */
export interface PredictionLabels {
  readonly model: string;
  readonly classes?: readonly string[];
}

/**
 * One sample's prediction, as it was made *before* the model learned from it
 * (prequential; with delayed labels, when its features came), with what it should have been. A regression's prediction and target
 * are in the target's own units (mapped back per sample when the target is normalised);
 * a classifier's are class names (or indices without names), with the probabilities.
 */
export interface SamplePrediction {
  readonly model: string;
  /** 0-based index of the sample among all the trainer has seen. */
  readonly sample: number;
  /** The trainer's step count after the step that scored it (1 for the first step, as in progress events). */
  readonly step: number;
  /** Where its record came from, when known: 1-based line, or message id and topic. */
  readonly line?: number;
  readonly messageId?: string;
  readonly topic?: string;
  readonly prediction: number[] | string | number;
  readonly target: number[] | string | number;
  /** Per-sample loss (for mse with a normalised target, in the target's units², as the metrics). */
  readonly loss: number;
  /** Classifiers: whether `prediction` was right. */
  readonly correct?: boolean;
  /** Softmax classifiers: the probability of each class (by name when named); sigmoid: the outputs. */
  readonly probabilities?: Record<string, number> | number[];
  /** False when the step was skipped (non-finite loss or gradient): it was scored but not learned from. */
  readonly learned: boolean;
}

/**
 * The per-sample predictions of one scored step (`TrainOptions.onStep`). Pure: reads
 * the step's views and the samples, allocates only the returned records.
 *
 * @example
 * run = new TrainingRun({ ..., onStep: (step) => { for (const p of samplePredictions(step, trainer, { model: 'mlp' })) out.write(`${JSON.stringify(p)}\n`); } });
 */
export function samplePredictions(step: GradientStep, trainer: Trainer, labels: PredictionLabels): SamplePrediction[] {
  const m = trainer.model.outputSize;
  const first = trainer.counters.samples - step.size;
  const out: SamplePrediction[] = [];
  const user = new Float64Array(m);
  const one = new Float64Array(1);
  const learned = step.skip === null;
  for (let r = 0; r < step.size; r++) {
    const o = r * m;
    const sample = step.samples[r] as TracedSample;
    const origin = sample.origin;
    const where = {
      ...(origin?.line !== undefined && { line: origin.line }),
      ...(origin?.messageId !== undefined && { messageId: origin.messageId }),
      ...(origin?.topic !== undefined && { topic: origin.topic }),
    };
    const head = { model: labels.model, sample: first + r, step: step.index + 1, ...where };
    // delayed labels: the prediction made when the sample's features came, as the metrics score it
    const early = sample.prediction;
    const outs = early === undefined ? step.outputs : early.a;
    const oo = early === undefined ? o : 0;
    const targetRow = step.targets.subarray(o, o + m);
    let sampleLoss = step.lossPerSample[r];
    if (early !== undefined) {
      lossValue(trainer.loss, early.z, early.a, targetRow, 1, m, one);
      sampleLoss = one[0];
    }
    const row = Array.from(outs.subarray(oo, oo + m));
    const target = Array.from(targetRow);
    let result: SamplePrediction;
    if (trainer.loss === 'mse') {
      const units = sample.units;
      if (units === undefined) {
        result = { ...head, prediction: row, target, loss: sampleLoss, learned };
      } else {
        if (early?.user !== undefined) user.set(early.user);
        else toUserUnits(step.outputs, o, m, units, user);
        result = { ...head, prediction: Array.from(user), target: Array.from(units.y), loss: userLoss('mse', user, units.y, m), learned };
      }
    } else {
      const correct = early === undefined ? isCorrect(trainer.loss, step.outputs, step.targets, o, m) : isCorrect(trainer.loss, early.a, targetRow, 0, m);
      const name = (k: number): string | number => labels.classes?.[k] ?? k;
      if (trainer.loss === 'cross_entropy') {
        const probabilities = labels.classes === undefined || labels.classes.length !== m ? row : Object.fromEntries(labels.classes.map((c, k) => [c, row[k]]));
        result = { ...head, prediction: name(argmax(outs, oo, m)), target: name(argmax(step.targets, o, m)), loss: sampleLoss, correct, probabilities, learned };
      } else if (trainer.loss === 'bce' && m === 1) {
        result = { ...head, prediction: row[0] >= 0.5 ? 1 : 0, target: target[0], loss: sampleLoss, correct, probabilities: row, learned };
      } else {
        // the perceptron's sign, or several independent sigmoid outputs
        const classes = trainer.loss === 'bce' ? row.map((p) => (p >= 0.5 ? 1 : 0)) : row;
        result = { ...head, prediction: m === 1 ? classes[0] : classes, target: m === 1 ? target[0] : target, loss: sampleLoss, correct, ...(trainer.loss === 'bce' && { probabilities: row }), learned };
      }
    }
    out.push(result);
  }
  return out;
}
