import type { FrameLayer } from '../../../../server/snapshot-frame.ts';
import { DIVERGING_LUT, lutIndex } from '../palette.ts';

/** Canvas pixels between the weight matrix and the bias strip. */
export const BIAS_GAP = 4;

export interface Rect {
  readonly x: number;
  readonly y: number;
  readonly w: number;
  readonly h: number;
}

/**
 * Where a layer's weights and biases go on its canvas (pure geometry, no DOM). The matrix
 * has neurons down and inputs across, or, when the layer has more neurons than inputs,
 * neurons across and inputs down, so its long side is horizontal. The biases are a strip
 * beside it (right) or under it, one cell per neuron, set apart by a small gap.
 */
export interface HeatmapLayout {
  readonly transposed: boolean;
  readonly units: number;
  readonly inputs: number;
  readonly matrix: Rect;
  readonly bias: Rect;
}

export function heatmapLayout(units: number, inputs: number, width: number, height: number): HeatmapLayout {
  const transposed = units > inputs;
  if (transposed) {
    // neurons across; inputs down; bias row under the matrix
    const strip = Math.max(6, Math.min(16, Math.round(height / (inputs + 1))));
    const matrixH = Math.max(1, height - strip - BIAS_GAP);
    return { transposed, units, inputs, matrix: { x: 0, y: 0, w: width, h: matrixH }, bias: { x: 0, y: matrixH + BIAS_GAP, w: width, h: height - matrixH - BIAS_GAP } };
  }
  // inputs across; neurons down; bias column right of the matrix
  const strip = Math.max(6, Math.min(16, Math.round(width / (inputs + 1))));
  const matrixW = Math.max(1, width - strip - BIAS_GAP);
  return { transposed, units, inputs, matrix: { x: 0, y: 0, w: matrixW, h: height }, bias: { x: matrixW + BIAS_GAP, y: 0, w: width - matrixW - BIAS_GAP, h: height } };
}

/** Size in cells of the matrix image (columns × rows). */
export function matrixCells(layout: HeatmapLayout): { cols: number; rows: number } {
  return layout.transposed ? { cols: layout.units, rows: layout.inputs } : { cols: layout.inputs, rows: layout.units };
}

/** The centre (canvas pixels) of weight (neuron, input); input = inputs means the bias. */
export function cellCenter(layout: HeatmapLayout, neuron: number, input: number): { x: number; y: number } {
  const { cols, rows } = matrixCells(layout);
  if (input >= layout.inputs) {
    const b = layout.bias;
    return layout.transposed
      ? { x: b.x + ((neuron + 0.5) * b.w) / layout.units, y: b.y + b.h / 2 }
      : { x: b.x + b.w / 2, y: b.y + ((neuron + 0.5) * b.h) / layout.units };
  }
  const m = layout.matrix;
  const col = layout.transposed ? neuron : input, row = layout.transposed ? input : neuron;
  return { x: m.x + ((col + 0.5) * m.w) / cols, y: m.y + ((row + 0.5) * m.h) / rows };
}

/** The weight (or bias) under a canvas point, or null outside both. */
export function cellAt(layout: HeatmapLayout, x: number, y: number): { neuron: number; input: number } | null {
  const inside = (r: Rect) => x >= r.x && x < r.x + r.w && y >= r.y && y < r.y + r.h;
  if (inside(layout.bias)) {
    const b = layout.bias;
    const neuron = layout.transposed ? Math.floor(((x - b.x) / b.w) * layout.units) : Math.floor(((y - b.y) / b.h) * layout.units);
    return { neuron, input: layout.inputs };
  }
  if (!inside(layout.matrix)) return null;
  const { cols, rows } = matrixCells(layout);
  const m = layout.matrix;
  const col = Math.floor(((x - m.x) / m.w) * cols), row = Math.floor(((y - m.y) / m.h) * rows);
  return layout.transposed ? { neuron: col, input: row } : { neuron: row, input: col };
}

/**
 * Fills the matrix image (`matrixCells` words, RGBA little-endian) and the bias image
 * (`units` words, in neuron order) with a layer's values on ±scale.
 */
export function paintLayer(layer: FrameLayer, transposed: boolean, scale: number, matrix: Uint32Array, bias: Uint32Array): void {
  const { inputs, units } = layer;
  for (let j = 0; j < units; j++) {
    for (let i = 0; i < inputs; i++) {
      const at = transposed ? i * units + j : j * inputs + i;
      matrix[at] = DIVERGING_LUT[lutIndex(layer.weights[j * inputs + i], scale)];
    }
    bias[j] = DIVERGING_LUT[lutIndex(layer.bias[j], scale)];
  }
}
