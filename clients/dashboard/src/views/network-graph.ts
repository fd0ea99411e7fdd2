import type { RunInfo } from '../../../../server/protocol.ts';
import type { DecodedFrame } from '../../../../server/snapshot-frame.ts';
import { fitCanvas, h, setText } from '../dom.ts';
import { cssColor, diverging } from '../palette.ts';
import { type GraphLayout, graphLayout } from './graph-layout.ts';

export { edgePoint, graphLayout, type GraphLayout, MAX_NODES, shownNodes } from './graph-layout.ts';

const BUCKETS = 8;

/**
 * The network as a graph: neurons as nodes (fill = bias on the diverging palette), edges
 * coloured by the sign of their weight (blue −, orange +) and as wide as |w| relative to
 * the layer's largest. Edges are grouped into a few colour/width buckets, so a frame is a
 * handful of strokes however many edges are drawn.
 */
export class NetworkGraph {
  readonly element: HTMLElement;
  private readonly canvas: HTMLCanvasElement;
  private readonly note: HTMLElement;
  private layout: GraphLayout | null = null;
  private readonly paths: Path2D[] = [];

  constructor() {
    this.canvas = h('canvas', { class: 'graph-canvas', 'data-view': 'network' });
    this.note = h('div', { class: 'note' });
    this.element = h('div', { class: 'graph' }, this.canvas, this.note);
  }

  get currentLayout(): GraphLayout | null {
    return this.layout;
  }

  /** Draws `frame`'s weights; `diverged`: the server withholds newer ones (they went non-finite). */
  draw(info: RunInfo | null, frame: DecodedFrame | null, diverged = false): void {
    const width = Math.max(200, this.element.clientWidth || 400);
    const height = 300;
    fitCanvas(this.canvas, width, height);
    const ctx = this.canvas.getContext('2d');
    if (ctx === null) return;
    const W = this.canvas.width, H = this.canvas.height, ratio = W / width;
    ctx.clearRect(0, 0, W, H);
    if (info === null || frame === null) {
      this.layout = null;
      setText(this.note, info === null ? 'no run selected' : 'waiting for weights…');
      return;
    }
    const sizes = [frame.inputSize, ...frame.layers.map((l) => l.units)];
    const layout = graphLayout(sizes, W, H, ratio);
    this.layout = layout;

    // edges, bucketed by sign and magnitude
    frame.layers.forEach((layer, l) => {
      let scale = 0;
      for (let i = 0; i < layer.weights.length; i++) scale = Math.max(scale, Math.abs(layer.weights[i]));
      const from = layout.columns[l], to = layout.columns[l + 1];
      for (let b = 0; b < 2 * BUCKETS; b++) this.paths[b] = new Path2D();
      for (const target of to.nodes) {
        const row = target.index * layer.inputs;
        for (const source of from.nodes) {
          const w = layer.weights[row + source.index];
          if (!Number.isFinite(w) || w === 0 || scale === 0) continue;
          const k = Math.min(BUCKETS - 1, Math.floor((Math.abs(w) / scale) * BUCKETS));
          const path = this.paths[(w < 0 ? 0 : BUCKETS) + k];
          path.moveTo(from.x, source.y);
          path.lineTo(to.x, target.y);
        }
      }
      for (let b = 0; b < 2 * BUCKETS; b++) {
        const negative = b < BUCKETS;
        const k = (b % BUCKETS) + 1;
        const strength = k / BUCKETS;
        ctx.strokeStyle = cssColor(diverging(negative ? -1 : 1), 0.25 + 0.75 * strength);
        ctx.lineWidth = (0.4 + 4 * strength) * ratio;
        ctx.stroke(this.paths[b]);
      }
    });

    // nodes: inputs grey, neurons coloured by their bias
    ctx.lineWidth = 1 * ratio;
    layout.columns.forEach((column, c) => {
      const layer = c === 0 ? null : frame.layers[c - 1];
      let scale = 0;
      if (layer !== null) for (let i = 0; i < layer.bias.length; i++) scale = Math.max(scale, Math.abs(layer.bias[i]));
      for (const node of column.nodes) {
        ctx.beginPath();
        ctx.arc(column.x, node.y, layout.radius, 0, 2 * Math.PI);
        const b = layer === null ? Number.NaN : layer.bias[node.index];
        ctx.fillStyle = layer === null ? '#d9d9d9' : cssColor(diverging(scale > 0 ? b / scale : 0));
        ctx.fill();
        ctx.strokeStyle = '#555';
        ctx.stroke();
      }
      const activation = c === 0 ? 'input' : info.topology.layers[c - 1]?.activation ?? '';
      const label = column.total > column.nodes.length ? `${activation} ${column.total} (${column.nodes.length} shown)` : `${activation} ${column.total}`;
      ctx.fillStyle = '#333';
      ctx.font = `${11 * ratio}px system-ui, sans-serif`;
      ctx.textAlign = c === 0 ? 'left' : c === layout.columns.length - 1 ? 'right' : 'center';
      const x = c === 0 ? column.x - layout.radius : c === layout.columns.length - 1 ? column.x + layout.radius : column.x;
      ctx.fillText(label, x, 14 * ratio);
    });
    setText(this.note, diverged
      ? `diverged: the weights went non-finite, the server withholds them · showing step ${frame.step}, the last finite ones`
      : `step ${frame.step} · edge width ∝ |w| per layer, colour = sign; node colour = bias`);
    this.note.classList.toggle('alarm', diverged);
  }
}

