import { parameterCount } from '../core/model.ts';
import { type ExportPlan, exportPlans } from '../pipeline/export-summary.ts';
import { CliError, EXIT_OK } from './cli-error.ts';
import { formatNumber, formatTopology } from './format.ts';
import { loadArtifact, loadModelOrCheckpoint, type LoadedModel } from '../runtime/model-io.ts';
import { flag, type OptionSpec, parseOptions } from './options.ts';

export const INSPECT_HELP = `Usage: streamgrad inspect FILE [--json]

Prints the architecture of a streamgrad/model@1 file or a streamgrad/checkpoint@1
file (recognised by its first bytes): input size, each layer (inputs → units,
activation, weights shape, parameter count, min/max/mean |w|) and the total number
of parameters; for a checkpoint also its loss, optimizer, learning rate and step t,
step and sample counters, source offset and creation time; then what streamgrad export
would write for each format (the ONNX nodes, the TF.js layers, or why a format refuses
the model). A file whose preprocessing section cannot be applied (duplicate feature
names, statistics of another size, …) is refused as predict, serve and export refuse
it: one line naming the file and the field, exit 2.

Options:
  --json        print the same as one JSON object
  -h, --help    show this help

Exit status: 0 printed, 2 bad option, or a file that is missing, corrupt, not a model,
or with a preprocessing that cannot be applied.
`;

const SPEC: OptionSpec = {
  json: { type: 'boolean' },
  help: { type: 'boolean', short: 'h' },
};

/** What `inspect` reports on one layer. */
export interface LayerReport {
  readonly index: number;
  readonly inputs: number;
  readonly units: number;
  readonly activation: string;
  readonly weights: readonly [number, number];
  readonly parameters: number;
  /** Statistics of the weights' absolute values (biases excluded). */
  readonly absWeight: { readonly min: number; readonly max: number; readonly mean: number };
}

/** What `inspect --json` prints. */
export interface InspectReport {
  readonly file: string;
  readonly format: 'streamgrad/model@1' | 'streamgrad/checkpoint@1';
  readonly inputSize: number;
  readonly outputSize: number;
  readonly layers: readonly LayerReport[];
  readonly parameters: number;
  readonly checkpoint?: {
    readonly loss: string;
    readonly optimizer: string;
    readonly learningRate: number;
    readonly t: number;
    readonly steps: number;
    readonly samples: number;
    readonly skipped: number;
    readonly sourceOffset: number;
    readonly created: string;
  };
  /** What `streamgrad export` would write per format. */
  readonly export?: readonly ExportPlan[];
}

/** Splits `streamgrad inspect` arguments: the one FILE, and the options. */
function parseInspectArgs(args: readonly string[]): { file: string; json: boolean } | 'help' {
  const positional = args.filter((a) => a === '-' || !a.startsWith('-'));
  const options = parseOptions(args.filter((a) => !positional.includes(a)), SPEC, 'streamgrad inspect');
  if (flag(options, 'help')) return 'help';
  if (positional.length !== 1) {
    throw new CliError(positional.length === 0
      ? 'inspect: FILE required: a model (streamgrad/model@1) or checkpoint file (see streamgrad inspect --help)'
      : `inspect: one FILE only, got ${positional.map((p) => JSON.stringify(p)).join(', ')}`);
  }
  return { file: positional[0], json: flag(options, 'json') };
}

/** The report on a loaded model or checkpoint. */
export function inspectReport(file: string, { model, checkpoint }: LoadedModel): InspectReport {
  const layers = model.layers.map((layer, index): LayerReport => {
    let min = Infinity, max = 0, sum = 0;
    for (const w of layer.weights) {
      const a = Math.abs(w);
      if (a < min) min = a;
      if (a > max) max = a;
      sum += a;
    }
    return {
      index, inputs: layer.inputs, units: layer.outputs, activation: layer.activation,
      weights: [layer.outputs, layer.inputs],
      parameters: layer.weights.length + layer.bias.length,
      absWeight: { min, max, mean: sum / layer.weights.length },
    };
  });
  const report: InspectReport = {
    file,
    format: checkpoint === undefined ? 'streamgrad/model@1' : 'streamgrad/checkpoint@1',
    inputSize: model.inputSize,
    outputSize: model.outputSize,
    layers,
    parameters: parameterCount(model),
  };
  if (checkpoint === undefined) return report;
  const h = checkpoint.header;
  return {
    ...report,
    checkpoint: {
      loss: h.loss,
      optimizer: h.optimizer.config.type,
      learningRate: h.optimizer.learningRate,
      t: h.optimizer.t,
      steps: h.counters.steps,
      samples: h.counters.samples,
      skipped: h.counters.skipped,
      sourceOffset: h.sourceOffset,
      created: new Date(h.created).toISOString(),
    },
  };
}

/** The report as text for people. */
export function formatInspectReport(r: InspectReport): string {
  const out = [
    `${r.file}: ${r.format}`,
    `topology    ${formatTopology(r.inputSize, r.layers.map((l) => ({ outputs: l.units, activation: l.activation })))}`,
    `input size  ${r.inputSize}`,
    'layers:',
  ];
  for (const l of r.layers) {
    const { min, max, mean } = l.absWeight;
    out.push(`  [${l.index}] ${l.inputs} → ${l.units} ${l.activation}, weights ${l.weights[0]}×${l.weights[1]}, ${l.parameters} parameters, |w| min ${formatNumber(min)} max ${formatNumber(max)} mean ${formatNumber(mean)}`);
  }
  out.push(`parameters  ${r.parameters}`);
  if (r.export !== undefined) out.push(...formatExportPlans(r.export));
  const c = r.checkpoint;
  if (c !== undefined) {
    out.push(
      `loss        ${c.loss}`,
      `optimizer   ${c.optimizer}, learning rate ${c.learningRate}, t ${c.t}`,
      `counters    ${c.steps} steps, ${c.samples} samples, ${c.skipped} skipped`,
      `source      offset ${c.sourceOffset}`,
      `created     ${c.created}`,
    );
  }
  return `${out.join('\n')}\n`;
}

/** The export section of the text report: per format its inputs, outputs and one line per node or layer. */
function formatExportPlans(plans: readonly ExportPlan[]): string[] {
  const out = ['export (streamgrad export --format onnx|tfjs):'];
  for (const p of plans) {
    if (p.steps === null) {
      out.push(`  ${p.format}: refused: ${p.refused}`);
      continue;
    }
    out.push(`  ${p.format}: input ${p.inputs}, output ${p.outputs}, ${p.steps.length} ${p.format === 'onnx' ? 'nodes' : 'layers'}`);
    for (const step of p.steps) out.push(`    ${step}`);
    for (const note of p.notes) out.push(`    note: ${note}`);
  }
  return out;
}

/**
 * What an export of `file` would contain (the artifact with its preprocessing). A
 * preprocessing that cannot be read is a refused file, as for a corrupt checkpoint: the
 * `ConfigError` naming the file and the field goes on (exit 2). Printing "export not
 * possible" and exit 0 hid from scripts a file predict, serve and export all refuse.
 */
async function exportSection(file: string): Promise<readonly ExportPlan[]> {
  return exportPlans((await loadArtifact(file, 'inspect')).artifact);
}

/** `streamgrad inspect FILE [--json]`: prints a model's or checkpoint's architecture. */
export async function inspectCommand(args: readonly string[]): Promise<number> {
  const parsed = parseInspectArgs(args);
  if (parsed === 'help') {
    process.stdout.write(INSPECT_HELP);
    return EXIT_OK;
  }
  const loaded = await loadModelOrCheckpoint(parsed.file, 'inspect');
  const report = { ...inspectReport(parsed.file, loaded), export: await exportSection(parsed.file) };
  process.stdout.write(parsed.json ? `${JSON.stringify(report)}\n` : formatInspectReport(report));
  return EXIT_OK;
}
