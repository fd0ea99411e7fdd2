/**
 * Learning-quality bench (`npm run bench:quality`): does a user who takes streamgrad's
 * defaults get a model as good as PyTorch's defaults give?
 *
 * Three streams (`bench/quality-streams.ts`), each one pass, batch 1, scored
 * prequentially (every prediction is made before the model learns from that sample) over
 * the whole stream, in the user's units: Seattle weather (accuracy, 5 classes), Mauna Loa
 * CO₂ (MAE in ppm, the level from a 12-month lag window) and a Michaelis–Menten stream
 * whose true Km jumps halfway (MAE).
 *
 * Columns, each over the same seeds (mean, and min–max):
 * - streamgrad's **default** recipe: what `streamgrad train --layers SPEC --loss L
 *   --normalize[-target]` gives with no other flag. It is read from the command line's own
 *   parser (`parseTrainArgs`), so the bench follows the defaults wherever they go.
 * - PyTorch's default recipe for the same architecture (`bench/peers/quality.py`): its own
 *   nn.Linear initialisation, SGD and Adam at its default learning rate (1e-3), on the very
 *   numbers streamgrad's normaliser produced (written to a file and read by Python, so
 *   the order and the preprocessing are identical), when a python3 with torch is here;
 *   skipped with a note otherwise.
 * - the trivial baselines: majority class so far; persistence (last value) and running mean.
 *
 * The seed seeds the weights, and the simulated stream (both sides get the same samples).
 * `--explore` adds the grid the defaults were chosen from: initialisations × optimizers
 * × learning rates, and normaliser warm-ups × clips, all for streamgrad.
 *
 * Usage: npm run bench:quality [-- --seeds N --explore --json]
 */
import { spawnSync } from 'node:child_process';
import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { parseArgs } from 'node:util';
import { parseTrainArgs, type TrainSettings } from '../cli/train-command.ts';
import { DEFAULT_NORMALIZER_CLIP, DEFAULT_NORMALIZER_WARMUP, type NormalizerConfig } from '../core/normalizer.ts';
import { type Recipe, runBaselines, runStreamgrad, type RunScore } from './quality-recipes.ts';
import { co2Monthly, michaelisMentenShift, type PreparedStream, prepare, type QualityStream, seattleWeather } from './quality-streams.ts';

const { values: opts } = parseArgs({ options: { seeds: { type: 'string', default: '5' }, explore: { type: 'boolean', default: false }, json: { type: 'boolean', default: false } } });
const SEEDS = Array.from({ length: Number(opts.seeds) }, (_, i) => i);
const log = (line: string) => { if (!opts.json) console.log(line); };

/** A stream family: the stream a seed gives (the files are the same for every seed). */
interface Bench {
  readonly name: string;
  readonly make: (seed: number) => QualityStream;
}
const BENCHES: readonly Bench[] = [
  { name: 'seattle', make: () => seattleWeather() },
  { name: 'co2', make: () => co2Monthly() },
  { name: 'mm-shift', make: (seed) => michaelisMentenShift(seed) },
];

/** What `streamgrad train` does with nothing but the architecture (and --loss, --normalize). */
function defaultRecipe(stream: QualityStream): { recipe: Recipe; normalizer: Partial<NormalizerConfig>; settings: TrainSettings } {
  const layers = [stream.x[0].length, ...stream.layers.map((l) => `${l.units}:${l.activation}`)].join(',');
  const settings = parseTrainArgs(['--data', 'stream.ndjson', '--layers', layers, '--loss', stream.loss, stream.normalizeTarget ? '--normalize-target' : '--normalize']);
  if (settings === 'help' || !('init' in settings.start)) throw new Error('unreachable');
  if (settings.batch !== 1 || settings.clipNorm !== undefined) throw new Error('the default recipe is no longer batch 1 without clipping: update runStreamgrad');
  const { normalizeWarmup: warmup, normalizeClip: clip } = settings.ingest;
  return {
    recipe: { init: settings.start.init, optimizer: settings.optimizer.type, lr: settings.optimizer.learningRate },
    normalizer: { ...(warmup !== undefined && { warmup }), ...(clip !== undefined && { clip }) },
    settings,
  };
}

interface Summary { readonly mean: number; readonly min: number; readonly max: number; readonly diverged: number; readonly runs: readonly number[] }
const summarise = (runs: readonly number[], diverged = 0): Summary => ({
  mean: runs.reduce((a, b) => a + b, 0) / runs.length, min: Math.min(...runs), max: Math.max(...runs), diverged, runs,
});

/** Every seed's stream, prepared by a normaliser of `config`. */
function prepared(bench: Bench, config: Partial<NormalizerConfig>): { stream: QualityStream; data: PreparedStream }[] {
  const fixed = bench.name === 'mm-shift' ? null : (() => { const stream = bench.make(0); return { stream, data: prepare(stream, config) }; })();
  return SEEDS.map((seed) => fixed ?? (() => { const stream = bench.make(seed); return { stream, data: prepare(stream, config) }; })());
}

function streamgrad(bench: Bench, recipe: Recipe, config: Partial<NormalizerConfig>): Summary {
  const runs: RunScore[] = prepared(bench, config).map(({ stream, data }, i) => runStreamgrad(stream, data, recipe, SEEDS[i]));
  return summarise(runs.map((r) => r.metric), runs.filter((r) => r.diverged).length);
}

// ---------------------------------------------------------------------------------------
// PyTorch

const TORCH_RECIPES = [{ name: 'torch sgd', optimizer: 'sgd', lr: 1e-3 }, { name: 'torch adam', optimizer: 'adam', lr: 1e-3 }] as const;
const python = ['/usr/bin/python3', 'python3'].find((py) => spawnSync(py, ['-c', 'import torch'], { encoding: 'utf8' }).status === 0) ?? null;

function pytorch(defaults: ReadonlyMap<string, Partial<NormalizerConfig>>): { version: string; results: Record<string, Record<string, (number | null)[]>> } | null {
  if (python === null) return null;
  const dir = mkdtempSync(join(tmpdir(), 'sg-quality-'));
  try {
    const streams = BENCHES.map((bench) => {
      const perSeed = prepared(bench, defaults.get(bench.name)!);
      const { stream } = perSeed[0];
      return {
        name: bench.name, task: stream.task,
        sizes: [stream.x[0].length, ...stream.layers.map((l) => l.units)], activations: stream.layers.map((l) => l.activation),
        bySeed: Object.fromEntries(perSeed.map(({ stream: s, data }, i) => [SEEDS[i], {
          x: data.x.map((v) => Array.from(v)),
          y: s.y, yz: s.task === 'regress' ? data.y.map((v) => v[0]) : undefined,
          mean: Array.from(data.mean), scale: Array.from(data.scale),
        }])),
      };
    });
    const job = join(dir, 'job.json');
    writeFileSync(job, JSON.stringify({ streams, seeds: SEEDS, recipes: TORCH_RECIPES }));
    const script = fileURLToPath(new URL('./peers/quality.py', import.meta.url));
    const child = spawnSync(python, [script, job], { encoding: 'utf8', maxBuffer: 64 << 20, env: { ...process.env, OPENBLAS_NUM_THREADS: '1', OMP_NUM_THREADS: '1' } });
    if (child.status !== 0) throw new Error(`quality.py failed (${child.status}): ${child.stderr}`);
    const out = JSON.parse(child.stdout) as { torch: string; results: Record<string, Record<string, (number | null)[]>> };
    return { version: out.torch, results: out.results };
  } finally {
    rmSync(dir, { recursive: true, force: true });
  }
}

// ---------------------------------------------------------------------------------------
// report

const fmt = (task: QualityStream['task'], v: number) => (!Number.isFinite(v) ? 'diverged' : task === 'classify' ? `${(100 * v).toFixed(1)}%` : v >= 1e4 ? v.toExponential(1) : v.toFixed(3));
const cell = (task: QualityStream['task'], s: Summary) => `${fmt(task, s.mean)} (${fmt(task, s.min)}–${fmt(task, s.max)})${s.diverged > 0 ? ` ${s.diverged} div.` : ''}`;
/** Better or equal, by the stream's metric: accuracy up, MAE down. */
const atLeast = (task: QualityStream['task'], a: number, b: number) => (task === 'classify' ? a >= b : a <= b);

function table(header: readonly string[], rows: readonly (readonly string[])[]): string {
  const widths = header.map((h, i) => Math.max(h.length, ...rows.map((r) => r[i].length)));
  const line = (r: readonly string[]) => `| ${r.map((c, i) => c.padEnd(widths[i])).join(' | ')} |`;
  return [line(header), `|${widths.map((w) => '-'.repeat(w + 2)).join('|')}|`, ...rows.map(line)].join('\n');
}

const defaults = new Map(BENCHES.map((b) => [b.name, defaultRecipe(b.make(0))]));
const d0 = defaults.get('seattle')!;
log(`streamgrad learning quality · ${SEEDS.length} seeds · prequential, batch 1, one pass · mean (min–max) of the whole-stream accuracy (higher is better) or MAE in user units (lower is better)`);
log(`streamgrad default: --init ${d0.recipe.init}, --optimizer ${d0.recipe.optimizer} --lr ${d0.recipe.lr}, normaliser warm-up ${d0.normalizer.warmup ?? DEFAULT_NORMALIZER_WARMUP}, clip ${d0.normalizer.clip ?? DEFAULT_NORMALIZER_CLIP}; PyTorch: nn.Linear's init, SGD and Adam at lr 1e-3, float64, on the same standardised samples`);
if (python === null) log('PyTorch: no python3 with torch here (Debian: apt-get install python3-torch libopenblas0-pthread); its columns are skipped');

const torch = pytorch(new Map([...defaults].map(([k, v]) => [k, v.normalizer])));
const report: Record<string, unknown>[] = [];
const rows: string[][] = [];
let allMet = true;
for (const bench of BENCHES) {
  const { recipe, normalizer } = defaults.get(bench.name)!;
  const stream = bench.make(0);
  const ours = streamgrad(bench, recipe, normalizer);
  const theirs = torch === null ? [] : TORCH_RECIPES.map((r) => ({ name: r.name, summary: summarise(torch.results[bench.name][r.name].map((v) => v ?? Infinity), torch.results[bench.name][r.name].filter((v) => v === null).length) }));
  const baselines = runBaselines(stream).map((b) => ({ name: b.name, metric: b.metric }));
  const best = theirs.reduce<{ name: string; summary: Summary } | null>((a, t) => (a === null || atLeast(stream.task, t.summary.mean, a.summary.mean) ? t : a), null);
  const met = best === null ? null : atLeast(stream.task, ours.mean, best.summary.mean);
  if (met === false) allMet = false;
  report.push({ stream: bench.name, about: stream.about, metric: stream.task === 'classify' ? 'accuracy' : 'mae', streamgrad: ours, torch: Object.fromEntries(theirs.map((t) => [t.name, t.summary])), baselines, targetMet: met });
  rows.push([
    stream.about, stream.task === 'classify' ? 'accuracy' : 'MAE', cell(stream.task, ours),
    ...(torch === null ? [] : theirs.map((t) => cell(stream.task, t.summary))),
    baselines.map((b) => `${b.name} ${fmt(stream.task, b.metric)}`).join(', '),
    met === null ? '—' : met ? 'yes' : 'NO',
  ]);
}
log('');
log(table(['stream', 'metric', 'streamgrad default', ...(torch === null ? [] : [`PyTorch ${torch.version} SGD`, 'PyTorch Adam']), 'baselines', 'default ≥ best PyTorch'], rows));
if (torch !== null) log(allMet ? '\ntarget met: the defaults are at least as good as PyTorch\'s best default on every stream (means)' : '\ntarget NOT met on every stream (see the last column)');

if (opts.explore) {
  // the grid the defaults were chosen from: streamgrad only, with the default normaliser, then the normaliser's settings under the default recipe
  const grid: Recipe[] = [];
  for (const init of ['pytorch', 'auto', 'xavier', 'he'] as const) for (const [optimizer, lr] of [['sgd', 0.01], ['sgd', 0.03], ['adam', 0.001], ['adam', 0.003], ['adam', 0.01]] as const) grid.push({ init, optimizer, lr });
  const gridRows = grid.map((r) => [`--init ${r.init} --optimizer ${r.optimizer} --lr ${r.lr}`, ...BENCHES.map((b) => cell(b.make(0).task, streamgrad(b, r, defaults.get(b.name)!.normalizer)))]);
  log('\nexplore: recipes (default normaliser)');
  log(table(['recipe', ...BENCHES.map((b) => b.name)], gridRows));
  const normalizers: Partial<NormalizerConfig>[] = [];
  for (const warmup of [2, 10, 30]) for (const clip of [3, 10, Infinity]) normalizers.push({ warmup, clip });
  const normRows = normalizers.map((n) => [`--normalize-warmup ${n.warmup} --normalize-clip ${n.clip === Infinity ? 'none' : n.clip}`, ...BENCHES.map((b) => cell(b.make(0).task, streamgrad(b, defaults.get(b.name)!.recipe, n)))]);
  log('\nexplore: normaliser (default recipe)');
  log(table(['normaliser', ...BENCHES.map((b) => b.name)], normRows));
}
if (opts.json) console.log(JSON.stringify({ seeds: SEEDS, torch: torch?.version ?? null, streams: report }, (_k, v) => (typeof v === 'number' && !Number.isFinite(v) ? null : v)));
