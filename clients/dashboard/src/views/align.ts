/**
 * Joins several series (each with its own ascending x) into one table with a shared x
 * column, as uPlot's aligned data needs: a merge of sorted arrays, O(total), with null
 * where a series has no point at an x.
 */
export interface XY {
  readonly x: ArrayLike<number>;
  readonly y: ArrayLike<number>;
}

export function alignSeries(series: readonly XY[], transform: (y: number) => number | null = finiteOrNull): [number[], ...(number | null)[][]] {
  const xs: number[] = [];
  const ys: (number | null)[][] = series.map(() => []);
  const at = series.map(() => 0);
  for (;;) {
    let next = Infinity;
    for (let s = 0; s < series.length; s++) {
      const i = at[s];
      if (i < series[s].x.length && series[s].x[i] < next) next = series[s].x[i];
    }
    if (next === Infinity) break;
    xs.push(next);
    for (let s = 0; s < series.length; s++) {
      const { x, y } = series[s];
      let value: number | null = null;
      // equal x values in one series (a repeated step): the last one wins
      while (at[s] < x.length && x[at[s]] === next) {
        value = transform(y[at[s]]);
        at[s]++;
      }
      // skip non-ascending stragglers rather than loop forever
      while (at[s] < x.length && !(x[at[s]] > next) && x[at[s]] !== next) at[s]++;
      ys[s].push(value);
    }
  }
  return [xs, ...ys];
}

export function finiteOrNull(v: number): number | null {
  return Number.isFinite(v) ? v : null;
}

/** For a log scale: only positive finite values. */
export function positiveOrNull(v: number): number | null {
  return Number.isFinite(v) && v > 0 ? v : null;
}
