import uPlot from 'uplot';
import { h } from '../dom.ts';

export interface CurveSeries {
  readonly label: string;
  readonly color: string;
  readonly width?: number;
  readonly dash?: number[];
  /** Draw points only (a scatter), no line. */
  readonly points?: boolean;
  /** Draw bars (a histogram) filled with the colour. */
  readonly bars?: boolean;
}

export interface CurveChartOptions {
  readonly title: string;
  readonly xLabel: string;
  readonly yLabel: string;
  readonly height: number;
  readonly log?: boolean;
  /** Fixed [min, max] of y (default: fit the data). */
  readonly yRange?: readonly [number, number];
  /** Bands between pairs of series (1-based series indices), e.g. quantile ranges. */
  readonly bands?: readonly { readonly series: readonly [number, number]; readonly fill: string }[];
  readonly legend?: boolean;
}

/**
 * A live line chart on uPlot: curves of one or more series against a shared x, redrawn
 * with `setData` at most once per animation frame by its owner. Drag to zoom into an x
 * range (the zoom stays while data streams in), double-click to go back to everything.
 * A vertical marker can point at one x (the scrubber's step).
 */
export class CurveChart {
  readonly element: HTMLElement;
  private readonly plotHolder: HTMLElement;
  private plot: uPlot | null = null;
  private series: readonly CurveSeries[] = [];
  private key = '';
  private zoomed = false;
  private marker: number | null = null;
  private data: uPlot.AlignedData = [[]];
  private readonly resize: ResizeObserver;

  constructor(private options: CurveChartOptions) {
    this.plotHolder = h('div', { class: 'plot' });
    this.element = h('div', { class: 'chart' }, this.plotHolder);
    this.resize = new ResizeObserver(() => this.fit());
    this.resize.observe(this.plotHolder);
    this.plotHolder.addEventListener('dblclick', () => {
      this.zoomed = false;
      if (this.plot !== null) this.plot.setData(this.data, true);
    });
  }

  /** Sets the series (by label and colour) and options; rebuilds the chart only when they changed. */
  configure(series: readonly CurveSeries[], options: Partial<CurveChartOptions> = {}): void {
    this.options = { ...this.options, ...options };
    const key = JSON.stringify([series, this.options]);
    if (key === this.key && this.plot !== null) return;
    this.key = key;
    this.series = series;
    this.rebuild();
  }

  /** New data: [x, ...one array per series]. */
  setData(data: uPlot.AlignedData): void {
    this.data = data;
    if (this.plot === null) this.rebuild();
    this.plot?.setData(data, !this.zoomed);
  }

  /** A vertical line at x (null: none). */
  setMarker(x: number | null): void {
    if (x === this.marker) return;
    this.marker = x;
    this.plot?.redraw(false, false);
  }

  destroy(): void {
    this.resize.disconnect();
    this.plot?.destroy();
    this.plot = null;
  }

  private size(): { width: number; height: number } {
    return { width: Math.max(160, Math.floor(this.plotHolder.clientWidth || 400)), height: this.options.height };
  }

  private fit(): void {
    if (this.plot === null) return;
    const { width, height } = this.size();
    if (width !== this.plot.width || height !== this.plot.height) this.plot.setSize({ width, height });
  }

  private rebuild(): void {
    this.plot?.destroy();
    this.plot = null;
    const o = this.options;
    const { width, height } = this.size();
    const opts: uPlot.Options = {
      width,
      height,
      title: o.title,
      scales: {
        x: { time: false },
        y: o.log === true ? { distr: 3, log: 10 } : o.yRange !== undefined ? { range: [o.yRange[0], o.yRange[1]] } : { auto: true },
      },
      series: [
        { label: o.xLabel, value: (_u, v) => (v === null ? '–' : formatTick(v)) },
        ...this.series.map((s): uPlot.Series => ({
          label: s.label,
          stroke: s.color,
          width: s.width ?? 1.5,
          spanGaps: true,
          ...(s.dash !== undefined && { dash: s.dash }),
          ...(s.points === true
            ? { paths: () => null, points: { show: true, size: 4, stroke: s.color, fill: s.color, width: 0 } }
            : s.bars === true
              ? { paths: BARS, fill: `${s.color}99`, points: { show: false } }
              : { points: { show: false } }),
          value: (_u, v) => (v === null ? '–' : formatTick(v)),
        })),
      ],
      bands: o.bands?.map((b) => ({ series: [b.series[0], b.series[1]], fill: b.fill })),
      axes: [
        { label: o.xLabel, labelSize: 18, size: 36, values: (_u, ticks) => ticks.map(formatTick), stroke: '#555', grid: { stroke: '#eee' }, ticks: { stroke: '#ddd' } },
        { label: o.yLabel, labelSize: 18, size: 56, values: (_u, ticks) => ticks.map(formatTick), stroke: '#555', grid: { stroke: '#eee' }, ticks: { stroke: '#ddd' } },
      ],
      legend: { show: o.legend !== false, live: true },
      cursor: { drag: { x: true, y: false, setScale: true }, points: { size: 6 } },
      hooks: {
        setSelect: [(u) => {
          if (u.select.width > 2) this.zoomed = true;
        }],
        draw: [(u) => this.drawMarker(u)],
      },
    };
    this.plot = new uPlot(opts, this.data.length === this.series.length + 1 ? this.data : emptyData(this.series.length), this.plotHolder);
  }

  private drawMarker(u: uPlot): void {
    const x = this.marker;
    if (x === null) return;
    const px = u.valToPos(x, 'x', true);
    if (!Number.isFinite(px) || px < u.bbox.left || px > u.bbox.left + u.bbox.width) return;
    const ctx = u.ctx;
    ctx.save();
    ctx.strokeStyle = '#d62728';
    ctx.lineWidth = 1.5 * uPlot.pxRatio;
    ctx.setLineDash([4 * uPlot.pxRatio, 3 * uPlot.pxRatio]);
    ctx.beginPath();
    ctx.moveTo(px, u.bbox.top);
    ctx.lineTo(px, u.bbox.top + u.bbox.height);
    ctx.stroke();
    ctx.restore();
  }
}

const BARS = uPlot.paths.bars!({ size: [1, Infinity], gap: 0, align: 0 });

function emptyData(series: number): uPlot.AlignedData {
  return [[], ...Array.from({ length: series }, () => [])];
}

/** Tick labels: short, exponent form for tiny or huge values. */
export function formatTick(v: number | null): string {
  if (v === null || !Number.isFinite(v)) return '';
  if (v === 0) return '0';
  const abs = Math.abs(v);
  if (abs >= 1e6 || abs < 1e-3) return v.toExponential(1).replace('e+', 'e');
  if (abs >= 1e4) return `${Number((v / 1e3).toPrecision(3))}k`;
  return Number(v.toPrecision(4)).toString();
}
