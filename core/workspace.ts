import { defaultKernels } from './backend.ts';
import { StreamgradError } from './errors.ts';
import type { Allocator, BatchViews, Model, Topology, Workspace } from './shapes.ts';

export type { BatchViews, Workspace } from './shapes.ts';

/**
 * Views of the buffers for a batch of `rows`, cached: online training sees the same
 * batch size step after step, and making six views per step was a measurable share of
 * a batch-1 step's cost.
 */
export function batchViews(ws: Workspace, model: Model, rows: number): BatchViews {
  const cached = ws.views;
  if (cached !== null && cached.rows === rows) return cached;
  return (ws.views = makeViews(ws, model, rows));
}

// Kept apart from `batchViews` (and `grow` from `ensureCapacity`) because of their
// closures: V8 allocates a function's closure context as the function is entered, even
// when it returns before reaching the closure, which cost ~50 bytes per call and step.
function makeViews(ws: Workspace, model: Model, rows: number): BatchViews {
  return {
    rows,
    inputs: ws.x.subarray(0, rows * model.inputSize),
    targets: ws.y.subarray(0, rows * model.outputSize),
    activations: model.layers.map((layer, l) => ws.a[l].subarray(0, rows * layer.outputs)),
    lossPerSample: ws.perSample.subarray(0, rows),
  };
}

/**
 * The most float64 values a batch's buffers may take: 2^26 (512 MiB). A batch of `rows`
 * needs rows × (inputs + outputs + 1 + 3 × every layer's units) of them; `checkBatchFits`
 * refuses a batch size that would need more before anything is allocated.
 */
export const MAX_BATCH_VALUES = 2 ** 26;

/** The buffer values (float64) a batch of `rows` needs for `topology`. */
export function batchValues(topology: Topology, rows: number): number {
  let perRow = topology.inputSize + topology.layers[topology.layers.length - 1].units + 1;
  for (const layer of topology.layers) perRow += 3 * layer.units;
  return rows * perRow;
}

/**
 * Throws `SG_ERR_CONFIG` (field `batch`) when a batch of `rows` would need buffers of more
 * than `MAX_BATCH_VALUES` float64s for `topology`: a batch size and a layer width that
 * fit alone can still not fit together.
 *
 * @example checkBatchFits({ inputSize: 3, layers: [{ units: 1_000_000, activation: 'relu' }] }, 1024) // throws
 */
export function checkBatchFits(topology: Topology, rows: number): void {
  const values = batchValues(topology, rows);
  if (values > MAX_BATCH_VALUES) {
    throw new StreamgradError('SG_ERR_CONFIG', `batch: ${rows} rows of this model need ${values.toLocaleString('en')} buffer values (${Math.ceil((values * 8) / 2 ** 20)} MiB), more than the ${MAX_BATCH_VALUES.toLocaleString('en')} (512 MiB) a batch may take; use a smaller batch`, 'batch');
  }
}

/** Buffers for `model` with room for `capacity` rows, from `allocate` (default: the default backend's). */
export function createWorkspace(model: Model, capacity = 1, allocate: Allocator = defaultKernels().allocate): Workspace {
  const grads = allocate(model.params.length);
  const ws: Workspace = {
    capacity: 0,
    x: allocate(0), y: allocate(0),
    z: [], a: [], delta: [],
    perSample: allocate(0),
    grads,
    gradWeights: model.layers.map((l) => grads.subarray(l.weightOffset, l.biasOffset)),
    gradBias: model.layers.map((l) => grads.subarray(l.biasOffset, l.biasOffset + l.outputs)),
    views: null,
    allocate,
    kernelCache: null,
  };
  ensureCapacity(ws, model, capacity);
  return ws;
}

/** Makes room for a batch of `rows`; a no-op when there is room already. */
export function ensureCapacity(ws: Workspace, model: Model, rows: number): void {
  if (rows > ws.capacity) grow(ws, model, rows);
}

function grow(ws: Workspace, model: Model, rows: number): void {
  const cap = Math.max(rows, ws.capacity * 2);
  ws.capacity = cap;
  ws.views = null; // they view the old buffers
  ws.kernelCache = null;
  const allocate = ws.allocate;
  ws.x = allocate(cap * model.inputSize);
  ws.y = allocate(cap * model.outputSize);
  ws.perSample = allocate(cap);
  model.layers.forEach((layer, l) => {
    ws.z[l] = allocate(cap * layer.outputs);
    ws.a[l] = allocate(cap * layer.outputs);
    ws.delta[l] = allocate(cap * layer.outputs);
  });
}
