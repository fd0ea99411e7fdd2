import { copyFileSync, existsSync, mkdirSync, mkdtempSync, readdirSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { InferenceSession, Tensor } from 'onnxruntime-node';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { modelToJSON } from '../pipeline/model-file.ts';
import { CliError } from '../cli/cli-error.ts';
import { parseExportArgs } from '../cli/export-command.ts';
import { runCli } from './helpers/cli.ts';
import { seededModel } from './helpers/streams.ts';

/**
 * `streamgrad export` end to end (issue #12): a model trained by `streamgrad train` on
 * the Seattle weather CSV (named features, missing values imputed by their mean,
 * standardised inputs, five classes) is exported from its model file and from its
 * checkpoint folder; onnxruntime-node on the exported file gives what `streamgrad
 * predict` prints for the same rows, blank cells included. Usage errors exit 2 with
 * one line naming the option; `inspect` shows what an export would contain.
 */
const work = mkdtempSync(join(tmpdir(), 'streamgrad-cli-export-'));
afterAll(() => rmSync(work, { recursive: true, force: true }));
const cli = (args: readonly string[]) => runCli(work, args);
const lines = (text: string) => text.split('\n').filter((l) => l !== '');

const FEATURES = ['precipitation', 'temp_max', 'temp_min', 'wind'];
const CSV = readFileSync(new URL('../examples/data/seattle-weather.csv', import.meta.url), 'utf8');

/** 60 rows of the data (every 20th), one cell in four of them left blank: imputed by the trained mean. */
function probeRows(): { csv: string; rows: number[][] } {
  const [header, ...body] = lines(CSV);
  const columns = header.split(',');
  const picked = body.filter((_, i) => i % 20 === 0).slice(0, 60);
  const rows: number[][] = [];
  const out = [header];
  picked.forEach((line, r) => {
    const cells = line.split(',');
    const row = FEATURES.map((f) => Number(cells[columns.indexOf(f)]));
    if (r % 4 === 1) {
      const blank = r % FEATURES.length;
      cells[columns.indexOf(FEATURES[blank])] = '';
      row[blank] = NaN;
    }
    rows.push(row);
    out.push(cells.join(','));
  });
  return { csv: `${out.join('\n')}\n`, rows };
}

async function onnxPredict(file: string, rows: readonly number[][], dtype: 'float64' | 'float32'): Promise<{ y: number[][]; class: number[] }> {
  const session = await InferenceSession.create(join(work, file));
  try {
    const flat = rows.flat();
    const x = new Tensor(dtype, dtype === 'float64' ? Float64Array.from(flat) : Float32Array.from(flat), [rows.length, FEATURES.length]);
    const out = await session.run({ x });
    const data = Array.from(out.y.data as Float64Array);
    return { y: rows.map((_, r) => data.slice(r * 5, r * 5 + 5)), class: Array.from(out.class.data as BigInt64Array, Number) };
  } finally {
    await session.release();
  }
}

beforeAll(async () => {
  writeFileSync(join(work, 'weather.csv'), CSV);
  const train = await cli(['train', '--data', 'weather.csv', '--features', FEATURES.join(','), '--targets', 'weather', '--classes', 'drizzle,fog,rain,snow,sun',
    '--missing', 'mean', '--normalize', '--layers', '4,8:leaky_relu,6:tanh,5:softmax', '--seed', '3', '--loss', 'cross_entropy', '--optimizer', 'adam', '--lr', '0.01',
    '--save', 'weather.json', '--checkpoint-dir', 'ck']);
  expect(train.code, train.stderr).toBe(0);
  writeFileSync(join(work, 'sign.json'), JSON.stringify(modelToJSON(seededModel(3, [[4, 'tanh'], [2, 'sign']], 2))));
}, 120_000);

describe('streamgrad export', () => {
  it('ONNX from a trained model file: onnxruntime gives what streamgrad predict prints, within 1e-12 (float64) and float32 precision (float32)', async () => {
    const { csv, rows } = probeRows();
    writeFileSync(join(work, 'probe.csv'), csv);
    const [predict, f64, f32] = await Promise.all([
      cli(['predict', '--model', 'weather.json', '--data', 'probe.csv']),
      cli(['export', '--model', 'weather.json', '--format', 'onnx', '--out', 'weather.onnx']),
      cli(['export', '--model', 'weather.json', '--format', 'onnx', '--out', 'weather32.onnx', '--dtype', 'float32', '--json']),
    ]);
    for (const run of [predict, f64, f32]) expect(run.code, run.stderr).toBe(0);
    expect(f64.stdout).toMatch(/^exported weather\.json as onnx \(float64\): weather\.onnx \(\d+ bytes\)\n$/);
    expect(JSON.parse(f32.stdout)).toMatchObject({ from: 'weather.json', format: 'onnx', dtype: 'float32', files: ['weather32.onnx'] });
    const expected = lines(predict.stdout).map((l) => JSON.parse(l) as { y: number[]; class: string });
    expect(expected).toHaveLength(rows.length);
    const classes = ['drizzle', 'fog', 'rain', 'snow', 'sun'];

    const onnx = await onnxPredict('weather.onnx', rows, 'float64');
    let worst = 0;
    onnx.y.forEach((row, r) => row.forEach((v, k) => { worst = Math.max(worst, Math.abs(v - expected[r].y[k])); }));
    expect(worst).toBeLessThan(1e-12);
    expect(onnx.class.map((k) => classes[k])).toEqual(expected.map((e) => e.class));

    const onnx32 = await onnxPredict('weather32.onnx', rows, 'float32');
    let worst32 = 0;
    onnx32.y.forEach((row, r) => row.forEach((v, k) => { worst32 = Math.max(worst32, Math.abs(v - expected[r].y[k])); }));
    expect(worst32).toBeLessThan(2e-5); // probabilities: at most 1
  });

  it('from a checkpoint folder (its newest checkpoint) to TF.js: model.json and the weights, a note that missing values are not imputed', { timeout: 120_000 }, async () => {
    const run = await cli(['export', '--checkpoint', 'ck', '--format', 'tfjs', '--out', 'weather-tfjs']);
    expect(run.code, run.stderr).toBe(0);
    expect(run.stdout).toMatch(/^exported ck\/train-\d+\.sgck as tfjs \(float32\): weather-tfjs\/model\.json, weather-tfjs\/model\.weights\.bin/);
    expect(run.stderr).toMatch(/^streamgrad: note: missing values are not imputed/);
    expect(readdirSync(join(work, 'weather-tfjs')).sort()).toEqual(['model.json', 'model.weights.bin']); // no temporary files left
    const json = JSON.parse(readFileSync(join(work, 'weather-tfjs', 'model.json'), 'utf8'));
    expect(json.format).toBe('layers-model');
    expect(json.userDefinedMetadata.streamgrad.classes).toEqual(['drizzle', 'fog', 'rain', 'snow', 'sun']);
    const floats = json.weightsManifest[0].weights.reduce((s: number, w: { shape: number[] }) => s + w.shape.reduce((a, b) => a * b, 1), 0);
    expect(readFileSync(join(work, 'weather-tfjs', 'model.weights.bin')).length).toBe(floats * 4);
    // a NAME.json path: the weights beside it, named after it; a second export replaces both
    for (let i = 0; i < 2; i++) {
      const named = await cli(['export', '--checkpoint', 'ck', '--format', 'tfjs', '--out', 'web.json']);
      expect(named.code, named.stderr).toBe(0);
    }
    expect(JSON.parse(readFileSync(join(work, 'web.json'), 'utf8')).weightsManifest[0].paths).toEqual(['web.weights.bin']);
    expect(existsSync(join(work, 'web.weights.bin'))).toBe(true);
    // a checkpoint file named as such; and --model takes a checkpoint file as well
    const file = join('ck', readdirSync(join(work, 'ck')).find((n) => n.endsWith('.sgck'))!);
    const [byFile, byModel] = await Promise.all([
      cli(['export', '--checkpoint', file, '--format', 'onnx', '--out', 'from-ckpt.onnx']),
      cli(['export', '--model', file, '--format', 'onnx', '--out', 'from-model-option.onnx']),
    ]);
    for (const r of [byFile, byModel]) expect(r.code, r.stderr).toBe(0);
    expect(readFileSync(join(work, 'from-ckpt.onnx'))).toEqual(readFileSync(join(work, 'from-model-option.onnx')));
  });

  it('from a checkpoint folder whose newest checkpoint is corrupt: says on stderr which one it refused and which one it exports (as --resume does)', { timeout: 120_000 }, async () => {
    // probe: the corrupt newest one was skipped in silence and an older one exported, exit 0
    mkdirSync(join(work, 'ck-bad'), { recursive: true });
    const intact = readdirSync(join(work, 'ck')).filter((n) => n.endsWith('.sgck')).sort().at(-1)!;
    copyFileSync(join(work, 'ck', intact), join(work, 'ck-bad', intact));
    const newest = intact.replace(/-(\d+)\.sgck$/, (_, n: string) => `-${String(Number(n) + 1).padStart(n.length, '0')}.sgck`);
    writeFileSync(join(work, 'ck-bad', newest), readFileSync(join(work, 'ck', intact)).subarray(0, 100));
    const [text, json] = await Promise.all([
      cli(['export', '--checkpoint', 'ck-bad', '--format', 'onnx', '--out', 'bad-ck.onnx']),
      cli(['export', '--checkpoint', 'ck-bad', '--format', 'onnx', '--out', 'bad-ck2.onnx', '--json']),
    ]);
    for (const run of [text, json]) {
      expect(run.code, run.stderr).toBe(0);
      const lines = run.stderr.trim().split('\n');
      expect(lines[0]).toMatch(new RegExp(`^streamgrad: refused checkpoint ck-bad/${newest}: .+; trying the one before it$`));
      expect(lines[1]).toBe(`streamgrad: exporting ck-bad/${intact}, the newest intact checkpoint (1 newer one refused)`);
    }
    expect(text.stdout).toMatch(new RegExp(`^exported ck-bad/${intact} as onnx`));
    const doc = JSON.parse(json.stdout);
    expect(doc.from).toBe(`ck-bad/${intact}`);
    expect(doc.refused).toEqual([expect.objectContaining({ path: `ck-bad/${newest}`, code: 'SG_ERR_CHECKPOINT' })]);
  });

  it('usage errors: one line naming the option, exit 2, nothing written', { timeout: 180_000 }, async () => {
    mkdirSync(join(work, 'a-folder'), { recursive: true });
    mkdirSync(join(work, 'empty-ck'), { recursive: true });
    writeFileSync(join(work, 'a-file'), 'x');
    mkdirSync(join(work, 'two-runs'), { recursive: true });
    for (const name of ['a-000000000001.sgck', 'b-000000000001.sgck']) writeFileSync(join(work, 'two-runs', name), 'SGCKPT01');
    mkdirSync(join(work, 'broken-ck'), { recursive: true });
    writeFileSync(join(work, 'broken-ck', 'train-000000000001.sgck'), 'SGCKPT01 cut short');
    const cases: [readonly string[], RegExp][] = [
      [['export', '--model', 'weather.json', '--format', 'keras', '--out', 'x'], /^streamgrad: --format: unknown value "keras"; use onnx, tfjs$/],
      [['export', '--model', 'weather.json', '--format', 'onnx', '--out', 'no-such-dir/x.onnx'], /^streamgrad: --out: cannot write no-such-dir\/x\.onnx: ENOENT/],
      [['export', '--model', 'weather.json', '--format', 'onnx', '--out', 'a-folder'], /^streamgrad: --out: a-folder is a folder$/],
      [['export', '--model', 'weather.json', '--format', 'tfjs', '--out', 'a-file'], /^streamgrad: --out: a-file is a file; TF\.js needs a folder/],
      [['export', '--model', 'weather.json', '--format', 'tfjs', '--dtype', 'float64', '--out', 'y'], /^streamgrad: --dtype: TensorFlow\.js layer weights are float32/],
      [['export', '--model', 'sign.json', '--format', 'tfjs', '--out', 'sign-tfjs'], /^streamgrad: --format tfjs: layers\[1\]\.activation: sign has no TensorFlow\.js layer; export to ONNX/],
      [['export', '--model', 'missing.json', '--format', 'onnx', '--out', 'y.onnx'], /^streamgrad: --model missing\.json: cannot read/],
      [['export', '--model', 'weather.json', '--format', 'tfjs', '--out', './weather.json'], /^streamgrad: --out: \.\/weather\.json would overwrite the model it exports \(weather\.json\)$/],
      [['export', '--checkpoint', 'empty-ck', '--format', 'onnx', '--out', 'y.onnx'], /^streamgrad: --checkpoint empty-ck: no checkpoint \(\*\.sgck\) in this folder$/],
      [['export', '--checkpoint', 'two-runs', '--format', 'onnx', '--out', 'y.onnx'], /^streamgrad: --checkpoint two-runs: checkpoints of several runs \(a, b\); give one file$/],
      [['export', '--checkpoint', 'broken-ck', '--format', 'onnx', '--out', 'y.onnx'], /^streamgrad: --checkpoint broken-ck: no intact checkpoint in broken-ck/],
    ];
    const runs = await Promise.all(cases.map(([args]) => cli(args)));
    runs.forEach((run, i) => {
      expect(run.code, cases[i][0].join(' ')).toBe(2);
      expect(lines(run.stderr), cases[i][0].join(' ')).toHaveLength(1);
      expect(run.stderr.trimEnd(), cases[i][0].join(' ')).toMatch(cases[i][1]);
      expect(run.stdout).toBe('');
    });
    expect(existsSync(join(work, 'sign-tfjs'))).toBe(false);
    expect(existsSync(join(work, 'y.onnx'))).toBe(false);
    expect(readdirSync(join(work, 'a-folder'))).toEqual([]);
  });

  it('a weight float32 cannot hold (finite in float64, beyond ±3.4e38): float32 ONNX and TF.js refuse it, exit 2 naming it, nothing written; float64 ONNX holds it', async () => {
    // before: written as ±Infinity, exit 0, and the exported model answered Infinity or NaN where streamgrad answers a number
    const model = seededModel(3, [[4, 'tanh'], [1, 'linear']], 4);
    model.params[5] = 1e300;
    writeFileSync(join(work, 'huge-weight.json'), JSON.stringify(modelToJSON(model)));
    const [f32, tfjs, f64] = await Promise.all([
      cli(['export', '--model', 'huge-weight.json', '--format', 'onnx', '--dtype', 'float32', '--out', 'huge32.onnx']),
      cli(['export', '--model', 'huge-weight.json', '--format', 'tfjs', '--out', 'huge-tfjs']),
      cli(['export', '--model', 'huge-weight.json', '--format', 'onnx', '--out', 'huge64.onnx']),
    ]);
    expect(f32.code, f32.stderr).toBe(2);
    expect(f32.stderr.trimEnd()).toMatch(/^streamgrad: --dtype: float32 cannot hold W0\[5\] = 1e\+300 \(beyond ±3\.4e38, it would be Infinity\); export as float64$/);
    expect(tfjs.code, tfjs.stderr).toBe(2);
    expect(tfjs.stderr.trimEnd()).toMatch(/^streamgrad: --format tfjs: dense_0\/kernel: float32 cannot hold dense_0\/kernel \(layers\[0\] dense 3 → 4, tanh\)\[\d+\] = 1e\+300 .*export to ONNX as float64$/);
    expect(existsSync(join(work, 'huge32.onnx'))).toBe(false);
    expect(existsSync(join(work, 'huge-tfjs'))).toBe(false);
    expect(f64.code, f64.stderr).toBe(0);
  });

  it('option errors found before any file is read (in process: the same parser)', () => {
    const cases: [readonly string[], RegExp][] = [
      [['--model', 'weather.json', '--out', 'x.onnx'], /^--format: required: onnx or tfjs$/],
      [['--model', 'weather.json', '--format', 'onnx'], /^--out: required/],
      [['--format', 'onnx', '--out', 'x.onnx'], /^--model: required/],
      [['--model', 'weather.json', '--checkpoint', 'ck', '--format', 'onnx', '--out', 'x.onnx'], /^--checkpoint: give --model or --checkpoint, not both$/],
      [['--model', 'weather.json', '--format', 'onnx', '--dtype', 'float16', '--out', 'y.onnx'], /^--dtype: unknown value "float16"; use float64, float32$/],
      [['--model', 'weather.json', '--format', 'onnx', '--formt', 'y'], /^--formt: unknown option for streamgrad export \(did you mean --format\?/],
    ];
    for (const [args, message] of cases) {
      let error: unknown;
      try {
        parseExportArgs(args);
      } catch (e) {
        error = e;
      }
      expect(error, args.join(' ')).toBeInstanceOf(CliError);
      expect((error as CliError).exitCode).toBe(2);
      expect((error as CliError).message, args.join(' ')).toMatch(message);
    }
    expect(parseExportArgs(['--checkpoint', 'ck', '--format', 'tfjs', '--out', 'web', '--dtype', 'float32'])).toEqual({ source: { option: '--checkpoint', path: 'ck' }, format: 'tfjs', out: 'web', dtype: 'float32', json: false });
  });

  it('a sign model exports to ONNX; help names the command', async () => {
    const [run, help] = await Promise.all([cli(['export', '--model', 'sign.json', '--format', 'onnx', '--out', 'sign.onnx']), cli(['help', 'export'])]);
    expect(run.code, run.stderr).toBe(0);
    const session = await InferenceSession.create(join(work, 'sign.onnx'));
    const out = await session.run({ x: new Tensor('float64', Float64Array.from([0.5, -1, 2]), [1, 3]) });
    await session.release();
    expect(Array.from(out.y.data as Float64Array).every((v) => v === 1 || v === -1 || v === 0)).toBe(true);
    expect(help.code).toBe(0);
    expect(help.stdout).toMatch(/^Usage: streamgrad export/);
  });
});

describe('streamgrad inspect: what an export would contain', () => {
  it('per format the inputs, outputs and nodes or layers, or why a format refuses; the same in --json', async () => {
    const [text, json, sign] = await Promise.all([cli(['inspect', 'weather.json']), cli(['inspect', 'weather.json', '--json']), cli(['inspect', 'sign.json'])]);
    for (const run of [text, json, sign]) expect(run.code, run.stderr).toBe(0);
    expect(text.stdout).toMatch(/^export \(streamgrad export --format onnx\|tfjs\):$/m);
    expect(text.stdout).toMatch(/^ {2}onnx: input x \[batch, 4\], output y \[batch, 5\], class \[batch\], 20 nodes$/m);
    expect(text.stdout).toMatch(/^ {4}Where class: the class: the index of the largest output, -1 for a row whose outputs are not finite$/m);
    expect(text.stdout).toMatch(/^ {4}Where x_imputed: imputation: mean, mean, mean, mean/m);
    expect(text.stdout).toMatch(/^ {4}Gemm z0: layers\[0\] dense 4 → 8: z = Wx \+ b$/m);
    expect(text.stdout).toMatch(/^ {2}tfjs: input \[batch, 4\], output \[batch, 5\], 8 layers$/m);
    expect(text.stdout).toMatch(/^ {4}note: missing values are not imputed/m);
    const doc = JSON.parse(json.stdout);
    expect(doc.export.map((p: { format: string }) => p.format)).toEqual(['onnx', 'tfjs']);
    expect(doc.export[0].steps).toHaveLength(20);
    expect(sign.stdout).toMatch(/^ {2}tfjs: refused: layers\[1\]\.activation: sign has no TensorFlow\.js layer/m);
    expect(sign.stdout).toMatch(/^ {4}Sign a1: layers\[1\] sign$/m);
  });
});
