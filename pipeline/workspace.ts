import type { Model } from './model.ts';

/**
 * Preallocated buffers for one model's forward and backward passes over batches of up
 * to `capacity` rows. Training allocates nothing per step: every pass reads and writes
 * these arrays, which grow (rarely, geometrically) only when a larger batch arrives.
 * The step record hands out views of them, valid until the next step of the same trainer.
 */
export interface Workspace {
  capacity: number;
  /** Batch inputs, capacity × inputSize. */
  x: Float64Array;
  /** Batch targets, capacity × outputSize. */
  y: Float64Array;
  /** Per layer: pre-activations z, activations a, and delta = dL/dz, each capacity × units. */
  readonly z: Float64Array[];
  readonly a: Float64Array[];
  readonly delta: Float64Array[];
  /** Per-sample loss of the current batch. */
  perSample: Float64Array;
  /** Gradient of the batch loss, laid out exactly like `Model.params`. */
  readonly grads: Float64Array;
  /** Per layer views into `grads`. */
  readonly gradWeights: readonly Float64Array[];
  readonly gradBias: readonly Float64Array[];
}

export function createWorkspace(model: Model, capacity = 1): Workspace {
  const grads = new Float64Array(model.params.length);
  const ws: Workspace = {
    capacity: 0,
    x: new Float64Array(0), y: new Float64Array(0),
    z: [], a: [], delta: [],
    perSample: new Float64Array(0),
    grads,
    gradWeights: model.layers.map((l) => grads.subarray(l.weightOffset, l.biasOffset)),
    gradBias: model.layers.map((l) => grads.subarray(l.biasOffset, l.biasOffset + l.outputs)),
  };
  ensureCapacity(ws, model, capacity);
  return ws;
}

/** Makes room for a batch of `rows`; a no-op when there is room already. */
export function ensureCapacity(ws: Workspace, model: Model, rows: number): void {
  if (rows <= ws.capacity) return;
  const cap = Math.max(rows, ws.capacity * 2);
  ws.capacity = cap;
  ws.x = new Float64Array(cap * model.inputSize);
  ws.y = new Float64Array(cap * model.outputSize);
  ws.perSample = new Float64Array(cap);
  model.layers.forEach((layer, l) => {
    ws.z[l] = new Float64Array(cap * layer.outputs);
    ws.a[l] = new Float64Array(cap * layer.outputs);
    ws.delta[l] = new Float64Array(cap * layer.outputs);
  });
}
