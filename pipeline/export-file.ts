import { stat } from 'node:fs/promises';
import { basename, dirname, join } from 'node:path';
import { writeFileDurably } from './durable-file.ts';
import { makeFolder } from './make-folder.ts';
import { StreamgradError } from '../core/errors.ts';
import { exportOnnx, ONNX_DTYPES, type OnnxDtype } from './export-onnx.ts';
import { exportTfjs } from './export-tfjs.ts';
import type { ModelArtifact } from './model-artifact.ts';

/** The formats a model exports to. */
export const EXPORT_FORMATS = ['onnx', 'tfjs'] as const;
/** `onnx`: one `.onnx` file; `tfjs`: TensorFlow.js layers format, `model.json` and a weights file. */
export type ExportFormat = (typeof EXPORT_FORMATS)[number];

/** What to export and where (see `exportModel`). */
export interface ExportModelOptions {
  readonly format: ExportFormat;
  /** onnx: the file; tfjs: a folder (created if missing) for `model.json` and `model.weights.bin`, or a `NAME.json` path (weights `NAME.weights.bin` beside it). */
  readonly out: string;
  /** onnx: `float64` (default) or `float32`; tfjs: `float32` only (TF.js layer weights are float32). */
  readonly dtype?: OnnxDtype;
  /** The streamgrad version written into the files. */
  readonly producerVersion?: string;
}

/** What an export wrote. */
export interface ExportResult {
  readonly format: ExportFormat;
  readonly dtype: OnnxDtype;
  /** The files written, the one to load first. */
  readonly files: readonly string[];
  readonly bytes: number;
  /** What the exported model does not do that streamgrad does (TF.js: missing values not imputed). */
  readonly notes: readonly string[];
}

function fail(field: string, message: string, cause?: unknown): never {
  throw new StreamgradError('SG_ERR_EXPORT', `${field}: ${message}`, field, cause === undefined ? undefined : { cause });
}

/**
 * Exports a model artifact to a file (`onnx`) or a model.json and its weights (`tfjs`),
 * each written atomically and verified (`writeFileDurably`: a reader sees the old file or
 * the new one, never part of one). For TF.js the weights are written first, so a
 * `model.json` never points at weights that are not there yet. Every failure is an
 * `SG_ERR_EXPORT` naming the field: `format`, `dtype`, `out` (cannot be written), or
 * `layers[i].activation` (an activation the format lacks: sign in TF.js).
 *
 * @example
 * await exportModel(artifactFromJSON(JSON.parse(readFileSync('weather.json', 'utf8'))), { format: 'onnx', out: 'weather.onnx' });
 */
export async function exportModel(artifact: ModelArtifact, options: ExportModelOptions): Promise<ExportResult> {
  const { format, out } = options;
  if (!(EXPORT_FORMATS as readonly string[]).includes(format)) fail('format', `unknown format ${JSON.stringify(format)}; use ${EXPORT_FORMATS.join(' or ')}`);
  const dtype = options.dtype ?? (format === 'onnx' ? 'float64' : 'float32');
  if (!ONNX_DTYPES.includes(dtype)) fail('dtype', `unknown type ${JSON.stringify(dtype)}; use ${ONNX_DTYPES.join(' or ')}`);
  if (format === 'tfjs' && dtype !== 'float32') fail('dtype', 'TensorFlow.js layer weights are float32; use float32 (or format onnx for float64)');
  if (out === '') fail('out', 'must be a path');

  if (format === 'onnx') {
    const bytes = exportOnnx(artifact, { dtype, ...(options.producerVersion !== undefined && { producerVersion: options.producerVersion }) });
    await write(out, bytes);
    return { format, dtype, files: [out], bytes: bytes.length, notes: [] };
  }
  const jsonPath = out.endsWith('.json') ? out : join(out, 'model.json');
  const weightsName = out.endsWith('.json') ? `${basename(out, '.json')}.weights.bin` : 'model.weights.bin';
  // build first: a refused model (sign) writes nothing, not even the folder
  const { modelJson, weights, notes } = exportTfjs(artifact, { weightsPath: weightsName, ...(options.producerVersion !== undefined && { producerVersion: options.producerVersion }) });
  if (!out.endsWith('.json')) {
    const existing = await stat(out).catch(() => null);
    if (existing !== null && !existing.isDirectory()) fail('out', `${out} is a file; TF.js needs a folder (for model.json and its weights) or a NAME.json path`);
    await makeFolder(out).catch((error: unknown) => fail('out', `cannot create the folder ${out}: ${(error as Error).message}`, error));
  }
  const json = new TextEncoder().encode(`${JSON.stringify(modelJson)}\n`);
  const weightsPath = join(dirname(jsonPath), weightsName);
  await write(weightsPath, weights);
  await write(jsonPath, json);
  return { format, dtype, files: [jsonPath, weightsPath], bytes: json.length + weights.length, notes };
}

async function write(path: string, bytes: Uint8Array): Promise<void> {
  const existing = await stat(path).catch(() => null);
  if (existing?.isDirectory()) fail('out', `${path} is a folder`);
  try {
    await writeFileDurably(path, bytes);
  } catch (error) {
    fail('out', `cannot write ${path}: ${(error as Error).message}`, error);
  }
}
