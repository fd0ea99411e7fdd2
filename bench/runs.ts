import { from } from 'rxjs';
import { lossGradient, lossValue } from '../core/losses.ts';
import { backwardPass, forwardPass, loadBatch } from '../core/network.ts';
import { optimizerStep } from '../core/optimizers.ts';
import type { Sample } from '../core/sample.ts';
import { train } from '../pipeline/train.ts';
import type { Trainer } from '../core/trainer.ts';
import { ensureCapacity } from '../core/workspace.ts';

/**
 * One timed training run over samples already in memory, in the two ways the bench
 * compares. Both start from a fresh trainer and do the same arithmetic in the same
 * order, so they must end with bitwise-identical parameters.
 */
export interface RunResult {
  readonly seconds: number;
  /** Mean batch loss over the last 10% of steps: a sanity check that it learns. */
  readonly loss: number;
}

/** First step whose loss counts towards `RunResult.loss`. */
const lossFrom = (steps: number) => Math.floor(steps * 0.9);

/**
 * (a) The full RxJS pipeline: `from(samples).pipe(train(trainer, { batch }))`, i.e.
 * validate → batch → forward → loss → prequential → backward → update → StepResult,
 * timed from subscribe to complete.
 */
export function runPipeline(trainer: Trainer, samples: readonly Sample[], batch: number): Promise<RunResult> {
  const from90 = lossFrom(Math.ceil(samples.length / batch));
  return new Promise((resolve, reject) => {
    let lossSum = 0, lossCount = 0;
    const t0 = performance.now();
    from(samples).pipe(train(trainer, { batch })).subscribe({
      next(r) {
        if (r.step >= from90) { lossSum += r.loss; lossCount++; }
      },
      error: reject,
      complete() {
        resolve({ seconds: (performance.now() - t0) / 1000, loss: lossSum / lossCount });
      },
    });
  });
}

/**
 * (b) The same kernels in a plain loop, no RxJS. Per batch it does the pipeline's
 * numeric work: load the batch, forward, loss and its gradient, backward, the gradient
 * norm and finiteness guard of `backwardStep`, and the optimizer step. It skips what is
 * not arithmetic on the model: sample validation, prequential metrics, step records
 * and `StepResult`s. `batches` are prebuilt, so the loop allocates nothing.
 */
export function runBare(trainer: Trainer, batches: readonly (readonly Sample[])[]): RunResult {
  const { model, workspace: ws, kernels, optimizer, loss } = trainer;
  const last = model.layers.length - 1, m = model.outputSize;
  const outputActivation = model.layers[last].activation;
  let maxRows = 0;
  for (const b of batches) maxRows = Math.max(maxRows, b.length);
  ensureCapacity(ws, model, maxRows);
  const from90 = lossFrom(batches.length);
  let lossSum = 0, lossCount = 0;
  const t0 = performance.now();
  for (let s = 0; s < batches.length; s++) {
    const samples = batches[s], rows = samples.length;
    loadBatch(ws, model, samples);
    forwardPass(kernels, model, ws, rows);
    const batchLoss = lossValue(loss, ws.z[last], ws.a[last], ws.y, rows, m, ws.perSample);
    if (s >= from90) { lossSum += batchLoss; lossCount++; }
    if (!Number.isFinite(batchLoss)) continue;
    lossGradient(loss, outputActivation, ws.z[last], ws.a[last], ws.y, rows, m, ws.delta[last], kernels.activationBackward);
    const sumOfSquares = backwardPass(kernels, model, ws, rows) ?? kernels.sumOfSquares(ws.grads);
    if (!Number.isFinite(sumOfSquares)) continue;
    optimizerStep(kernels, optimizer, model.params, ws.grads);
  }
  return { seconds: (performance.now() - t0) / 1000, loss: lossSum / lossCount };
}

/** Splits samples into consecutive batches of `size` (the last may be smaller), as `batch(size)` does. */
export function toBatches(samples: readonly Sample[], size: number): Sample[][] {
  const batches: Sample[][] = [];
  for (let i = 0; i < samples.length; i += size) batches.push(samples.slice(i, i + size));
  return batches;
}
