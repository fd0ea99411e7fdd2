/**
 * Weight initialisation and the seeded RNG: reproducibility (bitwise, by SHA-256 of the
 * parameter bytes), each scheme's range and spread, what `auto` picks, and determinism of
 * whole training runs (RELIABILITY row 21).
 */
import { describe, expect, it } from 'vitest';
import type { Activation } from '../core/activations.ts';
import { INIT_SCHEMES, initialize, type InitScheme } from '../core/init.ts';
import { createModel, type LayerSpec } from '../core/model.ts';
import { Rng } from '../core/rng.ts';
import type { Sample } from '../core/sample.ts';
import { createTrainer } from '../core/trainer.ts';
import { buildModel, expectStreamgradError, paramsHash, randArray, runTrain } from './helpers/math.ts';

const TOPOLOGY: readonly LayerSpec[] = [
  { units: 7, activation: 'relu' }, { units: 5, activation: 'tanh' }, { units: 3, activation: 'softmax' },
];

describe('initialize: reproducibility', () => {
  for (const scheme of INIT_SCHEMES) {
    it(`${scheme}: same seed → bitwise-identical weights; a number seed equals an Rng of that seed`, () => {
      const a = buildModel(4, TOPOLOGY, 42, scheme), b = buildModel(4, TOPOLOGY, 42, scheme);
      expect(paramsHash(a.params)).toBe(paramsHash(b.params));
      const c = initialize(createModel({ inputSize: 4, layers: TOPOLOGY }), scheme, new Rng(42));
      expect(paramsHash(c.params)).toBe(paramsHash(a.params));
    });
  }

  for (const scheme of ['auto', 'pytorch', 'xavier', 'he'] as const) {
    it(`${scheme}: different seeds → different weights (0..20, 256, 1000, 2^31, 2^32, 2^32 + 1, 2^40, −2^32, 2^53 − 1)`, () => {
      // 2^32 vs 1 and 2^40 vs 256 would collide if the seed's two 32-bit words were folded by xor
      const seeds = [...Array.from({ length: 21 }, (_, i) => i), 256, 1000, 2 ** 31, 2 ** 32, 2 ** 32 + 1, 2 ** 40, -(2 ** 32), Number.MAX_SAFE_INTEGER];
      const hashes = new Set(seeds.map((s) => paramsHash(buildModel(4, TOPOLOGY, s, scheme).params)));
      expect(hashes.size).toBe(seeds.length);
    });
  }

  it('negative seeds are accepted and give weights different from the non-negative seeds', () => {
    // Rng accepts any safe integer, so -1 and 0 (or -2 and 1) are different seeds and must give different weights
    const collisions: string[] = [];
    for (const [neg, pos] of [[-1, 0], [-2, 1], [-43, 42], [-1000, 999]]) {
      const a = paramsHash(buildModel(4, TOPOLOGY, neg).params);
      const b = paramsHash(buildModel(4, TOPOLOGY, pos).params);
      if (a === b) collisions.push(`seed ${neg} = seed ${pos}`);
    }
    expect(collisions, 'seeds giving bitwise-identical weights').toEqual([]);
  });

  it('rejects an unknown scheme with SG_ERR_CONFIG naming init', () => {
    for (const bad of ['glorot', '', 'HE', undefined]) {
      const e = expectStreamgradError(() => initialize(createModel({ inputSize: 2, layers: TOPOLOGY }), bad as InitScheme, 1), 'SG_ERR_CONFIG');
      expect(e.field).toBe('init');
    }
  });
});

describe('initialize: ranges and spread', () => {
  const limits = (scheme: Exclude<InitScheme, 'auto'>, n: number, m: number) => {
    switch (scheme) {
      case 'pytorch': return { w: 1 / Math.sqrt(n), b: 1 / Math.sqrt(n) };
      case 'xavier': return { w: Math.sqrt(6 / (n + m)), b: 0 };
      case 'he': return { w: Math.sqrt(6 / n), b: 0 };
      case 'zeros': return { w: 0, b: 0 };
    }
  };

  for (const scheme of ['pytorch', 'xavier', 'he', 'zeros'] as const) {
    it(`${scheme}: weights in [−limit, limit) (and biases for pytorch; zero biases otherwise), every layer`, () => {
      for (let seed = 0; seed < 5; seed++) {
        const model = buildModel(6, [{ units: 9, activation: 'sigmoid' }, { units: 4, activation: 'relu' }, { units: 2, activation: 'linear' }], seed, scheme);
        for (const layer of model.layers) {
          const lim = limits(scheme, layer.inputs, layer.outputs);
          for (const w of layer.weights) { expect(w).toBeGreaterThanOrEqual(-lim.w); expect(w).toBeLessThan(lim.w === 0 ? 1e-300 : lim.w); }
          for (const b of layer.bias) { expect(b).toBeGreaterThanOrEqual(-lim.b); expect(b).toBeLessThan(lim.b === 0 ? 1e-300 : lim.b); }
          if (lim.w > 0) {
            // the draws actually spread over the range, not a corner of it
            const ws = Array.from(layer.weights);
            expect(Math.max(...ws)).toBeGreaterThan(0.3 * lim.w);
            expect(Math.min(...ws)).toBeLessThan(-0.3 * lim.w);
          } else {
            expect(layer.weights.every((w) => w === 0)).toBe(true);
          }
          if (lim.b === 0) expect(layer.bias.every((b) => b === 0)).toBe(true);
        }
      }
    });
  }

  for (const scheme of ['pytorch', 'xavier', 'he'] as const) {
    it(`${scheme}: on a 300×200 layer the mean is ≈ 0 and the variance ≈ limit²/3 (uniform), within 3%`, () => {
      const n = 300, m = 200;
      const model = buildModel(n, [{ units: m, activation: 'linear' }], 7, scheme);
      const lim = limits(scheme, n, m).w;
      const w = model.layers[0].weights;
      let mean = 0;
      for (const v of w) mean += v;
      mean /= w.length;
      let variance = 0;
      for (const v of w) variance += (v - mean) ** 2;
      variance /= w.length - 1;
      const expected = (lim * lim) / 3;
      // 60000 draws: the standard error of the variance is ≈ 0.45% of it
      expect(Math.abs(variance / expected - 1)).toBeLessThan(0.03);
      expect(Math.abs(mean)).toBeLessThan(4 * Math.sqrt(expected / w.length));
    });
  }

  it('auto picks he for relu and leaky_relu, xavier for everything else, in the documented draw order', () => {
    const layers: LayerSpec[] = (['relu', 'tanh', 'leaky_relu', 'sigmoid', 'linear', 'softmax'] as Activation[])
      .map((activation, l) => ({ units: 2 + l, activation }));
    const model = initialize(createModel({ inputSize: 3, layers }), 'auto', 99);
    // replay: layer by layer, weights row by row from one stream; xavier and he draw no biases
    const rng = new Rng(99);
    let n = 3;
    for (const [l, spec] of layers.entries()) {
      const m = spec.units;
      const relu = spec.activation === 'relu' || spec.activation === 'leaky_relu';
      const lim = relu ? Math.sqrt(6 / n) : Math.sqrt(6 / (n + m));
      const expected = Array.from({ length: m * n }, () => rng.uniform(-lim, lim));
      expect(Array.from(model.layers[l].weights), `layer ${l} (${spec.activation})`).toEqual(expected);
      expect(model.layers[l].bias.every((b) => b === 0)).toBe(true);
      n = m;
    }
    // and the explicit schemes agree for a single layer
    const one = (act: Activation, scheme: InitScheme) => paramsHash(buildModel(5, [{ units: 4, activation: act }], 3, scheme).params);
    expect(one('relu', 'auto')).toBe(one('relu', 'he'));
    expect(one('tanh', 'auto')).toBe(one('tanh', 'xavier'));
    expect(one('relu', 'auto')).not.toBe(one('relu', 'xavier'));
  });

  it('pytorch draws weights then biases per layer from one stream', () => {
    const model = buildModel(2, [{ units: 3, activation: 'tanh' }, { units: 1, activation: 'linear' }], 5, 'pytorch');
    const rng = new Rng(5);
    const draw = (count: number, lim: number) => Array.from({ length: count }, () => rng.uniform(-lim, lim));
    const expected = [...draw(6, 1 / Math.sqrt(2)), ...draw(3, 1 / Math.sqrt(2)), ...draw(3, 1 / Math.sqrt(3)), ...draw(1, 1 / Math.sqrt(3))];
    expect(Array.from(model.params)).toEqual(expected);
  });
});

describe('Rng', () => {
  it('next() is in [0, 1), a multiple of 2^-53, and uniform enough (mean, variance, deciles)', () => {
    const rng = new Rng(2024);
    const N = 200_000, bins = new Array<number>(10).fill(0);
    let sum = 0, sumSq = 0, min = 1, max = 0;
    let offGrid = 0;
    for (let i = 0; i < N; i++) {
      const u = rng.next();
      if (!Number.isInteger(u * 2 ** 53)) offGrid++;
      if (u < min) min = u;
      if (u > max) max = u;
      sum += u; sumSq += u * u;
      bins[Math.floor(u * 10)]++;
    }
    expect(offGrid).toBe(0);
    expect(min).toBeGreaterThanOrEqual(0);
    expect(max).toBeLessThan(1);
    const mean = sum / N, variance = sumSq / N - mean * mean;
    expect(Math.abs(mean - 0.5)).toBeLessThan(0.005); // σ/√N ≈ 0.00065
    expect(Math.abs(variance - 1 / 12)).toBeLessThan(0.002);
    for (const b of bins) expect(Math.abs(b / N - 0.1)).toBeLessThan(0.005);
  });

  it('state() round-trips: an Rng built from a state continues the identical sequence', () => {
    const rng = new Rng(123);
    for (let i = 0; i < 37; i++) rng.next();
    rng.normal();
    const state = rng.state();
    const copy = new Rng(state);
    const ahead = Array.from({ length: 100 }, () => rng.next());
    const resumed = Array.from({ length: 100 }, () => copy.next());
    expect(resumed).toEqual(ahead);
    expect(copy.state()).toEqual(rng.state());
    // the state is a snapshot: drawing on does not change a state taken earlier
    expect(state).not.toEqual(rng.state());
    expect(new Rng(JSON.parse(JSON.stringify(state))).nextUint32()).toBe(new Rng(state).nextUint32());
  });

  it('the same seed gives the same sequence; uniform(lo, hi) stays in [lo, hi); normal() has mean 0, variance 1', () => {
    expect(Array.from({ length: 20 }, ((r) => () => r.nextUint32())(new Rng(9)))).toEqual(Array.from({ length: 20 }, ((r) => () => r.nextUint32())(new Rng(9))));
    const rng = new Rng(10);
    let outside = 0;
    for (let i = 0; i < 10_000; i++) {
      const u = rng.uniform(-3, 5);
      if (!(u >= -3 && u < 5)) outside++;
    }
    expect(outside).toBe(0);
    let s = 0, s2 = 0;
    const N = 50_000;
    for (let i = 0; i < N; i++) { const z = rng.normal(); s += z; s2 += z * z; }
    expect(Math.abs(s / N)).toBeLessThan(0.03);
    expect(Math.abs(s2 / N - 1)).toBeLessThan(0.03);
  });

  it('rejects seeds that are not safe integers', () => {
    for (const bad of [0.5, NaN, Infinity, 2 ** 53]) expect(() => new Rng(bad)).toThrow(RangeError);
  });
});

describe('RELIABILITY 21: whole training runs are deterministic', () => {
  function run(seed: number, dataSeed = 1): string {
    const rng = new Rng(dataSeed);
    const samples: Sample[] = Array.from({ length: 300 }, () => {
      const x = Array.from(randArray(rng, 3, -2, 2));
      return { x, y: [Math.sin(x[0]) + x[1] * x[2], x[0] > 0 ? 1 : 0] };
    });
    const model = buildModel(3, [{ units: 8, activation: 'tanh' }, { units: 6, activation: 'relu' }, { units: 2, activation: 'linear' }], seed, 'auto');
    const trainer = createTrainer({ model, loss: 'mse', optimizer: { type: 'adam', learningRate: 0.01 }, clipNorm: 5 });
    const results = runTrain(trainer, samples, { batch: 7 });
    expect(results.length).toBe(Math.ceil(300 / 7));
    expect(results.every((r) => r.updated)).toBe(true);
    return paramsHash(trainer.model.params);
  }

  it('two trainers from the same seed on the same samples end bitwise identical; another seed does not', () => {
    const a = run(11), b = run(11);
    expect(a).toBe(b);
    expect(run(12)).not.toBe(a);
    expect(run(11, 2)).not.toBe(a); // and different data changes them too
  });
});
