import { existsSync, mkdtempSync, readdirSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { dirname, join, resolve } from 'node:path';
import { fileURLToPath } from 'node:url';
import { connectAsync } from 'mqtt';
import { afterAll, describe, expect, it } from 'vitest';
import { parseExperiment } from '../runtime/experiment-schema.ts';
import { planExperiment } from '../runtime/experiment-plan.ts';
import { describePlan } from '../cli/run-command.ts';
import type { DeadLetter } from '../core/dead-letter.ts';
import { modelFromJSON } from '../pipeline/model-file.ts';
import { michaelisMentenSamples } from '../sources/michaelis-menten.ts';
import { type CliOptions, type CliRun, pool, runCli } from './helpers/cli.ts';
import { findMosquitto, mosquittoForThisFile } from './helpers/mosquitto.ts';

/**
 * `streamgrad run EXPERIMENT.json`, spawned for real (`node bin/streamgrad.mjs run ...`) in a
 * temporary working directory: every shipped example trains to the end (short streams) with
 * the outcome it is there to show, and bad configs exit 2 with one line per problem, each
 * naming its path. Schema messages are also checked in-process (no spawn).
 */
const EXAMPLES = resolve(dirname(fileURLToPath(import.meta.url)), '../examples');
const example = (name: string) => join(EXAMPLES, `${name}.json`);
const work = mkdtempSync(join(tmpdir(), 'streamgrad-run-'));
afterAll(() => rmSync(work, { recursive: true, force: true }));

const cli = (args: readonly string[], options: CliOptions = {}): Promise<CliRun> => runCli(work, args, options);
const write = (name: string, doc: unknown) => {
  writeFileSync(join(work, name), typeof doc === 'string' ? doc : JSON.stringify(doc, null, 2));
  return name;
};
const lines = (text: string) => text.split('\n').filter((l) => l !== '');

/** A model's summary line: `NAME TOPOLOGY  step N  samples N  LOSS x, mae y[, accuracy z%]  R samples/s`. */
function summary(stderr: string, name: string): { steps: number; samples: number; loss: number; mae: number; accuracy?: number } {
  const line = lines(stderr).filter((l) => l.startsWith(`streamgrad: ${name} `) && / step \d+ {2}samples \d+ /.test(l)).at(-1);
  const match = line === undefined ? null : / step (\d+) {2}samples (\d+) {2}\w+ ([\d.e+-]+|-), mae ([\d.e+-]+|-)(?:, accuracy ([\d.]+)%)?/.exec(line);
  if (match === null) throw new Error(`no summary line for ${name} in:\n${stderr}`);
  return { steps: Number(match[1]), samples: Number(match[2]), loss: Number(match[3]), mae: Number(match[4]), ...(match[5] !== undefined && { accuracy: Number(match[5]) / 100 }) };
}

const minimal = { source: { simulated: 'xor', samples: 10 }, models: [{ layers: '2,4:tanh,1:sigmoid', loss: 'bce' }] };

describe('streamgrad run: every example trains to the end with the outcome it shows', () => {
  it('perceptron-separable: the perceptron rule stops making mistakes (rolling accuracy 100%)', async () => {
    const run = await cli(['run', example('perceptron-separable')]);
    expect(run.code, run.stderr).toBe(0);
    const p = summary(run.stderr, 'perceptron');
    expect(p).toMatchObject({ steps: 3000, samples: 3000, accuracy: 1 });
    expect(p.loss).toBe(0);
    expect(run.stderr).toMatch(/finished after [\d.]+ s/);
  });

  it('xor: the network with a hidden layer learns XOR (≥ 95%), the one without cannot (< 80%); the leader is named', async () => {
    const run = await cli(['run', example('xor')]);
    expect(run.code, run.stderr).toBe(0);
    const hidden = summary(run.stderr, 'hidden');
    const linear = summary(run.stderr, 'linear');
    expect(hidden).toMatchObject({ steps: 8000, samples: 8000 });
    expect(hidden.accuracy).toBeGreaterThanOrEqual(0.95);
    expect(linear.accuracy).toBeLessThan(0.8);
    expect(run.stderr).toMatch(/leader: hidden \(rolling accuracy hidden [\d.]+% vs linear [\d.]+%\)/);
  });

  it('michaelis-menten-race: deep and wide race on one stream, served live (--port 0), both fit the kinetics; Ctrl-C ends the serving', async () => {
    let checked: Promise<{ health: number; metrics: string }> | null = null;
    const run = await cli(['run', example('michaelis-menten-race'), '--samples', '20000', '--port', '0'], {
      onStderr(text, child) {
        const url = /still serving (http:\/\/\S+)\/ /.exec(text)?.[1];
        if (url === undefined || checked !== null) return;
        checked = (async () => {
          const health = (await fetch(`${url}/healthz`)).status;
          const metrics = await (await fetch(`${url}/metrics`)).text();
          child.kill('SIGINT');
          return { health, metrics };
        })();
      },
    });
    expect(run.code, run.stderr).toBe(0);
    expect(checked, run.stderr).not.toBe(null);
    const { health, metrics } = await checked!;
    expect(health).toBe(200);
    expect(metrics).toMatch(/run="wide"/);
    expect(metrics).toMatch(/run="deep"/);
    expect(run.stderr).toMatch(/control token for this session: \S+/);
    for (const name of ['wide', 'deep']) {
      const s = summary(run.stderr, name);
      expect(s).toMatchObject({ steps: 20000, samples: 20000 });
      expect(s.mae, name).toBeLessThan(0.08); // rates are 0…2; the noise alone is 0.008
    }
    expect(run.stderr).toMatch(/leader: (wide|deep) \(rolling mse /);
  });

  it('seattle-weather: classifies the weather from a CSV, found beside the config whatever the working directory (≥ 68%; majority class 44%)', async () => {
    const run = await cli(['run', example('seattle-weather')]);
    expect(run.code, run.stderr).toBe(0);
    const mlp = summary(run.stderr, 'mlp');
    expect(mlp).toMatchObject({ steps: 1461, samples: 1461 });
    expect(mlp.accuracy).toBeGreaterThanOrEqual(0.68);
    expect(summary(run.stderr, 'softmax').accuracy).toBeGreaterThanOrEqual(0.6);
    expect(run.stderr).toContain('read 1461 rows; rejected 0 rows');
  });

  it('co2: replays the monthly CSV by its dates and forecasts the change (rolling MAE < 0.55 ppm; persistence 1.12), the two rows without a previous change rejected', async () => {
    const started = performance.now();
    const run = await cli(['run', example('co2')]);
    expect(run.code, run.stderr).toBe(0);
    const s = summary(run.stderr, 'tanh8');
    expect(s).toMatchObject({ steps: 739, samples: 739 });
    expect(s.mae).toBeLessThan(0.55);
    expect(run.stderr).toContain('read 741 rows; rejected 2 rows (2 invalid samples)');
    expect(run.stderr).toMatch(/rejected line 2 \(SG_ERR_MISSING\): prev_change: missing/);
    expect(performance.now() - started).toBeGreaterThan(700); // 740 months at a month per millisecond
  });

  describe.skipIf(findMosquitto({ requiredInCi: true }) === null)('on a real Mosquitto broker', () => {
    const broker = mosquittoForThisFile();
    it('mqtt-sensors: two models race on one subscription of a real Mosquitto broker; each bad message is one dead letter, not one per model', async () => {
      const config = JSON.parse(readFileSync(example('mqtt-sensors'), 'utf8')) as { source: { mqtt: { url: string } } };
      config.source.mqtt.url = broker.url;
      const file = write('mqtt-sensors.json', config);
      const N = 1500;
      let publishing: Promise<void> | null = null;
      const run = await cli(['run', file, '--samples', String(N)], {
        onStderr(text) {
          if (publishing !== null || !text.includes('streaming MQTT')) return;
          publishing = (async () => {
            const client = await connectAsync(broker.url);
            const samples = michaelisMentenSamples({ seed: 5 });
            for (let i = 0; i < N; i++) {
              const [vmax, s, km] = samples.next().value!.x;
              const v = (vmax * s) / (km + s);
              // message 1 has no km and nothing to impute yet; every 100th is not JSON
              const payload = i === 0 ? JSON.stringify({ vmax, s, v }) : i % 100 === 50 ? '{"vmax":' : JSON.stringify({ vmax, s, km, v, sensor: `s${i % 3}` });
              await client.publishAsync(`lab/s${i % 3}/kinetics`, payload, { qos: 1 });
            }
            await client.endAsync();
          })();
        },
      });
      await publishing;
      expect(run.code, run.stderr).toBe(0);
      const bad = 1 + Math.floor((N - 50 + 99) / 100);
      for (const name of ['wide', 'deep']) {
        const s = summary(run.stderr, name);
        expect(s.samples, name).toBe(N - bad);
        expect(s.mae, name).toBeLessThan(0.15);
      }
      expect(run.stderr).toContain(`read ${N} messages; rejected ${bad} messages (${bad - 1} not JSON, 1 invalid sample)`);
      const letters = readFileSync(join(work, 'mqtt-rejected.ndjson'), 'utf8').trimEnd().split('\n').map((l) => JSON.parse(l) as DeadLetter);
      expect(letters).toHaveLength(bad);
      expect(letters[0]).toMatchObject({ code: 'SG_ERR_MISSING', field: 'km', messageId: 'lab/s0/kinetics#1' });
      expect(letters.slice(1).every((l) => l.code === 'SG_ERR_BAD_JSON')).toBe(true);
    });
  });

  it('--check validates every example and prints its plan without training', async () => {
    const names = readdirSync(EXAMPLES).filter((n) => n.endsWith('.json')).map((n) => n.slice(0, -5));
    expect(names.sort()).toEqual(['co2', 'delayed-labels', 'drifting-sensor', 'michaelis-menten-race', 'mqtt-sensors', 'perceptron-separable', 'seattle-weather', 'sine-drift', 'xor']);
    for (const name of names) {
      const planned = await planExperiment(example(name));
      expect(planned.ok ? [] : planned.problems, name).toEqual([]);
      if (planned.ok) expect(describePlan(planned.plan)).toMatch(/config OK\n$/);
    }
    const run = await cli(['run', example('michaelis-menten-race'), '--check']);
    expect(run.code, run.stderr).toBe(0);
    expect(run.stderr).toBe('');
    expect(run.stdout).toContain('wide: 3→70 relu→1 linear, 351 parameters');
    expect(run.stdout).toContain('deep: 3→16 relu→16 relu→1 linear, 353 parameters');
    expect(run.stdout).toContain('limit: 200000 samples');
    expect(run.stdout).toMatch(/server: 127\.0\.0\.1:8080/);
    // npm start's scene as a config: the sensor paced at 300 samples a second
    const scene = await cli(['run', example('drifting-sensor'), '--check']);
    expect(scene.code, scene.stderr).toBe(0);
    expect(scene.stdout).toMatch(/^source: simulated kinetics-drift stream \(seed 0, every 18000, km \[1,4,0\.5,8\]\) at 300 samples\/s, 2 inputs/m);
    expect(scene.stdout).toContain('wide: 2→84 relu→1 linear, 337 parameters');
  });
});

describe('streamgrad run: the config and the command line', () => {
  it('races several models on standard input: one reader fanned out, every model sees every line', async () => {
    const samples = Array.from({ length: 300 }, (_, i) => ({ x: [i / 300, 1 - i / 300], y: [i / 150] }));
    const input = `${samples.map((s) => JSON.stringify(s)).join('\n')}\nnot json\n`;
    const file = write('stdin.json', {
      source: { stdin: 'ndjson' },
      models: [
        { name: 'a', layers: '2,1:linear', optimizer: { type: 'sgd', lr: 0.05 } },
        { name: 'b', inputs: 2, layers: [{ units: 4, activation: 'tanh' }, { units: 1, activation: 'linear' }], optimizer: { type: 'adam', lr: 0.01 }, batch: 4 },
      ],
    });
    const run = await cli(['run', file], { stdin: input });
    expect(run.code, run.stderr).toBe(0);
    expect(summary(run.stderr, 'a')).toMatchObject({ steps: 300, samples: 300 });
    expect(summary(run.stderr, 'b')).toMatchObject({ steps: 75, samples: 300 });
    expect(run.stderr).toContain('read 301 lines; rejected 1 line (1 not JSON, 0 invalid samples)');
    expect(lines(run.stderr).filter((l) => l.includes('rejected line 301'))).toHaveLength(1); // once, not once per model
  });

  it('--steps stops each model after N steps; save writes each model with its preprocessing (issue 11: one artifact)', async () => {
    const file = write('steps.json', {
      source: { simulated: 'sine', seed: 2, normalize: true },
      models: [
        { name: 'one', layers: '1,8:tanh,1:linear', save: 'one.model.json', batch: 2 },
        { name: 'two', layers: '1,4:tanh,1:linear', save: 'two.model.json' },
      ],
    });
    const run = await cli(['run', file, '--steps', '250']);
    expect(run.code, run.stderr).toBe(0);
    expect(summary(run.stderr, 'one')).toMatchObject({ steps: 250, samples: 500 });
    expect(summary(run.stderr, 'two')).toMatchObject({ steps: 250, samples: 250 });
    expect(modelFromJSON(JSON.parse(readFileSync(join(work, 'one.model.json'), 'utf8'))).layers.map((l) => l.outputs)).toEqual([8, 1]);
    expect(JSON.parse(readFileSync(join(work, 'two.model.json'), 'utf8')).preprocessing).toMatchObject({ version: 1, features: null, normalizer: { x: { count: 250 }, y: null } });
    expect(existsSync(join(work, 'two.model.json.ingest.json'))).toBe(false);
    expect(run.stderr).toContain('one: saved one.model.json (with its normalisation statistics)');
  });

  it('checkpoints every model (runtime/checkpointing.ts) and --resume continues each from its own checkpoint: the same models, bit for bit, and every rejected line dead-lettered once', async () => {
    const rows = ['a,b,y'];
    for (let i = 0; i < 1200; i++) {
      const a = Math.sin(i * 1.7), b = Math.cos(i * 0.3);
      rows.push(i % 97 === 5 ? `${a},oops,1` : `${a.toFixed(4)},${b.toFixed(4)},${(2 * a - b + 0.5 * a * b).toFixed(4)}`);
    }
    const config = (dir: string) => ({
      source: { csv: write(`${dir}.csv`, `${rows.join('\n')}\n`), targets: ['y'], normalize: true, deadLetter: `${dir}.dead.ndjson` },
      models: [
        { name: 'one', layers: '2,8:tanh,1:linear', optimizer: { type: 'adam', lr: 0.01 }, batch: 3, save: `${dir}.one.json` },
        { name: 'two', layers: '2,1:linear', optimizer: { type: 'sgd', lr: 0.05 }, save: `${dir}.two.json` },
      ],
      checkpoints: { dir: `${dir}-checkpoints`, everySteps: 40 },
    });
    const [whole, cut] = await pool([() => cli(['run', write('whole.json', config('whole'))]), () => cli(['run', write('cut.json', config('cut')), '--steps', '150'])]);
    expect(whole.code, whole.stderr).toBe(0);
    expect(cut.code, cut.stderr).toBe(0);
    expect(summary(cut.stderr, 'one')).toMatchObject({ steps: 150, samples: 450 });
    expect(readdirSync(join(work, 'cut-checkpoints')).sort()).toEqual([
      'one-000000000080.sgck', 'one-000000000120.sgck', 'one-000000000150.sgck', 'two-000000000080.sgck', 'two-000000000120.sgck', 'two-000000000150.sgck',
    ]);
    const resumed = await cli(['run', 'cut.json', '--resume']);
    expect(resumed.code, resumed.stderr).toBe(0);
    expect(resumed.stderr).toMatch(/one: resuming from \S+one-000000000150\.sgck: step 150, 450 samples trained, 455 records read/);
    expect(resumed.stderr).toMatch(/two: resuming from \S+two-000000000150\.sgck: step 150, 150 samples trained, 152 records read/);
    for (const name of ['one', 'two']) expect(readFileSync(join(work, `cut.${name}.json`), 'utf8'), name).toBe(readFileSync(join(work, `whole.${name}.json`), 'utf8'));
    const letters = (file: string) => readFileSync(join(work, file), 'utf8').trimEnd().split('\n').map((l) => {
      const { time: _time, source: _source, ...letter } = JSON.parse(l) as DeadLetter;
      return letter;
    });
    expect(letters('cut.dead.ndjson')).toEqual(letters('whole.dead.ndjson'));
    expect(letters('whole.dead.ndjson')).toHaveLength(13);
    expect(resumed.stderr).toContain('read 1200 rows; rejected 13 rows (13 invalid samples)');
  });

  it('reports through cli/progress.ts: --log-json events on stdout (one error event for a bad config), --quiet keeps the summary', async () => {
    const [json, quiet, bad] = await pool([
      () => cli(['run', example('xor'), '--samples', '500', '--log-json']),
      () => cli(['run', example('xor'), '--samples', '500', '--quiet']),
      () => cli(['run', write('bad-json.json', { source: { simulated: 'xor' }, models: [{ layers: '2,1:relux' }], limit: {} }), '--log-json']),
    ]);
    expect(json.code, json.stderr).toBe(0);
    const events = lines(json.stdout).map((l) => JSON.parse(l) as { event: string; command?: string; models?: { model: string; steps?: number }[]; outcome?: string });
    expect(events[0]).toMatchObject({ event: 'start', command: 'run', models: [{ model: 'hidden' }, { model: 'linear' }] });
    expect(events.at(-1)).toMatchObject({ event: 'done', outcome: 'finished', models: [{ model: 'hidden', steps: 500 }, { model: 'linear', steps: 500 }] });
    expect(quiet.code).toBe(0);
    expect(quiet.stderr).not.toContain('streaming');
    expect(quiet.stderr).toMatch(/leader: hidden/);
    expect(bad.code).toBe(2);
    expect(lines(bad.stdout).map((l) => JSON.parse(l) as unknown)).toEqual([expect.objectContaining({ event: 'error', code: 'SG_ERR_CONFIG', message: 'bad-json.json: 2 problems, nothing started', exitCode: 2 })]);
    expect(lines(bad.stderr)).toHaveLength(2);
  });

  it('answers --help (and lists run in streamgrad --help)', async () => {
    const [help, runHelp] = await pool([() => cli(['--help']), () => cli(['run', '--help'])]);
    expect(help.stdout).toMatch(/^ {2}run {4}/m);
    expect(runHelp.code).toBe(0);
    for (const text of ['--check', '--dry-run', '--samples', '--steps', '--resume', '--port', 'separable', 'michaelis-menten']) expect(runHelp.stdout).toContain(text);
  });
});

describe('streamgrad run: a bad config exits 2 before anything starts, one line per problem naming its path', () => {
  it('rejects each bad config with its path and what is allowed', async () => {
    const withModel = (model: Record<string, unknown>) => ({ ...minimal, models: [{ ...minimal.models[0], ...model }] });
    const cases: [string, unknown, string[], string[]?][] = [
      ['activation.json', withModel({ layers: [{ units: 4, activation: 'relux' }, { units: 1, activation: 'sigmoid' }] }),
        ['models[0].layers[0].activation: unknown value "relux"; use linear, sigmoid, tanh, relu, leaky_relu, sign, softmax']],
      ['activation-spec.json', withModel({ layers: '2,4:relux,1:sigmoid' }),
        ['models[0].layers: layer 1 ("4:relux"): unknown activation "relux"; use linear, sigmoid, tanh, relu, leaky_relu, sign, softmax']],
      ['batch.json', withModel({ batch: 0 }), ['models[0].batch: must be an integer ≥ 1, got 0']],
      ['rate.json', withModel({ optimizer: { type: 'adam', lr: -0.1 } }), ['models[0].optimizer.lr: must be a finite number > 0, got -0.1']],
      ['no-source.json', { models: minimal.models }, ['source: required: where the samples come from: {"csv": FILE}, {"ndjson": FILE}, {"stdin": "ndjson"|"csv"}, {"mqtt": {"url": ..., "topics": ...}} or {"simulated": "michaelis-menten"|"xor"|"sine"|"spirals"|"blobs"|"concept-change"|"sea"|"sine-concepts"|"hyperplane"|"kinetics-drift"|"separable"}']],
      ['unknown-key.json', withModel({ optimzer: { type: 'sgd' } }), ['models[0].optimzer: unknown key (did you mean "optimizer"?); allowed here: name, layers, inputs, model, loss, optimizer, batch, seed, init, clipNorm, divergence, backend, save, drift']],
      ['types.json', { source: { simulated: 'xor', samples: '10', normalize: 'yes' }, models: { layers: '2,1:sigmoid' } },
        ['source.samples: must be an integer, got "10"', 'source.normalize: must be true or false, got "yes"', 'models: must be a list, got an object (the models to train, e.g. [{"layers": "2,8:tanh,1:sigmoid", "loss": "bce"}])']],
      ['syntax.json', '{\n  "source": { "simulated": "xor" },\n  "models": [ { "layers": "2,1:sigmoid" } ]\n  "limit": { "samples": 3 }\n}\n', ['syntax.json: not valid JSON: line 4, column 3: Expected \',\' or \'}\' after property value']],
      ['no-file.json', { source: { csv: 'nowhere.csv', targets: ['y'] }, models: [{ layers: '2,1:linear' }] }, [], ['source.csv: nowhere.csv: cannot read: ENOENT']],
      ['column.json', { source: { csv: write('cols.csv', 'a,b,y\n1,2,3\n'), features: ['a', 'c'], targets: ['y'] }, models: [{ layers: '2,1:linear' }] },
        ['source.features: no column "c" in cols.csv (it has a, b, y)']],
      ['shape.json', { ...minimal, models: [{ layers: '3,1:sigmoid', loss: 'bce' }] }, ['models[0].layers: takes 3 inputs → 1 output, but the source gives 2 inputs → 1 output']],
    ];
    const runs = await pool(cases.map(([name, doc]) => () => cli(['run', write(name, doc)])));
    cases.forEach(([name, , expected, prefixes = []], i) => {
      const { code, stdout, stderr } = runs[i];
      expect(code, `${name}: ${stderr}`).toBe(2);
      expect(stdout, name).toBe('');
      const got = lines(stderr);
      expect(got.every((l) => l.startsWith('streamgrad: ')), name).toBe(true);
      expect(got.length, `${name}:\n${stderr}`).toBe(expected.length + prefixes.length);
      expect(got.slice(0, expected.length).map((l) => l.slice('streamgrad: '.length)), name).toEqual(expected);
      prefixes.forEach((p, k) => expect(got[expected.length + k].slice('streamgrad: '.length), name).toMatch(new RegExp(`^${p.replace(/[.*+?^${}()|[\]\\]/g, '\\$&')}`)));
    });
  }, 180_000); // a CLI process per case: 28 s alone under load, over 60 s once at load 19


  it('reports every problem of a config with many, each on its own line, and trains nothing', async () => {
    const run = await cli(['run', write('many.json', {
      source: { simulated: 'spirals', turns: -1, colour: 'red' },
      models: [
        { name: 'a b', layers: [{ units: 0, activation: 'relu' }, { units: 2, activation: 'softmax' }], loss: 'cross_entropy', batch: { count: 0 }, optimizer: { type: 'adam', lr: 0, beta1: 1 } },
        { name: 'ok', layers: '2,2:softmax', loss: 'hinge', init: 'glorot', seed: -1, clipNorm: 0 },
      ],
      evaluation: { window: 0 },
      server: { port: 70000, token: '' },
      checkpoints: { dir: 'ckpt', keep: 0 },
      limit: {},
    }), '--resume']);
    expect(run.code, run.stderr).toBe(2);
    expect(run.stdout).toBe('');
    expect(lines(run.stderr).map((l) => l.replace(/^streamgrad: /, ''))).toEqual([
      'source.colour: unknown key; allowed here: simulated, seed, rate, samples, normalize, normalizeTarget, normalizeWarmup, normalizeClip, turns, noise, encoding',
      'source.turns: must be a finite number > 0, got -1',
      'models[0].name: must be 1 to 64 letters, digits, ".", "_" or "-", got "a b"',
      'models[0].layers[0].units: must be a positive integer, got 0',
      'models[0].optimizer.lr: must be a finite number > 0, got 0',
      'models[0].batch.count: must be an integer ≥ 1, got 0',
      'models[1].loss: unknown value "hinge"; use mse, bce, cross_entropy, perceptron',
      'models[1].seed: must be an integer ≥ 0, got -1',
      'models[1].init: unknown value "glorot"; use auto, pytorch, xavier, he, zeros',
      'models[1].clipNorm: must be a finite number > 0, got 0',
      'evaluation.window: must be an integer ≥ 1, got 0',
      'server.port: must be an integer in [0, 65535], got 70000',
      'server.token: must be 1 to 1024 characters',
      'checkpoints.keep: must be an integer ≥ 1, got 0',
      'limit: give samples, steps, trainedSamples or a mix',
    ]);
    expect(readdirSync(work)).not.toContain('ckpt');
  });

  it('puts the engine\'s own checks behind the schema: loss against layers, softmax placement, optimizer ranges, batch by time, generator ranges', () => {
    const problems = (doc: unknown) => {
      const parsed = parseExperiment(doc);
      return parsed.ok ? [] : parsed.problems.map((p) => `${p.path}: ${p.message}`);
    };
    expect(problems(minimal)).toEqual([]);
    expect(problems({ ...minimal, models: [{ layers: '2,1:linear', loss: 'bce' }] })).toEqual(['models[0].loss: bce needs a sigmoid output layer, the last layer is linear']);
    expect(problems({ ...minimal, models: [{ layers: [{ units: 3, activation: 'softmax' }, { units: 2, activation: 'softmax' }], inputs: 2, loss: 'cross_entropy' }] }))
      .toEqual(['models[0].layers[0].activation: softmax is only allowed on the last layer']);
    expect(problems({ ...minimal, models: [{ layers: '2,1:sigmoid', optimizer: { type: 'momentum', momentum: 1.5 } }] })).toEqual(['models[0].optimizer.momentum: must be in [0, 1), got 1.5']);
    expect(problems({ ...minimal, models: [{ layers: '2,1:sigmoid', optimizer: { type: 'sgd', beta2: 0.9 } }] })[0]).toMatch(/^models\[0\]\.optimizer\.beta2: unknown key; allowed here: type, lr$/);
    expect(problems({ ...minimal, models: [{ layers: '2,1:sigmoid', optimizer: { type: 'adamw' } }] })).toEqual(['models[0].optimizer.type: unknown value "adamw"; use sgd, momentum, adam, rmsprop, adagrad']);
    expect(problems({ ...minimal, models: [{ layers: '2,1:sigmoid', batch: { timeMs: -1 } }] })).toEqual(['models[0].batch.timeMs: must be a number of milliseconds > 0, got -1']);
    expect(problems({ ...minimal, models: [{ layers: '2,1:sigmoid', batch: {} }] })).toEqual(['models[0].batch: give a count, a timeMs, or both']);
    expect(problems({ ...minimal, models: [{ layers: '2,1:sigmoid', model: 'm.json' }] })).toEqual(['models[0].model: give either layers (a fresh network) or model (a model file), not both']);
    expect(problems({ ...minimal, models: [{ loss: 'bce' }] })).toEqual(['models[0].layers: required (or "model": a model file to start from)']);
    expect(problems({ source: { simulated: 'xro' }, models: minimal.models })).toEqual(['source.simulated: unknown value "xro"; use michaelis-menten, xor, sine, spirals, blobs, concept-change, sea, sine-concepts, hyperplane, kinetics-drift, separable']);
    expect(problems({ source: { simulated: 'michaelis-menten', vmax: [2, 1] }, models: minimal.models })).toEqual(['source.vmax: must be a range [lo, hi] with 0 ≤ lo ≤ hi, got [2, 1]']);
    expect(problems({ source: { csv: 'a.csv', ndjson: 'b' }, models: minimal.models })).toEqual(['source: give only one of csv, ndjson']);
    expect(problems({ source: { csv: 'a.csv', feature: ['x'] }, models: minimal.models })).toEqual([
      'source.feature: unknown key (did you mean "features"?); allowed here: csv, delimiter, replay, maxLineBytes, features, targets, classes, missing, deadLetter, normalize, normalizeTarget, normalizeWarmup, normalizeClip',
      'source.targets: required for CSV data: the column(s) to predict',
    ]);
    // the normaliser's settings: only with normalize, a warm-up of at least 2 samples, a clip > 0 or "none"
    expect(problems({ source: { simulated: 'xor', normalizeWarmup: 5, normalizeClip: 3 }, models: minimal.models })).toEqual([
      'source.normalizeWarmup: only applies with normalize or normalizeTarget',
      'source.normalizeClip: only applies with normalize or normalizeTarget',
    ]);
    expect(problems({ source: { csv: 'a.csv', targets: ['y'], normalize: true, normalizeWarmup: 1, normalizeClip: 0 }, models: minimal.models })).toEqual([
      'source.normalizeWarmup: must be an integer ≥ 2, got 1',
      expect.stringMatching(/^source\.normalizeClip: /),
    ]);
    expect(problems({ source: { csv: 'a.csv', targets: ['y'], normalizeTarget: true, normalizeWarmup: 20, normalizeClip: 'none' }, models: minimal.models })).toEqual([]);
    expect(problems({ source: { simulated: 'michaelis-menten', kmShift: { at: -1, by: 2 } }, models: minimal.models })).toEqual(['source.kmShift.at: must be an integer ≥ 0, got -1']);
    expect(problems({ source: { ndjson: 'a', features: ['x', 'x'], targets: ['y'], missing: { z: 'avg' } }, models: minimal.models })).toEqual([
      'source.features[1]: "x" is listed twice',
      'source.missing.z: unknown value "avg"; use reject, mean, last',
    ]);
    expect(problems({ source: { ndjson: 'a', features: ['x'], targets: ['y'], missing: { z: 'mean' } }, models: minimal.models })).toEqual(['source.missing.z: is not a feature']);
    expect(problems({ source: { mqtt: { url: 'http://h', topics: [], overflow: 'spill', qos: 3, clientId: 'two words' } }, models: minimal.models })).toEqual([
      'source.mqtt.url: must be a broker URL such as mqtt://127.0.0.1:1883, got "http://h"',
      'source.mqtt.topics: must list at least 1 item',
      'source.mqtt.overflow: unknown value "spill"; use drop-oldest, drop-newest, error, block',
      'source.mqtt.qos: must be one of 0, 1, 2, got 3',
      'source.mqtt.clientId: must be 1 to 128 printable ASCII characters without spaces, got "two words"',
    ]);
    expect(problems({ ...minimal, server: { port: 0, allowedOrigins: [''] } })).toEqual(['server.allowedOrigins: must be a list of origins like "https://app.example.com"']);
    expect(problems([])).toEqual(['(the config): must be an object, got a list']);
  });

  it('checks the config against the world: model shapes, names, input sizes, model files, --resume and --port without their sections', async () => {
    const problems = async (doc: unknown, overrides = {}) => {
      const planned = await planExperiment(write('world.json', doc), overrides);
      return planned.ok ? [] : planned.problems.map((p) => `${p.path}: ${p.message}`);
    };
    const cwd = process.cwd();
    process.chdir(work);
    try {
      expect(await problems({ ...minimal, models: [{ name: 'm', layers: '2,1:sigmoid', loss: 'bce' }, { name: 'm', layers: '2,2:softmax', loss: 'cross_entropy' }] })).toEqual([
        'models[1].name: "m" is the name of models[0] too: each model needs its own (it names its run and checkpoints)',
        'models[1].layers: takes 2 inputs → 2 outputs, but the source gives 2 inputs → 1 output',
      ]);
      expect(await problems({ source: { ndjson: write('p.ndjson', '') }, models: [{ layers: [{ units: 1, activation: 'linear' }] }] }))
        .toEqual(['models[0].inputs: required: the source gives positional {"x": [...], "y": [...]} samples, so the input size is not known (or name the features)']);
      expect(await problems({ source: { ndjson: 'p.ndjson' }, models: [{ layers: '2,1:linear' }, { layers: '3,1:linear' }] }))
        .toEqual(['models[1].layers: takes 3 inputs → 1 output, but models[0] takes 2 inputs → 1 output: models racing on one stream take the same samples']);
      expect((await problems({ ...minimal, models: [{ model: 'missing.model.json', loss: 'bce' }] }))[0]).toMatch(/^models\[0\]\.model: missing\.model\.json: cannot read: ENOENT/);
      const linear = { format: 'streamgrad/model@1', inputSize: 2, layers: [{ activation: 'linear', weights: [[0.5, -0.5]], bias: [0] }] };
      expect(await problems({ ...minimal, models: [{ model: write('linear.model.json', linear), loss: 'bce' }] }))
        .toEqual(['models[0].loss: bce needs a sigmoid output layer, the last layer is linear (of linear.model.json)']);
      expect(await problems({ ...minimal, models: [{ model: 'linear.model.json' }] })).toEqual([]);
      expect(await problems({ ...minimal, models: [{ layers: '2,1:sigmoid', save: 'no/such/dir/m.json' }] })).toEqual([expect.stringMatching(/^models\[0\]\.save: no\/such\/dir\/m\.json: cannot write: ENOENT/)]);
      expect(await problems(minimal, { resume: true, port: 0 })).toEqual(['--resume: the config has no "checkpoints" section to resume from', '--port: the config has no "server" section']);
      // with features named, the input size comes from them
      const planned = await planExperiment(write('named.json', { source: { ndjson: 'p.ndjson', features: ['a', 'b', 'c'], targets: ['y'] }, models: [{ layers: [{ units: 1, activation: 'linear' }] }] }));
      expect(planned.ok && planned.plan.models[0].topology.inputSize).toBe(3);
    } finally {
      process.chdir(cwd);
    }
  });
});
