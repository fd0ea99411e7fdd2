/**
 * `npm run bench:drift`: how well each drift detector finds known changes, and how much
 * each reaction helps a model through them (issue #13).
 *
 * Seeded streams with known change points, each 100,000 samples with a change every
 * 25,000: SEA (abrupt), SINE concepts (abrupt, label reversals), a rotating hyperplane
 * (gradual, 5,000-sample rotations), a Michaelis–Menten sensor whose hidden K_m jumps
 * (abrupt) or ramps over 10,000 samples (gradual), and the same sensor without drift.
 * Every model is trained online, batch 1, Adam (lr 0.01 for the classifiers; for the
 * regressions the rate of `LR_GRID` that suits the drift-free sensor best, chosen at the
 * start and printed), inputs standardised online,
 * and watched through its prequential signal: the per-sample loss, a classifier's 0/1
 * errors, or the scale-free `large-error` indicators (loss above the 0.9 quantile of a
 * reference window) for a regressor.
 *
 * Part 1, detectors (no reaction): per stream and detector, the detection delay after
 * each change (first drift with the signal going up within the segment), missed changes,
 * and false alarms per 100k samples (every other upward drift).
 *
 * Part 2, reactions: prequential loss over the 1,000 samples after each change and over
 * the whole stream, as ratios to no reaction, for each reaction triggered by
 * - `oracle`: exactly at the true change points (no detector): does the reaction help
 *   at all, if it comes at once?
 * - the task's default detector (`default`), and the other candidates (`--candidates`);
 * beside a periodic reset (every 10,000 samples), `adapted`: the loss of the
 * no-reaction model over the last 1,000 samples of each segment, once it has learned the
 * new concept for 24,000 samples, and, on abrupt streams, `converged`: the loss on the
 * 1,000 samples after each change of a copy of the model trained beforehand to convergence
 * on the new concept (`convergedLosses`) — no reaction can start from a better model, so
 * 1 − converged is the largest cut any reaction could make after a change.
 * Means over the seeds.
 *
 * Options: --seeds N (default 3), --samples N (default 100000), --streams a,b (names),
 * --part lr|detectors|reactions (lr: only the regressions' learning-rate grid), --candidates (more detector × reaction rows), --oracle-delay N
 * (the oracle reacts N samples late), --lr X and --lr-regression X (Adam's learning rate for
 * the classifiers and the regressions), --json; BENCH_REACTIONS='[{...}]' replaces the
 * reactions tried (JSON reaction configs), BENCH_TRIGGERS='[{"detector":{...},"signal":"..."}]'
 * the default detector, BENCH_WATCHES='[{"detector":{...}}]' the detectors of part 1.
 */
import { from } from 'rxjs';
import { normalize } from '../operators/normalize.ts';
import { DRIFT_DEFAULTS as DEFAULT_DRIFT, type DriftConfig, DriftAdaptation, type DriftSignal, type ReactionConfig } from '../pipeline/drift-adaptation.ts';
import { BINARY_DETECTORS, type DetectorConfig } from '../core/drift/detectors.ts';
import { initialize } from '../core/init.ts';
import type { Loss } from '../core/losses.ts';
import { createModel } from '../core/model.ts';
import { Normalizer } from '../core/normalizer.ts';
import type { Sample } from '../core/sample.ts';
import { train } from '../pipeline/train.ts';
import { createTrainer, type Trainer } from '../core/trainer.ts';
import { setLearningRate } from '../core/optimizers.ts';
import { forwardStep, lossStep } from '../core/step.ts';
import { hyperplaneSamples } from '../sources/hyperplane.ts';
import { kineticsDriftSamples } from '../sources/kinetics-drift.ts';
import { seaSamples } from '../sources/sea.ts';
import { sineConceptSamples } from '../sources/sine-concepts.ts';

const args = process.argv.slice(2);
const option = (name: string, fallback: number): number => {
  const i = args.indexOf(`--${name}`);
  return i < 0 ? fallback : Number(args[i + 1]);
};
const text = (name: string): string | undefined => {
  const i = args.indexOf(`--${name}`);
  return i < 0 ? undefined : args[i + 1];
};
const SEEDS = option('seeds', 3);
const N = option('samples', 100_000);
const EVERY = Math.round(N / 4);
const AFTER = 1000;
const PART = text('part');
/** The oracle reacts this many samples after the true change (default 0): what a detector's delay costs. */
const ORACLE_DELAY = option('oracle-delay', 0);
const ONLY = text('streams')?.split(',');
/**
 * The regressions' base learning rates tried (Adam, batch 1): the one with the lowest
 * whole-stream loss of the plain model (no reaction) on the drift-free sensor is used for
 * every K_m row alike (`--lr-regression X` fixes it instead). A learning rate too high for
 * the stream leaves SGD noise that no reaction can remove and reads as a "gap" to the
 * `converged` bound; a tuned one leaves relearning, which a reaction can cut.
 */
const LR_GRID = [0.03, 0.01, 0.003, 0.001, 0.0003];
/** Adam's learning rate per task (`--lr`, `--lr-regression`; NaN: tuned on `LR_GRID`). */
const LR = { classification: option('lr', 0.01), regression: option('lr-regression', NaN) };
/**
 * The `converged` bounds: the converged model from the change on (0), and from 10 or 30
 * samples after it, the plain model's losses before: a reaction that fires at the change
 * still meets the new concept's first samples with the old model, so it can at best make
 * the model converged after some samples (the second and third bounds are what a reaction
 * that relearned the whole concept in 10 or 30 samples would reach).
 */
const CONVERGED_FROM = [0, 10, 30];
/** Passes over a segment (minus the scored first 1,000 samples) that make the `converged` bound's model. */
const BOUND_PASSES = [1, 1 / 3, 1 / 10];

interface Stream {
  readonly name: string;
  readonly kind: 'abrupt' | 'gradual' | 'none';
  readonly task: 'classification' | 'regression';
  readonly inputs: number;
  readonly samples: (seed: number) => Sample[];
}

const ALL_STREAMS: readonly Stream[] = [
  { name: 'sea', kind: 'abrupt', task: 'classification', inputs: 3, samples: (seed) => [...seaSamples({ seed, every: EVERY, limit: N })] },
  { name: 'sine', kind: 'abrupt', task: 'classification', inputs: 2, samples: (seed) => [...sineConceptSamples({ seed, every: EVERY, limit: N })] },
  { name: 'hyperplane', kind: 'gradual', task: 'classification', inputs: 4, samples: (seed) => [...hyperplaneSamples({ seed, every: EVERY, width: Math.round(EVERY / 5), limit: N })] },
  { name: 'mm-jump', kind: 'abrupt', task: 'regression', inputs: 2, samples: (seed) => [...kineticsDriftSamples({ seed, every: EVERY, width: EVERY, limit: N })] },
  { name: 'mm-ramp', kind: 'gradual', task: 'regression', inputs: 2, samples: (seed) => [...kineticsDriftSamples({ seed, every: EVERY, change: 'ramp', width: Math.round(EVERY / 2.5), limit: N })] },
  { name: 'stable', kind: 'none', task: 'regression', inputs: 2, samples: (seed) => [...kineticsDriftSamples({ seed, every: Infinity, limit: N })] },
  { name: 'sea-stable', kind: 'none', task: 'classification', inputs: 3, samples: (seed) => [...seaSamples({ seed, every: Infinity, limit: N })] },
];
const STREAMS = ALL_STREAMS.filter((s) => ONLY === undefined || ONLY.includes(s.name));

const changePoints = (s: Stream): number[] => (s.kind === 'none' ? [] : [1, 2, 3].map((k) => k * EVERY));

function makeTrainer(s: Stream, seed: number): Trainer {
  const classifier = s.task === 'classification';
  const model = initialize(createModel({ inputSize: s.inputs, layers: [{ units: 16, activation: 'tanh' }, { units: 1, activation: classifier ? 'sigmoid' : 'linear' }] }), 'pytorch', seed);
  const loss: Loss = classifier ? 'bce' : 'mse';
  return createTrainer({ model, loss, optimizer: { type: 'adam', learningRate: LR[s.task] } });
}

/** The stream in z-units, as every run sees it: the online normaliser depends on the data alone. */
function normalized(s: Stream, data: readonly Sample[]): Sample[] {
  const normalizer = new Normalizer({ inputs: s.inputs, outputs: 1 });
  const out: Sample[] = [];
  from(data).pipe(normalize(normalizer)).subscribe((x) => out.push(x));
  return out;
}

interface Trace {
  /** Index of every drift the detector raised with the signal going up. */
  readonly upDrifts: number[];
  /** Per-sample prequential loss (the score of the prediction made before learning). */
  readonly losses: Float64Array;
}

interface RunOptions {
  /** Watch and react (null: neither). */
  readonly drift: DriftConfig | null;
  /** Reset the weights every this many samples instead (0: never). */
  readonly periodic?: number;
  /** Trigger the reaction exactly at these sample indices (an oracle that knows the changes). */
  readonly oracle?: readonly number[];
  /** Called after each sample with the samples seen so far (a hook to copy the model). */
  readonly after?: (seen: number, trainer: Trainer) => void;
}

/** One online pass over the stream, batch 1. */
function run(s: Stream, seed: number, data: readonly Sample[], options: RunOptions): Trace {
  const trainer = makeTrainer(s, seed);
  const adaptation = options.drift === null ? undefined : new DriftAdaptation(trainer, options.drift);
  const losses = new Float64Array(data.length);
  const upDrifts: number[] = [];
  const oracle = new Set(options.oracle ?? []);
  const periodic = options.periodic ?? 0;
  let seen = 0;
  const fresh = periodic > 0 ? trainer.model.params.slice() : null;
  from(data).pipe(train(trainer, { window: 1, ...(adaptation !== undefined && { drift: adaptation }) })).subscribe((r) => {
    losses[seen] = r.loss;
    seen += r.size;
    for (const e of r.drift ?? []) if (e.type === 'drift' && e.detail.direction === 1 && e.detail.detector !== 'external') upDrifts.push(e.index);
    // the next sample is the first of the new concept: react before learning from it
    if (oracle.has(seen - ORACLE_DELAY)) adaptation!.signalDrift({ reason: 'oracle' });
    if (fresh !== null && seen % periodic === 0) {
      trainer.model.params.set(fresh);
      trainer.optimizer.m.fill(0);
      trainer.optimizer.v.fill(0);
      trainer.optimizer.t = 0;
    }
    options.after?.(seen, trainer);
  });
  return { upDrifts, losses };
}

/**
 * The `converged` bound: for each change, a copy of the no-reaction model as it was at the
 * change, trained beforehand on the rest of the new segment (every sample but the 1,000
 * it is scored on, in `BOUND_PASSES` passes at falling learning rates), then scored without
 * learning on the 1,000 samples after the change. No reaction can start from a better
 * model than one that already learned the new concept, so its loss over the plain model's
 * is the best possible cut.
 */
function convergedLosses(s: Stream, seed: number, data: readonly Sample[], points: readonly number[]): number[][] {
  const snapshots = new Map<number, { params: Float64Array; m: Float64Array; v: Float64Array; t: number }>();
  const plain = run(s, seed, data, {
    drift: null,
    after: (seen, t) => {
      if (points.includes(seen)) snapshots.set(seen, { params: Float64Array.from(t.model.params), m: Float64Array.from(t.optimizer.m), v: Float64Array.from(t.optimizer.v), t: t.optimizer.t });
    },
  });
  return points.map((p, k) => {
    const end = points[k + 1] ?? N;
    const snap = snapshots.get(p)!;
    const trainer = makeTrainer(s, seed);
    trainer.model.params.set(snap.params);
    trainer.optimizer.m.set(snap.m);
    trainer.optimizer.v.set(snap.v);
    trainer.optimizer.t = snap.t;
    const segment = data.slice(p + AFTER, end);
    for (const scale of BOUND_PASSES) {
      setLearningRate(trainer.optimizer, LR[s.task] * scale);
      from(segment).pipe(train(trainer, { window: 1 })).subscribe();
    }
    const converged = data.slice(p, p + AFTER).map((sample) => lossStep(trainer, forwardStep(trainer, [sample])).loss);
    // the plain model for the first `d` samples (nothing can know the change before it
    // has seen it), the converged one after them
    return CONVERGED_FROM.map((d) => ((d > 0 ? meanOf(plain.losses, p, p + d) * d : 0) + mean(converged.slice(d)) * (AFTER - d)) / AFTER);
  });
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

/** A detector on a signal; binary detectors watch a classifier's errors, or a regressor's large errors. */
interface Watch {
  readonly name: string;
  readonly detector: DetectorConfig;
  readonly signal: (task: Stream['task']) => DriftSignal;
}
const onLoss = () => 'loss' as const;
const onBits = (task: Stream['task']) => (task === 'classification' ? 'error' as const : 'large-error' as const);
const WATCHES: readonly Watch[] = process.env.BENCH_WATCHES !== undefined ? (JSON.parse(process.env.BENCH_WATCHES) as { detector: DetectorConfig; signal?: DriftSignal }[]).map((w) => ({ name: JSON.stringify(w.detector), detector: w.detector, signal: (task) => w.signal ?? (BINARY_DETECTORS.has(w.detector.kind) ? onBits(task) : 'loss') })) : [
  { name: 'adwin', detector: { kind: 'adwin' }, signal: onLoss },
  { name: 'page-hinkley', detector: { kind: 'page-hinkley' }, signal: onLoss },
  { name: 'page-hinkley λ=100', detector: { kind: 'page-hinkley', threshold: 100 }, signal: onLoss },
  { name: 'kswin', detector: { kind: 'kswin' }, signal: onLoss },
  { name: 'ddm', detector: { kind: 'ddm' }, signal: onBits },
  { name: 'hddm-a', detector: { kind: 'hddm-a' }, signal: onBits },
  { name: 'adwin on 0/1', detector: { kind: 'adwin' }, signal: onBits },
  { name: 'page-hinkley δ=0.01 λ=0.5 one-sided, α=1 (the regressions\' default)', detector: DEFAULT_DRIFT.regression.detector, signal: onLoss },
];
const signalName = (signal: DriftSignal) => (signal === 'loss' ? 'loss' : signal === 'error' ? 'errors' : 'large errors');

const REACTIONS: readonly { name: string; reaction: ReactionConfig }[] = process.env.BENCH_REACTIONS !== undefined ? (JSON.parse(process.env.BENCH_REACTIONS) as ReactionConfig[]).map((r) => ({ name: JSON.stringify(r), reaction: r })) : [
  { name: 'reset', reaction: { kind: 'reset' } },
  { name: 'reset-optimizer', reaction: { kind: 'reset-optimizer' } },
  { name: 'boost-lr', reaction: { kind: 'boost-lr' } },
  { name: 'boost-lr ×4 at large rises', reaction: DEFAULT_DRIFT.classification.reaction },
  { name: 'background', reaction: { kind: 'background' } },
  { name: 'background copy ×3', reaction: { kind: 'background', challenger: 'copy', factor: 3, horizon: 300 } },
  { name: 'refit-head', reaction: { kind: 'refit-head' } },
];

const rows: Record<string, unknown>[] = [];
const fmt = (v: number, d = 1) => (Number.isFinite(v) ? v.toFixed(d) : '—');
const started = performance.now();
const data = new Map<string, Sample[]>();
const dataOf = (s: Stream, seed: number) => {
  const key = `${s.name}/${seed}`;
  if (!data.has(key)) data.set(key, normalized(s, s.samples(seed)));
  return data.get(key)!;
};

if (Number.isNaN(LR.regression) && (PART === 'lr' || STREAMS.some((s) => s.task === 'regression'))) {
  // tuned on the drift-free sensor; the K_m jumps' numbers are shown beside it for reference
  const stable = ALL_STREAMS.find((s) => s.name === 'stable')!, jumps = ALL_STREAMS.find((s) => s.name === 'mm-jump')!;
  console.log('Regression learning rate (Adam, batch 1, no reaction): whole-stream loss on the drift-free sensor (chooses) and on the K_m jumps (for reference)');
  console.log(['lr', 'drift-free sensor', 'K_m jumps', 'K_m jumps, 1,000 after each change'].join('\t'));
  let best = { lr: NaN, loss: Infinity };
  for (const lr of LR_GRID) {
    LR.regression = lr;
    const whole = (s: Stream) => mean(Array.from({ length: SEEDS }, (_, k) => meanOf(run(s, k + 1, dataOf(s, k + 1), { drift: null }).losses, 0, N)));
    const free = whole(stable);
    const after: number[] = [], all: number[] = [];
    for (let seed = 1; seed <= SEEDS; seed++) {
      const trace = run(jumps, seed, dataOf(jumps, seed), { drift: null });
      all.push(meanOf(trace.losses, 0, N));
      for (const p of changePoints(jumps)) after.push(meanOf(trace.losses, p, p + AFTER));
    }
    rows.push({ part: 'lr', lr, stable_whole_loss: free, mm_jump_whole_loss: mean(all), mm_jump_after_loss: mean(after) });
    console.log([lr, fmt(free, 6), fmt(mean(all), 6), fmt(mean(after), 6)].join('\t'));
    if (free < best.loss) best = { lr, loss: free };
  }
  LR.regression = best.lr;
  console.log(`→ lr ${best.lr} for every regression row\n`);
  if (PART === 'lr') process.exit(0);
}
console.log(`bench:drift — ${N} samples per stream, a change every ${EVERY}, ${SEEDS} seeds; Adam lr ${LR.classification} (classifiers), ${LR.regression} (regressions), batch 1\n`);
if (PART === undefined || PART === 'detectors') {
  console.log('Detectors (no reaction): delay after each change, missed changes, false alarms per 100k samples');
  console.log(['stream', 'kind', 'detector', 'signal', 'delay mean', 'delay max', 'missed', 'false/100k'].join('\t'));
  for (const s of STREAMS) {
    for (const w of WATCHES) {
      const signal = w.signal(s.task);
      const delays: number[] = [];
      let missed = 0, falseAlarms = 0;
      for (let seed = 1; seed <= SEEDS; seed++) {
        // reaction none: a classifier's default reaction would change what the detector sees next
        const trace = run(s, seed, dataOf(s, seed), { drift: { detector: w.detector, signal, reaction: 'none' } });
        const r = score(s, trace.upDrifts);
        delays.push(...r.delays);
        missed += r.missed;
        falseAlarms += r.falseAlarms;
      }
      const row = { part: 'detector', stream: s.name, kind: s.kind, watch: w.name, detector: w.detector.kind, signal, delay_mean: mean(delays), delay_max: delays.length > 0 ? Math.max(...delays) : NaN, missed, changes: changePoints(s).length * SEEDS, false_alarms_per_100k: (falseAlarms / (SEEDS * N)) * 100_000 };
      rows.push(row);
      console.log([s.name, s.kind, w.name, signalName(signal), fmt(row.delay_mean, 0), fmt(row.delay_max, 0), `${missed}/${row.changes}`, fmt(row.false_alarms_per_100k, 2)].join('\t'));
    }
  }
}

if (PART === undefined || PART === 'reactions') {
  console.log('\nReactions: mean prequential loss over the 1,000 samples after each change, and over the whole stream; ratios against no reaction');
  console.log(['stream', 'kind', 'trigger', 'reaction', 'after-change loss', 'ratio', 'whole-stream loss', 'ratio'].join('\t'));
  const CANDIDATES = args.includes('--candidates');
  for (const s of STREAMS) {
    const points = changePoints(s);
    type Result = { trigger: string; reaction: string; after: number; whole: number };
    const results: Result[] = [];
    const measure = (trigger: string, reaction: string, options: RunOptions, adapted = false) => {
      const after: number[] = [], whole: number[] = [];
      for (let seed = 1; seed <= SEEDS; seed++) {
        const trace = run(s, seed, dataOf(s, seed), options);
        for (const [k, p] of points.entries()) {
          // adapted: the same model at the end of the segment, after 24,000 samples of the new concept
          const end = points[k + 1] ?? N;
          after.push(adapted ? meanOf(trace.losses, end - AFTER, end) : meanOf(trace.losses, p, p + AFTER));
        }
        whole.push(meanOf(trace.losses, 0, N));
      }
      results.push({ trigger, reaction, after: mean(after), whole: adapted ? NaN : mean(whole) });
    };
    measure('—', 'none', { drift: null });
    if (points.length > 0) measure('—', 'adapted', { drift: null }, true);
    // after a gradual change the first 1,000 samples are mid-way, not the new concept: no bound
    if (s.kind === 'abrupt') {
      const bound: number[][] = [];
      for (let seed = 1; seed <= SEEDS; seed++) bound.push(...convergedLosses(s, seed, dataOf(s, seed), points));
      for (const [k, d] of CONVERGED_FROM.entries()) results.push({ trigger: '—', reaction: d === 0 ? 'converged' : `converged from +${d}`, after: mean(bound.map((b) => b[k])), whole: NaN });
    }
    measure('—', 'periodic reset', { drift: null, periodic: 10_000 });
    const task = DEFAULT_DRIFT[s.task];
    const triggers: { name: string; detector: DetectorConfig; signal: DriftSignal; oracle?: boolean }[] = [
      ...(points.length > 0 ? [{ name: 'oracle', detector: task.detector, signal: task.signal, oracle: true }] : []),
      ...(process.env.BENCH_TRIGGERS !== undefined ? (JSON.parse(process.env.BENCH_TRIGGERS) as { detector: DetectorConfig; signal?: DriftSignal }[]).map((t) => ({ name: JSON.stringify(t), detector: t.detector, signal: t.signal ?? (BINARY_DETECTORS.has(t.detector.kind) ? onBits(s.task) : 'loss' as const) })) : [{ name: `default (${task.detector.kind} on ${signalName(task.signal)})`, detector: task.detector as DetectorConfig, signal: task.signal as DriftSignal }]),
      ...(CANDIDATES ? WATCHES.filter((w) => w.detector.kind !== task.detector.kind || w.signal(s.task) !== task.signal).map((w) => ({ name: `${w.name} on ${signalName(w.signal(s.task))}`, detector: w.detector, signal: w.signal(s.task) })) : []),
    ];
    for (const t of triggers) {
      for (const r of REACTIONS) {
        // refit-head solves a linear output layer by least squares: refused for a classifier
        if (r.reaction.kind === 'refit-head' && s.task === 'classification') continue;
        // the oracle's detector never fires on its own: the oracle alone triggers it
        const detector: DetectorConfig = t.oracle === true ? { kind: 'page-hinkley', threshold: 1e300 } : t.detector;
        measure(t.name, r.name, { drift: { detector, signal: t.oracle === true ? 'loss' : t.signal, reaction: r.reaction }, ...(t.oracle === true && { oracle: points }) });
      }
    }
    const none = results[0];
    for (const r of results) {
      const row = { part: 'reaction', stream: s.name, kind: s.kind, trigger: r.trigger, reaction: r.reaction, after_change_loss: r.after, after_ratio: r.after / none.after, whole_loss: r.whole, whole_ratio: r.whole / none.whole };
      rows.push(row);
      console.log([s.name, s.kind, r.trigger, r.reaction, fmt(r.after, 5), fmt(row.after_ratio, 2), fmt(r.whole, 5), fmt(row.whole_ratio, 3)].join('\t'));
    }
  }
}
console.log(`\n${((performance.now() - started) / 1000).toFixed(0)} s`);
if (args.includes('--json')) for (const row of rows) console.log(JSON.stringify(row));
