/**
 * `npm run bench:drift`: how well each drift detector finds known changes, and how much
 * each reaction helps a model through them (issue #13).
 *
 * Seeded streams with known change points, each 100,000 samples with a change every
 * 25,000: SEA (abrupt), SINE concepts (abrupt, label reversals), a rotating hyperplane
 * (gradual, 5,000-sample rotations), a Michaelis–Menten sensor whose hidden K_m jumps
 * (abrupt) or ramps over 10,000 samples (gradual), and the same sensor without drift.
 * Every model is trained online, batch 1, Adam (lr 0.01), inputs standardised online,
 * and watched through its prequential signal: the per-sample loss, or for the detectors
 * of 0/1 errors (DDM, HDDM_A) the classifier's errors.
 *
 * Part 1, detectors (no reaction): per stream and detector, the detection delay after
 * each change (first drift with the signal going up within the segment), missed changes,
 * and false alarms per 100k samples (every other upward drift). Part 2, reactions (with
 * the default detector): prequential loss over the 1,000 samples after each change and
 * over the whole stream, beside no reaction and a periodic reset (every 10,000 samples).
 * Means over the seeds.
 *
 * Options: --seeds N (default 3), --samples N (default 100000), --json.
 */
import { from } from 'rxjs';
import { normalize } from '../operators/normalize.ts';
import { type DriftConfig, DriftAdaptation, type ReactionConfig } from '../pipeline/drift-adaptation.ts';
import type { DetectorConfig } from '../core/drift/detectors.ts';
import { initialize } from '../core/init.ts';
import type { Loss } from '../core/losses.ts';
import { createModel } from '../core/model.ts';
import { Normalizer } from '../core/normalizer.ts';
import type { Sample } from '../core/sample.ts';
import { train } from '../pipeline/train.ts';
import { createTrainer, type Trainer } from '../core/trainer.ts';
import { hyperplaneSamples } from '../sources/hyperplane.ts';
import { kineticsDriftSamples } from '../sources/kinetics-drift.ts';
import { seaSamples } from '../sources/sea.ts';
import { sineConceptSamples } from '../sources/sine-concepts.ts';

const args = process.argv.slice(2);
const option = (name: string, fallback: number): number => {
  const i = args.indexOf(`--${name}`);
  return i < 0 ? fallback : Number(args[i + 1]);
};
const SEEDS = option('seeds', 3);
const N = option('samples', 100_000);
const EVERY = Math.round(N / 4);
const AFTER = 1000;

interface Stream {
  readonly name: string;
  readonly kind: 'abrupt' | 'gradual' | 'none';
  readonly task: 'classification' | 'regression';
  readonly inputs: number;
  readonly samples: (seed: number) => Sample[];
}

const STREAMS: readonly Stream[] = [
  { name: 'sea', kind: 'abrupt', task: 'classification', inputs: 3, samples: (seed) => [...seaSamples({ seed, every: EVERY, limit: N })] },
  { name: 'sine', kind: 'abrupt', task: 'classification', inputs: 2, samples: (seed) => [...sineConceptSamples({ seed, every: EVERY, limit: N })] },
  { name: 'hyperplane', kind: 'gradual', task: 'classification', inputs: 4, samples: (seed) => [...hyperplaneSamples({ seed, every: EVERY, width: Math.round(EVERY / 5), limit: N })] },
  { name: 'mm-jump', kind: 'abrupt', task: 'regression', inputs: 2, samples: (seed) => [...kineticsDriftSamples({ seed, every: EVERY, limit: N })] },
  { name: 'mm-ramp', kind: 'gradual', task: 'regression', inputs: 2, samples: (seed) => [...kineticsDriftSamples({ seed, every: EVERY, change: 'ramp', width: Math.round(EVERY / 2.5), limit: N })] },
  { name: 'stable', kind: 'none', task: 'regression', inputs: 2, samples: (seed) => [...kineticsDriftSamples({ seed, every: Infinity, limit: N })] },
];

const changePoints = (s: Stream): number[] => (s.kind === 'none' ? [] : [1, 2, 3].map((k) => k * EVERY));

function makeTrainer(s: Stream, seed: number): Trainer {
  const classifier = s.task === 'classification';
  const model = initialize(createModel({ inputSize: s.inputs, layers: [{ units: 16, activation: 'tanh' }, { units: 1, activation: classifier ? 'sigmoid' : 'linear' }] }), 'pytorch', seed);
  const loss: Loss = classifier ? 'bce' : 'mse';
  return createTrainer({ model, loss, optimizer: { type: 'adam', learningRate: 0.01 } });
}

interface Trace {
  /** Index of every drift with the signal going up. */
  readonly upDrifts: number[];
  /** Per-sample prequential loss (the score of the prediction made before learning). */
  readonly losses: Float64Array;
}

/** One online pass; `periodic` resets the weights every that many samples instead of detecting. */
function run(s: Stream, seed: number, data: readonly Sample[], drift: DriftConfig | null, periodic = 0): Trace {
  const trainer = makeTrainer(s, seed);
  const adaptation = drift === null ? undefined : new DriftAdaptation(trainer, drift);
  const losses = new Float64Array(data.length);
  const upDrifts: number[] = [];
  let seen = 0;
  const normalizer = new Normalizer({ inputs: s.inputs, outputs: 1 });
  const fresh = periodic > 0 ? trainer.model.params.slice() : null;
  from(data).pipe(normalize(normalizer), train(trainer, { window: 1, ...(adaptation !== undefined && { drift: adaptation }) })).subscribe((r) => {
    losses[seen] = r.loss;
    seen += r.size;
    for (const e of r.drift ?? []) if (e.type === 'drift' && e.detail.direction === 1) upDrifts.push(e.index);
    if (fresh !== null && seen % periodic === 0) {
      trainer.model.params.set(fresh);
      trainer.optimizer.m.fill(0);
      trainer.optimizer.v.fill(0);
      trainer.optimizer.t = 0;
    }
  });
  return { upDrifts, losses };
}

const mean = (v: readonly number[]): number => (v.length === 0 ? NaN : v.reduce((a, b) => a + b, 0) / v.length);
function meanOf(a: Float64Array, from: number, to: number): number {
  let s = 0, n = 0;
  for (let i = from; i < Math.min(to, a.length); i++) if (Number.isFinite(a[i])) (s += a[i]), n++;
  return s / n;
}

/** Delays of the first upward drift in each segment, missed changes, and the rest as false alarms. */
function score(s: Stream, upDrifts: readonly number[]): { delays: number[]; missed: number; falseAlarms: number } {
  const points = changePoints(s);
  const delays: number[] = [];
  const attributed = new Set<number>();
  for (const [k, p] of points.entries()) {
    const end = points[k + 1] ?? N;
    const hit = upDrifts.find((i) => i >= p && i < end);
    if (hit === undefined) continue;
    delays.push(hit - p);
    attributed.add(hit);
  }
  return { delays, missed: points.length - delays.length, falseAlarms: upDrifts.filter((i) => !attributed.has(i)).length };
}

const DETECTORS: readonly { name: string; config: DetectorConfig; binary: boolean }[] = [
  { name: 'adwin', config: { kind: 'adwin' }, binary: false },
  { name: 'page-hinkley', config: { kind: 'page-hinkley' }, binary: false },
  { name: 'kswin', config: { kind: 'kswin' }, binary: false },
  { name: 'ddm', config: { kind: 'ddm' }, binary: true },
  { name: 'hddm-a', config: { kind: 'hddm-a' }, binary: true },
];

const REACTIONS: readonly { name: string; reaction: ReactionConfig | null; periodic?: number }[] = [
  { name: 'none', reaction: { kind: 'none' } },
  { name: 'reset', reaction: { kind: 'reset' } },
  { name: 'reset-optimizer', reaction: { kind: 'reset-optimizer' } },
  { name: 'boost-lr', reaction: { kind: 'boost-lr' } },
  { name: 'background', reaction: { kind: 'background' } },
  { name: 'periodic reset', reaction: null, periodic: 10_000 },
];

const rows: Record<string, unknown>[] = [];
const fmt = (v: number, d = 1) => (Number.isFinite(v) ? v.toFixed(d) : '—');
const started = performance.now();

console.log(`bench:drift — ${N} samples per stream, a change every ${EVERY}, ${SEEDS} seeds; Adam lr 0.01, batch 1\n`);
console.log('Detectors (no reaction): delay after each change, missed changes, false alarms per 100k samples');
console.log(['stream', 'kind', 'detector', 'delay mean', 'delay max', 'missed', 'false/100k'].join('\t'));
const data = new Map<string, Sample[]>();
const dataOf = (s: Stream, seed: number) => {
  const key = `${s.name}/${seed}`;
  if (!data.has(key)) data.set(key, s.samples(seed));
  return data.get(key)!;
};
for (const s of STREAMS) {
  for (const d of DETECTORS) {
    if (d.binary && s.task !== 'classification') continue;
    const delays: number[] = [];
    let missed = 0, falseAlarms = 0;
    for (let seed = 1; seed <= SEEDS; seed++) {
      const trace = run(s, seed, dataOf(s, seed), { detector: d.config, ...(d.binary && { signal: 'error' }) });
      const r = score(s, trace.upDrifts);
      delays.push(...r.delays);
      missed += r.missed;
      falseAlarms += r.falseAlarms;
    }
    const row = { part: 'detector', stream: s.name, kind: s.kind, detector: d.name, delay_mean: mean(delays), delay_max: delays.length > 0 ? Math.max(...delays) : NaN, missed, changes: changePoints(s).length * SEEDS, false_alarms_per_100k: (falseAlarms / (SEEDS * N)) * 100_000 };
    rows.push(row);
    console.log([s.name, s.kind, d.name, fmt(row.delay_mean, 0), fmt(row.delay_max, 0), `${missed}/${row.changes}`, fmt(row.false_alarms_per_100k, 2)].join('\t'));
  }
}

console.log('\nReactions (detector: adwin on the loss): mean prequential loss over the 1,000 samples after each change, and over the whole stream; ratios against no reaction');
console.log(['stream', 'kind', 'reaction', 'after-change loss', 'ratio', 'whole-stream loss', 'ratio'].join('\t'));
for (const s of STREAMS) {
  const results: { name: string; after: number; whole: number }[] = [];
  for (const r of REACTIONS) {
    const after: number[] = [], whole: number[] = [];
    for (let seed = 1; seed <= SEEDS; seed++) {
      const trace = run(s, seed, dataOf(s, seed), r.reaction === null ? null : { detector: { kind: 'adwin' }, reaction: r.reaction }, r.periodic ?? 0);
      for (const p of changePoints(s)) after.push(meanOf(trace.losses, p, p + AFTER));
      whole.push(meanOf(trace.losses, 0, N));
    }
    results.push({ name: r.name, after: mean(after), whole: mean(whole) });
  }
  const none = results[0];
  for (const r of results) {
    const row = { part: 'reaction', stream: s.name, kind: s.kind, reaction: r.name, after_change_loss: r.after, after_ratio: r.after / none.after, whole_loss: r.whole, whole_ratio: r.whole / none.whole };
    rows.push(row);
    console.log([s.name, s.kind, r.name, fmt(r.after, 4), fmt(row.after_ratio, 2), fmt(r.whole, 4), fmt(row.whole_ratio, 3)].join('\t'));
  }
}
console.log(`\n${((performance.now() - started) / 1000).toFixed(0)} s`);
if (args.includes('--json')) for (const row of rows) console.log(JSON.stringify(row));
