import { isActivation } from '../core/activations.ts';
import { StreamgradError } from '../core/errors.ts';
import { checkTopology, createModel, type LayerSpec, type Model } from '../core/model.ts';

/** The `streamgrad/model@1` document (see test/fixtures/reference/FORMAT.md). */
export interface ModelDocument {
  readonly format: 'streamgrad/model@1';
  readonly inputSize: number;
  readonly layers: readonly {
    readonly activation: string;
    readonly weights: readonly (readonly number[])[];
    readonly bias: readonly number[];
  }[];
}

/** The `format` field of a model file (`streamgrad/model@1`, see test/fixtures/reference/FORMAT.md). */
export const MODEL_FORMAT = 'streamgrad/model@1';

function bad(field: string, message: string): never {
  throw new StreamgradError('SG_ERR_MODEL', `${field}: ${message}`, field);
}

const shape = (rows: number, cols: number) => `${rows}×${cols}`;
const isRecord = (v: unknown): v is Record<string, unknown> => typeof v === 'object' && v !== null && !Array.isArray(v);

/**
 * Reads a `streamgrad/model@1` document into a model, checking everything: the format tag,
 * every shape (a mismatch names the layer and both shapes), and that every number is finite.
 */
export function modelFromJSON(doc: unknown): Model {
  if (!isRecord(doc)) bad('model', 'must be a JSON object');
  if (doc.format !== MODEL_FORMAT) bad('format', `must be "${MODEL_FORMAT}", got ${JSON.stringify(doc.format)}`);
  const inputSize = doc.inputSize;
  if (typeof inputSize !== 'number' || !Number.isSafeInteger(inputSize) || inputSize < 1) {
    bad('inputSize', `must be a positive integer, got ${JSON.stringify(inputSize)}`);
  }
  const layers = doc.layers;
  if (!Array.isArray(layers) || layers.length === 0) bad('layers', 'must be a non-empty array of layers');

  const specs: LayerSpec[] = [];
  let inputs = inputSize;
  Array.from(layers, (layer: unknown, l) => { // Array.from, not forEach: a hole in the list must be seen
    const at = `layers[${l}]`;
    if (!isRecord(layer)) bad(at, 'must be an object with activation, weights and bias');
    if (!isActivation(layer.activation)) bad(`${at}.activation`, `unknown activation ${JSON.stringify(layer.activation)}`);
    const { weights, bias } = layer;
    if (!Array.isArray(weights) || weights.length === 0) bad(`${at}.weights`, 'must be a non-empty array of rows (one per neuron)');
    const m = weights.length;
    const from = l === 0 ? `inputSize ${inputSize}` : `the ${inputs} outputs of layer ${l - 1}`;
    Array.from(weights, (row: unknown, i) => {
      if (!Array.isArray(row)) bad(`${at}.weights[${i}]`, 'must be an array of numbers');
      if (row.length !== inputs) {
        bad(`${at}.weights`, `shape ${shape(m, row.length)} (row ${i} has ${row.length} numbers) does not fit: expected ${shape(m, inputs)}, since layer ${l} takes ${from}`);
      }
      for (let k = 0; k < row.length; k++) checkNumber(row[k], `${at}.weights[${i}][${k}]`); // a loop, not forEach: holes must be seen
    });
    if (!Array.isArray(bias)) bad(`${at}.bias`, 'must be an array of numbers');
    if (bias.length !== m) bad(`${at}.bias`, `has ${bias.length} numbers but the layer has ${m} neurons (weights ${shape(m, inputs)}); expected ${m}`);
    for (let i = 0; i < bias.length; i++) checkNumber(bias[i], `${at}.bias[${i}]`);
    specs.push({ units: m, activation: layer.activation });
    inputs = m;
  });
  try {
    checkTopology({ inputSize, layers: specs });
  } catch (e) {
    if (e instanceof StreamgradError) bad(e.field ?? 'layers', e.message);
    throw e;
  }

  const model = createModel({ inputSize, layers: specs });
  layers.forEach((layer: { weights: number[][]; bias: number[] }, l) => {
    const target = model.layers[l];
    const n = target.inputs;
    layer.weights.forEach((row, i) => target.weights.set(row, i * n));
    target.bias.set(layer.bias);
  });
  return model;
}

function checkNumber(v: unknown, field: string): void {
  if (typeof v !== 'number') bad(field, `must be a number, got ${v === null ? 'null' : typeof v}`);
  if (!Number.isFinite(v)) bad(field, `must be finite, got ${v}`);
}

/**
 * Writes a model as a `streamgrad/model@1` document (plain arrays, exact float64 values).
 * Refuses a model with a NaN or ±Infinity parameter (JSON would silently write `null`).
 */
export function modelToJSON(model: Model): ModelDocument {
  model.layers.forEach((layer, l) => {
    const check = (values: Float64Array, part: 'weights' | 'bias') => {
      for (let q = 0; q < values.length; q++) {
        if (!Number.isFinite(values[q])) {
          const at = part === 'weights' ? `[${Math.floor(q / layer.inputs)}][${q % layer.inputs}]` : `[${q}]`;
          bad(`layers[${l}].${part}${at}`, `is ${values[q]}; a model with non-finite parameters is not written`);
        }
      }
    };
    check(layer.weights, 'weights');
    check(layer.bias, 'bias');
  });
  return {
    format: MODEL_FORMAT,
    inputSize: model.inputSize,
    layers: model.layers.map((layer) => {
      const rows: number[][] = [];
      for (let i = 0; i < layer.outputs; i++) {
        rows.push(Array.from(layer.weights.subarray(i * layer.inputs, (i + 1) * layer.inputs)));
      }
      return { activation: layer.activation, weights: rows, bias: Array.from(layer.bias) };
    }),
  };
}
