import { existsSync, mkdtempSync, readdirSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, describe, expect, it } from 'vitest';
import { CliError } from '../cli/cli-error.ts';
import { parseLayers } from '../runtime/layers.ts';
import { parseTrainArgs } from '../cli/train-command.ts';
import { modelFromJSON } from '../pipeline/model-file.ts';
import { type CliOptions, type CliRun, pool, runCli } from './helpers/cli.ts';
import { expectModelClose, type Fixture, loadFixtures } from './helpers/reference.ts';

/**
 * The real command line, spawned as `node bin/streamgrad.mjs …` (tsx compiles on the fly),
 * with relative paths inside a temporary working directory. Spawns cost ~0.4 s each, so
 * independent ones run a few at a time.
 */
const work = mkdtempSync(join(tmpdir(), 'streamgrad-cli-'));
afterAll(() => rmSync(work, { recursive: true, force: true }));

type Run = CliRun;
const cli = (args: readonly string[], options: CliOptions = {}): Promise<Run> => runCli(work, args, options);

const write = (name: string, text: string) => { writeFileSync(join(work, name), text); return name; };
const read = (name: string) => readFileSync(join(work, name), 'utf8');
const ndjson = (samples: readonly unknown[]) => samples.map((s) => `${JSON.stringify(s)}\n`).join('');
const lines = (text: string) => text.split('\n').filter((l) => l !== '');

/** The `train` options that replay a fixture: its loss, optimizer and batch size. */
function fixtureArgs(fx: Fixture): string[] {
  const { type, learningRate, ...rest } = fx.optimizer as { type: string; learningRate: number } & Record<string, number>;
  const args = ['--loss', fx.loss, '--optimizer', type, '--lr', String(learningRate), '--batch', String(fx.batchSize)];
  for (const [key, value] of Object.entries(rest)) args.push(`--${key}`, String(value));
  return args;
}

function expectSavedModel(file: string, ref: Fixture['steps'][number]['model'], what: string): void {
  const model = modelFromJSON(JSON.parse(read(file)));
  expectModelClose(model.layers as never, ref, what);
}

const fixtures = loadFixtures();

describe('streamgrad train replays every PyTorch reference fixture', () => {
  it('trains each fixture from its model file and saves the last step\'s model (1e-9)', async () => {
    expect(fixtures.length).toBeGreaterThanOrEqual(7);
    const runs = await pool(fixtures.map((fx) => () => {
      const model = write(`${fx.name}.model.json`, JSON.stringify(fx.model));
      const data = write(`${fx.name}.ndjson`, ndjson(fx.samples));
      return cli(['train', '--data', data, '--model', model, ...fixtureArgs(fx), '--save', `${fx.name}.out.json`]);
    }));
    fixtures.forEach((fx, i) => {
      const run = runs[i];
      expect(run.code, `${fx.name}: ${run.stderr}`).toBe(0);
      expect(run.stderr).toContain(`trained ${fx.samples.length} samples in ${fx.steps.length} steps`);
      expect(run.stderr).toContain('rejected 0 lines');
      expectSavedModel(`${fx.name}.out.json`, fx.steps[fx.steps.length - 1].model, `${fx.name} via CLI`);
    });
  });

  it('reads the samples from standard input with --data -', async () => {
    const fx = fixtures.find((f) => f.name === 'michaelis-menten-relu-adam-b4')!;
    const model = write('stdin.model.json', JSON.stringify(fx.model));
    const run = await cli(['train', '--data', '-', '--model', model, ...fixtureArgs(fx), '--save', 'stdin.out.json'], { stdin: ndjson(fx.samples) });
    expect(run.code, run.stderr).toBe(0);
    expectSavedModel('stdin.out.json', fx.steps[fx.steps.length - 1].model, 'stdin');
  });
});

describe('streamgrad train: bad input lines are counted and reported, training goes on', () => {
  it('skips malformed, NaN, Infinity and wrong-arity lines and equals training on the good lines only', async () => {
    const fx = fixtures.find((f) => f.name === 'deep-tanh-momentum-b8')!; // 4 inputs, 2 outputs, batch 8
    const good = fx.samples.map((s) => JSON.stringify(s));
    const bad = new Map<number, string>([
      [3, '{"x": [1, 2, 3, 4], "y": [0, 1]'], // truncated JSON
      [10, '{"x":[NaN,1,2,3],"y":[0,1]}'], // NaN is not JSON
      [17, '{"x":[1,2,3],"y":[0,1]}'], // 3 features, the model takes 4
      [25, '{"x":[1,2,3,4],"y":[0,1e309]}'], // parses to Infinity
      [31, ''], // blank: skipped, not an error
      [40, '{"x":[1,2,3,4],"y":[0,"1"]}'], // a string target
      [52, '{"x":[1,2,3,4]}'], // no target
    ]);
    const dirty: string[] = [];
    const badLineNumbers: number[] = [];
    good.forEach((line, i) => {
      const extra = bad.get(i);
      if (extra !== undefined) {
        dirty.push(extra);
        if (extra !== '') badLineNumbers.push(dirty.length);
      }
      dirty.push(line);
    });
    const model = write('dirty.model.json', JSON.stringify(fx.model));
    const [clean, messy] = await pool([
      () => cli(['train', '--data', write('clean.ndjson', `${good.join('\n')}\n`), '--model', model, ...fixtureArgs(fx), '--save', 'clean.out.json']),
      () => cli(['train', '--data', write('dirty.ndjson', `${dirty.join('\r\n')}\r\n`), '--model', model, ...fixtureArgs(fx), '--save', 'dirty.out.json']),
    ]);
    expect(clean.code, clean.stderr).toBe(0);
    expect(messy.code, messy.stderr).toBe(0);
    expect(read('dirty.out.json')).toBe(read('clean.out.json'));
    expectSavedModel('dirty.out.json', fx.steps[fx.steps.length - 1].model, 'dirty');

    const err = messy.stderr;
    expect(err).toContain(`trained ${good.length} samples in ${fx.steps.length} steps`);
    expect(err).toContain('rejected 6 lines (2 not JSON, 4 invalid samples)');
    const [json1, json2, arity, infinity, type] = badLineNumbers;
    expect(err).toContain(`rejected line ${json1} (SG_ERR_BAD_JSON)`);
    expect(err).toContain(`rejected line ${json2} (SG_ERR_BAD_JSON)`);
    expect(err).toContain(`rejected line ${arity} (SG_ERR_ARITY): x: has 3 values, the model takes 4`);
    expect(err).toContain(`rejected line ${infinity} (SG_ERR_NONFINITE_INPUT): y[1]`);
    expect(err).toContain(`rejected line ${type} (SG_ERR_TYPE): y[1]`);
    // only the first five are shown; the sixth is counted
    expect(err).not.toContain(`rejected line ${badLineNumbers[5]} `);
    expect(err).toContain('only the first 5 are shown');
  });
});

describe('streamgrad train --layers', () => {
  it('gives bitwise identical models for the same --seed and different ones for another seed', async () => {
    const data = write('seeded.ndjson', ndjson(Array.from({ length: 20 }, (_, i) => ({ x: [i / 10, 1 - i / 20, 0.5], y: [Math.sin(i)] }))));
    const common = ['train', '--data', data, '--layers', '3,8:tanh,8:relu,1:linear', '--optimizer', 'adam', '--lr', '1e-3', '--batch', '4'];
    await pool([
      () => cli([...common, '--seed', '7', '--save', 'seed7a.json']),
      () => cli([...common, '--seed', '7', '--save', 'seed7b.json']),
      () => cli([...common, '--seed', '8', '--save', 'seed8.json']),
      () => cli([...common, '--save', 'seed0.json', '--init', 'pytorch']),
    ]).then((runs) => runs.forEach((r) => expect(r.code, r.stderr).toBe(0)));
    expect(read('seed7a.json')).toBe(read('seed7b.json'));
    expect(read('seed8.json')).not.toBe(read('seed7a.json'));
    const doc = JSON.parse(read('seed7a.json'));
    expect(doc.format).toBe('streamgrad/model@1');
    expect(doc.layers.map((l: { activation: string; bias: number[] }) => [l.activation, l.bias.length])).toEqual([['tanh', 8], ['relu', 8], ['linear', 1]]);
    expect(modelFromJSON(JSON.parse(read('seed0.json'))).params.length).toBe(3 * 8 + 8 + 8 * 8 + 8 + 8 + 1);
  });
});

describe('streamgrad train --save', () => {
  it('never writes a model whose parameters went non-finite (JSON would turn NaN into null)', async () => {
    // Adam with epsilon 0 divides 0 by 0 where a gradient element is exactly 0 (x[0] = 0 here)
    const data = write('zero-feature.ndjson', ndjson([{ x: [0, 1], y: [1] }, { x: [1, 1], y: [2] }]));
    const run = await cli(['train', '--data', data, '--layers', '2,1:linear', '--optimizer', 'adam', '--epsilon', '0', '--save', 'nan.json']);
    expect(run.code, run.stderr).not.toBe(0);
    expect(existsSync(join(work, 'nan.json'))).toBe(false);
    expect(readdirSync(work).filter((f) => f.includes('nan.json'))).toEqual([]); // no temp file left behind
  });
});

describe('streamgrad: usage errors give one line naming the option, and exit 2', () => {
  it('rejects each bad command line', async () => {
    const fx = fixtures.find((f) => f.name === 'wide-sigmoid-mse-sgd-b1')!; // 3 → 8 sigmoid → 1 sigmoid
    const model = write('usage.model.json', JSON.stringify(fx.model));
    const data = write('usage.ndjson', ndjson(fx.samples.slice(0, 5)));
    const broken = JSON.parse(JSON.stringify(fx.model)) as { layers: { weights: number[][] }[] };
    broken.layers[1].weights[0].pop(); // layer 1 now has 7 weights per neuron instead of 8
    const mismatch = write('mismatch.model.json', JSON.stringify(broken));
    const ok = ['train', '--data', data, '--model', model];
    const cases: [string[], RegExp][] = [
      [[...ok, '--frobnicate', '3'], /^--frobnicate: unknown option/],
      [[...ok, '--lr', 'abc'], /^--lr: must be a finite number, got "abc"/],
      [[...ok, '--lr', '-1'], /^--lr: must be a finite number > 0, got -1$/],
      [[...ok, '--lr', '1e308'], /^--lr: must be at most 10, got 1e\+308$/],
      [[...ok, '--batch', '0'], /^--batch: must be an integer ≥ 1, got "0"/],
      [[...ok, '--layers', '3,1:linear'], /^--model\/--layers: give only one/],
      [['train', '--data', data], /^--model\/--layers: one is required/],
      [['train', '--data', 'no-such-file.ndjson', '--model', model], /^--data no-such-file\.ndjson: cannot read: ENOENT/],
      [['train', '--data', data, '--model', 'no-such-model.json'], /^--model no-such-model\.json: cannot read/],
      [['train', '--data', data, '--model', mismatch], /^--model mismatch\.model\.json: layers\[1\]\.weights: shape 1×7 .*expected 1×8/],
      [['train', '--data', data, '--layers', '3,16:relux,1:linear'], /^--layers: layer 1 \("16:relux"\): unknown activation "relux"/],
      [[...ok, '--loss', 'hinge'], /^--loss: unknown value "hinge"; use mse, bce, cross_entropy, perceptron/],
      [[...ok, '--loss', 'cross_entropy'], /^--loss: cross_entropy needs a softmax output layer/],
      [[...ok, '--optimizer', 'adam', '--beta2', '1'], /^--beta2: must be in \[0, 1\), got 1/],
      [[...ok, '--momentum', '0.9'], /^--momentum: does not apply to --optimizer sgd/],
      [[...ok, '--save', 'no-such-dir/out.json'], /^--save no-such-dir\/out\.json: cannot write/],
      [['fly'], /^unknown command "fly"/],
    ];
    const runs = await pool(cases.map(([args]) => () => cli(args)));
    cases.forEach(([args, pattern], i) => {
      const { code, stderr } = runs[i];
      const what = `streamgrad ${args.join(' ')}`;
      expect(code, `${what}: ${stderr}`).toBe(2);
      expect(lines(stderr), what).toHaveLength(1);
      expect(stderr.startsWith('streamgrad: '), what).toBe(true);
      expect(stderr.slice('streamgrad: '.length).trim(), what).toMatch(pattern);
    });
  });

  it('parses numbers strictly', () => {
    const base = ['--data', 'd', '--layers', '2,1:linear'];
    const lr = (value: string) => {
      const settings = parseTrainArgs([...base, '--lr', value]);
      return settings === 'help' ? NaN : settings.optimizer.learningRate;
    };
    expect(lr('1e-3')).toBe(0.001);
    expect(lr('.5')).toBe(0.5);
    expect(lr('2')).toBe(2);
    for (const bad of ['abc', '', ' ', 'NaN', 'Infinity', '-Infinity', '1e999', '0x10', '1_000', '1,5', '1e', '5 ']) {
      expect(() => lr(bad), JSON.stringify(bad)).toThrow(CliError);
      expect(() => lr(bad), JSON.stringify(bad)).toThrow(/^--lr: must be a finite number/);
    }
    const batch = (value: string) => parseTrainArgs([...base, '--batch', value]);
    for (const bad of ['1.5', '1e2', '-3', 'x', '']) expect(() => batch(bad), bad).toThrow(/^--batch: must be an integer ≥ 1/);
    expect(() => parseTrainArgs([...base, '--seed', '1.5'])).toThrow(/^--seed:/);
    expect(() => parseTrainArgs([...base, '--init', 'glorot'])).toThrow(/^--init: unknown value "glorot"/);
    expect(() => parseTrainArgs([...base, '--lr', '1', '--lr', '2'])).toThrow(/^--lr: given more than once/);
    expect(() => parseTrainArgs([...base, '--lr'])).toThrow(/^--lr: needs a value/);
    expect(() => parseTrainArgs([...base, 'extra'])).toThrow(/unexpected argument "extra"/);
  });

  it('reads the --layers spec', () => {
    expect(parseLayers('3,16:relu,16:relu,1:linear')).toEqual({
      inputSize: 3,
      layers: [{ units: 16, activation: 'relu' }, { units: 16, activation: 'relu' }, { units: 1, activation: 'linear' }],
    });
    expect(() => parseLayers('3')).toThrow(/^--layers: needs the input size and at least one layer/);
    expect(() => parseLayers('0,1:linear')).toThrow(/^--layers: must start with the input size/);
    expect(() => parseLayers('3,16,1:linear')).toThrow(/^--layers: layer 1 \("16"\) must be units:activation/);
    expect(() => parseLayers('3,0:relu')).toThrow(/^--layers: layer 1/);
  });

  it('answers --help and --version on stdout with exit 0', async () => {
    const [help, trainHelp, version] = await pool([() => cli(['--help']), () => cli(['train', '--help']), () => cli(['--version'])]);
    expect(help.code).toBe(0);
    expect(help.stdout).toMatch(/train .*\n.*start/);
    expect(trainHelp.code).toBe(0);
    for (const option of ['--data', '--model', '--layers', '--seed', '--init', '--loss', '--optimizer', '--lr', '--momentum', '--beta1', '--beta2', '--epsilon', '--batch', '--save', '--clip-norm', '--window']) {
      expect(trainHelp.stdout).toContain(option);
    }
    expect(version.code).toBe(0);
    expect(version.stdout.trim()).toMatch(/^streamgrad \d+\.\d+\.\d+/);
  });
});

describe('streamgrad start: the deep-vs-wide race on the Michaelis–Menten stream', () => {
  it('runs both models on one stream until --samples, then prints their status and exits 0', async () => {
    const run = await cli(['start', '--samples', '2000']);
    expect(run.code, run.stderr).toBe(0);
    const status = lines(run.stderr).filter((l) => / step \d+ {2}samples \d+ /.test(l));
    for (const name of ['wide', 'deep']) {
      const last = status.filter((l) => l.startsWith(`streamgrad: ${name} `)).at(-1);
      expect(last, `${name} status in:\n${run.stderr}`).toMatch(/step 2000 {2}samples 2000 {2}mse [\d.e-]+, mae [\d.e-]+ {2}\d+ samples\/s/);
    }
    expect(run.stderr).toMatch(/leader: (wide|deep)/);
  });

  it('stops cleanly on Ctrl-C (SIGINT): final summary, exit 0', async () => {
    let sent = false;
    const run = await cli(['start', '--batch', '4'], {
      onStderr(text, child) {
        // the first per-second status line shows the race is on
        if (!sent && / step \d+ {2}samples \d+ /.test(text)) {
          sent = true;
          child.kill('SIGINT');
        }
      },
    });
    expect(sent, run.stderr).toBe(true);
    expect(run.signal).toBe(null);
    expect(run.code, run.stderr).toBe(0);
    expect(run.stderr).toMatch(/interrupted after [\d.]+ s/);
    expect(run.stderr).toMatch(/leader: (wide|deep)/);
  });
});
