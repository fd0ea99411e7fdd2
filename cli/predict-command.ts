import { createWriteStream } from 'node:fs';
import { once } from 'node:events';
import type { Writable } from 'node:stream';
import { Subject } from 'rxjs';
import { StreamgradError } from '../pipeline/errors.ts';
import { FeatureMap } from '../pipeline/features.ts';
import type { Model } from '../pipeline/model.ts';
import type { IngestRecord } from '../pipeline/record.ts';
import { predict } from '../operators/predict.ts';
import { csvRecords } from '../sources/csv.ts';
import { ndjsonRecords } from '../sources/ndjson.ts';
import { CliError, EXIT_OK, EXIT_USAGE, oneLine, usage } from './cli-error.ts';
import { MAX_LINE_HELP, maxLineBytesOption, readCsvHeader } from './ingest-options.ts';
import { loadModelOrCheckpoint } from './model-io.ts';
import { openData } from './ndjson.ts';
import { choice, flag, type OptionSpec, parseOptions, text } from './options.ts';
import { RejectionLog } from './rejections.ts';

export const PREDICT_HELP = `Usage: streamgrad predict --model FILE [--data FILE|-] [options]

Runs a trained network forward on each input, without learning, and writes one
NDJSON line per input: {"line": N, "y": [...]} where N is the input's line number.
With a softmax last layer it adds "class", the index of the largest output; with a
single sigmoid output "class" is 1 when y ≥ 0.5, else 0; with a single sign output
"class" is y itself (1 or -1).

Options:
  --model FILE         a streamgrad/model@1 file or a streamgrad/checkpoint@1 file
  --data FILE|-        the inputs (default -, standard input): NDJSON, one {"x": [...]}
                       per line ("y" is ignored), or CSV with a header row
  --format F           ndjson or csv (default: csv for a .csv file, else ndjson)
  --features A,B,...   named inputs, in model order: CSV columns or JSON keys
                       (default for a CSV file: every column, in header order)
  --output FILE|-      where the predictions go (default -, standard output)
${MAX_LINE_HELP}  -h, --help           show this help

Inputs that are not JSON (or not UTF-8), too long, not a record the model takes
(wrong length, NaN or Infinity, wrong type) are skipped, reported on stderr with their line numbers and
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

/** An input to the network: its line number, and its features (checked by `predict`). */
interface Input {
  readonly line: number;
  readonly x: ArrayLike<number>;
}

/**
 * Named records to feature vectors with the ingestion's own strict rules (`FeatureMap`):
 * the map needs a target, so each record gets a placeholder one that no input can name.
 */
function namedInputs(features: readonly string[]): (record: IngestRecord & { error?: undefined }) => Float64Array | StreamgradError {
  const target = '\u0000predict';
  const map = new FeatureMap({ features, targets: [target] });
  return (record) => {
    const value = record.value;
    if (typeof value !== 'object' || value === null || Array.isArray(value)) {
      return new StreamgradError('SG_ERR_TYPE', `record: must be an object of named values, got ${Array.isArray(value) ? 'an array' : JSON.stringify(value)}`, 'record');
    }
    const result = map.map({ ...(value as Record<string, unknown>), [target]: record.text === true ? '0' : 0 }, record.text === true);
    return result.error ?? (result.sample.x as Float64Array);
  };
}

/** What a prediction line says about the class, by the last layer's activation (see PREDICT_HELP). */
function classOf(model: Model): ((y: Float64Array) => number) | undefined {
  const last = model.layers[model.layers.length - 1].activation;
  if (last === 'softmax') {
    return (y) => {
      let best = 0;
      for (let k = 1; k < y.length; k++) if (y[k] > y[best]) best = k;
      return best;
    };
  }
  if (model.outputSize !== 1) return undefined;
  if (last === 'sigmoid') return (y) => (y[0] >= 0.5 ? 1 : 0);
  if (last === 'sign') return (y) => y[0];
  return undefined;
}

/** `streamgrad predict`: one NDJSON prediction line per input, pulled one at a time. */
export async function predictCommand(args: readonly string[]): Promise<number> {
  const settings = parsePredictArgs(args);
  if (settings === 'help') {
    process.stdout.write(PREDICT_HELP);
    return EXIT_OK;
  }
  const { model } = await loadModelOrCheckpoint(settings.model);
  let features = settings.features;
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
  }
  const input = await openData(settings.data);
  const source = settings.data === '-' ? 'stdin' : settings.data;
  const records: AsyncIterable<IngestRecord> = settings.format === 'csv'
    ? csvRecords(input, { source, require: features ?? [], maxLineBytes: settings.maxLineBytes })
    : { [Symbol.asyncIterator]: () => ndjsonRecords(input, { source, maxLineBytes: settings.maxLineBytes }) };
  const named = features === undefined ? undefined : namedInputs(features);

  const out: Writable = settings.output === '-' ? process.stdout : createWriteStream(settings.output);
  const opened = settings.output === '-' ? Promise.resolve() : once(out, 'open');
  await opened.catch((error: unknown) => {
    throw new CliError(`--output ${settings.output}: cannot write: ${oneLine(error)}`, EXIT_USAGE, { cause: error });
  });

  const rejections = new RejectionLog((line) => process.stderr.write(`streamgrad: ${line}\n`));
  const classify = classOf(model);
  let written = 0;
  let lines = 0;
  let writeBlocked = false;
  const inputs = new Subject<Input>();
  inputs.pipe(predict(model, {
    onReject: ({ error, sample }) => rejections.add((sample as Input).line, error),
  })).subscribe(({ input, output }) => {
    const y = Array.from(output);
    const doc = classify === undefined ? { line: input.line, y } : { line: input.line, y, class: classify(output) };
    if (!out.write(`${JSON.stringify(doc)}\n`)) writeBlocked = true;
    written++;
  });

  try {
    for await (const record of records) {
      lines++;
      const line = record.origin.line ?? lines;
      if (record.error !== undefined) {
        rejections.add(line, record.error);
        continue;
      }
      let x: unknown;
      if (named !== undefined) {
        const mapped = named(record);
        if (mapped instanceof StreamgradError) {
          rejections.add(line, mapped);
          continue;
        }
        x = mapped;
      } else {
        const value = record.value;
        x = Array.isArray(value) ? value : typeof value === 'object' && value !== null ? (value as { x?: unknown }).x : value;
      }
      inputs.next({ line, x: x as ArrayLike<number> });
      if (writeBlocked) {
        // back-pressure: read the next input only once the output has taken this one
        writeBlocked = false;
        await once(out, 'drain');
      }
    }
  } catch (error) {
    if (error instanceof StreamgradError && error.code === 'SG_ERR_CONFIG') {
      throw new CliError(`${error.field === 'header' ? '--data' : '--features'}: ${error.message}`, EXIT_USAGE, { cause: error });
    }
    throw error;
  } finally {
    inputs.complete();
    if (out !== process.stdout) await new Promise<void>((resolve) => out.end(resolve));
  }
  process.stderr.write(`streamgrad: predicted ${written} input${written === 1 ? '' : 's'}, rejected ${rejections.summary()}\n`);
  return EXIT_OK;
}
