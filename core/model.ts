import { isActivation } from './activations.ts';
import { defaultKernels } from './backend.ts';
import { StreamgradError } from './errors.ts';
import type { Kernels } from './kernels.ts';
import type { Layer, Model, Topology } from './shapes.ts';

export type { Layer, LayerSpec, Model, Topology } from './shapes.ts';

/**
 * The largest model streamgrad builds or loads: 16,777,216 (2^24) parameters. With its
 * gradients and an optimizer's two moments that is 512 MiB of float64, which either backend
 * can hold (the WebAssembly memory has 4 GiB), and its files stay under the 512 MiB the
 * command line reads. A larger topology is a typed `SG_ERR_CONFIG`, not an allocation
 * that fails (or swaps) halfway.
 */
export const MAX_PARAMETERS = 2 ** 24;
/** The widest layer (and input): 1,048,576 (2^20) units. */
export const MAX_UNITS = 2 ** 20;

/** How many parameters (weights and biases) a topology has; no checks. */
export function topologyParameters(topology: Topology): number {
  let count = 0;
  let inputs = topology.inputSize;
  for (const spec of topology.layers) {
    count += spec.units * inputs + spec.units;
    inputs = spec.units;
  }
  return count;
}

/** Checks a topology (sizes within `MAX_UNITS` and `MAX_PARAMETERS`); throws `SG_ERR_CONFIG` naming the field. */
export function checkTopology(topology: Topology): void {
  const fail = (field: string, message: string): never => {
    throw new StreamgradError('SG_ERR_CONFIG', `${field}: ${message}`, field);
  };
  if (!Number.isSafeInteger(topology.inputSize) || topology.inputSize < 1) {
    fail('inputSize', `must be a positive integer, got ${String(topology.inputSize)}`);
  }
  if (topology.inputSize > MAX_UNITS) fail('inputSize', `must be at most ${MAX_UNITS}, got ${topology.inputSize}`);
  if (!Array.isArray(topology.layers) || topology.layers.length === 0) {
    fail('layers', 'must list at least one layer, e.g. [{units: 1, activation: "linear"}]');
  }
  topology.layers.forEach((layer, l) => {
    if (!Number.isSafeInteger(layer.units) || layer.units < 1) {
      fail(`layers[${l}].units`, `must be a positive integer, got ${String(layer.units)}`);
    }
    if (layer.units > MAX_UNITS) fail(`layers[${l}].units`, `must be at most ${MAX_UNITS}, got ${layer.units}`);
    if (!isActivation(layer.activation)) {
      fail(`layers[${l}].activation`, `unknown activation ${JSON.stringify(layer.activation)}; use linear, sigmoid, tanh, relu, leaky_relu, sign or softmax`);
    }
    if (layer.activation === 'softmax' && l !== topology.layers.length - 1) {
      fail(`layers[${l}].activation`, 'softmax is only allowed on the last layer');
    }
  });
  const parameters = topologyParameters(topology);
  if (parameters > MAX_PARAMETERS) {
    fail('layers', `${parameters.toLocaleString('en')} parameters, more than the ${MAX_PARAMETERS.toLocaleString('en')} a model may have (${Math.round((parameters * 32) / 2 ** 30)} GiB with gradients and optimizer state)`);
  }
}

/**
 * Allocates a zero-initialised model of the given topology, its parameters from
 * `kernels.allocate` (default: the default backend's), so that the backend that trains it
 * works on them in place.
 */
export function createModel(topology: Topology, kernels: Pick<Kernels, 'allocate'> = defaultKernels()): Model {
  checkTopology(topology);
  const params = kernels.allocate(topologyParameters(topology));
  const layers: Layer[] = [];
  let offset = 0;
  let inputs = topology.inputSize;
  for (const spec of topology.layers) {
    const m = spec.units;
    const weightOffset = offset;
    const biasOffset = offset + m * inputs;
    layers.push({
      inputs, outputs: m, activation: spec.activation,
      weights: params.subarray(weightOffset, biasOffset),
      bias: params.subarray(biasOffset, biasOffset + m),
      weightOffset, biasOffset,
    });
    offset = biasOffset + m;
    inputs = m;
  }
  return { inputSize: topology.inputSize, outputSize: inputs, layers, params };
}

/** The topology a model was created from (input size and `units:activation` per layer), e.g. to create a fresh copy. */
export function topologyOf(model: { readonly inputSize: number; readonly layers: readonly Pick<Layer, 'outputs' | 'activation'>[] }): Topology {
  return { inputSize: model.inputSize, layers: model.layers.map((l) => ({ units: l.outputs, activation: l.activation })) };
}

/** A deep copy with its own parameter vector (from `kernels.allocate`). */
export function cloneModel(model: Model, kernels: Pick<Kernels, 'allocate'> = defaultKernels()): Model {
  const copy = createModel(topologyOf(model), kernels);
  copy.params.set(model.params);
  return copy;
}

/** Number of trainable parameters. */
export function parameterCount(model: Model): number {
  return model.params.length;
}
