/**
 * Gradients proven, not trusted (STYLE 7, RELIABILITY row 20): every parameter gradient
 * the engine computes (`backwardStep`) is compared with a central finite difference of
 * the loss the engine computes (`forwardStep` + `lossStep`), in float64, for every valid
 * hidden activation × output activation × loss, on random shapes and several seeds.
 *
 * Pass rule: |analytic − numeric| ≤ 1e-5 + 1e-3·|numeric| with eps = 1e-6.
 * Multi-layer nets also prove the input-gradient path (dx through denseBackward and
 * every hidden activation's derivative): a wrong dx would break the first layer's check.
 */
import { describe, expect, it } from 'vitest';
import type { Activation } from '../core/activations.ts';
import type { Loss } from '../core/losses.ts';
import type { LayerSpec } from '../core/model.ts';
import { Rng } from '../core/rng.ts';
import type { Sample } from '../core/sample.ts';
import { backwardStep, forwardStep, lossStep } from '../core/step.ts';
import { createTrainer, type Trainer } from '../core/trainer.ts';
import { buildModel, randArray, randInt } from './helpers/math.ts';

const EPS = 1e-6, ATOL = 1e-5, RTOL = 1e-3;
const SEEDS = [1, 2, 3, 4];
const HIDDEN: readonly Activation[] = ['linear', 'sigmoid', 'tanh', 'relu', 'leaky_relu'];

/** The valid output activation × loss pairs (cross_entropy with one-hot and with soft targets). */
const OUTPUTS: readonly { activation: Activation; loss: Loss; targets: 'real' | 'binary' | 'one-hot' | 'soft' }[] = [
  ...(['linear', 'sigmoid', 'tanh', 'relu', 'leaky_relu', 'softmax'] as const).map((activation) => ({ activation, loss: 'mse' as const, targets: 'real' as const })),
  { activation: 'sigmoid', loss: 'bce', targets: 'binary' },
  { activation: 'softmax', loss: 'cross_entropy', targets: 'one-hot' },
  { activation: 'softmax', loss: 'cross_entropy', targets: 'soft' },
];

const KINKED = new Set<Activation>(['relu', 'leaky_relu']);

function drawTargets(rng: Rng, kind: (typeof OUTPUTS)[number]['targets'], m: number): number[] {
  switch (kind) {
    case 'real': return Array.from(randArray(rng, m, -1, 1.5));
    case 'binary': return Array.from({ length: m }, () => (rng.next() < 0.5 ? 0 : 1));
    case 'one-hot': { const y = new Array<number>(m).fill(0); y[randInt(rng, 0, m - 1)] = 1; return y; }
    case 'soft': { const w = Array.from(randArray(rng, m, 0.05, 1)); const s = w.reduce((p, v) => p + v, 0); return w.map((v) => v / s); }
  }
}

/** The batch loss exactly as the engine computes it in training. */
function engineLoss(trainer: Trainer, samples: readonly Sample[]): number {
  return lossStep(trainer, forwardStep(trainer, samples)).loss;
}

/** Whether some relu-family pre-activation is within 1e-4 of its kink for these samples. */
function nearKink(trainer: Trainer, samples: readonly Sample[]): boolean {
  forwardStep(trainer, samples);
  const ws = trainer.workspace;
  return trainer.model.layers.some((layer, l) => {
    if (!KINKED.has(layer.activation)) return false;
    const z = ws.z[l];
    for (let q = 0; q < samples.length * layer.outputs; q++) if (Math.abs(z[q]) < 1e-4) return true;
    return false;
  });
}

interface Case {
  readonly topology: readonly LayerSpec[];
  readonly inputSize: number;
  readonly trainer: Trainer;
  readonly samples: readonly Sample[];
}

/** A random network and batch for this combination; relu-family draws too close to a kink are redrawn. */
function drawCase(seed: number, hidden: Activation, out: (typeof OUTPUTS)[number]): Case {
  const rng = new Rng(seed * 1000 + HIDDEN.indexOf(hidden) * 10 + OUTPUTS.indexOf(out));
  for (let attempt = 0; attempt < 200; attempt++) {
    // seeds 1, 2, 3 give 1, 2 and 3 layers; later seeds draw the depth
    const depth = seed <= 3 ? seed : randInt(rng, 1, 3);
    const inputSize = randInt(rng, 1, 6);
    const topology: LayerSpec[] = [];
    for (let l = 0; l < depth - 1; l++) topology.push({ units: randInt(rng, 1, 6), activation: hidden });
    // softmax over one unit is constant; give it at least two so there is something to check
    topology.push({ units: randInt(rng, out.activation === 'softmax' ? 2 : 1, 6), activation: out.activation });
    const model = buildModel(inputSize, topology, randInt(rng, 0, 1e9));
    // larger weights than PyTorch's default so that saturating units are exercised too
    for (let q = 0; q < model.params.length; q++) model.params[q] *= 2;
    const trainer = createTrainer({ model, loss: out.loss, optimizer: { type: 'sgd', learningRate: 0.1 } });
    const rows = randInt(rng, 1, 5);
    const samples: Sample[] = [];
    for (let r = 0; r < rows; r++) samples.push({ x: Array.from(randArray(rng, inputSize, -2, 2)), y: drawTargets(rng, out.targets, model.outputSize) });
    if (!nearKink(trainer, samples)) return { topology, inputSize, trainer, samples };
  }
  throw new Error('could not draw a case away from the relu kinks');
}

/**
 * Checks every parameter gradient of the case; returns the number of parameters checked
 * and the worst (error / allowance), which must be ≤ 1.
 */
function gradcheck(c: Case): { checked: number; worst: number; nonzero: number } {
  const { trainer, samples } = c;
  const params = trainer.model.params;
  const step = backwardStep(trainer, lossStep(trainer, forwardStep(trainer, samples)));
  expect(step.skip).toBeNull();
  const analytic = step.gradients!.slice();
  let worst = 0, nonzero = 0;
  for (let q = 0; q < params.length; q++) {
    const p = params[q];
    params[q] = p + EPS;
    const up = engineLoss(trainer, samples);
    params[q] = p - EPS;
    const down = engineLoss(trainer, samples);
    params[q] = p;
    const numeric = (up - down) / (2 * EPS);
    const ratio = Math.abs(analytic[q] - numeric) / (ATOL + RTOL * Math.abs(numeric));
    if (!(ratio <= 1)) {
      const layer = trainer.model.layers.findIndex((l) => q < l.biasOffset + l.outputs);
      throw new Error(`param ${q} (layer ${layer}): analytic ${analytic[q]} vs numeric ${numeric}`);
    }
    worst = Math.max(worst, ratio);
    if (Math.abs(numeric) > 1e-3) nonzero++;
  }
  return { checked: params.length, worst, nonzero };
}

describe('finite-difference gradcheck of every parameter gradient (float64, eps 1e-6, atol 1e-5, rtol 1e-3)', () => {
  for (const out of OUTPUTS) {
    for (const hidden of HIDDEN) {
      const name = `${out.loss}(${out.activation}${out.loss === 'cross_entropy' ? `, ${out.targets} targets` : ''}) with ${hidden} hidden layers`;
      it(name, () => {
        let checked = 0, nonzero = 0, multiLayer = 0;
        for (const seed of SEEDS) {
          const c = drawCase(seed, hidden, out);
          const r = gradcheck(c);
          checked += r.checked;
          nonzero += r.nonzero;
          if (c.topology.length > 1) multiLayer++;
          expect(r.worst).toBeLessThanOrEqual(1);
        }
        expect(checked).toBeGreaterThan(20);
        // the check is not vacuous: most gradients are clearly non-zero (|g| > 1e-3, 100× atol);
        // measured 47 % … 100 % per combination, lowest where relus are dead
        expect(nonzero / checked).toBeGreaterThan(0.3);
        expect(multiLayer, 'cases with hidden layers (input-gradient path)').toBeGreaterThanOrEqual(2);
      });
    }
  }

  it('deep nets with every hidden activation mixed (proves the input-gradient path through each derivative)', () => {
    const rng = new Rng(77);
    for (let trial = 0; trial < 12; trial++) {
      const hidden = [HIDDEN[trial % 5], HIDDEN[(trial + 2) % 5], HIDDEN[(trial + 4) % 5]];
      const out = OUTPUTS[trial % OUTPUTS.length];
      for (let attempt = 0; ; attempt++) {
        expect(attempt).toBeLessThan(200);
        const inputSize = randInt(rng, 1, 6);
        const topology: LayerSpec[] = [
          ...hidden.map((activation) => ({ units: randInt(rng, 1, 6), activation })),
          { units: randInt(rng, 2, 6), activation: out.activation },
        ];
        const model = buildModel(inputSize, topology, trial, 'xavier');
        const trainer = createTrainer({ model, loss: out.loss, optimizer: { type: 'sgd', learningRate: 0.1 } });
        const samples: Sample[] = Array.from({ length: randInt(rng, 1, 5) }, () => ({
          x: Array.from(randArray(rng, inputSize, -2, 2)), y: drawTargets(rng, out.targets, model.outputSize),
        }));
        if (nearKink(trainer, samples)) continue;
        // the first layer's gradient reaches it only through dx of the three layers above
        const r = gradcheck({ topology, inputSize, trainer, samples });
        expect(r.worst).toBeLessThanOrEqual(1);
        expect(r.checked).toBe(model.params.length);
        break;
      }
    }
  });

  it('a wrong gradient would fail: the check rejects an analytic gradient off by 1%', () => {
    // guards the checker itself against being vacuous
    const c = drawCase(9, 'tanh', OUTPUTS[0]);
    const { trainer, samples } = c;
    const step = backwardStep(trainer, lossStep(trainer, forwardStep(trainer, samples)));
    const g = step.gradients!.slice();
    let q = 0;
    for (let i = 1; i < g.length; i++) if (Math.abs(g[i]) > Math.abs(g[q])) q = i;
    const p = trainer.model.params[q];
    trainer.model.params[q] = p + EPS;
    const up = engineLoss(trainer, samples);
    trainer.model.params[q] = p - EPS;
    const down = engineLoss(trainer, samples);
    trainer.model.params[q] = p;
    const numeric = (up - down) / (2 * EPS);
    expect(Math.abs(g[q] - numeric)).toBeLessThanOrEqual(ATOL + RTOL * Math.abs(numeric));
    expect(Math.abs(g[q] * 1.01 - numeric)).toBeGreaterThan(ATOL + RTOL * Math.abs(numeric));
  });
});

describe('loss values match their definitions (so the gradcheck checks the right function)', () => {
  it('mse, bce, cross_entropy on random batches agree with the textbook formulas to 1e-12', () => {
    const rng = new Rng(55);
    for (let trial = 0; trial < 20; trial++) {
      for (const out of [OUTPUTS[0], OUTPUTS[5], OUTPUTS[6], OUTPUTS[7], OUTPUTS[8]]) {
        const inputSize = randInt(rng, 1, 4), m = randInt(rng, 2, 5), rows = randInt(rng, 1, 5);
        const model = buildModel(inputSize, [{ units: m, activation: out.activation }], trial);
        const trainer = createTrainer({ model, loss: out.loss, optimizer: { type: 'sgd', learningRate: 0.1 } });
        const samples: Sample[] = Array.from({ length: rows }, () => ({ x: Array.from(randArray(rng, inputSize, -3, 3)), y: drawTargets(rng, out.targets, m) }));
        const step = lossStep(trainer, forwardStep(trainer, samples));
        let total = 0;
        for (let r = 0; r < rows; r++) {
          const a = step.outputs.subarray(r * m, r * m + m), y = samples[r].y as number[];
          let s = 0;
          for (let k = 0; k < m; k++) {
            if (out.loss === 'mse') s += (a[k] - y[k]) ** 2 / m;
            else if (out.loss === 'bce') s -= (y[k] * Math.log(a[k]) + (1 - y[k]) * Math.log(1 - a[k])) / m;
            else s -= y[k] * Math.log(a[k]);
          }
          expect(Math.abs(step.lossPerSample[r] - s), `${out.loss} sample ${r}`).toBeLessThanOrEqual(1e-12 * Math.max(1, s));
          total += s;
        }
        expect(Math.abs(step.loss - total / rows)).toBeLessThanOrEqual(1e-12 * Math.max(1, total));
      }
    }
  });
});

describe('the perceptron pseudo-gradient', () => {
  it('a sign layer with the perceptron loss gets gW = −(y − ŷ)·x / B and gb = −(y − ŷ) / B', () => {
    const rng = new Rng(31);
    let wrongSeen = 0;
    for (let trial = 0; trial < 30; trial++) {
      const n = randInt(rng, 1, 5), B = randInt(rng, 1, 5);
      const model = buildModel(n, [{ units: 1, activation: 'sign' }], trial);
      if (trial % 5 === 0) model.params.fill(0); // ŷ = 0: wrong for every label, must still update
      const trainer = createTrainer({ model, loss: 'perceptron', optimizer: { type: 'sgd', learningRate: 1 } });
      const samples = Array.from({ length: B }, () => ({ x: Array.from(randArray(rng, n, -2, 2)), y: rng.next() < 0.5 ? -1 : 1 }));
      const step = backwardStep(trainer, lossStep(trainer, forwardStep(trainer, samples)));
      const w = model.layers[0].weights, b = model.layers[0].bias[0];
      const gW = new Float64Array(n);
      let gb = 0, wrong = 0;
      for (const s of samples) {
        let z = b;
        for (let k = 0; k < n; k++) z += w[k] * s.x[k];
        const yHat = Math.sign(z), e = s.y - yHat;
        if (e !== 0) wrong++;
        for (let k = 0; k < n; k++) gW[k] += (-e * s.x[k]) / B;
        gb += -e / B;
      }
      wrongSeen += wrong;
      const g = step.gradients!;
      for (let k = 0; k < n; k++) expect(Math.abs(g[k] - gW[k])).toBeLessThanOrEqual(1e-15 * Math.max(1, Math.abs(gW[k])));
      expect(Math.abs(g[n] - gb)).toBeLessThanOrEqual(1e-15 * Math.max(1, Math.abs(gb)));
      expect(step.loss).toBe(wrong / B); // misclassified fraction
    }
    expect(wrongSeen).toBeGreaterThan(10);
  });
});
