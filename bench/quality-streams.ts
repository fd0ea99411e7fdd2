import { readFileSync } from 'node:fs';
import { fileURLToPath } from 'node:url';
import type { Activation } from '../core/activations.ts';
import type { Loss } from '../core/losses.ts';
import { Normalizer, type NormalizerConfig } from '../core/normalizer.ts';
import { michaelisMentenSamples } from '../sources/michaelis-menten.ts';

/**
 * The streams of the learning-quality bench (`bench/quality.ts`), in the user's units,
 * in the order they arrive: each is one pass over real or simulated data, scored
 * prequentially. Built from files in the repository and a seeded generator only, so the
 * same command gives the same streams everywhere.
 */
export interface QualityStream {
  readonly name: string;
  readonly about: string;
  readonly task: 'classify' | 'regress';
  /** Hidden and output layers, as `--layers` would say them after the input size. */
  readonly layers: readonly { readonly units: number; readonly activation: Activation }[];
  readonly loss: Loss;
  /** Features per sample, raw units. */
  readonly x: readonly (readonly number[])[];
  /** Target per sample: the class index (classify) or the value in user units (regress). */
  readonly y: readonly number[];
  readonly classes?: readonly string[];
  /** The persistence forecast of each sample (regress): the value it would be "same as last time". */
  readonly persistence?: readonly number[];
  /** `--normalize-target` too (regressions). */
  readonly normalizeTarget: boolean;
}

const DATA = fileURLToPath(new URL('../examples/data/', import.meta.url));

function csv(file: string): Record<string, string>[] {
  const [header, ...rows] = readFileSync(DATA + file, 'utf8').trim().split(/\r?\n/).map((l) => l.split(','));
  return rows.map((r) => Object.fromEntries(header.map((h, i) => [h, r[i]])));
}

/** Seattle weather 2012–2015: the weather class from precipitation, temperatures and wind (the README's example). */
export function seattleWeather(): QualityStream {
  const rows = csv('seattle-weather.csv');
  const classes = [...new Set(rows.map((r) => r.weather))].sort();
  return {
    name: 'seattle', about: 'Seattle weather, 1461 days, 5 classes, 4,16:tanh,5:softmax', task: 'classify',
    layers: [{ units: 16, activation: 'tanh' }, { units: classes.length, activation: 'softmax' }], loss: 'cross_entropy',
    x: rows.map((r) => [Number(r.precipitation), Number(r.temp_max), Number(r.temp_min), Number(r.wind)]),
    y: rows.map((r) => classes.indexOf(r.weather)),
    classes, normalizeTarget: false,
  };
}

/** Months of CO₂ the autoregression sees. */
export const CO2_LAGS = 12;

/** Mauna Loa CO₂, monthly: this month's level (ppm) from the previous 12 months' levels. */
export function co2Monthly(): QualityStream {
  const co2 = csv('co2-monthly.csv').map((r) => Number(r.co2));
  const x: number[][] = [], y: number[] = [], persistence: number[] = [];
  for (let t = CO2_LAGS; t < co2.length; t++) {
    x.push(co2.slice(t - CO2_LAGS, t));
    y.push(co2[t]);
    persistence.push(co2[t - 1]);
  }
  return {
    name: 'co2', about: `Mauna Loa CO₂, ${y.length} months, level from ${CO2_LAGS} lags (ppm), ${CO2_LAGS},16:relu,1:linear`, task: 'regress',
    layers: [{ units: 16, activation: 'relu' }, { units: 1, activation: 'linear' }], loss: 'mse',
    x, y, persistence, normalizeTarget: true,
  };
}

/** Samples of the Michaelis–Menten stream; the true Km jumps halfway. */
export const MM_SAMPLES = 10_000;

/** Simulated enzyme kinetics (seeded), whose true Km jumps by +2 halfway (x keeps the nominal Km). */
export function michaelisMentenShift(seed: number): QualityStream {
  const x: number[][] = [], y: number[] = [], persistence: number[] = [];
  let last = 0;
  for (const s of michaelisMentenSamples({ seed, limit: MM_SAMPLES, kmShift: { at: MM_SAMPLES / 2, by: 2 } })) {
    x.push([...s.x]);
    y.push(s.y[0]);
    persistence.push(last);
    last = s.y[0];
  }
  return {
    name: 'mm-shift', about: `Michaelis–Menten, ${MM_SAMPLES} samples, Km +2 at ${MM_SAMPLES / 2}, 3,16:relu,16:relu,1:linear`, task: 'regress',
    layers: [{ units: 16, activation: 'relu' }, { units: 16, activation: 'relu' }, { units: 1, activation: 'linear' }], loss: 'mse',
    x, y, persistence, normalizeTarget: true,
  };
}

/**
 * A stream as the network sees it after `--normalize` (and `--normalize-target`):
 * every sample standardised with the statistics of the samples before it (what
 * `ingest` does, test-then-learn), and for a regression the mean and scale that map
 * that sample's prediction back to user units. The statistics never depend on the
 * model, so both sides of the bench get these very numbers.
 */
export interface PreparedStream {
  readonly x: Float64Array[];
  /** z-units target (regress) or one-hot (classify). */
  readonly y: Float64Array[];
  /** Per sample: prediction in user units = z · scale + mean (regress; 1 and 0 otherwise). */
  readonly mean: Float64Array;
  readonly scale: Float64Array;
}

export function prepare(stream: QualityStream, normalizer: Partial<NormalizerConfig> = {}): PreparedStream {
  const inputs = stream.x[0].length;
  const n = new Normalizer({ ...normalizer, inputs, outputs: 1, target: stream.normalizeTarget });
  const out: PreparedStream = { x: [], y: [], mean: new Float64Array(stream.y.length), scale: new Float64Array(stream.y.length) };
  stream.x.forEach((raw, i) => {
    const target = stream.task === 'regress' ? [stream.y[i]] : oneHot(stream.y[i], stream.classes!.length);
    const z = n.transform({ x: raw, y: target });
    out.x.push(Float64Array.from(z.x));
    out.y.push(Float64Array.from(z.y as ArrayLike<number>));
    // the map back for this sample: the statistics before it, as denormalizeOutput uses them
    const ys = n.y;
    out.mean[i] = ys === null || ys.count === 0 ? 0 : ys.mean[0];
    out.scale[i] = ys === null || ys.count === 0 ? 1 : n.scaleOf(ys, 0);
    n.learn({ x: raw, y: target });
  });
  return out;
}

function oneHot(k: number, classes: number): number[] {
  const v = new Array<number>(classes).fill(0);
  v[k] = 1;
  return v;
}
