import type uPlot from 'uplot';
import type { RunStore } from '../store.ts';
import { CurveChart } from './curve-chart.ts';

/**
 * Prediction against target for the run's recent samples (the `predictions` channel):
 * each point is one sample's output (before the model learned from it) over its target;
 * on the dashed diagonal the model is exact. Every output of the model is pooled.
 */
export class PredictionView {
  readonly chart: CurveChart;
  private key = '';

  constructor() {
    this.chart = new CurveChart({ title: 'prediction vs target (recent samples)', xLabel: 'target', yLabel: 'prediction', height: 260 });
  }

  get element(): HTMLElement {
    return this.chart.element;
  }

  draw(run: RunStore | null): void {
    const key = run === null ? '' : `${run.info.id}|${run.color}`;
    if (key !== this.key) {
      this.key = key;
      this.chart.configure([
        { label: 'samples', color: run?.color ?? '#333', points: true },
        { label: 'exact', color: '#999', dash: [5, 4], width: 1 },
      ]);
    }
    this.chart.setData(run === null ? [[], [], []] : scatterData(run));
  }
}

/** [target (ascending), prediction, diagonal] over all outputs of the stored rows. */
export function scatterData(run: RunStore): uPlot.AlignedData {
  const ring = run.predictions;
  const m = (ring.width - 2) / 2;
  const points: [number, number][] = [];
  for (let i = 0; i < ring.length; i++) {
    for (let k = 0; k < m; k++) {
      const t = ring.get(i, k), p = ring.get(i, m + k);
      if (Number.isFinite(t) && Number.isFinite(p)) points.push([t, p]);
    }
  }
  points.sort((a, b) => a[0] - b[0]);
  return [points.map((p) => p[0]), points.map((p) => p[1]), points.map((p) => p[0])];
}
