import type uPlot from 'uplot';
import type { RunInfo } from '../../../../server/protocol.ts';
import { h } from '../dom.ts';
import { FINE_BINS } from '../stats.ts';
import type { LayerDistribution } from '../store.ts';
import { CurveChart } from './curve-chart.ts';

const BAND_SERIES = [
  { label: 'min', color: 'rgba(0,0,0,0)' },
  { label: 'p5', color: 'rgba(0,0,0,0)' },
  { label: 'p25', color: 'rgba(0,0,0,0)' },
  { label: 'median', color: '#333', width: 1.5 },
  { label: 'p75', color: 'rgba(0,0,0,0)' },
  { label: 'p95', color: 'rgba(0,0,0,0)' },
  { label: 'max', color: 'rgba(0,0,0,0)' },
];

/**
 * Weight and gradient distributions of every layer over time (TensorBoard's
 * "distributions"): per snapshot, the min–max, 5–95 % and 25–75 % ranges as nested
 * bands and the median as a line, against the step. Summaries are O(n) histograms
 * (stats.ts), one column per received frame, in fixed-size thinning buffers.
 */
export class DistributionCharts {
  readonly element: HTMLElement;
  private charts: { weights: CurveChart; grads: CurveChart; now: CurveChart }[] = [];
  private key = '';

  constructor() {
    this.element = h('div', { class: 'distributions' });
  }

  draw(info: RunInfo | null, weights: readonly LayerDistribution[], grads: readonly LayerDistribution[], marker: number | null): void {
    this.rebuild(info);
    this.charts.forEach((pair, l) => {
      const w = weights[l], g = grads[l];
      if (w !== undefined) pair.weights.setData(bandData(w));
      if (w !== undefined) pair.now.setData(histogramData(w));
      if (g !== undefined) pair.grads.setData(bandData(g));
      pair.weights.setMarker(marker);
      pair.grads.setMarker(marker);
    });
  }

  private rebuild(info: RunInfo | null): void {
    const key = info === null ? '' : `${info.id}|${info.topology.inputSize}|${info.topology.layers.map((l) => l.units).join(',')}`;
    if (key === this.key) return;
    this.key = key;
    for (const pair of this.charts) {
      pair.weights.destroy();
      pair.grads.destroy();
      pair.now.destroy();
    }
    this.charts = [];
    this.element.replaceChildren();
    if (info === null) return;
    let inputs = info.topology.inputSize;
    info.topology.layers.forEach((layer, l) => {
      const make = (what: string, fill: string) => {
        const chart = new CurveChart({
          title: `layer ${l + 1} ${what}`,
          xLabel: 'step',
          yLabel: what,
          height: 150,
          legend: false,
          bands: [
            { series: [7, 1], fill: `${fill}33` },
            { series: [6, 2], fill: `${fill}66` },
            { series: [5, 3], fill: `${fill}b3` },
          ],
        });
        chart.configure(BAND_SERIES);
        return chart;
      };
      const now = new CurveChart({ title: `layer ${l + 1} weights now`, xLabel: 'weight', yLabel: 'count', height: 150, legend: false });
      now.configure([{ label: 'weights', color: '#3b6fb6', bars: true }]);
      const pair = { weights: make('weights', '#3b6fb6'), grads: make('gradients', '#c2570c'), now };
      this.charts.push(pair);
      this.element.append(h('div', { class: 'dist-row' },
        h('div', { class: 'dist-label' }, `layer ${l + 1}`, h('br'), `${inputs}→${layer.units} ${layer.activation}`),
        pair.weights.element, pair.grads.element, now.element));
      inputs = layer.units;
    });
  }
}

/** Bins of the latest histogram shown as bars. */
const BARS = 48;

/** The latest weights' histogram: BARS bins over [min, max] (from the summary's fine bins). */
function histogramData(d: LayerDistribution): uPlot.AlignedData {
  const s = d.latest;
  if (s.count === 0) return [[], []];
  const width = (s.max - s.min) / BARS;
  const xs: number[] = [], counts: number[] = [];
  for (let b = 0; b < BARS; b++) {
    xs.push(s.min + (b + 0.5) * width);
    counts.push(0);
  }
  for (let f = 0; f < FINE_BINS; f++) counts[Math.min(BARS - 1, Math.floor((f * BARS) / FINE_BINS))] += s.bins[f];
  if (!(width > 0)) return [[s.min], [s.count]];
  return [xs, counts];
}

function bandData(d: LayerDistribution): uPlot.AlignedData {
  const s = d.series;
  return [s.column(0), s.column(1), s.column(2), s.column(3), s.column(4), s.column(5), s.column(6), s.column(7)] as unknown as uPlot.AlignedData;
}
