/**
 * `npm run bench:drift-scene`: does a drift reaction help the demo (`npm start`,
 * examples/drifting-sensor.json), or make either network worse? (issue #13)
 *
 * Replays the scene without its pacing: the config's sensor (K_m changes every `every`
 * samples), both networks as the config builds them (layers, Adam at its rate, batch 1,
 * seed, init, the Page-Hinkley detector), once with the config's reaction replaced by each
 * candidate, and reports per network the prequential loss over the 1,000 samples after
 * each change and over the whole run, as ratios to no reaction, per seed and their mean.
 * Seed k replays the sensor with seed k and the networks with their seed + 100·k (seed 0
 * is exactly the scene).
 *
 * Options: --samples N (default 216000: 12 changes), --seeds N (default 3),
 * --config FILE (default examples/drifting-sensor.json), --json;
 * BENCH_REACTIONS='[{...}]' replaces the candidates (JSON reaction configs).
 */
import { readFileSync } from 'node:fs';
import { join } from 'node:path';
import { from } from 'rxjs';
import { initialize, type InitScheme } from '../core/init.ts';
import { createModel } from '../core/model.ts';
import { createTrainer } from '../core/trainer.ts';
import { DriftAdaptation, type DriftConfig, type ReactionConfig } from '../pipeline/drift-adaptation.ts';
import { train } from '../pipeline/train.ts';
import { parseLayers } from '../runtime/layers.ts';
import { kineticsDriftSamples } from '../sources/kinetics-drift.ts';

const args = process.argv.slice(2);
const option = (name: string, fallback: string): string => {
  const i = args.indexOf(`--${name}`);
  return i < 0 ? fallback : args[i + 1];
};
const N = Number(option('samples', '216000'));
const SEEDS = Number(option('seeds', '3'));
const AFTER = 1000;
interface SceneModel {
  readonly name: string;
  readonly layers: string;
  readonly optimizer: { readonly type: 'adam'; readonly lr: number };
  readonly seed: number;
  readonly init: InitScheme;
  readonly drift: DriftConfig & { readonly reaction: ReactionConfig };
}
const scene = JSON.parse(readFileSync(option('config', join(import.meta.dirname, '../examples/drifting-sensor.json')), 'utf8')) as {
  source: { every: number; km: number[] };
  models: SceneModel[];
};
const CANDIDATES: readonly ReactionConfig[] = process.env.BENCH_REACTIONS !== undefined ? JSON.parse(process.env.BENCH_REACTIONS) as ReactionConfig[] : [
  { kind: 'none' },
  ...scene.models.some((m) => m.drift.reaction.kind !== 'none') ? [scene.models[0].drift.reaction] : [],
  { kind: 'background' },
  { kind: 'background', challenger: 'copy', factor: 2, horizon: 100 },
  { kind: 'background', challenger: 'copy', factor: 3, horizon: 300 },
];
const changes = Array.from({ length: Math.ceil(N / scene.source.every) - 1 }, (_, k) => (k + 1) * scene.source.every);

/** One pass of one network over the sensor: its per-sample prequential losses, and its reactions. */
function run(m: SceneModel, seed: number, reaction: ReactionConfig): { losses: Float64Array; reactions: string[] } {
  const model = initialize(createModel(parseLayers(m.layers)), m.init, m.seed + 100 * seed);
  const trainer = createTrainer({ model, loss: 'mse', optimizer: { type: m.optimizer.type, learningRate: m.optimizer.lr } });
  const drift = new DriftAdaptation(trainer, { ...m.drift, reaction });
  const losses = new Float64Array(N);
  const reactions: string[] = [];
  let seen = 0;
  const samples = kineticsDriftSamples({ seed, every: scene.source.every, km: scene.source.km, limit: N });
  from(samples).pipe(train(trainer, { window: 1, drift })).subscribe((r) => {
    losses[seen] = r.loss;
    seen += r.size;
    for (const e of r.drift ?? []) if (e.type === 'drift-reaction' && typeof e.detail.action === 'string' && e.detail.action !== 'start') reactions.push(e.detail.action);
  });
  return { losses, reactions };
}
const meanOf = (a: Float64Array, i: number, j: number) => {
  let s = 0;
  for (let k = i; k < j; k++) s += a[k];
  return s / (j - i);
};

const uptime = readFileSync('/proc/loadavg', 'utf8').split(' ').slice(0, 3).join(' ');
console.log(`bench:drift-scene — ${N} samples, a change every ${scene.source.every} (${changes.length} changes), ${SEEDS} seeds; load ${uptime}`);
console.log(['network', 'reaction', 'seed', 'after-change loss', 'ratio', 'whole loss', 'ratio', 'swaps / drops'].join('\t'));
const started = performance.now();
const rows: Record<string, unknown>[] = [];
for (const m of scene.models) {
  const base: { after: number; whole: number }[] = [];
  for (const reaction of CANDIDATES) {
    const ratios = { after: [] as number[], whole: [] as number[] };
    for (let seed = 0; seed < SEEDS; seed++) {
      const { losses, reactions } = run(m, seed, reaction);
      const after = changes.reduce((s, p) => s + meanOf(losses, p, Math.min(N, p + AFTER)), 0) / changes.length;
      const whole = meanOf(losses, 0, N);
      if (reaction.kind === 'none') base[seed] = { after, whole };
      const row = { network: m.name, reaction, seed, after, after_ratio: after / base[seed].after, whole, whole_ratio: whole / base[seed].whole, swaps: reactions.filter((a) => a === 'swap').length, drops: reactions.filter((a) => a === 'drop').length };
      rows.push(row);
      ratios.after.push(row.after_ratio);
      ratios.whole.push(row.whole_ratio);
      console.log([m.name, JSON.stringify(reaction), seed, after.toFixed(5), row.after_ratio.toFixed(3), whole.toFixed(5), row.whole_ratio.toFixed(4), `${row.swaps} / ${row.drops}`].join('\t'));
    }
    const mean = (v: number[]) => v.reduce((a, b) => a + b, 0) / v.length;
    console.log([m.name, JSON.stringify(reaction), 'mean', '', mean(ratios.after).toFixed(3), '', mean(ratios.whole).toFixed(4), `worst whole ${Math.max(...ratios.whole).toFixed(4)}`].join('\t'));
  }
}
console.log(`\n${((performance.now() - started) / 1000).toFixed(0)} s`);
if (args.includes('--json')) for (const row of rows) console.log(JSON.stringify(row));
