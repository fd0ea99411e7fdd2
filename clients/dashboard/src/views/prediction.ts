import type uPlot from 'uplot';
import type { DecodedFrame } from '../../../../server/snapshot-frame.ts';
import { formatCount, h, setText } from '../dom.ts';
import type { LocalModel } from '../engine/local-model.ts';
import type { RunStore } from '../store.ts';
import { ConfusionView } from './confusion.ts';
import { CurveChart } from './curve-chart.ts';

/**
 * Prediction against target for the run's recent samples (the `predictions` channel):
 * each point is one sample's output (before the model learned from it) over its target;
 * on the dashed diagonal the model is exact. Every output of the model is pooled. With a
 * step pinned on the timeline, the same samples go through the pinned weights instead (the
 * engine's forward pass, in the page), so the view shows what the model predicted then.
 * For classifiers a live confusion matrix sits beside it.
 */
export class PredictionView {
  readonly chart: CurveChart;
  readonly element: HTMLElement;
  private readonly caption: HTMLElement;
  private readonly confusion = new ConfusionView();
  private key = '';
  private target = '';

  constructor(private readonly model: LocalModel) {
    this.chart = new CurveChart({ title: 'prediction vs target (recent samples)', xLabel: 'target', yLabel: 'prediction', height: 240 });
    this.caption = h('div', { class: 'note prediction-caption' });
    this.element = h('div', { class: 'prediction' }, this.chart.element, this.caption, this.confusion.element);
  }

  /** Draws the run's recent samples against the live outputs, or against `pinned` weights' outputs. */
  draw(run: RunStore | null, pinned: { readonly step: number; readonly frame: DecodedFrame | null } | null = null): void {
    const key = run === null ? '' : `${run.info.id}|${run.color}|${this.target}`;
    if (key !== this.key) {
      this.key = key;
      this.chart.configure([
        { label: 'samples', color: run?.color ?? '#333', points: true },
        { label: 'exact', color: '#999', dash: [5, 4], width: 1 },
      ], { xLabel: this.target === '' ? 'target' : `target: ${this.target}`, yLabel: this.target === '' ? 'prediction' : `predicted ${this.target}` });
      this.element.dataset.target = this.target;
    }
    if (run === null) {
      this.chart.setData([[], [], []]);
      this.confusion.draw(null, 1, '');
      setText(this.caption, '');
      return;
    }
    const outputs = pinned === null || pinned.frame === null ? null : this.pinnedOutputs(run, pinned.frame);
    this.element.dataset.weights = pinned === null ? 'live' : outputs === null ? 'loading' : String(pinned.step);
    setText(this.caption, pinned === null ? 'each sample’s prediction before the model learned from it'
      : outputs === null ? `step ${formatCount(pinned.step)}: ${pinned.frame === null ? 'loading its weights…' : 'these inputs cannot be replayed (more than 16)'}`
        : `the same samples through the weights of step ${formatCount(pinned.step)}`);
    const data = scatterData(run, outputs);
    this.chart.setData(data);
    // what is drawn, in the units it is drawn in (the user's), for a glance from outside
    this.element.dataset.targets = range(data[0] as number[]);
    this.element.dataset.outputs = range(data[1] as number[]);
    this.confusion.draw(outputs === null ? run.predictions : withOutputs(run, outputs), run.outputSize, run.info.loss);
  }

  /** The target's name and unit (the experiment's `target`), for the axes; '' when unknown. */
  setTarget(target: string): void {
    this.target = target;
  }

  /** The stored rows' outputs (rows × outputSize) under `frame`'s weights, or null when they cannot be computed. */
  private pinnedOutputs(run: RunStore, frame: DecodedFrame): Float64Array | null {
    const n = run.info.topology.inputSize, rows = run.rowInputs.length;
    if (rows === 0 || n > run.rowInputs.width || !this.model.load(run.info, frame)) return null;
    const inputs = new Float64Array(rows * n);
    for (let i = 0; i < rows; i++) {
      for (let k = 0; k < n; k++) {
        const v = run.rowInputs.get(i, k);
        if (!Number.isFinite(v)) return null;
        inputs[i * n + k] = v;
      }
    }
    const m = this.model.outputSize;
    const out = new Float64Array(rows * m);
    if (!this.model.evaluate(inputs, rows, out)) return null;
    // the model's standardised outputs, in the user's units as the server maps its rows
    if (run.rowUnits.width === 2 * m) {
      for (let i = 0; i < rows; i++) for (let k = 0; k < m; k++) out[i * m + k] = out[i * m + k] * run.rowUnits.get(i, m + k) + run.rowUnits.get(i, k);
    }
    return out;
  }
}

/** The run's prediction rows with `outputs` in place of the live ones (for the confusion matrix). */
function withOutputs(run: RunStore, outputs: Float64Array) {
  const ring = run.predictions, m = run.outputSize;
  return {
    length: ring.length,
    get: (i: number, k: number) => (k >= m && k < 2 * m ? outputs[i * m + (k - m)] : ring.get(i, k)),
  };
}

/** [target (ascending), prediction, diagonal] over all outputs of the stored rows (`outputs`: replace the predictions). */
export function scatterData(run: RunStore, outputs: Float64Array | null = null): uPlot.AlignedData {
  const ring = run.predictions;
  const m = run.outputSize;
  const points: [number, number][] = [];
  for (let i = 0; i < ring.length; i++) {
    for (let k = 0; k < m; k++) {
      const t = ring.get(i, k), p = outputs === null ? ring.get(i, m + k) : outputs[i * m + k];
      if (Number.isFinite(t) && Number.isFinite(p)) points.push([t, p]);
    }
  }
  points.sort((a, b) => a[0] - b[0]);
  return [points.map((p) => p[0]), points.map((p) => p[1]), points.map((p) => p[0])];
}

/** `min max` of finite values (two numbers to 4 significant digits), '' when there are none. */
function range(values: readonly number[]): string {
  let lo = Infinity, hi = -Infinity;
  for (const v of values) if (Number.isFinite(v)) (lo = Math.min(lo, v)), (hi = Math.max(hi, v));
  return lo > hi ? '' : `${Number(lo.toPrecision(4))} ${Number(hi.toPrecision(4))}`;
}
