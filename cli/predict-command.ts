import { createWriteStream } from 'node:fs';
import { once } from 'node:events';
import type { Writable } from 'node:stream';
import { StreamgradError } from '../core/errors.ts';
import { FeatureMap } from '../core/features.ts';
import type { IngestRecord } from '../core/record.ts';
import { createPredictor } from '../pipeline/predict-record.ts';
import { bitwiseKernels } from '../core/backend.ts';
import { csvRecords } from '../sources/csv.ts';
import { ndjsonRecords } from '../sources/ndjson.ts';
import { CliError, EXIT_OK, EXIT_USAGE, oneLine, usage } from './cli-error.ts';
import { readCsvHeader } from '../runtime/ingestion.ts';
import { MAX_LINE_HELP, maxLineBytesOption } from './ingest-options.ts';
import { loadArtifact, type LoadedArtifact } from '../runtime/model-io.ts';
import { openData } from '../runtime/ndjson.ts';
import { choice, flag, type OptionSpec, parseOptions, text } from './options.ts';
import { RejectionLog } from '../runtime/rejections.ts';

export const PREDICT_HELP = `Usage: streamgrad predict --model FILE [--data FILE|-] [options]

Applies a trained model to each input, without learning, as training saw it, and writes
one NDJSON line per input: {"line": N, "y": [...]} where N is the input's line number.

A model saved by train --save or run (or a checkpoint) carries the preprocessing it was
trained with, and predict applies it: named fields in the trained order (no --features
needed), missing values imputed by the trained policy, the normaliser's final statistics
(frozen: predicting never changes them), outputs mapped back to the target's own units
(--normalize-target), and for class labels (--classes) "class": the name of the largest
output, and "probabilities": each class's output by name. An older model file is read
with the FILE.ingest.json beside it. A preprocessing that does not fit the model is
refused (exit 2), never ignored.

Without recorded preprocessing (a bare model), inputs are positional and "class" is the
index of the largest softmax output; with a single sigmoid output 1 when y >= 0.5, else
0; with a single sign output y itself (1 or -1).

Options:
  --model FILE         a streamgrad/model@1 file or a streamgrad/checkpoint@1 file
  --data FILE|-        the inputs (default -, standard input): named JSON records or CSV
                       with a header row holding every trained feature (a value missing
                       in a row is imputed by the trained policy; a column missing from
                       the header is an error, exit 2, whatever the policy), or NDJSON
                       {"x": [...]} lines in the model's input order ("y" is ignored)
  --format F           ndjson or csv (default: csv for a .csv file, else ndjson)
  --features A,B,...   named inputs: for a model with feature names, the same names (a
                       different one is an error); otherwise CSV columns or JSON keys in
                       model order (default for a CSV file: every column, in order)
  --output FILE|-      where the predictions go (default -, standard output)
${MAX_LINE_HELP}  -h, --help           show this help

Inputs that are not JSON (or not UTF-8), too long, not a record the model takes
(a missing feature, wrong length, NaN or Infinity, wrong type) are skipped, reported on stderr with their line numbers and
counted; a summary ends the run on stderr.
Exit status: 0 done (even with rejected inputs), 2 bad option, model or input file.
`;

const SPEC: OptionSpec = {
  model: { type: 'string' },
  data: { type: 'string' },
  format: { type: 'string' },
  features: { type: 'string' },
  output: { type: 'string' },
  'max-line-bytes': { type: 'string' },
  help: { type: 'boolean', short: 'h' },
};

type DataFormat = 'ndjson' | 'csv';

export interface PredictSettings {
  readonly model: string;
  readonly data: string;
  readonly format: DataFormat;
  readonly features?: readonly string[];
  readonly output: string;
  /** `--max-line-bytes`: the longest input line (undefined: 16 MiB). */
  readonly maxLineBytes?: number;
}

export function parsePredictArgs(args: readonly string[]): PredictSettings | 'help' {
  const options = parseOptions(args, SPEC, 'streamgrad predict');
  if (flag(options, 'help')) return 'help';
  const model = text(options, 'model');
  if (model === undefined || model === '') usage('--model', 'required: a streamgrad/model@1 or checkpoint file');
  const data = text(options, 'data') ?? '-';
  if (data === '') usage('--data', 'must be a file path, or - for standard input');
  const output = text(options, 'output') ?? '-';
  if (output === '') usage('--output', 'must be a file path, or - for standard output');
  const format = choice<DataFormat>(options, 'format', ['ndjson', 'csv'], data.toLowerCase().endsWith('.csv') ? 'csv' : 'ndjson');
  let features: string[] | undefined;
  const rawFeatures = text(options, 'features');
  if (rawFeatures !== undefined) {
    features = rawFeatures.split(',').map((s) => s.trim());
    if (features.some((f) => f === '')) usage('--features', `must be a comma-separated list of names, got ${JSON.stringify(rawFeatures)}`);
    if (new Set(features).size !== features.length) usage('--features', 'names must be distinct');
  }
  const maxLineBytes = maxLineBytesOption(options);
  return { model, data, format, features, output, ...(maxLineBytes !== undefined && { maxLineBytes }) };
}

/** `"wind"`, `"a", "b"`: names for a message. */
const quoted = (names: readonly string[]) => names.map((n) => JSON.stringify(n)).join(', ');

/**
 * The trained feature list, checked against `--features` when both are given: the same
 * names (in any order: records are mapped by name), else a usage error naming the feature.
 */
function trainedFeatures(given: readonly string[] | undefined, trained: readonly string[], model: string): readonly string[] {
  if (given === undefined) return trained;
  const unknown = given.filter((f) => !trained.includes(f));
  if (unknown.length > 0) usage('--features', `${quoted(unknown)} ${unknown.length === 1 ? 'is not a feature' : 'are not features'} of ${model} (trained on ${trained.join(', ')})`);
  const absent = trained.filter((f) => !given.includes(f));
  if (absent.length > 0) usage('--features', `lacks ${quoted(absent)}, ${absent.length === 1 ? 'a feature' : 'features'} of ${model} (trained on ${trained.join(', ')})`);
  return trained;
}

/** What the artifact brings beyond the weights, for a line on stderr (empty when nothing). */
function describePreprocessing(loaded: LoadedArtifact, model: string): string {
  const p = loaded.artifact.preprocessing;
  if (p === null || (p.features === null && p.normalizer === null)) return '';
  const parts: string[] = [];
  if (p.features !== null) parts.push(`features ${p.features.join(', ')}`);
  if (p.normalizer !== null) parts.push(`${p.normalizer.y === null ? 'inputs' : 'inputs and target'} standardised with the final statistics of training (${p.normalizer.x.count} samples, frozen)`);
  if (p.classes !== null) parts.push(`classes ${p.classes.join(', ')}`);
  const from = loaded.preprocessingFrom === 'side-file' ? ` (from ${loaded.sideFile})` : loaded.preprocessingFrom === 'checkpoint' ? ' (from the checkpoint)' : '';
  return `${model}: ${parts.join('; ')}${from}`;
}

/** `streamgrad predict`: one NDJSON prediction line per input, pulled one at a time. */
export async function predictCommand(args: readonly string[]): Promise<number> {
  const settings = parsePredictArgs(args);
  if (settings === 'help') {
    process.stdout.write(PREDICT_HELP);
    return EXIT_OK;
  }
  const loaded = await loadArtifact(settings.model);
  const { model, preprocessing } = loaded.artifact;
  const trained = preprocessing?.features ?? null;
  let features = trained === null ? settings.features : trainedFeatures(settings.features, trained, settings.model);
  // columns a CSV must have: with an artifact, every trained feature, whatever its policy. The
  // policy fills a value missing in a row; a column missing from the header is a misspelt or
  // forgotten name, and filling it on every row (the mean, say) would be a silent wrong answer
  let required: readonly string[] = features ?? [];
  if (trained !== null) {
    required = trained;
    const header = settings.format === 'csv' ? await readCsvHeader(settings.data).catch(() => null) : null;
    const absent = header === null ? [] : required.filter((f) => !header.includes(f));
    if (absent.length > 0) usage('--data', `${settings.data} has no column ${quoted(absent)}, ${absent.length === 1 ? 'a feature' : 'features'} of ${settings.model} (trained on ${trained.join(', ')}; it has ${header!.join(', ')})`);
  } else {
    if (features !== undefined && features.length !== model.inputSize) {
      usage('--features', `${features.length} feature${features.length === 1 ? '' : 's'} do not fit the model (${model.inputSize} inputs)`);
    }
    if (settings.format === 'csv' && features === undefined) {
      const header = settings.data === '-' ? null : await readCsvHeader(settings.data).catch(() => null);
      if (header === null && settings.data === '-') usage('--features', 'required for CSV on standard input');
      if (header !== null) {
        if (header.length !== model.inputSize) usage('--features', `required: ${settings.data} has ${header.length} columns, the model takes ${model.inputSize} inputs`);
        features = header;
      }
      required = features ?? [];
    }
  }
  // on a terminal, a command that silently waits looks hung: say what it waits for
  if (settings.data === '-' && process.stdin.isTTY === true) {
    process.stderr.write(`streamgrad: reading inputs from standard input, one ${settings.format === 'csv' ? 'CSV row' : 'JSON object'} per line; Ctrl-D ends (or --data FILE)\n`);
  }
  const input = await openData(settings.data);
  const source = settings.data === '-' ? 'stdin' : settings.data;
  const records: AsyncIterable<IngestRecord> = settings.format === 'csv'
    ? csvRecords(input, { source, require: required, maxLineBytes: settings.maxLineBytes })
    : { [Symbol.asyncIterator]: () => ndjsonRecords(input, { source, maxLineBytes: settings.maxLineBytes }) };
  // named records for a model without recorded names: --features says the order
  const positional = trained === null && features !== undefined ? new FeatureMap({ features, targets: ['\u0000predict'] }) : null;

  const out: Writable = settings.output === '-' ? process.stdout : createWriteStream(settings.output);
  const opened = settings.output === '-' ? Promise.resolve() : once(out, 'open');
  await opened.catch((error: unknown) => {
    throw new CliError(`--output ${settings.output}: cannot write: ${oneLine(error)}`, EXIT_USAGE, { cause: error });
  });

  const note = describePreprocessing(loaded, settings.model);
  if (note !== '') process.stderr.write(`streamgrad: ${note}\n`);
  const rejections = new RejectionLog((line) => process.stderr.write(`streamgrad: ${line}\n`));
  // the kernels serving answers with (bitwise js): `predict` and `/predict` give the same
  // bits for the same record, as PROTOCOL.md promises (native's fused multiply-adds would
  // differ in the last bit: an outside probe found 136 of 300 rows 1 ulp apart)
  const predictor = createPredictor(loaded.artifact, { kernels: bitwiseKernels() });
  let written = 0;
  let lines = 0;
  try {
    for await (const record of records) {
      lines++;
      const line = record.origin.line ?? lines;
      if (record.error !== undefined) {
        rejections.add(line, record.error);
        continue;
      }
      let value: unknown = record.value;
      if (positional !== null) {
        const mapped = positional.mapInputs(value, record.text === true);
        if (mapped.error !== undefined) {
          rejections.add(line, mapped.error);
          continue;
        }
        value = mapped.x;
      }
      const result = predictor(value, record.text === true);
      if (result.error !== undefined) {
        rejections.add(line, result.error);
        continue;
      }
      const p = result.prediction;
      const doc = { line, y: Array.from(p.y), ...(p.class !== undefined && { class: p.class }), ...(p.probabilities !== undefined && { probabilities: p.probabilities }) };
      written++;
      // back-pressure: read the next input only once the output has taken this one
      if (!out.write(`${JSON.stringify(doc)}\n`)) await once(out, 'drain');
    }
  } catch (error) {
    if (error instanceof StreamgradError && error.code === 'SG_ERR_CONFIG') {
      throw new CliError(`${error.field === 'header' ? '--data' : '--features'}: ${error.message}`, EXIT_USAGE, { cause: error });
    }
    throw error;
  } finally {
    if (out !== process.stdout) await new Promise<void>((resolve) => out.end(resolve));
  }
  process.stderr.write(`streamgrad: predicted ${written} input${written === 1 ? '' : 's'}, rejected ${rejections.summary(settings.format === 'csv' ? 'row' : 'line')}\n`);
  return EXIT_OK;
}
