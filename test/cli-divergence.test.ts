import { existsSync, mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, describe, expect, it } from 'vitest';
import { modelFromJSON, modelToJSON } from '../pipeline/model-file.ts';
import { Normalizer } from '../core/normalizer.ts';
import { TrainingRun } from '../pipeline/run.ts';
import { createTrainer } from '../core/trainer.ts';
import { createServerMetrics } from '../server/metrics-registry.ts';
import { type CliOptions, type CliRun, pool, runCli } from './helpers/cli.ts';
import { outputsOf, regressionSamples, seededModel } from './helpers/streams.ts';

/**
 * Issue #11 on the real command line: honest divergence (scattered non-finite steps stop
 * the run, --save is not overwritten), metrics of a normalised target in its own units,
 * per-sample predictions (--predictions), whole-stream metrics and train --samples.
 */
const work = mkdtempSync(join(tmpdir(), 'streamgrad-div-'));
afterAll(() => rmSync(work, { recursive: true, force: true }));
const cli = (args: readonly string[], options: CliOptions = {}): Promise<CliRun> => runCli(work, args, options);
const write = (name: string, text: string) => { writeFileSync(join(work, name), text); return name; };
const read = (name: string) => readFileSync(join(work, name), 'utf8');
const ndjson = (rows: readonly unknown[]) => rows.map((r) => `${JSON.stringify(r)}\n`).join('');
const events = (stdout: string) => stdout.split('\n').filter((l) => l !== '').map((l) => JSON.parse(l) as Record<string, any>);

/** The case: 400 samples, every 10th of them 1e300s (its loss overflows), never two in a row. */
const huge = { x: [1e300, 1e300], y: [0] };
const scattered = regressionSamples(400, 2, 1, 5).map((s, i) => ((i + 1) % 10 === 0 ? huge : s));
write('scattered.ndjson', ndjson(scattered));
const startModel = write('start.json', JSON.stringify(modelToJSON(seededModel(2, [[1, 'linear']], 3))));

describe('honest divergence: scattered non-finite steps stop the run (used to exit 0 and save)', { timeout: 180_000 }, () => {
  it('exit 1 with SG_ERR_DIVERGED, the first non-finite step reported at once, --save untouched, the model kept as FILE.diverged.json', async () => {
    const good = write('good.json', JSON.stringify(modelToJSON(seededModel(2, [[1, 'linear']], 9))));
    const before = read(good);
    const run = await cli(['train', '--data', 'scattered.ndjson', '--model', startModel, '--save', good]);
    expect(run.code, run.stderr).toBe(1);
    const lines = run.stderr.split('\n');
    const first = lines.findIndex((l) => l.includes('first non-finite step: step 9: loss is Infinity'));
    const diverged = lines.findIndex((l) => l.includes('SG_ERR_DIVERGED'));
    expect(first).toBeGreaterThanOrEqual(0);
    expect(first).toBeLessThan(diverged);
    expect(run.stderr).toContain('11 of the last 1000 steps skipped for non-finite values');
    // trained and skipped apart: 110 steps seen, 11 of them skipped
    expect(run.stderr).toContain('trained 99 samples, skipped 11 (11 steps with non-finite values) in 110 steps');
    expect(read(good)).toBe(before);
    expect(run.stderr).toContain(`the diverged model is in ${good}.diverged.json`);
    expect(modelFromJSON(JSON.parse(read(`${good}.diverged.json`))).params.length).toBe(3);
  });

  it('--log-json: a non-finite event, then the error, and done counts trained and skipped samples apart', async () => {
    const run = await cli(['train', '--data', 'scattered.ndjson', '--model', startModel, '--log-json']);
    expect(run.code).toBe(1);
    const all = events(run.stdout);
    const names = all.map((e) => e.event);
    expect(names.indexOf('non-finite')).toBeGreaterThan(names.indexOf('start'));
    expect(names.indexOf('non-finite')).toBeLessThan(names.indexOf('error'));
    expect(all.find((e) => e.event === 'non-finite')).toMatchObject({ model: 'train', step: 9, stage: 'loss', value: 'Infinity' });
    expect(all.find((e) => e.event === 'error')).toMatchObject({ code: 'SG_ERR_DIVERGED' });
    const done = all.at(-1)!;
    expect(done).toMatchObject({ event: 'done', outcome: 'failed' });
    expect(done.models[0]).toMatchObject({ steps: 110, samples: 110, trained: 99, skipped: 11, skippedSamples: 11 });
    expect(done.models[0].total.samples).toBe(110);
  });

  it('--max-skip-rate and --skip-window set the rule (the same data then trains to the end); bad values are usage errors', async () => {
    const [loose, bad, badWindow] = await pool([
      () => cli(['train', '--data', 'scattered.ndjson', '--model', startModel, '--max-skip-rate', '0.2']),
      () => cli(['train', '--data', 'scattered.ndjson', '--model', startModel, '--max-skip-rate', '1.5']),
      () => cli(['train', '--data', 'scattered.ndjson', '--model', startModel, '--skip-window', '0']),
    ]);
    expect(loose.code, loose.stderr).toBe(0);
    expect(loose.stderr).toContain('trained 360 samples, skipped 40 (40 steps with non-finite values) in 400 steps');
    expect(bad.code).toBe(2);
    expect(bad.stderr).toContain('--max-skip-rate: must be a number ≥ 0 and < 1');
    expect(badWindow.code).toBe(2);
    expect(badWindow.stderr).toContain('--skip-window');
  });

  it('a config file: models[i].divergence, a diverged model saved apart, the other goes on; a bad setting names its path', async () => {
    write('race.json', JSON.stringify({
      source: { ndjson: 'scattered.ndjson' },
      models: [
        { name: 'strict', model: 'start.json', save: 'strict.json' },
        { name: 'loose', model: 'start.json', save: 'loose.json', divergence: { maxSkipRate: 0.2, skipWindow: 500, maxConsecutiveSkips: 3 } },
      ],
      evaluation: { window: 50, predictions: 'race-predictions.ndjson' },
    }));
    write('bad-race.json', JSON.stringify({ source: { ndjson: 'scattered.ndjson' }, models: [{ model: 'start.json', divergence: { maxSkipRate: 2 } }] }));
    const [run, bad] = await pool([() => cli(['run', 'race.json']), () => cli(['run', 'bad-race.json'])]);
    expect(run.code, run.stderr).toBe(1);
    expect(run.stderr).toContain('strict stopped: training diverged');
    expect(existsSync(join(work, 'strict.json'))).toBe(false);
    expect(existsSync(join(work, 'strict.json.diverged.json'))).toBe(true);
    expect(existsSync(join(work, 'loose.json'))).toBe(true);
    const predictions = read('race-predictions.ndjson').trim().split('\n').map((l) => JSON.parse(l));
    expect(predictions.filter((p) => p.model === 'loose')).toHaveLength(400);
    expect(predictions.filter((p) => p.model === 'strict')).toHaveLength(110);
    expect(predictions.filter((p) => p.model === 'loose' && !p.learned).map((p) => p.sample)).toEqual(Array.from({ length: 40 }, (_, i) => 10 * i + 9));
    expect(bad.code).toBe(2);
    expect(bad.stderr).toContain('models[0].divergence.maxSkipRate: must be a number ≥ 0 and < 1');
  });

  it('/metrics counts trained and skipped samples apart', async () => {
    const trainer = createTrainer({ model: seededModel(2, [[1, 'linear']], 3), loss: 'mse', optimizer: { type: 'sgd', learningRate: 0.05 }, maxSkipRate: 0.5 });
    const run = new TrainingRun({ id: 'r', trainer, source: scattered.slice(0, 100) });
    await run.start();
    const text = await createServerMetrics(() => [run], () => 0).registry.metrics();
    expect(text).toContain('streamgrad_samples_total{run="r"} 100');
    expect(text).toContain('streamgrad_trained_samples_total{run="r"} 90');
    expect(text).toContain('streamgrad_skipped_samples_total{run="r"} 10');
    expect(text).toMatch(/streamgrad_stream_mae\{run="r"\} \d/);
  });
});

describe('metrics of a normalised target are in its own units', { timeout: 180_000 }, () => {
  it('--normalize-target: the summary, progress and done figures equal a hand computation of SGD and the de-normalised errors', async () => {
    // a 1 → 1 linear model, SGD by hand; the normaliser's statistics from the library's own class (its defaults are the CLI's)
    const data = regressionSamples(300, 1, 1, 21).map((s, i) => ({ x: [s.x[0] * 3 + 7], y: [400 + 25 * s.y[0] + 0.01 * i] }));
    write('units.ndjson', ndjson(data));
    const w0 = 0.3, b0 = -0.2, lr = 0.05;
    const model = seededModel(1, [[1, 'linear']], 1);
    model.params.set([w0, b0]);
    write('units-start.json', JSON.stringify(modelToJSON(model)));
    const normalizer = new Normalizer({ inputs: 1, outputs: 1, target: true });
    let w = w0, b = b0, abs = 0, sq = 0, zAbs = 0;
    for (const s of data) {
      const z = normalizer.transform(s);
      const xz = (z.x as Float64Array)[0], yz = (z.y as Float64Array)[0];
      const stats = normalizer.y!;
      const [mean, scale] = stats.count === 0 ? [0, 1] : [stats.mean[0], normalizer.scaleOf(stats, 0)];
      const pz = w * xz + b;
      const user = pz * scale + mean;
      abs += Math.abs(user - s.y[0]);
      sq += (user - s.y[0]) ** 2;
      zAbs += Math.abs(pz - yz);
      const g = 2 * (pz - yz);
      w -= lr * g * xz;
      b -= lr * g;
      normalizer.learn(s);
    }
    const mae = abs / data.length, mse = sq / data.length, zMae = zAbs / data.length;
    expect(mae / zMae).toBeGreaterThan(3); // the z-unit figure, what used to be printed, is far off

    const run = await cli(['train', '--data', 'units.ndjson', '--model', 'units-start.json', '--normalize-target', '--lr', String(lr), '--window', '1000', '--log-json', '--backend', 'js']);
    expect(run.code, run.stderr).toBe(0);
    const done = events(run.stdout).at(-1)!.models[0];
    expect(done.mae).toBeCloseTo(mae, 9);
    expect(done.loss).toBeCloseTo(mse, 6);
    expect(done.total.mae).toBeCloseTo(mae, 9);
    expect(done.units).toBe('the target');
    const human = await cli(['train', '--data', 'units.ndjson', '--model', 'units-start.json', '--normalize-target', '--lr', String(lr), '--backend', 'js']);
    expect(human.stderr).toMatch(new RegExp(`rolling over the last 300 samples: mse \\S+, mae ${mae.toPrecision(4).replace('.', '\\.')}\\d* \\(in units of the target\\)`));
    expect(human.stderr).toContain('whole stream, 300 samples: mse');
  });
});

describe('--predictions: one NDJSON line per sample, the prediction made before learning from it', { timeout: 180_000 }, () => {
  const rows = regressionSamples(30, 2, 1, 8);
  write('reg.ndjson', ndjson(rows));

  it('regression: line k is the forward pass of the model trained on the k−1 rows before it (--samples k−1)', async () => {
    const picks = [4, 9, 17];
    const runs = await pool([
      () => cli(['train', '--data', 'reg.ndjson', '--model', startModel, '--predictions', 'reg-p.ndjson', '--save', 'reg-all.json']),
      ...picks.map((k) => () => cli(['train', '--data', 'reg.ndjson', '--model', startModel, '--samples', String(k - 1), '--save', `reg-${k}.json`])),
    ]);
    for (const r of runs) expect(r.code, r.stderr).toBe(0);
    expect(runs[0].stderr).toContain('predictions of 30 samples in reg-p.ndjson');
    const lines = read('reg-p.ndjson').trim().split('\n').map((l) => JSON.parse(l));
    expect(lines).toHaveLength(30);
    expect(lines.map((l) => l.line)).toEqual(Array.from({ length: 30 }, (_, i) => i + 1));
    expect(lines[0].prediction[0]).toBeCloseTo(outputsOf(modelFromJSON(JSON.parse(read(startModel))), [rows[0].x])[0], 12);
    picks.forEach((k, i) => {
      expect(runs[i + 1].stderr).toContain(`trained ${k - 1} samples in ${k - 1} steps`);
      const line = lines[k - 1];
      const before = modelFromJSON(JSON.parse(read(`reg-${k}.json`)));
      expect(line).toMatchObject({ model: 'train', sample: k - 1, step: k, line: k, target: rows[k - 1].y, learned: true });
      expect(line.prediction[0]).toBeCloseTo(outputsOf(before, [rows[k - 1].x])[0], 12);
      expect(line.loss).toBeCloseTo((line.prediction[0] - rows[k - 1].y[0]) ** 2, 12);
    });
  });

  it('classifier from a CSV: class names, probabilities by name, the CSV line, correct', async () => {
    const labels = ['cold', 'mild', 'warm'];
    const csv = ['t,h,label', ...Array.from({ length: 24 }, (_, i) => { const t = (i * 7) % 30; return `${t},${(i * 3) % 10},${labels[t < 10 ? 0 : t < 20 ? 1 : 2]}`; })].join('\n');
    write('cls.csv', `${csv}\n`);
    const common = ['--data', 'cls.csv', '--targets', 'label', '--layers', '2,3:softmax', '--loss', 'cross_entropy', '--seed', '4'];
    const [all, first5] = await pool([
      () => cli(['train', ...common, '--predictions', 'cls-p.ndjson']),
      () => cli(['train', ...common, '--samples', '5', '--save', 'cls-5.json']),
    ]);
    expect(all.code, all.stderr).toBe(0);
    expect(first5.code, first5.stderr).toBe(0);
    const lines = read('cls-p.ndjson').trim().split('\n').map((l) => JSON.parse(l));
    const line = lines[5];
    const [t, h, label] = csv.split('\n')[6].split(',');
    const p = outputsOf(modelFromJSON(JSON.parse(read('cls-5.json'))), [[Number(t), Number(h)]]);
    expect(line).toMatchObject({ sample: 5, line: 7, target: label });
    for (const [k, name] of labels.entries()) expect(line.probabilities[name]).toBeCloseTo(p[k], 12);
    const best = labels[p.indexOf(Math.max(...p))];
    expect(line.prediction).toBe(best);
    expect(line.correct).toBe(best === label);
    expect(line.loss).toBeCloseTo(-Math.log(p[labels.indexOf(label)]), 9);
  });

  it('a fresh start rewrites the file, also with checkpoints on (it used to append); only a run that resumes from a checkpoint appends', async () => {
    const samples = (name: string) => read(name).trim().split('\n').map((l) => (JSON.parse(l) as { model: string; sample: number }));
    // train: twice from scratch with --checkpoint-dir, then --resume with nothing left to read
    const train = ['train', '--data', 'reg.ndjson', '--model', startModel, '--checkpoint-dir', 'fresh-ck', '--predictions', 'fresh-p.ndjson'];
    for (let k = 0; k < 2; k++) {
      const run = await cli(train);
      expect(run.code, run.stderr).toBe(0);
      expect(samples('fresh-p.ndjson').map((p) => p.sample), `run ${k + 1}`).toEqual(Array.from({ length: 30 }, (_, i) => i));
    }
    const before = read('fresh-p.ndjson');
    const resumed = await cli([...train, '--resume']);
    expect(resumed.code, resumed.stderr).toBe(0);
    expect(resumed.stderr).toMatch(/resuming from .*train-\d+\.sgck/);
    expect(read('fresh-p.ndjson').startsWith(before)).toBe(true);
    // --resume with no checkpoint yet starts from the beginning: the file starts over too
    const empty = await cli(['train', '--data', 'reg.ndjson', '--model', startModel, '--checkpoint-dir', 'empty-ck', '--resume', '--predictions', 'fresh-p.ndjson']);
    expect(empty.code, empty.stderr).toBe(0);
    expect(empty.stderr).toContain('starting from the beginning');
    expect(samples('fresh-p.ndjson')).toHaveLength(30);
    // run: a config with checkpoints, twice from scratch, then --resume
    write('fresh-run.json', JSON.stringify({
      source: { ndjson: 'reg.ndjson' },
      models: [{ name: 'a', model: 'start.json' }, { name: 'b', model: 'start.json', optimizer: { type: 'sgd', lr: 0.01 } }],
      checkpoints: { dir: 'fresh-run-ck', everySteps: 10 },
      evaluation: { predictions: 'fresh-run-p.ndjson' },
    }));
    for (let k = 0; k < 2; k++) {
      const run = await cli(['run', 'fresh-run.json']);
      expect(run.code, run.stderr).toBe(0);
      expect(samples('fresh-run-p.ndjson'), `run ${k + 1}`).toHaveLength(60);
    }
    const runBefore = read('fresh-run-p.ndjson');
    const runResumed = await cli(['run', 'fresh-run.json', '--resume']);
    expect(runResumed.code, runResumed.stderr).toBe(0);
    expect(runResumed.stderr).toMatch(/resuming from/);
    expect(read('fresh-run-p.ndjson').startsWith(runBefore)).toBe(true);
    write('empty-run.json', read('fresh-run.json').replace('fresh-run-ck', 'empty-run-ck'));
    const runEmpty = await cli(['run', 'empty-run.json', '--resume']);
    expect(runEmpty.code, runEmpty.stderr).toBe(0);
    expect(runEmpty.stderr).toContain('starting from the beginning');
    expect(samples('fresh-run-p.ndjson')).toHaveLength(60);
  });

  it('- writes to standard output; beside --log-json it is refused (exit 2)', async () => {
    const [out, clash] = await pool([
      () => cli(['train', '--data', 'reg.ndjson', '--model', startModel, '--predictions', '-', '--quiet']),
      () => cli(['train', '--data', 'reg.ndjson', '--model', startModel, '--predictions', '-', '--log-json']),
    ]);
    expect(out.code).toBe(0);
    expect(out.stdout.trim().split('\n').map((l) => JSON.parse(l).sample)).toEqual(Array.from({ length: 30 }, (_, i) => i));
    expect(clash.code).toBe(2);
    expect(clash.stderr).toContain('--predictions');
  });
});

describe('train --samples N', { timeout: 180_000 }, () => {
  it('trains exactly N samples, ends normally (save), and gives the model of a file of those N rows', async () => {
    const rows = regressionSamples(100, 2, 1, 13);
    write('hundred.ndjson', ndjson(rows));
    write('first25.ndjson', ndjson(rows.slice(0, 25)));
    const [limited, cut] = await pool([
      () => cli(['train', '--data', 'hundred.ndjson', '--model', startModel, '--batch', '4', '--samples', '25', '--save', 'limited.json', '--log-json']),
      () => cli(['train', '--data', 'first25.ndjson', '--model', startModel, '--batch', '4', '--save', 'cut.json']),
    ]);
    expect(limited.code, limited.stderr).toBe(0);
    expect(cut.code, cut.stderr).toBe(0);
    const all = events(limited.stdout);
    expect(all[0].source.samples).toBe(25);
    expect(all.at(-1)).toMatchObject({ outcome: 'finished', saved: ['limited.json'] });
    expect(all.at(-1)!.models[0]).toMatchObject({ samples: 25, trained: 25, steps: 7 });
    expect(read('limited.json')).toBe(read('cut.json'));
  });
});
