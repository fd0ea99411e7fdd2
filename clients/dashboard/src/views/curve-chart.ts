import uPlot from 'uplot';
import { h } from '../dom.ts';
import { formatTick, formatTicks } from './ticks.ts';

export { formatTick, formatTicks } from './ticks.ts';

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

/** A vertical mark at an x (a drift alarm, a reaction), drawn in a run's colour. */
export interface ChartMark {
  readonly x: number;
  readonly color: string;
  /** `solid` (a drift), `dotted` (a warning), `dashed` (a reaction). */
  readonly style: 'solid' | 'dotted' | 'dashed';
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
  /** Show a line under the chart with every series' value at the hovered x (default false). */
  readonly readout?: boolean;
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
  private marks: readonly ChartMark[] = [];
  private readonly readout: HTMLElement;
  private data: uPlot.AlignedData = [[]];
  private readonly resize: ResizeObserver;

  constructor(private options: CurveChartOptions) {
    this.plotHolder = h('div', { class: 'plot' });
    this.readout = h('div', { class: 'hover-readout' });
    this.readout.hidden = options.readout !== true;
    this.element = h('div', { class: 'chart' }, this.plotHolder, this.readout);
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

  /** Vertical marks (drift alarms and reactions); redraws when they changed. */
  setMarks(marks: readonly ChartMark[]): void {
    if (marks.length === this.marks.length && marks.every((m, i) => m.x === this.marks[i].x && m.color === this.marks[i].color && m.style === this.marks[i].style)) return;
    this.marks = marks;
    this.element.dataset.marks = String(marks.length);
    this.plot?.redraw(false, false);
  }

  /**
   * Every series' value at data index `idx` (the hovered x), or at the nearest index that
   * has one (runs report at different steps, so at one x most have no point): the readout.
   */
  valuesAt(idx: number): (number | null)[] {
    const data = this.data;
    const out: (number | null)[] = [];
    for (let s = 1; s < data.length; s++) {
      const ys = data[s] as ArrayLike<number | null | undefined>;
      let found: number | null = null;
      for (let d = 0; d < ys.length && found === null; d++) {
        const back = ys[idx - d], ahead = ys[idx + d];
        if (back !== null && back !== undefined) found = back;
        else if (ahead !== null && ahead !== undefined) found = ahead;
        if (d > 4096) break;
      }
      out.push(found);
    }
    return out;
  }

  private showReadout(u: uPlot): void {
    if (this.options.readout !== true) return;
    const idx = u.cursor.idx;
    if (idx === null || idx === undefined) {
      this.readout.textContent = '';
      delete this.readout.dataset.x;
      return;
    }
    const x = (this.data[0] as ArrayLike<number>)[idx];
    const values = this.valuesAt(idx);
    this.readout.dataset.x = String(x);
    this.readout.dataset.values = JSON.stringify(this.series.map((s, i) => [s.label, values[i]]));
    this.readout.textContent = `${this.options.xLabel} ${formatTick(x)} · ${this.series.map((s, i) => `${s.label} ${values[i] === null ? '–' : formatTick(values[i])}`).join(' · ')}`;
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
        { label: o.xLabel, labelSize: 18, size: 36, values: (_u, ticks) => formatTicks(ticks), stroke: '#555', grid: { stroke: '#eee' }, ticks: { stroke: '#ddd' } },
        { label: o.yLabel, labelSize: 18, size: 56, values: (_u, ticks) => formatTicks(ticks), stroke: '#555', grid: { stroke: '#eee' }, ticks: { stroke: '#ddd' } },
      ],
      legend: { show: o.legend !== false, live: true },
      cursor: { drag: { x: true, y: false, setScale: true }, points: { size: 6 } },
      hooks: {
        setSelect: [(u) => {
          if (u.select.width > 2) this.zoomed = true;
        }],
        draw: [(u) => {
          this.drawMarks(u);
          this.drawMarker(u);
        }],
        setCursor: [(u) => this.showReadout(u)],
      },
    };
    this.plot = new uPlot(opts, this.data.length === this.series.length + 1 ? this.data : emptyData(this.series.length), this.plotHolder);
  }

  private drawMarks(u: uPlot): void {
    if (this.marks.length === 0) return;
    const ctx = u.ctx;
    const r = uPlot.pxRatio;
    ctx.save();
    ctx.lineWidth = 1 * r;
    for (const mark of this.marks) {
      const px = u.valToPos(mark.x, 'x', true);
      if (!Number.isFinite(px) || px < u.bbox.left || px > u.bbox.left + u.bbox.width) continue;
      ctx.strokeStyle = mark.color;
      ctx.globalAlpha = mark.style === 'solid' ? 0.85 : 0.6;
      ctx.setLineDash(mark.style === 'dotted' ? [1 * r, 3 * r] : mark.style === 'dashed' ? [6 * r, 4 * r] : []);
      ctx.beginPath();
      ctx.moveTo(px, u.bbox.top);
      ctx.lineTo(px, u.bbox.top + u.bbox.height);
      ctx.stroke();
      if (mark.style === 'solid') {
        // a flag at the top, so an alarm stands out from the curves
        ctx.setLineDash([]);
        ctx.fillStyle = mark.color;
        ctx.beginPath();
        ctx.moveTo(px, u.bbox.top);
        ctx.lineTo(px + 7 * r, u.bbox.top + 4 * r);
        ctx.lineTo(px, u.bbox.top + 8 * r);
        ctx.fill();
      }
    }
    ctx.restore();
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
