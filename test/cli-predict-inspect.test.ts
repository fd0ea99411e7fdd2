import { mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { from, lastValueFrom } from 'rxjs';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { bitwiseKernels } from '../core/backend.ts';
import { decodeCheckpoint, encodeCheckpoint, modelFromCheckpoint } from '../pipeline/checkpoint.ts';
import type { Model } from '../core/model.ts';
import { modelFromJSON, modelToJSON } from '../pipeline/model-file.ts';
import { artifactToJSON } from '../pipeline/model-artifact.ts';
import { forwardPass } from '../core/network.ts';
import { train } from '../pipeline/train.ts';
import { createWorkspace } from '../core/workspace.ts';
import { runCli } from './helpers/cli.ts';
import { regressionSamples, seededModel, tinyTrainer } from './helpers/streams.ts';

/**
 * `streamgrad inspect` and `streamgrad predict`, spawned as `node bin/streamgrad.mjs …`
 * (as in cli.test.ts) in a temporary working directory, without PORT in the environment.
 */
const work = mkdtempSync(join(tmpdir(), 'streamgrad-cli-pi-'));
afterAll(() => rmSync(work, { recursive: true, force: true }));

const cli = (args: readonly string[], stdin = '') => runCli(work, args, { stdin });

const write = (name: string, text: string | Uint8Array) => { writeFileSync(join(work, name), text); return name; };
const lines = (text: string) => text.split('\n').filter((l) => l !== '');
const ndjson = (items: readonly unknown[]) => items.map((s) => `${JSON.stringify(s)}\n`).join('');

/** The in-process forward pass on the kernels `predict` uses whatever the backend (serving's, bitwise js). */
function reference(model: Model, x: readonly number[]): number[] {
  const kernels = bitwiseKernels();
  const ws = createWorkspace(model, 1, kernels.allocate);
  for (let k = 0; k < model.inputSize; k++) ws.x[k] = x[k];
  forwardPass(kernels, model, ws, 1);
  return Array.from(ws.a[model.layers.length - 1].subarray(0, model.outputSize));
}

/** A model as the CLI reads it: through its JSON file. */
const roundTrip = (model: Model) => modelFromJSON(JSON.parse(JSON.stringify(modelToJSON(model))));

const xs = regressionSamples(12, 3).map((s) => s.x);
let regression: Model;
let classifier: Model;
let restored: Model;

beforeAll(async () => {
  regression = roundTrip(seededModel(3, [[5, 'relu'], [4, 'tanh'], [2, 'linear']], 5));
  write('regression.json', JSON.stringify(modelToJSON(regression)));
  classifier = roundTrip(seededModel(3, [[4, 'tanh'], [3, 'softmax']], 9));
  write('classifier.json', JSON.stringify(modelToJSON(classifier)));
  const trainer = tinyTrainer({ optimizer: { type: 'adam', learningRate: 0.01 } });
  await lastValueFrom(from(regressionSamples(40)).pipe(train(trainer, { batch: 4 })));
  const bytes = encodeCheckpoint({ trainer, sourceOffset: 40 });
  write('run.ckpt', bytes);
  restored = modelFromCheckpoint(decodeCheckpoint(bytes));
  write('bad.json', JSON.stringify({ ...modelToJSON(regression), layers: [{ ...modelToJSON(regression).layers[0], bias: [1] }] }));
  const corrupt = encodeCheckpoint({ trainer, sourceOffset: 1 });
  corrupt[corrupt.length - 40] ^= 1;
  write('corrupt.ckpt', corrupt);
});

describe('streamgrad inspect', () => {
  it('prints a model file and a checkpoint, as text and as JSON', async () => {
    const [text, json, ckpt, ckptJson] = await Promise.all([
      cli(['inspect', 'regression.json']),
      cli(['inspect', 'regression.json', '--json']),
      cli(['inspect', 'run.ckpt']),
      cli(['inspect', '--json', 'run.ckpt']),
    ]);
    for (const run of [text, json, ckpt, ckptJson]) expect(run.code, run.stderr).toBe(0);
    expect(text.stdout).toContain('3→5 relu→4 tanh→2 linear');
    expect(text.stdout).toMatch(/\[0\] 3 → 5 relu, weights 5×3, 20 parameters/);
    expect(text.stdout).toMatch(/parameters\s+54\n/);
    const doc = JSON.parse(json.stdout);
    expect(doc.parameters).toBe(3 * 5 + 5 + 5 * 4 + 4 + 4 * 2 + 2);
    expect(doc.parameters).toBe(regression.params.length);
    expect(doc.layers.map((l: { parameters: number }) => l.parameters)).toEqual([20, 24, 10]);
    expect(doc.layers[1]).toMatchObject({ index: 1, inputs: 5, units: 4, activation: 'tanh', weights: [4, 5] });
    const w = Array.from(regression.layers[2].weights, Math.abs);
    expect(doc.layers[2].absWeight.max).toBe(Math.max(...w));
    expect(doc.checkpoint).toBeUndefined();

    expect(ckpt.stdout).toContain('streamgrad/checkpoint@1');
    expect(ckpt.stdout).toMatch(/optimizer\s+adam, learning rate 0\.01, t 10/);
    const c = JSON.parse(ckptJson.stdout);
    expect(c.parameters).toBe(3 * 4 + 4 + 4 + 1);
    expect(c.checkpoint).toMatchObject({ loss: 'mse', optimizer: 'adam', learningRate: 0.01, t: 10, steps: 10, samples: 40, sourceOffset: 40 });
    expect(Number.isNaN(Date.parse(c.checkpoint.created))).toBe(false);
    expect(c.layers[0].absWeight.max).toBe(Math.max(...Array.from(restored.layers[0].weights, Math.abs)));
  });

  it('a bad model, a corrupt checkpoint or a missing file: one line, exit 2', async () => {
    const runs = await Promise.all([cli(['inspect', 'bad.json']), cli(['inspect', 'corrupt.ckpt']), cli(['inspect', 'missing.json']), cli(['predict', '--model', 'bad.json'])]);
    for (const run of runs) {
      expect(run.code).toBe(2);
      expect(lines(run.stderr)).toHaveLength(1);
      expect(run.stdout).toBe('');
    }
    expect(runs[0].stderr).toMatch(/layers\[0\]/);
    expect(runs[1].stderr).toMatch(/checksum/);
    expect(runs[2].stderr).toMatch(/missing\.json: cannot read/);
    expect(runs[3].stderr).toMatch(/^streamgrad: --model bad\.json: .*layers\[0\]/);
  });

  it('a binary file given as a model: one line, its bytes escaped, so that no control byte reaches the terminal', async () => {
    // an ELF header, a terminal escape (clear the screen) and a bidirectional override
    const binary = write('binary.json', Uint8Array.from([0x7f, 0x45, 0x4c, 0x46, 0x02, 0x01, 0x1b, 0x5b, 0x32, 0x4a, 0xe2, 0x80, 0xae, 0x0d, 0x00]));
    const runs = await Promise.all([cli(['inspect', binary]), cli(['predict', '--model', binary])]);
    for (const run of runs) {
      expect(run.code).toBe(2);
      expect(lines(run.stderr)).toHaveLength(1);
      expect(run.stderr).toMatch(/not valid JSON/);
      expect(run.stderr.replace(/\n$/, '')).not.toMatch(/[\x00-\x08\x0a-\x1f\x7f-\x9f\u202a-\u202e\u2066-\u2069]/);
      expect(run.stderr).toContain('\\x7fELF\\x02\\x01\\x1b[2J');
    }
  });

  it('a model whose preprocessing cannot be applied (duplicate feature names): one line naming the field, exit 2, as predict', async () => {
    // before: inspect printed the layers and "export not possible", exit 0, for a file that
    // predict, serve and export all refuse with exit 2
    const preprocessing = { features: ['a', 'b', 'c'], targets: ['y1', 'y2'], classes: null, missing: ['reject', 'reject', 'reject'] as const, imputation: { seen: [0, 0, 0], mean: [0, 0, 0], last: [null, null, null] }, normalizer: null };
    const doc = JSON.parse(JSON.stringify(artifactToJSON({ model: regression, preprocessing }))) as { preprocessing: { features: string[] } };
    write('good-features.json', JSON.stringify(doc));
    doc.preprocessing.features = ['a', 'b', 'a'];
    write('dup-features.json', JSON.stringify(doc));
    const [good, runs] = [await cli(['inspect', 'good-features.json']), await Promise.all([cli(['inspect', 'dup-features.json']), cli(['inspect', 'dup-features.json', '--json']), cli(['predict', '--model', 'dup-features.json'])])];
    expect(good.stderr).toBe('');
    expect(good.code).toBe(0);
    for (const run of runs) {
      expect(run.code).toBe(2);
      expect(lines(run.stderr)).toHaveLength(1);
      expect(run.stdout).toBe('');
      expect(run.stderr).toMatch(/dup-features\.json: .*preprocessing\.features: names must be distinct/);
    }
  });
});

describe('streamgrad predict', () => {
  it('equals the in-process forward pass for NDJSON files, stdin and CSV', async () => {
    write('inputs.ndjson', ndjson(xs.map((x, i) => (i % 2 === 0 ? { x } : { x, y: [1, 2] }))));
    write('inputs.csv', `c,a,b\n${xs.map((x) => `${x[2]},${x[0]},${x[1]}`).join('\n')}\n`);
    const [file, stdin, csv, softmax] = await Promise.all([
      cli(['predict', '--model', 'regression.json', '--data', 'inputs.ndjson']),
      cli(['predict', '--model', 'regression.json', '--data', '-', '--output', 'out.ndjson'], ndjson(xs.map((x) => ({ x })))),
      cli(['predict', '--model', 'regression.json', '--data', 'inputs.csv', '--features', 'a,b,c']),
      cli(['predict', '--model', 'classifier.json'], ndjson(xs.map((x) => ({ x })))),
    ]);
    for (const run of [file, stdin, csv, softmax]) expect(run.code, run.stderr).toBe(0);
    const want = xs.map((x, i) => ({ line: i + 1, y: reference(regression, x) }));
    expect(lines(file.stdout).map((l) => JSON.parse(l))).toEqual(want);
    expect(stdin.stdout).toBe('');
    expect(lines(readFileSync(join(work, 'out.ndjson'), 'utf8')).map((l) => JSON.parse(l))).toEqual(want);
    expect(lines(csv.stdout).map((l) => JSON.parse(l))).toEqual(want.map((p) => ({ ...p, line: p.line + 1 })));
    expect(file.stderr).toMatch(/predicted 12 inputs, rejected 0 lines/);
    for (const [i, l] of lines(softmax.stdout).entries()) {
      const y = reference(classifier, xs[i]);
      expect(JSON.parse(l)).toEqual({ line: i + 1, y, class: y.indexOf(Math.max(...y)) });
    }
  });

  it('reports bad lines with their numbers, counts them and predicts the rest', async () => {
    const input = [
      JSON.stringify({ x: xs[0] }),
      'not json',
      JSON.stringify({ x: [1, 2] }),
      '',
      JSON.stringify({ x: [1, 'a', 3] }),
      JSON.stringify({ x: xs[1] }),
    ].join('\n');
    write('mixed.csv', `a,b,c\n1,2,3\n1,,3\n4,x,6\n${xs[2].join(',')}\n`);
    const [run, csv] = await Promise.all([
      cli(['predict', '--model', 'regression.json'], `${input}\n`),
      cli(['predict', '--model', 'regression.json', '--data', 'mixed.csv']),
    ]);
    expect(run.code, run.stderr).toBe(0);
    expect(lines(run.stdout).map((l) => JSON.parse(l))).toEqual([
      { line: 1, y: reference(regression, xs[0]) },
      { line: 6, y: reference(regression, xs[1]) },
    ]);
    expect(run.stderr).toMatch(/rejected line 2 \(SG_ERR_BAD_JSON\)/);
    expect(run.stderr).toMatch(/rejected line 3 \(SG_ERR_ARITY\)/);
    expect(run.stderr).toMatch(/rejected line 5 \(SG_ERR_TYPE\)/);
    expect(run.stderr).toMatch(/predicted 2 inputs, rejected 3 lines \(1 not JSON, 2 invalid samples\)/);

    expect(csv.code, csv.stderr).toBe(0);
    expect(lines(csv.stdout).map((l) => JSON.parse(l).line)).toEqual([2, 5]);
    expect(csv.stderr).toMatch(/rejected line 3 \(SG_ERR_MISSING\)/);
    expect(csv.stderr).toMatch(/rejected line 4 \(SG_ERR_TYPE\)/);
  });

  it('takes its model from a checkpoint', async () => {
    const run = await cli(['predict', '--model', 'run.ckpt'], ndjson(xs.slice(0, 3).map((x) => ({ x }))));
    expect(run.code, run.stderr).toBe(0);
    expect(lines(run.stdout).map((l) => JSON.parse(l))).toEqual(xs.slice(0, 3).map((x, i) => ({ line: i + 1, y: reference(restored, x) })));
  });
});
