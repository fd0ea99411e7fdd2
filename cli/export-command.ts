import { readdir, stat } from 'node:fs/promises';
import { join, resolve } from 'node:path';
import { StreamgradError } from '../core/errors.ts';
import { EXPORT_FORMATS, exportModel, type ExportFormat } from '../pipeline/export-file.ts';
import { ONNX_DTYPES, type OnnxDtype } from '../pipeline/export-onnx.ts';
import { CheckpointStore } from '../pipeline/checkpoint-store.ts';
import { CliError, EXIT_OK, EXIT_USAGE, oneLine, usage } from './cli-error.ts';
import { loadArtifact } from '../runtime/model-io.ts';
import { printable } from '../runtime/errors.ts';
import { choice, flag, type OptionSpec, parseOptions, text } from './options.ts';

export const EXPORT_HELP = `Usage: streamgrad export (--model FILE | --checkpoint FILE|DIR) --format onnx|tfjs --out PATH

Writes a trained model, with the preprocessing it was trained with, in a format other
runtimes load. What an export would contain: streamgrad inspect FILE.

  onnx   one .onnx file (opset 13): dense layers as Gemm, every activation (sign as
         Sign, softmax as Softmax), and the preprocessing as nodes: a missing value
         (NaN) imputed by the trained policy, the inputs standardised and clipped with
         the normaliser's final statistics, outputs in the target's units; a row with
         a value that cannot be imputed gives NaN outputs. Input "x" [batch, inputs],
         output "y" [batch, outputs], and "class" (an index) for a classifier; feature,
         target and class names in the metadata (streamgrad.features, ...).
  tfjs   TensorFlow.js layers format, PATH/model.json and PATH/model.weights.bin (or
         PATH.json and PATH.weights.bin for a PATH ending in .json), for
         tf.loadLayersModel: Dense layers, the normalisation as Dense and ReLU layers.
         Missing values are not imputed (TF.js layers cannot test for NaN): the model
         expects every input, and says so. sign has no TF.js layer: refused.

Options:
  --model FILE         a streamgrad/model@1 file (or a checkpoint file)
  --checkpoint FILE|DIR  a streamgrad/checkpoint@1 file, or a checkpoint folder
                       (--checkpoint-dir): its newest intact checkpoint (newer ones
                       refused as corrupt are named on stderr, with the one exported)
  --format onnx|tfjs   the format (required)
  --out PATH           where to write (required); written atomically
  --dtype T            float64 (default for onnx) or float32 (tfjs: float32 only)
  --json               print what was written as one JSON object
  -h, --help           show this help

Exit status: 0 written, 2 bad option, model file, a format that cannot hold the model
(naming the layer), or an output path that cannot be written.
`;

const SPEC: OptionSpec = {
  model: { type: 'string' },
  checkpoint: { type: 'string' },
  format: { type: 'string' },
  out: { type: 'string' },
  dtype: { type: 'string' },
  json: { type: 'boolean' },
  help: { type: 'boolean', short: 'h' },
};

/** `streamgrad export` settings. */
export interface ExportSettings {
  readonly source: { readonly option: '--model' | '--checkpoint'; readonly path: string };
  readonly format: ExportFormat;
  readonly out: string;
  readonly dtype?: OnnxDtype;
  readonly json: boolean;
}

export function parseExportArgs(args: readonly string[]): ExportSettings | 'help' {
  const options = parseOptions(args, SPEC, 'streamgrad export');
  if (flag(options, 'help')) return 'help';
  const model = text(options, 'model'), checkpoint = text(options, 'checkpoint');
  if (model !== undefined && checkpoint !== undefined) usage('--checkpoint', 'give --model or --checkpoint, not both');
  if (model === undefined && checkpoint === undefined) usage('--model', 'required: a streamgrad/model@1 file (or --checkpoint FILE|DIR)');
  const path = (model ?? checkpoint)!;
  if (path === '') usage(model !== undefined ? '--model' : '--checkpoint', 'must be a path');
  if (text(options, 'format') === undefined) usage('--format', `required: ${EXPORT_FORMATS.join(' or ')}`);
  const format = choice(options, 'format', EXPORT_FORMATS, 'onnx');
  const out = text(options, 'out');
  if (out === undefined || out === '') usage('--out', 'required: the file (onnx) or folder (tfjs) to write');
  const dtype = text(options, 'dtype') === undefined ? undefined : choice(options, 'dtype', ONNX_DTYPES, 'float64');
  if (format === 'tfjs' && dtype === 'float64') usage('--dtype', 'TensorFlow.js layer weights are float32; use float32, or --format onnx for float64');
  return { source: { option: model !== undefined ? '--model' : '--checkpoint', path }, format, out, ...(dtype !== undefined && { dtype }), json: flag(options, 'json') };
}

/**
 * The checkpoint file a `--checkpoint` path means: the file itself, or a folder's newest
 * intact checkpoint, with the newer ones refused on the way (corrupt, truncated): the caller
 * says which were refused and which one is exported, as `train --resume` does, since an
 * export of an older checkpoint than the user expects must never be silent.
 */
async function checkpointFile(path: string): Promise<{ file: string; refused: readonly { path: string; error: StreamgradError }[] }> {
  const info = await stat(path).catch((error: unknown) => { throw new CliError(`--checkpoint ${path}: cannot read: ${oneLine(error)}`, EXIT_USAGE, { cause: error }); });
  if (!info.isDirectory()) return { file: path, refused: [] };
  const prefixes = [...new Set((await readdir(path)).filter((n) => n.endsWith('.sgck')).map((n) => n.replace(/-\d+\.sgck$/, '')))];
  if (prefixes.length === 0) throw new CliError(`--checkpoint ${path}: no checkpoint (*.sgck) in this folder`);
  if (prefixes.length > 1) throw new CliError(`--checkpoint ${path}: checkpoints of several runs (${prefixes.join(', ')}); give one file`);
  try {
    const latest = await new CheckpointStore(path, { prefix: prefixes[0] }).loadLatest();
    if (latest === null) throw new CliError(`--checkpoint ${path}: no checkpoint in this folder`);
    return { file: latest.path, refused: latest.refused };
  } catch (error) {
    if (error instanceof StreamgradError) throw new CliError(`--checkpoint ${path}: ${error.message}`, EXIT_USAGE, { cause: error });
    throw error;
  }
}

/** `streamgrad export`: writes a model (or checkpoint) as ONNX or TF.js. */
export async function exportCommand(args: readonly string[]): Promise<number> {
  const settings = parseExportArgs(args);
  if (settings === 'help') {
    process.stdout.write(EXPORT_HELP);
    return EXIT_OK;
  }
  const { option } = settings.source;
  const { file, refused } = option === '--checkpoint' ? await checkpointFile(settings.source.path) : { file: settings.source.path, refused: [] };
  for (const r of refused) process.stderr.write(`streamgrad: refused checkpoint ${printable(r.path)}: ${printable(r.error.message)}; trying the one before it\n`);
  if (refused.length > 0) process.stderr.write(`streamgrad: exporting ${printable(file)}, the newest intact checkpoint (${refused.length} newer ${refused.length === 1 ? 'one' : 'ones'} refused)\n`);
  const { artifact } = await loadArtifact(file, option);
  const written = settings.format === 'onnx' || settings.out.endsWith('.json') ? settings.out : join(settings.out, 'model.json');
  if (resolve(written) === resolve(file)) usage('--out', `${settings.out} would overwrite the model it exports (${file})`);
  let result;
  try {
    result = await exportModel(artifact, { format: settings.format, out: settings.out, ...(settings.dtype !== undefined && { dtype: settings.dtype }) });
  } catch (error) {
    if (!(error instanceof StreamgradError)) throw error;
    // field `out`, `dtype`, or a layer the format cannot hold: each a usage error (exit 2)
    const option = error.field === 'out' || error.field === 'dtype' ? `--${error.field}: ${error.message.slice(error.field.length + 2)}` : `--format ${settings.format}: ${error.message}`;
    throw new CliError(option, EXIT_USAGE, { cause: error });
  }
  if (settings.json) {
    process.stdout.write(`${JSON.stringify({ from: file, ...(refused.length > 0 && { refused: refused.map((r) => ({ path: r.path, code: r.error.code, message: r.error.message })) }), ...result })}\n`);
  } else {
    process.stdout.write(`exported ${file} as ${result.format} (${result.dtype}): ${result.files.join(', ')} (${result.bytes} bytes)\n`);
  }
  for (const note of result.notes) process.stderr.write(`streamgrad: note: ${note}\n`);
  return EXIT_OK;
}
