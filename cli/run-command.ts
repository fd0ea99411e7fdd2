import { parameterCount } from '../core/model.ts';
import { DEFAULT_NORMALIZER_CLIP, DEFAULT_NORMALIZER_WARMUP } from '../core/normalizer.ts';
import { CliError, EXIT_OK, EXIT_USAGE, usage } from './cli-error.ts';
import { GENERATOR_NAMES, GENERATORS } from '../runtime/experiment-generators.ts';
import { describeShape, type ExperimentPlan, planExperiment, sourceShape } from '../runtime/experiment-plan.ts';
import { runExperiment } from './experiment-run.ts';
import { describeSource } from '../runtime/experiment-sources.ts';
import { formatNumber, formatTopology } from './format.ts';
import { maxLineBytesOption } from './ingest-options.ts';
import { flag, integer, type Options, type OptionSpec, parseOptions } from './options.ts';
import { parsePredictionsOption } from './predictions-option.ts';
import { parseProgressOptions, PROGRESS_HELP, PROGRESS_SPEC, type ProgressReporter, withProgress } from './progress.ts';
import { describeLabels } from '../runtime/experiment-labels.ts';
import { parseServeOptions } from './serve-options.ts';

export const RUN_HELP = `Usage: streamgrad run EXPERIMENT.json [options]

Runs the experiment a config file describes: the source of samples, how records are
validated and normalised, one or more models racing on the stream (each its own
training run), evaluation, an optional live server and checkpoints. The file is
checked completely before anything starts: every problem is printed, one line each
("streamgrad: models[0].optimizer.lr: must be a finite number > 0, got -1"), and the
exit status is 2. Paths in the file are relative to the file's folder.
The format is in the README ("Config files: streamgrad run"); examples/ has working ones.

Options:
  --check, --dry-run  validate the file and print the plan (source, models, parameters,
                      limits, server, checkpoints) on stdout without training
  --samples N         stop after N records of the stream (overrides limit.samples)
  --steps N           stop each model after N training steps (overrides limit.steps)
  --resume            continue from the newest checkpoints in checkpoints.dir
  --port N            serve on port N instead of server.port (0: any free port)
  --serve [PORT]      serve the dashboard, /healthz, /metrics and the WebSocket while it
                      runs, also when the config has no server section (PORT: a port,
                      0 any free one; none or auto: $PORT, else 8080, else a free port);
                      after the run it keeps serving until Ctrl-C
  --predictions FILE|-  one NDJSON line per sample and model (overrides
                      evaluation.predictions): model, sample, step, line or messageId,
                      the prediction made before learning from it, target (in the
                      target's units; class names and probabilities for classifiers),
                      loss, learned; - is standard output (not with --log-json)
  --max-line-bytes N  the longest data line (or CSV record) read (overrides
                      source.maxLineBytes; default 16 MiB): a longer one is rejected
                      as SG_ERR_LINE_TOO_LONG and skipped, never held in memory
  -h, --help          show this help

Simulated streams ("source": {"simulated": NAME, "seed": N, "samples": N, ...}):
${GENERATOR_NAMES.map((n) => `  ${n.padEnd(17)} ${GENERATORS[n].about}`).join('\n')}

${PROGRESS_HELP}
At the end: one summary line per model and the leader (by rolling accuracy when every
model has one, else by rolling loss, else by mean absolute error). Ctrl-C stops each
model after its batch in progress (writing checkpoints when the config has them) and
still prints the summary; a second Ctrl-C quits at once.
Exit status: 0 done, 1 a model failed (e.g. diverged), 2 bad config or option.
`;

const SPEC: OptionSpec = {
  check: { type: 'boolean' },
  'dry-run': { type: 'boolean' },
  samples: { type: 'string' },
  steps: { type: 'string' },
  resume: { type: 'boolean' },
  port: { type: 'string' },
  serve: { type: 'string' },
  predictions: { type: 'string' },
  'max-line-bytes': { type: 'string' },
  ...PROGRESS_SPEC,
  help: { type: 'boolean', short: 'h' },
};

/** Splits off the one positional argument (the config file) from the options. */
function splitArgs(args: readonly string[]): { file: string | undefined; rest: string[] } {
  const rest: string[] = [];
  const files: string[] = [];
  for (let i = 0; i < args.length; i++) {
    const arg = args[i];
    if (arg === '--serve' && !/^(\d+|auto)$/.test(args[i + 1] ?? '')) {
      // `--serve` without a port: the next word is the config file or another option
      rest.push(arg, 'auto');
    } else if (arg.startsWith('-') && arg !== '-') {
      rest.push(arg);
      const name = arg.startsWith('--') ? arg.slice(2) : '';
      if (SPEC[name]?.type === 'string' && !name.includes('=') && i + 1 < args.length) rest.push(args[++i]);
    } else {
      files.push(arg);
    }
  }
  if (files.length > 1) usage('run', `takes one config file, got ${files.map((f) => JSON.stringify(f)).join(' ')} (see streamgrad run --help)`);
  return { file: files[0], rest };
}

/** `streamgrad run EXPERIMENT.json`: exit 0 trained, 1 a model failed, 2 a bad config (every problem on its own line). */
export async function runCommand(args: readonly string[]): Promise<number> {
  const { file, rest } = splitArgs(args);
  const options = parseOptions(rest, SPEC, 'streamgrad run');
  if (flag(options, 'help')) {
    process.stdout.write(RUN_HELP);
    return EXIT_OK;
  }
  return withProgress(parseProgressOptions(options), { command: 'run' }, (progress) => run(file, options, progress));
}

async function run(file: string | undefined, options: Options, progress: ProgressReporter): Promise<number> {
  if (file === undefined) usage('run', 'needs a config file: streamgrad run EXPERIMENT.json (see streamgrad run --help)');
  const samples = integer(options, 'samples', 1);
  const steps = integer(options, 'steps', 1);
  const serve = options.has('serve') ? parseServeOptions(options, process.env.PORT) : undefined;
  const port = serve === undefined ? integer(options, 'port', 0) : undefined;
  if (port !== undefined && port > 65535) usage('--port', `must be a port number ≤ 65535, got ${port}`);
  const predictions = parsePredictionsOption(options);
  const maxLineBytes = maxLineBytesOption(options);
  const planned = await planExperiment(file, {
    ...(predictions !== undefined && { predictions }),
    ...(maxLineBytes !== undefined && { maxLineBytes }),
    ...(samples !== undefined && { samples }),
    ...(steps !== undefined && { steps }),
    ...(port !== undefined && { port }),
    ...(serve !== undefined && { serve }),
    resume: flag(options, 'resume'),
  });
  if (!planned.ok) {
    for (const p of planned.problems) progress.notice(`${p.path}: ${p.message}`);
    const n = planned.problems.length;
    progress.fail(new CliError(`${file}: ${n} problem${n === 1 ? '' : 's'}, nothing started`));
    return EXIT_USAGE;
  }
  if (planned.plan.predictions?.path === '-' && flag(options, 'log-json')) usage('evaluation.predictions', '"-" (standard output) cannot share it with --log-json\'s events; give a file');
  if (flag(options, 'check') || flag(options, 'dry-run')) {
    process.stdout.write(describePlan(planned.plan));
    return EXIT_OK;
  }
  return runExperiment(planned.plan, progress);
}

/** The plan, as `--check` prints it. */
export function describePlan(plan: ExperimentPlan): string {
  const lines: string[] = [];
  lines.push(`experiment ${plan.file?.shown ?? '(config)'}${plan.description === undefined ? '' : `: ${plan.description}`}`);
  const shape = sourceShape(plan.source);
  lines.push(`source: ${describeSource(plan.source)}${shape === null ? ', positional {x, y} samples' : `, ${describeShape(shape)}`}`);
  if (plan.source.kind !== 'simulated') {
    const r = plan.source.records;
    if (r.features !== undefined) lines.push(`  features ${r.features.join(', ')}; target${r.targets!.length === 1 ? '' : 's'} ${r.targets!.join(', ')}${r.classes === undefined ? '' : ` (classes ${r.classes.join(', ')})`}`);
    if (r.targets !== undefined) lines.push(`  missing values: ${typeof r.missing === 'string' ? r.missing : Object.entries(r.missing).map(([k, v]) => `${k} ${v}`).join(', ')}`);
    if (r.deadLetter !== undefined) lines.push(`  dead letters: ${r.deadLetter.shown}`);
  }
  const normalize = plan.source.kind === 'simulated' ? plan.source : plan.source.records;
  if (normalize.normalize) {
    const clip = normalize.normalizeClip ?? DEFAULT_NORMALIZER_CLIP;
    lines.push(`  normalised online${normalize.normalizeTarget ? ' (features and target)' : ' (features)'}: standardised after ${normalize.normalizeWarmup ?? DEFAULT_NORMALIZER_WARMUP} samples, ${clip === Infinity ? 'no clipping' : `z-scores clipped to ±${clip}`}`);
  }
  lines.push(`models (${plan.models.length}):`);
  for (const m of plan.models) {
    const params = m.start !== undefined ? parameterCount(m.start.model) : countParameters(m.topology);
    const topology = formatTopology(m.topology.inputSize, m.topology.layers.map((l) => ({ outputs: l.units, activation: l.activation })));
    const optimizer = Object.entries(m.optimizer).filter(([k]) => k !== 'type' && k !== 'learningRate').map(([k, v]) => `${k} ${v}`);
    const batch = typeof m.batch === 'number' ? String(m.batch) : JSON.stringify(m.batch);
    lines.push(`  ${m.name}: ${topology}, ${params} parameters; ${m.loss} loss; ${m.optimizer.type} lr ${formatNumber(m.optimizer.learningRate)}${optimizer.length > 0 ? ` (${optimizer.join(', ')})` : ''}; batch ${batch}; ${m.start !== undefined ? `from ${m.start.file.shown}` : `seed ${m.seed}, init ${m.init}`}${m.clipNorm === undefined ? '' : `; clip ${m.clipNorm}`}; ${m.kernels.name} kernels${m.save === undefined ? '' : `; saved to ${m.save.shown}`}`);
  }
  lines.push(`evaluation: prequential, rolling over ${plan.window} samples and over the whole stream${plan.predictions === undefined ? '' : `; per-sample predictions to ${plan.predictions.shown}`}`);
  if (plan.labels !== undefined) lines.push(describeLabels(plan.labels));
  const limits = [plan.limit.samples === undefined ? '' : `${plan.limit.samples} samples`, plan.limit.steps === undefined ? '' : `${plan.limit.steps} steps per model`, plan.limit.trainedSamples === undefined ? '' : `${plan.limit.trainedSamples} trained samples per model`].filter(Boolean);
  lines.push(`limit: ${limits.length === 0 ? 'none (until the source ends or Ctrl-C)' : limits.join(' or ')}`);
  const s = plan.server;
  if (s === undefined) lines.push('server: none');
  else {
    const token = s.token !== undefined ? 'token from the config' : (process.env.STREAMGRAD_TOKEN ?? '') !== '' ? 'token from STREAMGRAD_TOKEN' : 'a token made for the session';
    lines.push(`server: ${s.host ?? '127.0.0.1'}:${s.port}, ${token}${s.allowedOrigins === undefined ? '' : `, origins ${s.allowedOrigins.join(', ')}`}${s.keepServing ? ', keeps serving after the run until Ctrl-C' : ''}`);
  }
  const c = plan.checkpoints;
  if (c === undefined) lines.push('checkpoints: none');
  else {
    const every = [c.everySteps === undefined ? '' : `${c.everySteps} steps`, c.everySeconds === undefined ? '' : `${c.everySeconds} s`].filter(Boolean);
    lines.push(`checkpoints: ${c.dir.shown}${every.length > 0 ? `, every ${every.join(' or ')}` : ''}, keep ${c.keep}${plan.resume ? '; resuming from the newest' : ''}`);
  }
  lines.push('config OK');
  return `${lines.join('\n')}\n`;
}

function countParameters(topology: ExperimentPlan['models'][number]['topology']): number {
  let inputs = topology.inputSize;
  let count = 0;
  for (const layer of topology.layers) {
    count += layer.units * (inputs + 1);
    inputs = layer.units;
  }
  return count;
}
