import { LEAKY_RELU_SLOPE } from '../core/activations.ts';
import { normalizerOf, type ModelArtifact } from './model-artifact.ts';
import { checkFloat32Range } from './float32-range.ts';
import { ONNX_ATTRIBUTE_TYPE, ONNX_DATA_TYPE, onnxModelType } from './onnx-schema.ts';

/** The element type of an exported ONNX graph: its input, constants and every intermediate value. */
export type OnnxDtype = 'float64' | 'float32';

/** The ONNX data types an export can use. */
export const ONNX_DTYPES: readonly OnnxDtype[] = ['float64', 'float32'];

/** How to export (see `onnxGraph`). */
export interface OnnxExportOptions {
  /** The element type of the input, the constants and every intermediate value (default `float64`). */
  readonly dtype?: OnnxDtype;
  /** The graph's name (default `streamgrad`). */
  readonly name?: string;
  /** Written as the model's `producer_version` (default empty). */
  readonly producerVersion?: string;
}

/** One node of an exported graph. */
export interface OnnxNode {
  readonly op: string;
  readonly name: string;
  readonly inputs: readonly string[];
  readonly outputs: readonly string[];
  /** Integer attributes (`transB`, `axis`, `keepdims`). */
  readonly attributes?: Readonly<Record<string, number>>;
  /** What the node is for, in streamgrad's terms (`layers[1] dense`, `x normalisation`). */
  readonly doc: string;
}

/** A constant of an exported graph. */
export interface OnnxInitializer {
  readonly name: string;
  readonly dims: readonly number[];
  /** `value`: the graph's float type; `int64`: indices and axes. */
  readonly type: 'value' | 'int64';
  readonly values: ArrayLike<number>;
}

/** An input or output of an exported graph (`batch` is the symbolic batch dimension). */
export interface OnnxValue {
  readonly name: string;
  readonly type: 'value' | 'int64';
  readonly shape: readonly (number | 'batch')[];
  readonly doc: string;
}

/** An exported graph before encoding: what `encodeOnnx` writes and `inspect` summarises. */
export interface OnnxGraph {
  readonly name: string;
  readonly dtype: OnnxDtype;
  readonly opset: number;
  readonly inputs: readonly OnnxValue[];
  readonly outputs: readonly OnnxValue[];
  readonly nodes: readonly OnnxNode[];
  readonly initializers: readonly OnnxInitializer[];
  /** `metadata_props`: the artifact's feature, target and class names as JSON (`streamgrad.features`, …). */
  readonly metadata: Readonly<Record<string, string>>;
}

/**
 * The `class` output of a row that has no prediction (its `y` is NaN: a value missing that
 * nothing fills, ±Infinity, an overflow), where `streamgrad predict` reports a typed error.
 * Never a class index, so a caller reading only `class` cannot mistake such a row for class 0.
 *
 * @example
 * const { class: k } = await session.run({ x }); // k.data[r] === BigInt(NO_CLASS): row r has no answer
 */
export const NO_CLASS = -1;

/** The ONNX operator set the graph uses (13: `ReduceSum` with axes as an input, `Softmax` over one axis). */
export const ONNX_OPSET = 13;
/** The IR version of ONNX opset 13. */
const IR_VERSION = 7;

/**
 * Builds the ONNX graph (opset 13) of a model artifact: the computation `createPredictor` does,
 * expressed as ONNX nodes, so that any ONNX runtime reproduces streamgrad's predictions.
 *
 * | streamgrad                      | ONNX nodes                                                              |
 * |---------------------------------|-------------------------------------------------------------------------|
 * | missing value, policy mean/last | input NaN → `IsNaN`, `Where(isnan, fill, x)` (the recorded mean / last value) |
 * | missing value nothing can fill, non-finite value | the row's outputs are NaN (`Mul(x, 0)`, `ReduceSum` per row, added to the outputs), where streamgrad returns a typed error |
 * | x normalisation                 | `Sub(mean)`, `Div(sd)`, `Clip(±min(clip, √n))`; before the warm-up `Mul(0)` |
 * | dense layer z = Wx + b          | `Gemm(x, W, b, transB=1)`: W is stored as streamgrad has it, row i = neuron i |
 * | linear, sigmoid, tanh, relu     | none, `Sigmoid`, `Tanh`, `Relu`                                         |
 * | leaky_relu                      | `Max(z, Mul(z, 0.01))`: the slope as a tensor of the graph's type (ONNX's `LeakyRelu` takes its alpha as a float32 attribute, 0.0099999998, which would be off by 2e-9 relative in float64) |
 * | sign                            | `Sign` (ONNX's Sign(0) = 0, as JavaScript's Math.sign(0): no correction needed) |
 * | softmax                         | `Softmax(axis=-1)`                                                      |
 * | y de-normalisation              | `Mul(sd)`, `Add(mean)`                                                  |
 * | class (classifiers)             | a second output `class`: `ArgMax(axis=1)`, an index into the `streamgrad.classes` metadata; `NO_CLASS` (-1) for a row whose outputs are not finite (`Mul(y, 0)`, `ReduceSum`, `IsNaN`, `Where`), where ArgMax alone would say 0 |
 *
 * Input `x` is `[batch, inputs]` in the model's input order (the feature names are in the
 * metadata `streamgrad.features` and the input's doc string), output `y` is
 * `[batch, outputs]` in the user's units. Constants are exact float64 values in `float64`
 * graphs, rounded once to float32 in `float32` graphs.
 *
 * Every activation streamgrad has is supported; nothing is refused.
 *
 * @example
 * const graph = onnxGraph(artifact, { dtype: 'float32' });
 * graph.nodes.map((n) => n.op); // ['Mul', 'ReduceSum', 'Sub', 'Div', 'Clip', 'Gemm', 'Relu', 'Gemm', 'Add']
 * @param artifact the model and its preprocessing (`artifactFromJSON`, `artifactFromCheckpoint`)
 */
export function onnxGraph(artifact: ModelArtifact, options: OnnxExportOptions = {}): OnnxGraph {
  const { model, preprocessing: p } = artifact;
  const dtype = options.dtype ?? 'float64';
  const n = model.inputSize, m = model.outputSize;
  const nodes: OnnxNode[] = [];
  const initializers: OnnxInitializer[] = [];
  const constant = (name: string, values: ArrayLike<number>, dims: readonly number[] = [values.length], type: 'value' | 'int64' = 'value') => {
    initializers.push({ name, dims, type, values });
    return name;
  };
  const node = (op: string, name: string, inputs: readonly string[], doc: string, attributes?: Record<string, number>) => {
    nodes.push({ op, name, inputs, outputs: [name], doc, ...(attributes !== undefined && { attributes }) });
    return name;
  };

  let cur = 'x';
  // imputation: a missing value is NaN on the way in; the recorded policy fills it
  const imputation = p?.imputation ?? null;
  if (p !== null && p.missing !== null && imputation !== null) {
    const fill = p.missing.map((policy, i) => (policy === 'mean' && imputation.seen[i] > 0 ? imputation.mean[i] : policy === 'last' ? imputation.last[i] ?? NaN : NaN));
    if (fill.some((v) => !Number.isNaN(v))) {
      const missing = node('IsNaN', 'x_missing', [cur], 'missing values (NaN)');
      cur = node('Where', 'x_imputed', [missing, constant('imputation_fill', fill), cur], `imputation: ${p.missing.join(', ')} (NaN: no value to impute)`);
    }
  }
  // a row with a value left missing or non-finite has no prediction (streamgrad: a typed error): NaN outputs
  const zeroed = node('Mul', 'guard_zeroed', [cur, constant('zero', [0], [])], 'NaN where a value is missing or non-finite, else 0');
  const guard = node('ReduceSum', 'guard', [zeroed, constant('guard_axes', [1], [1], 'int64')], 'per row: NaN if any input is, else 0', { keepdims: 1 });

  const normalizer = p === null ? null : normalizerOf(p, model);
  if (normalizer !== null) {
    const stats = normalizer.x;
    if (stats.count < normalizer.warmup) {
      cur = node('Mul', 'x_normalized', [cur, constant('x_zeros', new Float64Array(n))], `x normalisation before its warm-up (${stats.count} of ${normalizer.warmup} samples): every value is at its mean, 0`);
    } else {
      const scale = Array.from({ length: n }, (_, i) => normalizer.scaleOf(stats, i));
      cur = node('Sub', 'x_centred', [cur, constant('x_mean', stats.mean)], 'x normalisation: minus the mean');
      const clip = normalizer.clip === Infinity ? Infinity : Math.min(normalizer.clip, Math.sqrt(stats.count));
      cur = node('Div', clip === Infinity ? 'x_normalized' : 'x_scaled', [cur, constant('x_scale', scale)], 'x normalisation: divided by the sd (1 for a constant feature)');
      if (clip !== Infinity) {
        cur = node('Clip', 'x_normalized', [cur, constant('x_clip_min', [-clip], []), constant('x_clip_max', [clip], [])], `x normalisation: z-scores clipped to ±${clip}`);
      }
    }
  }

  model.layers.forEach((layer, l) => {
    const z = node('Gemm', `z${l}`, [cur, constant(`W${l}`, layer.weights, [layer.outputs, layer.inputs]), constant(`b${l}`, layer.bias)], `layers[${l}] dense ${layer.inputs} → ${layer.outputs}: z = Wx + b`, { transB: 1 });
    const what = `layers[${l}] ${layer.activation}`;
    switch (layer.activation) {
      case 'linear': cur = z; break;
      case 'sigmoid': cur = node('Sigmoid', `a${l}`, [z], what); break;
      case 'tanh': cur = node('Tanh', `a${l}`, [z], what); break;
      case 'relu': cur = node('Relu', `a${l}`, [z], what); break;
      case 'sign': cur = node('Sign', `a${l}`, [z], what); break;
      case 'softmax': cur = node('Softmax', `a${l}`, [z], what, { axis: -1 }); break;
      case 'leaky_relu': {
        const scaled = node('Mul', `z${l}_leak`, [z, constant(`leak${l}`, [LEAKY_RELU_SLOPE], [])], `${what}: ${LEAKY_RELU_SLOPE} z`);
        cur = node('Max', `a${l}`, [z, scaled], `${what}: max(z, ${LEAKY_RELU_SLOPE} z)`);
        break;
      }
    }
  });

  const y = normalizer?.y ?? null;
  if (normalizer !== null && y !== null && y.count > 0) {
    const scale = Array.from({ length: m }, (_, k) => normalizer.scaleOf(y, k));
    cur = node('Mul', 'y_scaled', [cur, constant('y_scale', scale)], 'y de-normalisation: times the sd');
    cur = node('Add', 'y_units', [cur, constant('y_mean', y.mean)], 'y de-normalisation: plus the mean');
  }
  node('Add', 'y', [cur, guard], 'outputs in the target\'s units (NaN for a row with a missing or non-finite value)');

  const classes = p?.classes ?? null;
  const last = model.layers[model.layers.length - 1].activation;
  const outputs: OnnxValue[] = [{ name: 'y', type: 'value', shape: ['batch', m], doc: outputDoc(p?.targets ?? null, classes, last) }];
  if (classes !== null || last === 'softmax') {
    // ArgMax over a row of NaNs answers 0, a valid class: a row without a prediction (its
    // outputs not finite: a value missing with nothing to fill it, ±Infinity, an overflow)
    // gets NO_CLASS instead, so that a caller reading only `class` cannot take it for one
    const best = node('ArgMax', 'class_largest', ['y'], 'the index of the largest output', { axis: 1, keepdims: 0 });
    const yZeroed = node('Mul', 'class_y_zeroed', ['y', 'zero'], 'NaN where an output is not finite, else 0');
    const yGuard = node('ReduceSum', 'class_y_guard', [yZeroed, 'guard_axes'], 'per row: NaN if any output is not finite, else 0', { keepdims: 0 });
    const unanswered = node('IsNaN', 'class_unanswered', [yGuard], 'rows with no prediction');
    node('Where', 'class', [unanswered, constant('no_class', [NO_CLASS], [], 'int64'), best], `the class: the index of the largest output, ${NO_CLASS} for a row whose outputs are not finite`);
    outputs.push({ name: 'class', type: 'int64', shape: ['batch'], doc: `${classes === null ? 'the index of the largest output' : `the index of the class in ${JSON.stringify(classes)} (metadata streamgrad.classes)`}; ${NO_CLASS} for a row without a prediction (outputs NaN)` });
  }

  const features = p?.features ?? null;
  const metadata: Record<string, string> = { 'streamgrad.format': 'streamgrad/model@1', 'streamgrad.activations': JSON.stringify(model.layers.map((l) => l.activation)) };
  if (features !== null) metadata['streamgrad.features'] = JSON.stringify(features);
  if (p?.targets != null) metadata['streamgrad.targets'] = JSON.stringify(p.targets);
  if (classes !== null) metadata['streamgrad.classes'] = JSON.stringify(classes);
  if (p?.missing != null) metadata['streamgrad.missing'] = JSON.stringify(p.missing);
  // a weight float32 cannot hold would be ±Infinity in the file: refused, never written
  if (dtype === 'float32') for (const t of initializers) if (t.type === 'value') checkFloat32Range(t.values, t.name, 'dtype', 'export as float64');
  return {
    name: options.name ?? 'streamgrad',
    dtype,
    opset: ONNX_OPSET,
    inputs: [{ name: 'x', type: 'value', shape: ['batch', n], doc: features === null ? `${n} inputs in the model's order` : `features in this order: ${features.join(', ')}; a missing value is NaN` }],
    outputs,
    nodes,
    initializers,
    metadata,
  };
}

function outputDoc(targets: readonly string[] | null, classes: readonly string[] | null, last: string): string {
  if (classes !== null) return `per class (${classes.join(', ')}): ${last === 'softmax' ? 'probabilities' : 'outputs'}`;
  return targets === null ? 'the outputs' : `${targets.join(', ')}, in the target's units`;
}

/**
 * Encodes a graph as the bytes of an `.onnx` file (`onnx.ModelProto`, written with
 * protobufjs): producer `streamgrad`, opset 13 of the default domain, metadata as
 * `metadata_props`, constants as little-endian `raw_data`.
 *
 * @example writeFileSync('model.onnx', encodeOnnx(onnxGraph(artifact)));
 */
export function encodeOnnx(graph: OnnxGraph, producerVersion = ''): Uint8Array {
  const elemType = graph.dtype === 'float64' ? ONNX_DATA_TYPE.DOUBLE : ONNX_DATA_TYPE.FLOAT;
  const typeOf = (t: 'value' | 'int64') => (t === 'int64' ? ONNX_DATA_TYPE.INT64 : elemType);
  const valueInfo = (v: OnnxValue) => ({
    name: v.name,
    docString: v.doc,
    type: { tensorType: { elemType: typeOf(v.type), shape: { dim: v.shape.map((d) => (d === 'batch' ? { dimParam: 'batch' } : { dimValue: d })) } } },
  });
  const doc = {
    irVersion: IR_VERSION,
    opsetImport: [{ domain: '', version: graph.opset }],
    producerName: 'streamgrad',
    producerVersion,
    docString: 'A streamgrad model with its preprocessing (imputation, normalisation) as ONNX nodes.',
    graph: {
      name: graph.name,
      node: graph.nodes.map((n) => ({
        name: n.name,
        opType: n.op,
        input: n.inputs,
        output: n.outputs,
        docString: n.doc,
        attribute: Object.entries(n.attributes ?? {}).map(([name, i]) => ({ name, type: ONNX_ATTRIBUTE_TYPE.INT, i })),
      })),
      initializer: graph.initializers.map((t) => ({ name: t.name, dims: t.dims, dataType: typeOf(t.type), rawData: rawData(t.values, t.type === 'int64' ? 'int64' : graph.dtype) })),
      input: graph.inputs.map(valueInfo),
      output: graph.outputs.map(valueInfo),
    },
    metadataProps: Object.entries(graph.metadata).map(([key, value]) => ({ key, value })),
  };
  const type = onnxModelType();
  return type.encode(type.fromObject(doc)).finish();
}

/** Little-endian bytes of `values` as float64, float32 or int64 (ONNX's raw_data is little-endian whatever the machine). */
function rawData(values: ArrayLike<number>, type: OnnxDtype | 'int64'): Uint8Array {
  const size = type === 'float32' ? 4 : 8;
  const bytes = new Uint8Array(values.length * size);
  const view = new DataView(bytes.buffer);
  for (let i = 0; i < values.length; i++) {
    if (type === 'float64') view.setFloat64(i * 8, values[i], true);
    else if (type === 'float32') view.setFloat32(i * 4, values[i], true);
    else view.setBigInt64(i * 8, BigInt(values[i]), true);
  }
  return bytes;
}

/**
 * A model artifact as the bytes of an ONNX file: `encodeOnnx(onnxGraph(artifact, options))`.
 *
 * @example
 * const bytes = exportOnnx(artifactFromJSON(JSON.parse(readFileSync('weather.json', 'utf8'))), { dtype: 'float32' });
 * const session = await InferenceSession.create(bytes); // onnxruntime
 */
export function exportOnnx(artifact: ModelArtifact, options: OnnxExportOptions = {}): Uint8Array {
  return encodeOnnx(onnxGraph(artifact, options), options.producerVersion);
}
