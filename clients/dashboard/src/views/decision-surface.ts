import type uPlot from 'uplot';
import type { Kernels } from '../../../../core/kernels.ts';
import type { DecodedFrame } from '../../../../server/snapshot-frame.ts';
import { fitCanvas, formatNumber, h, setText, show } from '../dom.ts';
import { LocalModel } from '../engine/local-model.ts';
import { cssColor, diverging, DIVERGING_LUT, lutIndex } from '../palette.ts';
import type { RunStore } from '../store.ts';
import { CurveChart } from './curve-chart.ts';

/** Grid cells per side of the 2-D surface. */
export const GRID = 64;
const CURVE_POINTS = 160;
/** Samples drawn over the surface. */
const SURFACE_DOTS = 160;

/** The rows the page ran through the network last, and their outputs (rows × outputSize). */
export interface Evaluation {
  readonly rows: number;
  readonly inputs: Float64Array;
  readonly outputs: Float64Array;
}

export interface Domain {
  readonly x0: number;
  readonly x1: number;
  readonly y0: number;
  readonly y1: number;
}

/** The input range of the recent samples, padded by 10 % ([-1, 1] when there are none). */
export function sampleDomain(run: RunStore): Domain {
  const ring = run.predictions;
  const m = (ring.width - 2) / 2;
  let x0 = Infinity, x1 = -Infinity, y0 = Infinity, y1 = -Infinity;
  for (let i = 0; i < ring.length; i++) {
    const a = ring.get(i, 2 * m), b = ring.get(i, 2 * m + 1);
    if (Number.isFinite(a)) { x0 = Math.min(x0, a); x1 = Math.max(x1, a); }
    if (Number.isFinite(b)) { y0 = Math.min(y0, b); y1 = Math.max(y1, b); }
  }
  const pad = (lo: number, hi: number): [number, number] => {
    if (!Number.isFinite(lo)) return [-1, 1];
    const span = hi - lo || 1;
    return [lo - span * 0.1, hi + span * 0.1];
  };
  const [px0, px1] = pad(x0, x1), [py0, py1] = pad(y0, y1);
  return { x0: px0, x1: px1, y0: py0, y1: py1 };
}

/**
 * What the network computes over its input space, evaluated in the page by the engine's
 * own forward pass on the shown weights (live or from the scrubber): for two inputs, a
 * heatmap of output 0 over the recent samples' range with the samples on top (coloured by
 * their targets, on the same scale); for one input, the fitted curve through the samples.
 * Other input sizes have no picture here.
 */
export class DecisionSurface {
  readonly element: HTMLElement;
  private readonly canvas: HTMLCanvasElement;
  private readonly offscreen: HTMLCanvasElement;
  private readonly caption: HTMLElement;
  private readonly axes: HTMLElement;
  private readonly curve: CurveChart;
  private readonly model: LocalModel;
  private readonly grid = new Float64Array(GRID * GRID * 2);
  private gridOut = new Float64Array(GRID * GRID);
  private readonly image = new ImageData(GRID, GRID);
  private curveKey = '';
  private evaluated: Evaluation | null = null;

  constructor(kernels: Kernels) {
    this.model = new LocalModel(kernels);
    this.canvas = h('canvas', { class: 'surface-canvas', 'data-view': 'surface' });
    this.offscreen = document.createElement('canvas');
    this.offscreen.width = GRID;
    this.offscreen.height = GRID;
    this.caption = h('div', { class: 'note' });
    this.axes = h('div', { class: 'axes-note' });
    this.curve = new CurveChart({ title: 'fitted curve', xLabel: 'input', yLabel: 'output', height: 260 });
    this.element = h('div', { class: 'surface' }, this.canvas, this.axes, this.curve.element, this.caption);
  }

  /** The kernels the outputs are computed with (`wasm` or `js`). */
  get backend(): string {
    return this.model.backend;
  }

  /** What was computed for the last picture (the grid, or the curve's points), exactly as drawn; null before any. */
  get lastEvaluation(): Evaluation | null {
    return this.evaluated;
  }

  /** Whether a run's inputs can be drawn here. */
  static applies(run: RunStore | null): boolean {
    return run !== null && (run.info.topology.inputSize === 1 || run.info.topology.inputSize === 2);
  }

  draw(run: RunStore | null, frame: DecodedFrame | null): void {
    const inputs = run?.info.topology.inputSize ?? 0;
    show(this.canvas, inputs === 2);
    show(this.axes, inputs === 2);
    show(this.curve.element, inputs === 1);
    if (run === null || frame === null || !this.model.load(run.info, frame)) {
      setText(this.caption, run === null ? '' : 'waiting for weights…');
      return;
    }
    if (inputs === 2) this.drawSurface(run);
    else if (inputs === 1) this.drawCurve(run);
  }

  private drawSurface(run: RunStore): void {
    const d = sampleDomain(run);
    const outputSize = this.model.outputSize;
    if (this.gridOut.length !== GRID * GRID * outputSize) this.gridOut = new Float64Array(GRID * GRID * outputSize);
    for (let r = 0; r < GRID; r++) {
      for (let c = 0; c < GRID; c++) {
        const i = r * GRID + c;
        this.grid[2 * i] = d.x0 + ((c + 0.5) / GRID) * (d.x1 - d.x0);
        this.grid[2 * i + 1] = d.y1 - ((r + 0.5) / GRID) * (d.y1 - d.y0); // y up
      }
    }
    if (!this.model.evaluate(this.grid, GRID * GRID, this.gridOut)) return;
    toUserUnits(run, this.gridOut, GRID * GRID, outputSize);
    this.evaluated = { rows: GRID * GRID, inputs: this.grid, outputs: this.gridOut };
    const activation = run.info.topology.layers[run.info.topology.layers.length - 1].activation;
    const center = activation === 'sigmoid' || activation === 'softmax' ? 0.5 : 0;
    let scale = 0;
    for (let i = 0; i < GRID * GRID; i++) scale = Math.max(scale, Math.abs(this.gridOut[i * outputSize] - center));
    const ring = run.predictions;
    const m = (ring.width - 2) / 2;
    for (let i = 0; i < ring.length; i++) {
      const t = ring.get(i, 0);
      if (Number.isFinite(t)) scale = Math.max(scale, Math.abs(t - center));
    }
    const pixels = new Uint32Array(this.image.data.buffer);
    for (let i = 0; i < GRID * GRID; i++) pixels[i] = DIVERGING_LUT[lutIndex(this.gridOut[i * outputSize] - center, scale)];
    const width = Math.max(160, Math.min(300, this.element.clientWidth || 260));
    fitCanvas(this.canvas, width, width);
    const ctx = this.canvas.getContext('2d'), off = this.offscreen.getContext('2d');
    if (ctx === null || off === null) return;
    off.putImageData(this.image, 0, 0);
    const W = this.canvas.width, H = this.canvas.height, ratio = W / width;
    ctx.imageSmoothingEnabled = true;
    ctx.drawImage(this.offscreen, 0, 0, W, H);
    ctx.lineWidth = 1 * ratio;
    // the newest samples only: enough to judge the fit without hiding the surface
    for (let i = Math.max(0, ring.length - SURFACE_DOTS); i < ring.length; i++) {
      const a = ring.get(i, 2 * m), b = ring.get(i, 2 * m + 1), t = ring.get(i, 0);
      if (!Number.isFinite(a) || !Number.isFinite(b)) continue;
      const x = ((a - d.x0) / (d.x1 - d.x0)) * W, y = ((d.y1 - b) / (d.y1 - d.y0)) * H;
      ctx.beginPath();
      ctx.arc(x, y, 2.5 * ratio, 0, 2 * Math.PI);
      ctx.fillStyle = cssColor(diverging(scale > 0 ? (t - center) / scale : 0));
      ctx.fill();
      ctx.strokeStyle = '#222';
      ctx.stroke();
    }
    setText(this.axes, `x₀ ${formatNumber(d.x0)} … ${formatNumber(d.x1)} → · x₁ ${formatNumber(d.y0)} … ${formatNumber(d.y1)} ↑`);
    setText(this.caption, `output ${outputSize > 1 ? '0 ' : ''}over the inputs (colour: ${center === 0 ? '±' : '0.5 ±'}${formatNumber(scale)}); dots: recent samples by target`);
  }

  private drawCurve(run: RunStore): void {
    const key = `${run.info.id}|${run.color}`;
    if (key !== this.curveKey) {
      this.curveKey = key;
      this.curve.configure([
        { label: 'samples', color: '#9aa0a6', points: true },
        { label: 'model', color: run.color, width: 2.5 },
      ]);
    }
    const d = sampleDomain(run);
    const ring = run.predictions;
    const m = (ring.width - 2) / 2;
    const xs: number[] = [];
    const targets = new Map<number, number>();
    for (let k = 0; k < CURVE_POINTS; k++) xs.push(d.x0 + (k / (CURVE_POINTS - 1)) * (d.x1 - d.x0));
    for (let i = 0; i < ring.length; i++) {
      const x = ring.get(i, 2 * m), t = ring.get(i, 0);
      if (Number.isFinite(x) && Number.isFinite(t) && !targets.has(x)) {
        targets.set(x, t);
        xs.push(x);
      }
    }
    xs.sort((a, b) => a - b);
    const input = Float64Array.from(xs);
    const out = new Float64Array(xs.length * this.model.outputSize);
    if (!this.model.evaluate(input, xs.length, out)) return;
    toUserUnits(run, out, xs.length, this.model.outputSize);
    this.evaluated = { rows: xs.length, inputs: input, outputs: out };
    const model = xs.map((_, i) => out[i * this.model.outputSize]);
    const samples = xs.map((x) => targets.get(x) ?? null);
    this.curve.setData([xs, samples, model] as uPlot.AlignedData);
    setText(this.caption, 'the network’s output over its input, through the recent samples');
  }
}

/**
 * Outputs the page computed (rows × m, in the model's standardised units when the run
 * standardises its target) mapped in place to the user's units with the newest row's
 * units, the ones the recent samples' targets are drawn in.
 */
export function toUserUnits(run: RunStore, outputs: Float64Array, rows: number, m: number): void {
  const units = run.rowUnits, last = units.length - 1;
  if (last < 0 || units.width !== 2 * m) return;
  for (let k = 0; k < m; k++) {
    const mean = units.get(last, k), scale = units.get(last, m + k);
    if (mean === 0 && scale === 1) continue;
    for (let i = 0; i < rows; i++) outputs[i * m + k] = outputs[i * m + k] * scale + mean;
  }
}
