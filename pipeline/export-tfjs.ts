import { LEAKY_RELU_SLOPE } from '../core/activations.ts';
import { StreamgradError } from '../core/errors.ts';
import { checkFloat32Range } from './float32-range.ts';
import { normalizerOf, type ModelArtifact } from './model-artifact.ts';

/**
 * A model artifact in TensorFlow.js's layers format: a `Sequential` model of `Dense`
 * layers (weights float32, TF.js's only layer weight type), as `tf.loadLayersModel` reads
 * it from a `model.json` and one weights file.
 *
 * | streamgrad                 | TF.js layers                                                        |
 * |----------------------------|---------------------------------------------------------------------|
 * | dense layer z = Wx + b     | `Dense`, kernel = Wᵀ (TF.js kernels are inputs × units)             |
 * | linear, sigmoid, tanh, relu, softmax | the Dense layer's own activation                         |
 * | leaky_relu                 | `Dense` (linear) then `LeakyReLU` (alpha 0.01)                      |
 * | sign                       | refused: TF.js has no sign activation (`SG_ERR_EXPORT` naming the layer; ONNX has `Sign`) |
 * | x normalisation            | `Dense` `sg_x_centre` (identity, bias −mean), `Dense` `sg_x_scale` (diagonal 1/sd), and with a clip c: bias +c, `ReLU` (maxValue 2c) and `Dense` `sg_x_unshift` (identity, bias −c), i.e. clip(z, −c, c); before the warm-up one `Dense` of zeros |
 * | y de-normalisation         | `Dense` `sg_y_units` (diagonal sd, bias mean)                       |
 * | imputation of missing values | **not exported**: TF.js layers have no NaN test. The model expects complete inputs in `features` order; a missing value must be filled by the caller (the values streamgrad would fill in are in `userDefinedMetadata.streamgrad.imputation`), and `notes` says so |
 *
 * Feature, target and class names go into `userDefinedMetadata.streamgrad`
 * (`model.getUserDefinedMetadata()` after loading).
 */
export interface TfjsExport {
  /** The `model.json` document: `modelTopology`, `weightsManifest` (one file, `weightsPath`), metadata. */
  readonly modelJson: Readonly<Record<string, unknown>>;
  /** The weights file: every weight, float32 little-endian, in manifest order. */
  readonly weights: Uint8Array;
  /** What the exported model does not do that streamgrad does (missing values not imputed). */
  readonly notes: readonly string[];
}

/** How to export to TF.js. */
export interface TfjsExportOptions {
  /** The weights file's path relative to `model.json` (default `model.weights.bin`). */
  readonly weightsPath?: string;
  /** Written into `generatedBy` (`streamgrad VERSION`). */
  readonly producerVersion?: string;
}

/** One layer of a TF.js export (as `inspect` lists them). */
export interface TfjsLayer {
  readonly className: 'Dense' | 'LeakyReLU' | 'ReLU';
  readonly name: string;
  /** Keras config, camelCase names as in `tf.layers.*` (written snake_case in model.json). */
  readonly config: Readonly<Record<string, unknown>>;
  /** Dense: the kernel (inputs × units, row-major) and the bias. */
  readonly kernel?: { readonly shape: readonly [number, number]; readonly values: Float64Array };
  readonly bias?: Float64Array;
  /** What the layer is for, in streamgrad's terms. */
  readonly doc: string;
}

const ACTIVATION_NAMES = { linear: 'linear', sigmoid: 'sigmoid', tanh: 'tanh', relu: 'relu', softmax: 'softmax', leaky_relu: 'linear' } as const;

/**
 * The layers a TF.js export has (see `TfjsExport`), and what it cannot carry (`notes`).
 * A model with a `sign` layer is refused with `SG_ERR_EXPORT`, field `layers[i].activation`.
 *
 * @example tfjsLayers(artifact).layers.map((l) => l.name); // ['sg_x_centre', 'sg_x_scale', 'dense_0', 'dense_1']
 */
export function tfjsLayers(artifact: ModelArtifact): { readonly layers: readonly TfjsLayer[]; readonly notes: readonly string[] } {
  const { model, preprocessing: p } = artifact;
  const sign = model.layers.findIndex((l) => l.activation === 'sign');
  if (sign >= 0) {
    throw new StreamgradError('SG_ERR_EXPORT', `layers[${sign}].activation: sign has no TensorFlow.js layer; export to ONNX (format onnx), which has Sign`, `layers[${sign}].activation`);
  }
  const n = model.inputSize;
  const layers: TfjsLayer[] = [];
  const dense = (name: string, inputs: number, units: number, kernel: Float64Array, bias: ArrayLike<number>, doc: string, activation = 'linear') => {
    layers.push({ className: 'Dense', name, config: { units, activation, useBias: true }, kernel: { shape: [inputs, units], values: kernel }, bias: Float64Array.from(bias), doc });
  };
  const diagonal = (values: ArrayLike<number>) => {
    const k = values.length, out = new Float64Array(k * k);
    for (let i = 0; i < k; i++) out[i * k + i] = values[i];
    return out;
  };

  const normalizer = p === null ? null : normalizerOf(p, model);
  if (normalizer !== null) {
    const stats = normalizer.x;
    if (stats.count < normalizer.warmup) {
      dense('sg_x_normalize', n, n, new Float64Array(n * n), new Float64Array(n), `x normalisation before its warm-up (${stats.count} of ${normalizer.warmup} samples): every input is 0`);
    } else {
      dense('sg_x_centre', n, n, diagonal(new Float64Array(n).fill(1)), Array.from(stats.mean, (v) => -v), 'x normalisation: minus the mean');
      const clip = normalizer.clip === Infinity ? Infinity : Math.min(normalizer.clip, Math.sqrt(stats.count));
      const inverse = Array.from({ length: n }, (_, i) => 1 / normalizer.scaleOf(stats, i));
      dense('sg_x_scale', n, n, diagonal(inverse), new Float64Array(n).fill(clip === Infinity ? 0 : clip), clip === Infinity ? 'x normalisation: divided by the sd' : `x normalisation: divided by the sd, plus ${clip}`);
      if (clip !== Infinity) {
        layers.push({ className: 'ReLU', name: 'sg_x_clip', config: { maxValue: 2 * clip }, doc: `x normalisation: z + ${clip} clipped to [0, ${2 * clip}]` });
        dense('sg_x_unshift', n, n, diagonal(new Float64Array(n).fill(1)), new Float64Array(n).fill(-clip), `x normalisation: minus ${clip} (z-scores clipped to ±${clip})`);
      }
    }
  }

  model.layers.forEach((layer, l) => {
    // TF.js kernels are inputs × units: the transpose of streamgrad's W (row i = neuron i)
    const kernel = new Float64Array(layer.inputs * layer.outputs);
    for (let i = 0; i < layer.outputs; i++) for (let j = 0; j < layer.inputs; j++) kernel[j * layer.outputs + i] = layer.weights[i * layer.inputs + j];
    const activation = ACTIVATION_NAMES[layer.activation as keyof typeof ACTIVATION_NAMES];
    dense(`dense_${l}`, layer.inputs, layer.outputs, kernel, layer.bias, `layers[${l}] dense ${layer.inputs} → ${layer.outputs}, ${layer.activation}`, activation);
    if (layer.activation === 'leaky_relu') layers.push({ className: 'LeakyReLU', name: `leaky_relu_${l}`, config: { alpha: LEAKY_RELU_SLOPE }, doc: `layers[${l}] leaky_relu` });
  });

  const y = normalizer?.y ?? null;
  if (normalizer !== null && y !== null && y.count > 0) {
    const m = model.outputSize;
    dense('sg_y_units', m, m, diagonal(Array.from({ length: m }, (_, k) => normalizer.scaleOf(y, k))), y.mean, 'y de-normalisation: times the sd, plus the mean');
  }

  const notes: string[] = [];
  const imputed = p?.missing?.flatMap((policy, i) => (policy === 'reject' ? [] : [`${p.features![i]} (${policy})`])) ?? [];
  if (imputed.length > 0) {
    notes.push(`missing values are not imputed (TF.js layers cannot test for NaN): give every input; streamgrad would fill ${imputed.join(', ')} with the values in userDefinedMetadata.streamgrad.imputation`);
  }
  return { layers, notes };
}

/** camelCase config keys as Keras writes them in model.json (`useBias` → `use_bias`). */
const snake = (config: Readonly<Record<string, unknown>>) => Object.fromEntries(Object.entries(config).map(([k, v]) => [k.replace(/[A-Z]/g, (c) => `_${c.toLowerCase()}`), v]));

/**
 * A model artifact in TF.js's layers format (see `TfjsExport`): write `modelJson` as
 * `model.json` and `weights` beside it under `weightsPath`, then
 * `tf.loadLayersModel('…/model.json')`. Refuses a `sign` layer (`SG_ERR_EXPORT`).
 *
 * @example
 * const { modelJson, weights, notes } = exportTfjs(artifact);
 * writeFileSync('out/model.json', JSON.stringify(modelJson));
 * writeFileSync('out/model.weights.bin', weights);
 */
export function exportTfjs(artifact: ModelArtifact, options: TfjsExportOptions = {}): TfjsExport {
  const { layers, notes } = tfjsLayers(artifact);
  const weightsPath = options.weightsPath ?? 'model.weights.bin';
  const specs: { name: string; shape: number[]; dtype: 'float32' }[] = [];
  const chunks: ArrayLike<number>[] = [];
  for (const layer of layers) {
    if (layer.kernel === undefined) continue;
    // TF.js layer weights are float32 only: a weight it cannot hold would be ±Infinity in the file
    checkFloat32Range(layer.kernel.values, `${layer.name}/kernel (${layer.doc})`, `${layer.name}/kernel`, 'export to ONNX as float64');
    checkFloat32Range(layer.bias!, `${layer.name}/bias (${layer.doc})`, `${layer.name}/bias`, 'export to ONNX as float64');
    specs.push({ name: `${layer.name}/kernel`, shape: [...layer.kernel.shape], dtype: 'float32' });
    specs.push({ name: `${layer.name}/bias`, shape: [layer.bias!.length], dtype: 'float32' });
    chunks.push(layer.kernel.values, layer.bias!);
  }
  const total = chunks.reduce((s, c) => s + c.length, 0);
  const weights = new Uint8Array(total * 4);
  const view = new DataView(weights.buffer);
  let offset = 0;
  for (const chunk of chunks) for (let i = 0; i < chunk.length; i++, offset += 4) view.setFloat32(offset, chunk[i], true);

  const { model, preprocessing: p } = artifact;
  const topology = layers.map((layer, i) => ({
    class_name: layer.className,
    config: { name: layer.name, trainable: true, dtype: 'float32', ...snake(layer.config), ...(i === 0 && { batch_input_shape: [null, model.inputSize] }) },
  }));
  const imputation = p?.imputation == null ? null
    : p.missing!.map((policy, i) => (policy === 'mean' && p.imputation!.seen[i] > 0 ? p.imputation!.mean[i] : policy === 'last' ? p.imputation!.last[i] : null));
  const modelJson = {
    format: 'layers-model',
    generatedBy: `streamgrad${options.producerVersion === undefined ? '' : ` ${options.producerVersion}`}`,
    convertedBy: null,
    modelTopology: { class_name: 'Sequential', config: { name: 'streamgrad', layers: topology }, keras_version: 'tfjs-layers 4.22.0', backend: 'tensor_flow.js' },
    weightsManifest: [{ paths: [weightsPath], weights: specs }],
    userDefinedMetadata: {
      streamgrad: {
        format: 'streamgrad/model@1',
        activations: model.layers.map((l) => l.activation),
        features: p?.features ?? null,
        targets: p?.targets ?? null,
        classes: p?.classes ?? null,
        missing: p?.missing ?? null,
        imputation,
        notes,
      },
    },
  };
  return { modelJson, weights, notes };
}
