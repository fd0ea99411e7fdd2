import type { RowRing } from '../ring.ts';

/** Most classes the matrix draws (a larger classifier shows its first classes and says so). */
export const MAX_CLASSES = 12;

/** Whether a run's loss makes it a classifier (the matrix applies). */
export function isClassifier(loss: string): boolean {
  return loss === 'bce' || loss === 'cross_entropy' || loss === 'perceptron';
}

/**
 * The confusion matrix of the stored prediction rows ([target…, output…, …] per row):
 * `counts[t * k + p]` rows of true class t predicted as p. One output: two classes, split at
 * 0.5 (0 for the perceptron, whose targets are ±1); several: the largest output and the
 * largest target (one-hot) are the classes.
 */
export function confusionCounts(ring: Pick<RowRing, 'length' | 'get'>, outputs: number, loss: string): { readonly k: number; readonly counts: Uint32Array; readonly rows: number } {
  const k = outputs === 1 ? 2 : outputs;
  const counts = new Uint32Array(k * k);
  const split = loss === 'perceptron' ? 0 : 0.5;
  let rows = 0;
  for (let i = 0; i < ring.length; i++) {
    let t = 0, p = 0;
    if (outputs === 1) {
      const target = ring.get(i, 0), output = ring.get(i, 1);
      if (!Number.isFinite(target) || !Number.isFinite(output)) continue;
      t = target > split ? 1 : 0;
      p = output > split ? 1 : 0;
    } else {
      let tv = -Infinity, pv = -Infinity;
      for (let c = 0; c < outputs; c++) {
        const target = ring.get(i, c), output = ring.get(i, outputs + c);
        if (target > tv) { tv = target; t = c; }
        if (output > pv) { pv = output; p = c; }
      }
      if (!Number.isFinite(tv) || !Number.isFinite(pv)) continue;
    }
    counts[t * k + p]++;
    rows++;
  }
  return { k, counts, rows };
}
