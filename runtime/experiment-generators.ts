import { z } from 'zod';
import type { Sample } from '../core/sample.ts';
import { blobsSamples } from '../sources/blobs.ts';
import { conceptChangeSamples } from '../sources/concept-change.ts';
import { type LabelEncoding, type SimulatedOptions } from '../sources/generated.ts';
import { michaelisMentenSamples } from '../sources/michaelis-menten.ts';
import { separableSamples } from '../sources/separable.ts';
import { sineSamples } from '../sources/sine.ts';
import { spiralsSamples } from '../sources/spirals.ts';
import { xorSamples } from '../sources/xor.ts';
import { hyperplaneSamples } from '../sources/hyperplane.ts';
import { kineticsDriftSamples } from '../sources/kinetics-drift.ts';
import { seaSamples } from '../sources/sea.ts';
import { sineConceptSamples } from '../sources/sine-concepts.ts';

/**
 * The simulated streams a config file can name (`"source": {"simulated": NAME, ...}`):
 * each generator's own options, as zod shapes (types only: the values are checked by the
 * generator itself when the plan is made, so the limits live in one place), and how to
 * make a fresh, seeded pull source of it. Every model of a race gets its own generator
 * with the same seed, so all of them see the same samples.
 */
const ENCODINGS = ['binary', 'one-hot'] as const satisfies readonly LabelEncoding[];
const range = z.tuple([z.number(), z.number()]);

interface Generator {
  /** What it is, for `--check` and the README. */
  readonly about: string;
  /** The generator's own options (besides `seed` and `samples`). */
  readonly options: z.ZodRawShape;
  readonly make: (options: Record<string, unknown> & SimulatedOptions) => Iterator<Sample> & Iterable<Sample>;
}

export const GENERATORS = {
  'michaelis-menten': {
    about: 'enzyme kinetics, x = [Vmax, S, Km], y = [Vmax·S/(Km + S) + noise] (regression)',
    options: { noise: z.number(), vmax: range, substrate: range, km: range, kmDrift: z.number(), kmShift: z.strictObject({ at: z.int(), by: z.number() }) },
    make: (o) => michaelisMentenSamples(o),
  },
  xor: {
    about: 'x uniform in [-1, 1]², label 1 when the signs differ (binary or one-hot)',
    options: { noise: z.number(), encoding: z.enum(ENCODINGS) },
    make: (o) => xorSamples(o),
  },
  sine: {
    about: 'x = [t], y = [amplitude·sin(frequency·t + phase) + noise] (regression)',
    options: { range, amplitude: z.number(), frequency: z.number(), phase: z.number(), noise: z.number() },
    make: (o) => sineSamples(o),
  },
  spirals: {
    about: 'two interleaved spirals, one class each (binary or one-hot)',
    options: { turns: z.number(), noise: z.number(), encoding: z.enum(ENCODINGS) },
    make: (o) => spiralsSamples(o),
  },
  blobs: {
    about: 'gaussian blobs on a circle, one class each, one-hot',
    options: { classes: z.int(), spread: z.number(), radius: z.number() },
    make: (o) => blobsSamples(o),
  },
  'concept-change': {
    about: 'a linear concept redrawn every N samples (regression or classification)',
    options: { inputs: z.int(), every: z.int(), task: z.enum(['regression', 'classification']), noise: z.number() },
    make: (o) => conceptChangeSamples(o),
  },
  sea: {
    about: 'SEA concepts: x uniform in [0, 10]³, label x₀ + x₁ ≤ θ, θ changing every N samples (abrupt drift)',
    options: { every: z.int(), noise: z.number() },
    make: (o) => seaSamples(o),
  },
  'sine-concepts': {
    about: 'SINE concepts: x uniform in [0, 1]², below a sine curve, the concept (and its reversal) changing every N samples (abrupt drift)',
    options: { every: z.int() },
    make: (o) => sineConceptSamples(o),
  },
  hyperplane: {
    about: 'a rotating hyperplane: x uniform in [0, 1]^d, the plane turning over `width` samples every N (gradual drift)',
    options: { inputs: z.int(), every: z.int(), width: z.int(), noise: z.number() },
    make: (o) => hyperplaneSamples(o),
  },
  'kinetics-drift': {
    about: 'Michaelis–Menten with a hidden Km that jumps (or ramps) every N samples, x = [Vmax, S] (regression, drift)',
    options: { every: z.int(), change: z.enum(['jump', 'ramp']), width: z.int(), km: z.array(z.number()), vmax: range, substrate: range, noise: z.number() },
    make: (o) => kineticsDriftSamples(o),
  },
  separable: {
    about: 'linearly separable points with a margin, labels -1/+1 (the perceptron)',
    options: { inputs: z.int(), margin: z.number() },
    make: (o) => separableSamples(o),
  },
} as const satisfies Record<string, Generator>;

export type GeneratorName = keyof typeof GENERATORS;
export const GENERATOR_NAMES = Object.keys(GENERATORS) as [GeneratorName, ...GeneratorName[]];

/** A fresh pull source of the named stream: `samples` long (undefined: endless). */
export function generate(name: GeneratorName, options: Record<string, unknown>, seed: number, samples: number | undefined): Iterator<Sample> & Iterable<Sample> {
  return (GENERATORS[name] as Generator).make({ ...options, seed, limit: samples ?? Infinity });
}
