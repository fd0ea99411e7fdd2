import { spawnSync } from 'node:child_process';
import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { from, lastValueFrom, toArray } from 'rxjs';
import { describe, expect, it } from 'vitest';
import { runBaselines, runStreamgrad } from '../bench/quality-recipes.ts';
import { co2Monthly, michaelisMentenShift, prepare, type QualityStream, seattleWeather } from '../bench/quality-streams.ts';
import { normalize } from '../operators/normalize.ts';
import { Normalizer } from '../core/normalizer.ts';

/**
 * The learning-quality bench's own parts (`npm run bench:quality`): both sides must get
 * the samples a user's `--normalize` run would, and the PyTorch peer must run the job
 * the bench writes.
 */
describe('bench/quality', () => {
  it('prepares each stream exactly as the normalize operator does (the numbers PyTorch gets are the ones streamgrad trains on)', async () => {
    for (const stream of [seattleWeather(), co2Monthly()]) {
      const prepared = prepare(stream);
      const normalizer = new Normalizer({ inputs: stream.x[0].length, outputs: 1, target: stream.normalizeTarget });
      const raw = stream.x.map((x, i) => ({ x, y: stream.task === 'regress' ? [stream.y[i]] : stream.classes!.map((_, k) => (k === stream.y[i] ? 1 : 0)) }));
      const out = await lastValueFrom(from(raw).pipe(normalize(normalizer), toArray()));
      out.forEach((s, i) => {
        expect(Array.from(prepared.x[i]), `${stream.name} ${i}`).toEqual(Array.from(s.x));
        expect(Array.from(prepared.y[i])).toEqual(Array.from(s.y as ArrayLike<number>));
      });
    }
  });

  it('scores baselines prequentially: majority class so far, persistence', () => {
    const toy: QualityStream = { name: 't', about: '', task: 'classify', layers: [], loss: 'cross_entropy', x: [[0], [0], [0], [0]], y: [1, 1, 0, 1], classes: ['a', 'b'], normalizeTarget: false };
    // predicted a (nothing seen: class 0), then b, b, b: right on samples 2 and 4
    expect(runBaselines(toy)).toEqual([{ name: 'majority class', metric: 0.5 }]);
    const co2 = co2Monthly();
    const [persistence] = runBaselines(co2);
    expect(persistence.metric).toBeCloseTo(1.12, 2);
  });

  it('the Michaelis–Menten stream is seeded, and its true Km jumps halfway: a model trained on it scores in user units', () => {
    const a = michaelisMentenShift(3), b = michaelisMentenShift(3);
    expect(a.x).toEqual(b.x);
    const score = runStreamgrad(a, prepare(a), { init: 'pytorch', optimizer: 'sgd', lr: 0.01 }, 3);
    expect(score.diverged).toBe(false);
    expect(score.metric).toBeLessThan(0.1); // measured 0.034; the running mean 0.30
  });

  const python = ['/usr/bin/python3', 'python3'].find((py) => spawnSync(py, ['-c', 'import torch'], { encoding: 'utf8' }).status === 0) ?? null;
  it.skipIf(python === null)('bench/peers/quality.py trains PyTorch on the job the bench writes (a short CO₂ slice) and reports one metric per seed', () => {
    const stream = co2Monthly();
    const data = prepare(stream);
    const n = 120;
    const job = {
      seeds: [0, 1],
      recipes: [{ name: 'torch sgd', optimizer: 'sgd', lr: 1e-3 }, { name: 'torch adam', optimizer: 'adam', lr: 1e-3 }],
      streams: [{
        name: 'co2', task: 'regress', sizes: [12, 16, 1], activations: ['relu', 'linear'],
        bySeed: Object.fromEntries([0, 1].map((seed) => [seed, {
          x: data.x.slice(0, n).map((v) => Array.from(v)), y: stream.y.slice(0, n), yz: data.y.slice(0, n).map((v) => v[0]),
          mean: Array.from(data.mean.slice(0, n)), scale: Array.from(data.scale.slice(0, n)),
        }])),
      }],
    };
    const dir = mkdtempSync(join(tmpdir(), 'sg-quality-test-'));
    try {
      writeFileSync(join(dir, 'job.json'), JSON.stringify(job));
      const child = spawnSync(python!, [new URL('../bench/peers/quality.py', import.meta.url).pathname, join(dir, 'job.json')], { encoding: 'utf8', env: { ...process.env, OPENBLAS_NUM_THREADS: '1' } });
      expect(child.status, child.stderr).toBe(0);
      const out = JSON.parse(child.stdout) as { torch: string; results: { co2: Record<string, number[]> } };
      expect(Object.keys(out.results.co2)).toEqual(['torch sgd', 'torch adam']);
      for (const runs of Object.values(out.results.co2)) {
        expect(runs).toHaveLength(2);
        // in ppm: worse than a trained model, far better than predicting the raw z-units
        for (const mae of runs) {
          expect(mae).toBeGreaterThan(0.1);
          expect(mae).toBeLessThan(20);
        }
      }
      expect(out.results.co2['torch sgd'][0]).not.toBe(out.results.co2['torch sgd'][1]); // the seed reaches torch.manual_seed
    } finally {
      rmSync(dir, { recursive: true, force: true });
    }
  }, 120_000);
});
