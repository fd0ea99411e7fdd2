/**
 * Where the network graph's nodes go (pure geometry, no DOM): the view draws with it, and
 * tests use it to find an edge's pixels.
 */
/** Most neurons drawn per layer; larger layers show this many, evenly spaced. */
export const MAX_NODES = 16;

export interface GraphColumn {
  readonly x: number;
  /** Neuron index and y of each drawn node. */
  readonly nodes: readonly { readonly index: number; readonly y: number }[];
  /** Neurons in the layer (drawn or not). */
  readonly total: number;
}

export interface GraphLayout {
  readonly columns: readonly GraphColumn[];
  readonly radius: number;
  readonly top: number;
}

/** Which neurons of a layer of n are drawn: all, or `max` evenly spaced (first and last included). */
export function shownNodes(n: number, max = MAX_NODES): number[] {
  if (n <= max) return Array.from({ length: n }, (_, i) => i);
  return Array.from({ length: max }, (_, i) => Math.round((i * (n - 1)) / (max - 1)));
}

/**
 * Where every drawn node goes on a canvas of width × height (canvas pixels): one column
 * per layer (inputs first), nodes spread vertically and centred. Pure, so tests can find
 * an edge's pixels.
 */
export function graphLayout(sizes: readonly number[], width: number, height: number, ratio = 1): GraphLayout {
  const top = 22 * ratio, bottom = 8 * ratio, side = 28 * ratio;
  const usable = Math.max(1, height - top - bottom);
  const most = Math.min(MAX_NODES, Math.max(...sizes));
  const radius = Math.max(2.5 * ratio, Math.min(9 * ratio, usable / most / 2.6));
  const columns = sizes.map((n, c) => {
    const x = sizes.length === 1 ? width / 2 : side + ((width - 2 * side) * c) / (sizes.length - 1);
    const shown = shownNodes(n);
    const gap = usable / most;
    const span = gap * (shown.length - 1);
    const y0 = top + (usable - span) / 2;
    return { x, total: n, nodes: shown.map((index, k) => ({ index, y: y0 + k * gap })) };
  });
  return { columns, radius, top };
}

/** A point on the edge from node `from` of column `layer` to node `to` of column `layer + 1` (t = 0 at `from`). */
export function edgePoint(layout: GraphLayout, layer: number, from: number, to: number, t = 0.5): { x: number; y: number } | null {
  const a = layout.columns[layer]?.nodes.find((n) => n.index === from);
  const b = layout.columns[layer + 1]?.nodes.find((n) => n.index === to);
  if (a === undefined || b === undefined) return null;
  const ax = layout.columns[layer].x, bx = layout.columns[layer + 1].x;
  return { x: ax + (bx - ax) * t, y: a.y + (b.y - a.y) * t };
}
