import { existsSync, mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join, relative } from 'node:path';
import { afterAll, describe, expect, it } from 'vitest';
import { optionMessage } from '../cli/config-flags.ts';
import { DEFAULT_PENDING_CAPACITY } from '../core/label-join.ts';
import { parseTrainArgs } from '../cli/train-command.ts';
import { TRAIN_OPTION_PATHS, type TrainSettings, trainExperiment } from '../cli/train-config.ts';
import { type CountersAtStart, trainSummary } from '../cli/train-summary.ts';
import { checkExperiment, parseExperiment, runExperiment } from '../runtime/index.ts';
import { pool, runCli } from './helpers/cli.ts';

/**
 * `trainExperiment`: `streamgrad train`'s options compiled into the experiment config the
 * runtime runs (issue #16: every command compiles its flags into that config). Pure; the
 * last tests hold it to what `train` itself does: the same model, bit for bit, and the same
 * words for a bad value.
 */
const work = mkdtempSync(join(tmpdir(), 'streamgrad-train-config-'));
afterAll(() => rmSync(work, { recursive: true, force: true }));

const settingsOf = (args: string[]): TrainSettings => {
  const settings = parseTrainArgs(args);
  if (settings === 'help') throw new Error('help');
  return settings;
};
const compile = (args: string[]) => trainExperiment(settingsOf(args));

describe('trainExperiment (flags → config)', () => {
  it('a CSV file, a fresh network and every training option: one model named train, paths as typed', () => {
    const { config, overrides } = compile([
      '--data', 'data/weather.csv', '--targets', 'load', '--features', 'temp,wind', '--missing', 'wind=mean', '--dead-letter', 'bad.ndjson',
      '--normalize', '--normalize-target', '--normalize-warmup', '20', '--normalize-clip', 'none', '--max-line-bytes', '4096',
      '--layers', '2,8:relu,1:linear', '--seed', '7', '--init', 'he', '--optimizer', 'adam', '--lr', '0.003', '--beta1', '0.8',
      '--batch', '16', '--window', '200', '--clip-norm', '5', '--backend', 'js', '--samples', '5000', '--save', 'out/model.json',
      '--predictions', 'preds.ndjson', '--max-consecutive-skips', '4', '--checkpoint-dir', 'ck', '--checkpoint-every', '100', '--checkpoint-keep', '2', '--resume',
    ]);
    expect(config).toEqual({
      source: { csv: 'data/weather.csv', features: ['temp', 'wind'], targets: ['load'], missing: { wind: 'mean' }, deadLetter: 'bad.ndjson', normalize: true, normalizeTarget: true, normalizeWarmup: 20, normalizeClip: 'none', maxLineBytes: 4096 },
      models: [{
        name: 'train', inputs: 2, layers: [{ units: 8, activation: 'relu' }, { units: 1, activation: 'linear' }], seed: 7, init: 'he',
        loss: 'mse', optimizer: { type: 'adam', lr: 0.003, beta1: 0.8 }, batch: 16, clipNorm: 5, divergence: { maxConsecutiveSkips: 4 }, backend: 'js', save: 'out/model.json',
      }],
      evaluation: { window: 200, predictions: 'preds.ndjson' },
      checkpoints: { dir: 'ck', keep: 2, everySteps: 100, maxFailures: 3 },
      limit: { trainedSamples: 5000 },
    });
    expect(overrides).toEqual({ resume: true });
    expect(parseExperiment(config)).toMatchObject({ ok: true });
  });

  it('standard input, a saved model to start from, a classifier with drift detection, serving', () => {
    const { config, overrides } = compile([
      '--data', '-', '--features', 'a,b', '--targets', 'kind', '--classes', 'x,y', '--model', 'm.json', '--loss', 'cross_entropy',
      '--drift-detector', 'adwin', '--drift-reaction', 'boost-lr', '--serve', '0', '--token', 'tok',
    ]);
    expect(config.source).toEqual({ stdin: 'ndjson', features: ['a', 'b'], targets: ['kind'], classes: ['x', 'y'] });
    expect(config.models).toEqual([{ name: 'train', model: 'm.json', loss: 'cross_entropy', optimizer: { type: 'sgd', lr: 0.01 }, batch: 1, drift: settingsOf(['--data', '-', '--layers', '1,2:softmax', '--loss', 'cross_entropy', '--drift-detector', 'adwin', '--drift-reaction', 'boost-lr']).drift }]);
    expect(config.models[0].drift).toMatchObject({ detector: { kind: 'adwin' }, reaction: { kind: 'boost-lr' } });
    expect(config.evaluation).toEqual({ window: 1000 });
    expect(overrides).toEqual({ serve: { port: 0, token: 'tok', keepServing: true, sessionToken: false } });
    expect(parseExperiment(config)).toMatchObject({ ok: true });
  });

  it('MQTT with delayed labels on a topic: the subscription, the queue and the join', () => {
    const { config } = compile([
      '--mqtt', 'mqtt://127.0.0.1:1883', '--topic', 'plant/+/features', '--queue', '64', '--overflow', 'drop-newest', '--mqtt-client-id', 'me',
      '--features', 'a', '--targets', 'y', '--labels-topic', 'plant/+/labels', '--id-field', 'id', '--label-timeout', '50', '--label-expired', 'default', '--label-default', '{"y":[0]}',
      '--layers', '1,1:linear',
    ]);
    expect(config.source).toEqual({ mqtt: { url: 'mqtt://127.0.0.1:1883', topics: ['plant/+/features'], queue: 64, overflow: 'drop-newest', clientId: 'me' }, features: ['a'], targets: ['y'] });
    expect(config.labels).toEqual({ idField: 'id', topics: ['plant/+/labels'], capacity: DEFAULT_PENDING_CAPACITY, hold: DEFAULT_PENDING_CAPACITY, timeoutSamples: 50, expired: 'default', default: { y: [0] } });
    expect(parseExperiment(config)).toMatchObject({ ok: true });
  });

  it('a labels file beside an NDJSON file; --format csv for a file of another extension', () => {
    const labelled = compile(['--data', 'f.ndjson', '--features', 'a', '--targets', 'y', '--labels', 'l.csv', '--id-field', 'id', '--time-field', 't', '--label-timeout-seconds', '2.5', '--layers', '1,1:linear']);
    expect(labelled.config.labels).toEqual({ idField: 'id', csv: 'l.csv', timeField: 't', capacity: DEFAULT_PENDING_CAPACITY, hold: DEFAULT_PENDING_CAPACITY, timeoutSeconds: 2.5, expired: 'dead-letter' });
    expect(compile(['--data', 'f.txt', '--format', 'csv', '--targets', 'y', '--layers', '1,1:linear']).config.source).toEqual({ csv: 'f.txt', targets: ['y'] });
  });

  it('a value the runtime refuses is told as the option typed, word for word as train says it', async () => {
    writeFileSync(join(work, 'one.ndjson'), '{"a": 1, "y": 2}\n');
    const base = ['--data', 'one.ndjson', '--features', 'a', '--targets', 'y', '--layers', '1,2:tanh,1:linear'];
    const bad = [['--lr', '-1'], ['--optimizer', 'momentum', '--momentum', '2'], ['--optimizer', 'adam', '--beta1', '1.5'], ['--clip-norm', '0'], ['--max-skip-rate', '2'], ['--window', '5', '--checkpoint-dir', 'ck', '--checkpoint-keep', '1']];
    const said = await pool(bad.map((extra) => () => runCli(work, ['train', ...base, ...extra])));
    for (const [i, extra] of bad.entries()) {
      const { config, overrides } = compile([...base, ...extra]);
      const planned = await checkExperiment(config, { baseDir: work, ...overrides });
      if (planned.ok) {
        expect(said[i].code, `${extra.join(' ')}: train refuses it, the runtime takes it\n${said[i].stderr}`).toBe(0);
        continue;
      }
      expect(said[i].code, extra.join(' ')).toBe(2);
      expect(`streamgrad: ${optionMessage(planned.problems[0], TRAIN_OPTION_PATHS)}\n`).toBe(said[i].stderr.split('\n').filter((l) => l.startsWith('streamgrad:')).join('\n') + '\n');
    }
  }, 120_000);
});

describe('the compiled config runs as train does', () => {
  it('--serve without a token: the live view is read-only, as train\'s (no token is made for the session)', async () => {
    const dir = mkdtempSync(join(work, 'serve-'));
    writeFileSync(join(dir, 'd.ndjson'), lines(50));
    const { config, overrides } = compile(['--data', 'd.ndjson', '--features', 'a,b', '--targets', 'y', '--layers', '2,1:linear', '--serve', '0']);
    const notices: string[] = [];
    const saved = process.env.STREAMGRAD_TOKEN;
    delete process.env.STREAMGRAD_TOKEN;
    try {
      const result = await runExperiment(config, { baseDir: dir, ...overrides, serve: { ...overrides.serve!, keepServing: false }, hooks: { notice: (l) => notices.push(l) } });
      expect(result.failed).toBe(false);
    } finally {
      if (saved !== undefined) process.env.STREAMGRAD_TOKEN = saved;
    }
    expect(notices.join('\n')).toMatch(/read-only: no --token or STREAMGRAD_TOKEN/);
    expect(notices.join('\n')).not.toMatch(/control token for this session/);
  }, 60_000);

  const lines = (n: number) => Array.from({ length: n }, (_, i) => {
    const a = Math.sin(i * 0.37), b = Math.cos(i * 0.11);
    return i % 97 === 13 ? '{"a": "oops", "b": 1, "y": 0}' : JSON.stringify({ a, b, y: 3 * a - 2 * b + 0.5 });
  }).join('\n') + '\n';

  const cases: Record<string, string[]> = {
    'NDJSON, adam, batch 8, normalised, a sample limit': ['--data', 'd.ndjson', '--features', 'a,b', '--targets', 'y', '--normalize', '--normalize-target', '--layers', '2,8:tanh,1:linear', '--seed', '3', '--optimizer', 'adam', '--lr', '0.01', '--batch', '8', '--samples', '700'],
    'CSV, momentum, clipping, the js kernels': ['--data', 'd.csv', '--targets', 'y', '--layers', '2,4:relu,1:linear', '--init', 'he', '--optimizer', 'momentum', '--lr', '0.02', '--clip-norm', '1', '--backend', 'js'],
  };

  it.each(Object.entries(cases))('%s: the same saved model, bit for bit, and the same counts', async (_name, args) => {
    const dir = mkdtempSync(join(work, 'same-'));
    writeFileSync(join(dir, 'd.ndjson'), lines(1000));
    writeFileSync(join(dir, 'd.csv'), `a,b,y\n${lines(1000).trim().split('\n').map((l) => { try { const r = JSON.parse(l) as Record<string, unknown>; return [r.a, r.b, r.y].join(','); } catch { return 'x,1,0'; } }).join('\n')}\n`);
    const trained = await runCli(dir, ['train', ...args, '--save', 'by-train.json']);
    expect(trained.code, trained.stderr).toBe(0);
    const { config, overrides } = compile([...args, '--save', 'by-runtime.json']);
    const result = await runExperiment(config, { baseDir: dir, ...overrides });
    expect(result.failed).toBe(false);
    const byTrain = JSON.parse(readFileSync(join(dir, 'by-train.json'), 'utf8')) as unknown;
    const byRuntime = JSON.parse(readFileSync(join(dir, 'by-runtime.json'), 'utf8')) as unknown;
    expect(byRuntime).toEqual(byTrain);
    const [model] = result.models;
    expect(trained.stderr).toContain(`trained ${model.trainer.counters.samples} samples in `);
    expect(trained.stderr).toContain(`whole stream, ${model.cumulative.count} samples`);
  }, 120_000);

  const resumed: Record<string, string[]> = {
    'NDJSON, normalised, batch 4': ['--data', 'd.ndjson', '--features', 'a,b', '--targets', 'y', '--normalize', '--layers', '2,6:tanh,1:linear', '--seed', '5', '--optimizer', 'adam', '--lr', '0.01', '--batch', '4'],
    'CSV without --features (the header\'s columns: null in train\'s checkpoints)': ['--data', 'd.csv', '--targets', 'y', '--layers', '2,4:tanh,1:linear', '--seed', '6', '--dead-letter', 'bad.ndjson'],
  };

  it.each(Object.entries(resumed))('%s: a checkpoint train wrote resumes under the runtime, and the model ends bit for bit as an uninterrupted train\'s', async (_name, args) => {
    const dir = mkdtempSync(join(work, 'resume-'));
    writeFileSync(join(dir, 'd.ndjson'), lines(1000));
    writeFileSync(join(dir, 'd.csv'), `a,b,y\n${lines(1000).trim().split('\n').map((l) => { try { const r = JSON.parse(l) as Record<string, unknown>; return [r.a, r.b, r.y].join(','); } catch { return 'x,1,0'; } }).join('\n')}\n`);
    const [whole, first] = await Promise.all([
      runCli(dir, ['train', ...args.map((a) => (a === 'bad.ndjson' ? 'bad-whole.ndjson' : a)), '--save', 'whole.json']),
      runCli(dir, ['train', ...args, '--checkpoint-dir', 'ck', '--samples', '400']),
    ]);
    expect(whole.code, whole.stderr).toBe(0);
    expect(first.code, first.stderr).toBe(0);
    const { config, overrides } = compile([...args, '--checkpoint-dir', 'ck', '--resume', '--save', 'resumed.json']);
    const notices: string[] = [];
    const result = await runExperiment(config, { baseDir: dir, ...overrides, hooks: { notice: (l) => notices.push(l) } });
    expect(result.failed, notices.join('\n')).toBe(false);
    expect(notices.join('\n')).toMatch(/^train: resuming from .*train-\d+\.sgck: step \d+, 400 samples trained/m);
    expect(JSON.parse(readFileSync(join(dir, 'resumed.json'), 'utf8'))).toEqual(JSON.parse(readFileSync(join(dir, 'whole.json'), 'utf8')));
    // the dead letters go on after the checkpoint's: each once (their times differ, and the runtime names the file relative to this process's folder)
    const letters = (file: string) => readFileSync(join(dir, file), 'utf8').trim().split('\n').map((l) => { const { code, line, raw } = JSON.parse(l) as Record<string, unknown>; return { code, line, raw }; });
    if (args.includes('bad.ndjson')) expect(letters('bad.ndjson')).toEqual(letters('bad-whole.ndjson'));
    // other data is still refused
    const other = compile([...args.map((a) => (a === 'y' ? 'b' : a === 'a,b' ? 'a,y' : a)), '--checkpoint-dir', 'ck', '--resume']);
    await expect(runExperiment(other.config, { baseDir: dir, ...other.overrides })).rejects.toThrow(/it was written for other data/);
  }, 120_000);

  /** train's closing lines (from the first `trained` line), timings and rates masked. */
  const closing = (stderr: string) => {
    const all = stderr.split('\n').filter((l) => l.startsWith('streamgrad: ')).map((l) => l.slice('streamgrad: '.length));
    const from = all.findIndex((l) => /^(interrupted after|trained \d)/.test(l));
    return all.slice(from).filter((l) => !l.startsWith('training failed') && !/\(SG_ERR_DIVERGED\)/.test(l)).map(masked);
  };
  const masked = (line: string) => line.replace(/ in [\d.]+ (ms|s|min), [^ ]+ samples\/s/, ' in T, R samples/s');

  const summaries: Record<string, { args: string[]; code: number }> = {
    'NDJSON with bad lines, an unknown field, a normalised target, dead letters, predictions, a sample limit': {
      args: ['--data', 'mixed.ndjson', '--features', 'a,b', '--targets', 'y', '--normalize-target', '--layers', '2,6:tanh,1:linear', '--batch', '4', '--samples', '600', '--dead-letter', 'bad.ndjson', '--predictions', 'p.ndjson', '--save', 'm.json'],
      code: 0,
    },
    'CSV rows, imputed values, clipping': {
      args: ['--data', 'd.csv', '--targets', 'y', '--features', 'a,b', '--missing', 'mean', '--layers', '2,4:relu,1:linear', '--clip-norm', '0.5', '--save', 'm.json'],
      code: 0,
    },
    'a diverged model: kept beside --save, exit 1': {
      args: ['--data', 'big.ndjson', '--features', 'a,b', '--targets', 'y', '--layers', '2,64:relu,64:relu,1:linear', '--lr', '10', '--save', 'm.json'],
      code: 1,
    },
  };

  it.each(Object.entries(summaries))('%s: trainSummary renders the runtime\'s result in train\'s closing lines, word for word', async (_name, { args, code }) => {
    const dir = mkdtempSync(join(work, 'summary-'));
    const mixed = lines(1000).trim().split('\n').map((l, i) => (i === 20 ? '{not json' : i % 50 === 7 ? l.replace('}', ', "extra": 1}') : l));
    writeFileSync(join(dir, 'mixed.ndjson'), `${mixed.join('\n')}\n`);
    writeFileSync(join(dir, 'big.ndjson'), `${Array.from({ length: 500 }, (_, i) => JSON.stringify({ a: Math.sin(i) * 1e4, b: Math.cos(i) * 1e4, y: 1e12 * Math.sin(i) })).join('\n')}\n`);
    writeFileSync(join(dir, 'd.csv'), `a,b,y\n${lines(1000).trim().split('\n').map((l, i) => { try { const r = JSON.parse(l) as Record<string, unknown>; return [i % 40 === 3 ? '' : r.a, r.b, r.y].join(','); } catch { return 'x,1,0'; } }).join('\n')}\n`);
    const trained = await runCli(dir, ['train', ...args]);
    expect(trained.code, trained.stderr).toBe(code);
    // the runtime's run writes its own files, beside
    const renamed = args.map((a) => (a === 'bad.ndjson' || a === 'p.ndjson' || a === 'm.json' ? `rt-${a}` : a));
    const settings = settingsOf(renamed);
    const { config, overrides } = trainExperiment(settings);
    let before: CountersAtStart | null = null;
    const result = await runExperiment(config, { baseDir: dir, ...overrides, hooks: { started: ({ models }) => { before = { ...models[0].trainer.counters }; } } });
    expect(result.failed).toBe(code !== 0);
    const rendered = trainSummary(result, settings, before!, { interrupted: false }).map(masked);
    // the runtime names files relative to the working folder (train's, in the command line); here that is this process's
    const here = `${relative(process.cwd(), dir)}/`;
    expect(rendered.map((l) => l.replaceAll(here, '').replaceAll('rt-', ''))).toEqual(closing(trained.stderr));
    if (code !== 0) expect(existsSync(join(dir, 'rt-m.json.diverged.json'))).toBe(true);
  }, 120_000);
});
