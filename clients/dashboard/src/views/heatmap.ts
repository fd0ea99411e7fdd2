import type { RunInfo } from '../../../../server/protocol.ts';
import type { DecodedFrame, FrameLayer } from '../../../../server/snapshot-frame.ts';
import { fitCanvas, formatNumber, h, setText } from '../dom.ts';
import type { Summary } from '../stats.ts';
import { cellAt, type HeatmapLayout, heatmapLayout, matrixCells, paintLayer } from './heatmap-layout.ts';

interface Panel {
  readonly root: HTMLElement;
  readonly title: HTMLElement;
  readonly canvas: HTMLCanvasElement;
  readonly scaleLow: HTMLElement;
  readonly scaleHigh: HTMLElement;
  readonly hover: HTMLElement;
  image: ImageData | null;
  biasImage: ImageData | null;
  layout: HeatmapLayout | null;
  /** The values shown, for the hover read-out. */
  layer: FrameLayer | null;
  readonly offscreen: HTMLCanvasElement;
  readonly biasOffscreen: HTMLCanvasElement;
}

/**
 * One heatmap per layer: every weight (and bias) as a cell on the diverging palette,
 * scaled to ± the layer's 99th-percentile |w| so one outlier does not wash the rest out;
 * each with its legend and a hover read-out. Pixels are written through a 32-bit view of
 * a reused ImageData and scaled up by drawImage: O(weights) per frame, no allocation.
 */
export class WeightHeatmaps {
  readonly element: HTMLElement;
  private panels: Panel[] = [];
  private key = '';

  /** The layer shown large (−1: none); clicking a heatmap's title toggles it. */
  private focus = -1;

  constructor(private readonly onFocus: (layer: number) => void = () => undefined) {
    this.element = h('div', { class: 'heatmaps' });
  }

  /** The canvas of layer l (for tests and exports). */
  canvas(l: number): HTMLCanvasElement | null {
    return this.panels[l]?.canvas ?? null;
  }

  draw(info: RunInfo | null, frame: DecodedFrame | null, scales: readonly Summary[], focus = -1): void {
    if (focus !== this.focus) {
      this.focus = focus;
      this.panels.forEach((p, l) => p.root.classList.toggle('focused', l === focus));
    }
    if (info === null || frame === null) {
      this.rebuild(null, null);
      return;
    }
    this.rebuild(info, frame);
    frame.layers.forEach((layer, l) => {
      const panel = this.panels[l];
      if (panel === undefined) return;
      const summary = scales[l];
      let scale = summary !== undefined && summary.count > 0 ? (summary.abs99 > 0 ? summary.abs99 : summary.absMax) : 0;
      if (!(scale > 0)) for (let i = 0; i < layer.weights.length; i++) scale = Math.max(scale, Math.abs(layer.weights[i]));
      const focused = l === this.focus;
      const width = focused ? Math.max(200, Math.min(1100, panel.root.clientWidth || 640)) : Math.max(120, Math.min(320, panel.root.clientWidth - 8 || 220));
      fitCanvas(panel.canvas, width, focused ? Math.round(Math.min(420, Math.max(200, width * 0.45))) : 150);
      const layout = heatmapLayout(layer.units, layer.inputs, panel.canvas.width, panel.canvas.height);
      const { cols, rows } = matrixCells(layout);
      if (panel.image === null || panel.image.width !== cols || panel.image.height !== rows) {
        panel.image = new ImageData(cols, rows);
        panel.offscreen.width = cols;
        panel.offscreen.height = rows;
      }
      const biasCols = layout.transposed ? layer.units : 1, biasRows = layout.transposed ? 1 : layer.units;
      if (panel.biasImage === null || panel.biasImage.width !== biasCols || panel.biasImage.height !== biasRows) {
        panel.biasImage = new ImageData(biasCols, biasRows);
        panel.biasOffscreen.width = biasCols;
        panel.biasOffscreen.height = biasRows;
      }
      panel.layout = layout;
      panel.layer = layer;
      paintLayer(layer, layout.transposed, scale, new Uint32Array(panel.image.data.buffer), new Uint32Array(panel.biasImage.data.buffer));
      const off = panel.offscreen.getContext('2d'), biasOff = panel.biasOffscreen.getContext('2d');
      const ctx = panel.canvas.getContext('2d');
      if (off === null || biasOff === null || ctx === null) return;
      off.putImageData(panel.image, 0, 0);
      biasOff.putImageData(panel.biasImage, 0, 0);
      ctx.imageSmoothingEnabled = false;
      ctx.clearRect(0, 0, panel.canvas.width, panel.canvas.height);
      const { matrix: m, bias: b } = layout;
      ctx.drawImage(panel.offscreen, m.x, m.y, m.w, m.h);
      ctx.drawImage(panel.biasOffscreen, b.x, b.y, b.w, b.h);
      setText(panel.scaleLow, `−${formatNumber(scale)}`);
      setText(panel.scaleHigh, `+${formatNumber(scale)}`);
    });
  }

  private rebuild(info: RunInfo | null, frame: DecodedFrame | null): void {
    const key = info === null || frame === null ? '' : `${info.id}|${frame.inputSize}|${frame.layers.map((l) => l.units).join(',')}`;
    if (key === this.key) return;
    this.key = key;
    this.element.replaceChildren();
    this.panels = [];
    if (info === null || frame === null) {
      this.element.append(h('p', { class: 'empty' }, 'waiting for weights…'));
      return;
    }
    frame.layers.forEach((layer, l) => {
      const activation = info.topology.layers[l]?.activation ?? '';
      const transposed = layer.units > layer.inputs;
      const title = h('button', { class: 'panel-title', title: 'show this layer large (again: back)', 'data-layer': String(l) }, `layer ${l + 1} · ${layer.inputs}→${layer.units} ${activation}`);
      title.addEventListener('click', () => this.onFocus(this.focus === l ? -1 : l));
      const axes = h('div', { class: 'axes-note' }, transposed ? 'neurons → · inputs ↓ · strip below: biases' : 'inputs → · neurons ↓ · strip right: biases');
      const canvas = h('canvas', { class: 'heatmap-canvas', 'data-view': 'heatmap', 'data-layer': String(l) });
      const scaleLow = h('span'), scaleHigh = h('span');
      const legend = h('div', { class: 'legend-bar' }, scaleLow, h('span', { class: 'gradient diverging' }), scaleHigh);
      const hover = h('div', { class: 'hover-readout' }, ' ');
      const root = h('div', { class: l === this.focus ? 'heatmap focused' : 'heatmap' }, title, canvas, legend, axes, hover);
      const panel: Panel = { root, title, canvas, scaleLow, scaleHigh, hover, image: null, biasImage: null, layout: null, layer: null, offscreen: document.createElement('canvas'), biasOffscreen: document.createElement('canvas') };
      canvas.addEventListener('pointermove', (event) => this.readout(panel, event));
      canvas.addEventListener('pointerleave', () => setText(panel.hover, ' '));
      this.panels.push(panel);
      this.element.append(root);
    });
  }

  private readout(panel: Panel, event: PointerEvent): void {
    const { layout, layer } = panel;
    if (layout === null || layer === null) return;
    const rect = panel.canvas.getBoundingClientRect();
    const x = ((event.clientX - rect.left) / rect.width) * panel.canvas.width;
    const y = ((event.clientY - rect.top) / rect.height) * panel.canvas.height;
    const cell = cellAt(layout, x, y);
    if (cell === null || cell.neuron < 0 || cell.neuron >= layer.units || cell.input < 0 || cell.input > layer.inputs) {
      setText(panel.hover, ' ');
      return;
    }
    const { neuron, input } = cell;
    const text = input === layer.inputs
      ? `neuron ${neuron}: bias ${formatNumber(layer.bias[neuron])}`
      : `neuron ${neuron} ← input ${input}: w ${formatNumber(layer.weights[neuron * layer.inputs + input])}`;
    setText(panel.hover, text);
  }
}
