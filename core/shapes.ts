/**
 * The shapes every kernel works on: layers and models (the parameters), workspaces (the
 * buffers of a pass) and where their memory comes from. Types only, so that the kernels,
 * the backends that choose them and the model that allocates through them can all name
 * these without importing one another in a circle.
 */
import type { Activation } from './activations.ts';

/** One dense layer: z = W·x + b, a = activation(z). */
export interface Layer {
  readonly inputs: number;
  readonly outputs: number;
  readonly activation: Activation;
  /** `outputs × inputs`, row-major: row i is neuron i's weight vector. A view into `Model.params`. */
  readonly weights: Float64Array;
  /** `outputs` biases. A view into `Model.params`. */
  readonly bias: Float64Array;
  /** Where `weights` and `bias` start in the flat parameter vector. */
  readonly weightOffset: number;
  readonly biasOffset: number;
}

/**
 * A multi-layer perceptron. All parameters live in one flat `Float64Array` (per layer:
 * weights then bias) so that optimizers, gradient norms and checkpoints work on one
 * vector; each layer's `weights` and `bias` are zero-copy views into it.
 */
export interface Model {
  readonly inputSize: number;
  readonly outputSize: number;
  readonly layers: readonly Layer[];
  readonly params: Float64Array;
}

/** The shape of a layer: how many neurons and which activation. */
export interface LayerSpec {
  readonly units: number;
  readonly activation: Activation;
}

/** The shape of a network: input size and its layers, first to last. */
export interface Topology {
  readonly inputSize: number;
  readonly layers: readonly LayerSpec[];
}

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
  /** Views of the buffers sized to the last batch (see `batchViews`). */
  views: BatchViews | null;
  /** Where the buffers come from (the trainer's kernels' `allocate`). */
  readonly allocate: Allocator;
  /** Backend-private data derived from these buffers (the WebAssembly backend's table of their offsets); cleared when they are reallocated. */
  kernelCache: unknown;
}

/** The workspace's buffers cut to one batch's rows: what the step record hands out. */
export interface BatchViews {
  readonly rows: number;
  readonly inputs: Float64Array;
  readonly targets: Float64Array;
  readonly activations: readonly Float64Array[];
  readonly lossPerSample: Float64Array;
}

/** Where the engine's arrays come from (see `Kernels.allocate`). */
export type Allocator = (length: number) => Float64Array;
