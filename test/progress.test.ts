import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { PassThrough } from 'node:stream';
import { afterAll, afterEach, beforeEach, describe, expect, it, vi } from 'vitest';
import { CliError } from '../cli/cli-error.ts';
import { byteMeter, openData } from '../runtime/ndjson.ts';
import { parseOptions } from '../cli/options.ts';
import {
  createProgress,
  type EventSink,
  type ModelInfo,
  parseProgressOptions,
  PROGRESS_SPEC,
  type ProgressOptions,
  type ProgressSettings,
  type SourceInfo,
  type Terminal,
} from '../cli/progress.ts';
import type { RollingMetrics } from '../core/evaluation.ts';
import { selectKernels } from '../core/backend.ts';
import { StreamgradError } from '../core/errors.ts';
import { initialize } from '../core/init.ts';
import { createModel } from '../core/model.ts';
import { TrainingRun } from '../pipeline/run.ts';
import type { StepResult } from '../pipeline/train.ts';
import { createTrainer, type Trainer } from '../core/trainer.ts';
import { ndjsonRecords } from '../sources/ndjson.ts';
import { screen } from './helpers/terminal.ts';

/**
 * The progress reporter against fake terminals: a stream with `isTTY` and `columns` is the
 * terminal's whole interface, so the tests hand it one that records every write, and read
 * the result back through `screen`, a small model of what a terminal shows after those
 * writes (carriage return, newline, cursor up, clear to the end of the screen, colours).
 */

class FakeTerminal implements Terminal {
  readonly writes: string[] = [];
  constructor(readonly isTTY: boolean, readonly columns?: number) {}
  write(text: string): boolean {
    this.writes.push(text);
    return true;
  }
  get text(): string {
    return this.writes.join('');
  }
}

class FakeStdout implements EventSink {
  readonly writes: string[] = [];
  private onError: ((error: Error) => void) | null = null;
  broken = false;
  write(text: string): boolean {
    if (this.broken) {
      this.onError?.(Object.assign(new Error('write EPIPE'), { code: 'EPIPE' }));
      return false;
    }
    this.writes.push(text);
    return true;
  }
  on(_event: 'error', listener: (error: Error) => void): this {
    this.onError = listener;
    return this;
  }
  /** Every line, parsed: each must be one JSON object. */
  events(): Record<string, unknown>[] {
    const text = this.writes.join('');
    if (text === '') return [];
    expect(text.endsWith('\n')).toBe(true);
    return text.slice(0, -1).split('\n').map((line) => JSON.parse(line) as Record<string, unknown>);
  }
}

const ESC = '\x1b';
const COLOUR = /\x1b\[\d*m/;

function trainer(loss: 'mse' | 'cross_entropy' = 'mse'): Trainer {
  const layers = loss === 'mse'
    ? [{ units: 4, activation: 'relu' as const }, { units: 1, activation: 'linear' as const }]
    : [{ units: 4, activation: 'relu' as const }, { units: 3, activation: 'softmax' as const }];
  const kernels = selectKernels('js');
  const model = initialize(createModel({ inputSize: 2, layers }, kernels), 'auto', 1);
  return createTrainer({ model, loss, optimizer: { type: 'sgd', learningRate: 0.01 }, kernels });
}

function metrics(loss: number, extra: Partial<RollingMetrics> = {}): RollingMetrics {
  return { window: 1000, count: 100, loss, mae: loss / 2, ...extra };
}

/** A step result as `train` emits it; the reporter keeps its metrics, counters come from the trainer. */
function result(t: Trainer, m: RollingMetrics): StepResult {
  return {
    step: t.counters.steps, size: 1, loss: m.loss, gradNorm: 1, clipped: false, updated: true, skipped: null,
    learningRate: 0.01, metrics: m, samplesPerSecond: NaN, counters: { ...t.counters },
  };
}

/** Pretends `n` more samples were trained, one per step. */
function advance(t: Trainer, n: number): void {
  t.counters.samples += n;
  t.counters.steps += n;
}

interface Harness {
  readonly stderr: FakeTerminal;
  readonly stdout: FakeStdout;
  readonly progress: ReturnType<typeof createProgress>;
}

function harness(settings: Partial<ProgressSettings>, o: { tty?: boolean; columns?: number; env?: Record<string, string>; options?: Partial<ProgressOptions> } = {}): Harness {
  const stderr = new FakeTerminal(o.tty ?? true, o.columns ?? 100);
  const stdout = new FakeStdout();
  const progress = createProgress({ quiet: false, json: false, ...settings }, {
    command: 'test', stderr, stdout, env: o.env ?? {}, clock: () => Date.now(), now: () => Date.now(), ...o.options,
  });
  return { stderr, stdout, progress };
}

beforeEach(() => {
  vi.useFakeTimers({ now: new Date('2026-01-02T03:04:05Z') });
});
afterEach(() => {
  vi.useRealTimers();
});

describe('parseProgressOptions', () => {
  const parse = (...args: string[]) => parseProgressOptions(parseOptions(args, PROGRESS_SPEC, 'streamgrad test'));

  it('reads --quiet (-q), --log-json and --status-interval in seconds', () => {
    expect(parse()).toEqual({ quiet: false, json: false });
    expect(parse('-q', '--log-json', '--status-interval', '2.5')).toEqual({ quiet: true, json: true, intervalMs: 2500 });
    expect(parse('--quiet')).toEqual({ quiet: true, json: false });
  });

  it('refuses a status interval under 0.1 s, naming the option', () => {
    for (const bad of ['0', '-1', '0.05']) expect(() => parse('--status-interval', bad), bad).toThrow(/^--status-interval: must be a number of seconds ≥ 0\.1/);
    expect(() => parse('--status-interval', 'soon')).toThrow(/^--status-interval: must be a finite number/);
  });
});

describe('the display follows the terminal and the options', () => {
  it('is live on a terminal, plain lines elsewhere or on a dumb terminal, and none with --quiet or --log-json', () => {
    expect(harness({}).progress.display).toBe('live');
    expect(harness({}, { tty: false }).progress.display).toBe('lines');
    expect(harness({}, { env: { TERM: 'dumb' } }).progress.display).toBe('lines');
    expect(harness({ quiet: true }).progress.display).toBe('none');
    expect(harness({ json: true }).progress.display).toBe('none');
  });
});

describe('on a terminal, a finite source: the progress bar', () => {
  const source: SourceInfo = { name: 'sim', samples: 1000 };

  it('shows percent, the bar, samples done of the total, samples/s, ETA and the rolling loss', () => {
    const t = trainer();
    const { stderr, progress } = harness({});
    progress.start({ models: [{ name: 'm', trainer: t }], source });
    advance(t, 250);
    progress.update('m', result(t, metrics(0.0123)));
    vi.advanceTimersByTime(2000);
    const [bar] = screen(stderr.text);
    // 25% in 2 s: 6 s to go; 250 samples over the last second's window
    expect(bar).toMatch(/^ 25% \[█+░+\] {2}250\/1000 samples {2}\d+(\.\d+)?k? samples\/s {2}ETA 0:06 {2}mse 0\.0123$/);
    expect(bar.length).toBeLessThan(100);
    progress.finish();
  });

  it('shows the rolling accuracy of a classifier', () => {
    const t = trainer('cross_entropy');
    const { stderr, progress } = harness({}, { columns: 140 });
    progress.start({ models: [{ name: 'm', trainer: t }], source });
    advance(t, 500);
    progress.update('m', result(t, metrics(0.31, { accuracy: 0.912 })));
    vi.advanceTimersByTime(1000);
    expect(screen(stderr.text)[0]).toMatch(/ 50% .*cross_entropy 0\.31 {2}acc 91\.2%$/);
    progress.finish();
  });

  it('draws one line per model, named, when several train', () => {
    const a = trainer();
    const b = trainer();
    const { stderr, progress } = harness({});
    progress.start({ models: [{ name: 'wide', trainer: a }, { name: 'deep', trainer: b }], source: { name: 'sim', steps: 100 } });
    advance(a, 40);
    advance(b, 20);
    progress.update('wide', result(a, metrics(0.5)));
    progress.update('deep', result(b, metrics(0.25)));
    vi.advanceTimersByTime(1000);
    const lines = screen(stderr.text);
    expect(lines).toHaveLength(2);
    expect(lines[0]).toMatch(/^wide {3}40% \[.*40\/100 steps .*mse 0\.5$/);
    expect(lines[1]).toMatch(/^deep {3}20% \[.*20\/100 steps .*mse 0\.25$/);
    progress.finish();
  });

  it('measures a file in bytes read of its size, and counts its rows', () => {
    const t = trainer();
    const meter = { bytesRead: 0, totalBytes: 4 * 1024 * 1024 };
    let rows = 0;
    const { stderr, progress } = harness({});
    progress.start({ models: [{ name: 'train', trainer: t }], source: { name: 'big.ndjson', meter, rows: () => rows } });
    meter.bytesRead = 1024 * 1024;
    rows = 9000;
    advance(t, 8990);
    vi.advanceTimersByTime(1000);
    expect(screen(stderr.text)[0]).toMatch(/^ 25% \[.*\] {2}1\.00 MiB\/4\.00 MiB {2}rows 9000 {2}.* samples\/s {2}ETA 0:03 {2}mse -$/);
    progress.finish();
  });

  it('redraws at most 10 times a second, however many steps there are', () => {
    const t = trainer();
    const { stderr, progress } = harness({});
    progress.start({ models: [{ name: 'm', trainer: t }], source: { name: 'sim', samples: 1_000_000 } });
    const before = stderr.writes.length;
    for (let ms = 0; ms < 2000; ms++) {
      for (let i = 0; i < 50; i++) { // 50 steps a millisecond
        advance(t, 1);
        progress.update('m', result(t, metrics(1 / (ms + 1))));
      }
      vi.advanceTimersByTime(1);
    }
    const redraws = stderr.writes.length - before;
    expect(redraws).toBeGreaterThanOrEqual(15);
    expect(redraws).toBeLessThanOrEqual(20);
    progress.finish();
  });

  it('does not rewrite an unchanged line', () => {
    const t = trainer();
    const { stderr, progress } = harness({});
    progress.start({ models: [{ name: 'm', trainer: t }], source: { name: 'sim', samples: 10 } });
    vi.advanceTimersByTime(400); // nothing trains: the line stops changing
    const writes = stderr.writes.length;
    vi.advanceTimersByTime(50);
    expect(stderr.writes.length).toBe(writes);
    progress.finish();
  });

  it('fits the terminal without cutting a number: the bar shrinks and goes, then whole fields, the loss last', () => {
    const shown: Record<number, string> = {};
    for (const columns of [120, 90, 80, 60, 40, 30, 20]) {
      const t = trainer();
      const { stderr, progress } = harness({}, { columns });
      progress.start({ models: [{ name: 'm', trainer: t }], source: { name: 'sim', samples: 100_000 } });
      advance(t, 33_333);
      progress.update('m', result(t, metrics(0.000123456)));
      vi.advanceTimersByTime(1000);
      const [line] = screen(stderr.text);
      shown[columns] = line;
      expect(line.length, `${columns} columns: ${line}`).toBeLessThanOrEqual(columns - 1);
      expect(line.startsWith(' 33%'), line).toBe(true);
      expect(line, `${columns} columns`).not.toContain('…');
      // every field is whole: the loss always, the others whole or not at all
      expect(line, `${columns}: ${line}`).toMatch(/ {2}mse 1\.235e-4$/);
      expect(line).not.toMatch(/\d\/\d*$|\d\/\d+ sampl(?!es)|samples\/(?!s)/);
      progress.finish();
    }
    expect(/\[([█░]+)\]/.exec(shown[120])?.[1]).toHaveLength(28);
    expect(shown[120]).toMatch(/ 33% \[█+░+\] {2}33333\/100000 samples {2}[\d.]+k? samples\/s {2}ETA [-\d:]+ {2}mse 1\.235e-4$/);
    // narrower: the bar gives way (fewer cells, then none) before any field
    expect(/\[([█░]+)\]/.exec(shown[90])?.[1]).toHaveLength(19);
    expect(shown[90]).toMatch(/ 33% \[█+░+\] {2}33333\/100000 samples {2}[\d.]+k? samples\/s {2}ETA [-\d:]+ {2}mse 1\.235e-4$/);
    expect(shown[80]).not.toContain('[');
    // then whole fields, the least needed first: the ETA, the count, the speed
    expect(shown[60]).toMatch(/^ 33% {2}33333\/100000 samples {2}[\d.]+k? samples\/s {2}mse 1\.235e-4$/);
    expect(shown[40]).toMatch(/^ 33% {2}[\d.]+k? samples\/s {2}mse 1\.235e-4$/);
    expect(shown[20]).toBe(' 33%  mse 1.235e-4');
  });

  it('uses colour, unless NO_COLOR is set', () => {
    for (const env of [{}, { NO_COLOR: '1' }] as Record<string, string>[]) {
      const t = trainer();
      const { stderr, progress } = harness({}, { env });
      progress.start({ models: [{ name: 'm', trainer: t }], source });
      advance(t, 500);
      vi.advanceTimersByTime(1000);
      progress.finish();
      expect(COLOUR.test(stderr.text), JSON.stringify(env)).toBe(!('NO_COLOR' in env));
      expect(stderr.text).toContain('█');
    }
  });

  it('clears the bar before any other line, so that nothing is printed mid-line, and draws it again below', () => {
    const a = trainer();
    const b = trainer();
    const { stderr, progress } = harness({});
    progress.start({ models: [{ name: 'wide', trainer: a }, { name: 'deep', trainer: b }], source });
    advance(a, 100);
    advance(b, 100);
    vi.advanceTimersByTime(300);
    progress.say('rejected line 7 (SG_ERR_ARITY): x: has 2 values, the model takes 3');
    progress.notice('wide stopped: diverged');
    const last = stderr.writes.at(-1)!;
    // one write: back to the block's first line, clear, the line, the block again
    expect(last.startsWith(`\r${ESC}[1A${ESC}[J`)).toBe(true);
    const lines = screen(stderr.text);
    expect(lines).toHaveLength(4);
    expect(lines[0]).toBe('streamgrad: rejected line 7 (SG_ERR_ARITY): x: has 2 values, the model takes 3');
    expect(lines[1]).toBe('streamgrad: wide stopped: diverged');
    expect(lines[2]).toMatch(/^wide {3}10% \[/);
    expect(lines[3]).toMatch(/^deep {3}10% \[/);
    progress.finish();
  });

  it('shows a model that stopped, while the other goes on', () => {
    const a = trainer();
    const b = trainer();
    const { stderr, progress } = harness({});
    progress.start({ models: [{ name: 'wide', trainer: a }, { name: 'deep', trainer: b }], source });
    progress.fail(new StreamgradError('SG_ERR_DIVERGED', '10 consecutive steps had a non-finite loss'), 'wide');
    vi.advanceTimersByTime(200);
    const lines = screen(stderr.text);
    expect(lines[0]).toBe('wide  stopped: 10 consecutive steps had a non-finite loss');
    expect(lines[1]).toMatch(/^deep {2} {2}0% \[/);
    progress.finish();
  });

  it('ends with a clean screen: the summary on lines of its own, the cursor at the start of the next', () => {
    const t = trainer();
    const { stderr, progress } = harness({});
    progress.say('before');
    progress.start({ models: [{ name: 'm', trainer: t }], source });
    advance(t, 1000);
    vi.advanceTimersByTime(1000);
    progress.summary('trained 1000 samples');
    progress.summary('saved model.json');
    progress.finish();
    vi.advanceTimersByTime(5000); // no timer left to draw again
    expect(screen(stderr.text)).toEqual(['streamgrad: before', 'streamgrad: trained 1000 samples', 'streamgrad: saved model.json', '']);
    expect(stderr.text.endsWith('\n')).toBe(true);
  });
});

describe('on a terminal, an endless source: the live status line', () => {
  it('shows rows (or samples), samples/s, the rolling loss and the time elapsed, one line per model', () => {
    const t = trainer();
    let rows = 0;
    const { stderr, progress } = harness({});
    progress.start({ models: [{ name: 'train', trainer: t }], source: { name: 'mqtt://broker', rows: () => rows } });
    vi.advanceTimersByTime(2000);
    rows = 1500;
    advance(t, 1500);
    progress.update('train', result(t, metrics(0.042)));
    vi.advanceTimersByTime(900);
    expect(screen(stderr.text)).toEqual([expect.stringMatching(/^rows 1500 {2}1\.5k samples\/s {2}mse 0\.042 {2}elapsed 0:03$/)]);
    // nothing arrives: the rate falls to 0
    vi.advanceTimersByTime(3000);
    expect(screen(stderr.text)[0]).toMatch(/^rows 1500 {2}0 samples\/s {2}mse 0\.042 {2}elapsed 0:06$/);
    progress.finish();
  });

  it('says how much of a stream of unknown size was read', () => {
    const t = trainer();
    const meter = { bytesRead: 3 * 1024, totalBytes: undefined };
    const { stderr, progress } = harness({});
    progress.start({ models: [{ name: 'train', trainer: t }], source: { name: 'stdin', meter, rows: () => 30 } });
    vi.advanceTimersByTime(1000);
    expect(screen(stderr.text)[0]).toMatch(/^rows 30 \(3\.00 KiB\) {2}/);
    progress.finish();
  });
});

describe('not a terminal: plain status lines every interval', () => {
  it('writes one line per model per interval, with no control characters, and progress when the size is known', () => {
    const t = trainer();
    const { stderr, progress } = harness({}, { tty: false, options: { intervalMs: 10_000 } });
    progress.say('starting');
    progress.start({ models: [{ name: 'train', trainer: t, label: 'train 2→4 relu→1 linear' }], source: { name: 'sim', samples: 4000 } });
    for (let s = 0; s < 25; s++) {
      advance(t, 80);
      progress.update('train', result(t, metrics(0.5 / (s + 1))));
      vi.advanceTimersByTime(1000);
    }
    progress.summary('done');
    progress.finish();
    expect(stderr.text).not.toContain(ESC);
    expect(stderr.text).not.toContain('\r');
    const lines = stderr.text.split('\n').filter(Boolean);
    expect(lines).toEqual([
      'streamgrad: starting',
      // 800 samples in the first 10 s: 20%, 40 s to go
      expect.stringMatching(/^streamgrad: train 2→4 relu→1 linear {2}step 800 {2}samples 800 {2}mse 0\.05, mae 0\.025 {2}80 samples\/s {2}20%, ETA 0:40$/),
      expect.stringMatching(/^streamgrad: train 2→4 relu→1 linear {2}step 1600 {2}samples 1600 {2}mse 0\.025, mae 0\.0125 {2}80 samples\/s {2}40%, ETA 0:30$/),
      'streamgrad: done',
    ]);
  });

  it('says nothing of progress on an endless source between lines', () => {
    const t = trainer();
    const { stderr, progress } = harness({ intervalMs: 1000 }, { tty: false });
    progress.start({ models: [{ name: 'a', trainer: t }], source: { name: 'sim' } });
    advance(t, 10);
    vi.advanceTimersByTime(1000);
    progress.finish();
    expect(stderr.text).toMatch(/^streamgrad: a {2}step 10 {2}samples 10 {2}mse -, mae - {2}10 samples\/s\n$/);
  });
});

describe('--quiet', () => {
  it('prints nothing but notices (errors) and the final summary', () => {
    for (const tty of [true, false]) {
      const t = trainer();
      const { stderr, stdout, progress } = harness({ quiet: true }, { tty });
      progress.say('wide: 351 parameters');
      progress.start({ models: [{ name: 'm', trainer: t }], source: { name: 'sim', samples: 100 } });
      advance(t, 50);
      vi.advanceTimersByTime(30_000);
      progress.say('rejected line 3');
      progress.checkpoint('m', 'run.ckpt');
      progress.notice('m stopped: diverged');
      progress.summary('finished after 30 s');
      progress.finish();
      expect(stderr.text).toBe('streamgrad: m stopped: diverged\nstreamgrad: finished after 30 s\n');
      expect(stdout.writes).toEqual([]);
    }
  });
});

describe('--log-json: NDJSON events on stdout', () => {
  it('writes start, progress per model every interval, checkpoint, error, rejected and done, each line one JSON object', () => {
    const a = trainer();
    const b = trainer('cross_entropy');
    const { stderr, stdout, progress } = harness({ json: true, intervalMs: 5000 }, { tty: true });
    const models: ModelInfo[] = [{ name: 'wide', trainer: a, batch: 4 }, { name: 'deep', trainer: b }];
    progress.say('not on stdout, and not on stderr either');
    progress.start({ models, source: { name: 'sim', samples: 1000 } });
    for (let s = 0; s < 10; s++) {
      advance(a, 50);
      advance(b, 40);
      progress.update('wide', result(a, metrics(0.1)));
      progress.update('deep', result(b, metrics(0.2, { accuracy: 0.75 })));
      vi.advanceTimersByTime(1000);
    }
    progress.checkpoint('wide', 'wide.ckpt', { sourceOffset: 500 });
    progress.checkpointFailed('deep', 'ENOSPC: no space left on device');
    const diverged = new StreamgradError('SG_ERR_DIVERGED', 'deep diverged');
    progress.fail(diverged, 'deep');
    progress.fail(new CliError('deep diverged (SG_ERR_DIVERGED)', 1, { cause: diverged })); // the same error, wrapped: no second event
    progress.summary('finished');
    progress.finish({ outcome: 'finished', rejected: { total: 3, byCode: { SG_ERR_ARITY: 2, SG_ERR_BAD_JSON: 1 }, deadLetters: 'bad.ndjson' }, extra: { saved: 'model.json' } });

    const events = stdout.events();
    expect(events.map((e) => `${String(e.event)}${e.model === undefined ? '' : `:${String(e.model)}`}`)).toEqual([
      'start',
      'progress:wide', 'progress:deep', // 5 s
      'progress:wide', 'progress:deep', // 10 s
      'checkpoint:wide', 'checkpoint:deep',
      'error:deep',
      'rejected', 'done',
    ]);
    for (const e of events) expect(new Date(String(e.time)).toISOString()).toBe(e.time);
    const [start, p1, p2, , p4, ckpt, failedCkpt, error, rejected, done] = events;
    expect(start).toMatchObject({
      command: 'test',
      source: { name: 'sim', samples: 1000 },
      models: [
        { model: 'wide', topology: '2→4 relu→1 linear', parameters: 17, loss: 'mse', optimizer: 'sgd', learningRate: 0.01, batch: 4, backend: 'js' },
        { model: 'deep', topology: '2→4 relu→3 softmax', parameters: 27, loss: 'cross_entropy', optimizer: 'sgd', learningRate: 0.01, backend: 'js' },
      ],
    });
    expect(p1).toEqual({
      event: 'progress', time: '2026-01-02T03:04:10.000Z', model: 'wide', elapsed: 5, step: 250, samples: 250, rows: 250,
      samplesPerSecond: 50, loss: 0.1, mae: 0.05, window: 100, fraction: 0.25, eta: 15,
    });
    expect(p2).toMatchObject({ model: 'deep', samples: 200, samplesPerSecond: 40, loss: 0.2, accuracy: 0.75, fraction: 0.2, eta: 20 });
    expect(p4).toMatchObject({ model: 'deep', elapsed: 10, samples: 400, samplesPerSecond: 40 });
    expect(ckpt).toMatchObject({ event: 'checkpoint', model: 'wide', step: 500, path: 'wide.ckpt', sourceOffset: 500 });
    expect(failedCkpt).toMatchObject({ event: 'checkpoint', model: 'deep', step: 400, path: null, error: { code: 'SG_ERR_CHECKPOINT', message: 'ENOSPC: no space left on device' } });
    expect(error).toMatchObject({ event: 'error', model: 'deep', code: 'SG_ERR_DIVERGED', message: 'deep diverged' });
    expect(rejected).toMatchObject({ total: 3, byCode: { SG_ERR_ARITY: 2, SG_ERR_BAD_JSON: 1 }, deadLetters: 'bad.ndjson' });
    expect(done).toMatchObject({
      outcome: 'finished', elapsed: 10, saved: 'model.json',
      models: [
        { model: 'wide', steps: 500, samples: 500, skipped: 0, clipped: 0, rejected: 0, samplesPerSecond: 50, loss: 0.1, mae: 0.05, window: 100 },
        { model: 'deep', steps: 400, samples: 400, samplesPerSecond: 40, loss: 0.2, accuracy: 0.75, error: { code: 'SG_ERR_DIVERGED', message: 'deep diverged' } },
      ],
    });
    expect((done.models as object[])[0]).not.toHaveProperty('error');
    // stderr: the checkpoint failure (a warning) and the summary; no bar though stderr is a terminal
    expect(stderr.text).toBe('streamgrad: deep: checkpoint at step 400 failed: ENOSPC: no space left on device\nstreamgrad: finished\n');
  });

  it('reports a failure before training as one error event: a bad option is SG_ERR_CONFIG with its exit code', () => {
    const { stdout, progress } = harness({ json: true });
    progress.fail(new CliError('--lr: must be a finite number > 0, got -1', 2));
    progress.finish();
    expect(stdout.events()).toEqual([{ event: 'error', time: '2026-01-02T03:04:05.000Z', code: 'SG_ERR_CONFIG', message: '--lr: must be a finite number > 0, got -1', exitCode: 2 }]);
  });

  it('ends a failed job with the error, then done with outcome failed; an unexpected error has code null', () => {
    const t = trainer();
    const { stdout, progress } = harness({ json: true });
    progress.start({ models: [{ name: 'train', trainer: t }], source: { name: 'x.ndjson' } });
    progress.fail(new Error('boom\nat somewhere'));
    vi.advanceTimersByTime(1000);
    progress.finish();
    const events = stdout.events();
    expect(events.map((e) => e.event)).toEqual(['start', 'error', 'rejected', 'done']);
    expect(events[1]).toMatchObject({ code: null, message: 'boom' });
    expect(events[3]).toMatchObject({ outcome: 'failed', models: [{ model: 'train', loss: null, mae: null, window: 0, samplesPerSecond: 0 }] });
  });

  it('stops writing events when stdout breaks (EPIPE), and training goes on', () => {
    const t = trainer();
    const { stdout, progress } = harness({ json: true, intervalMs: 1000 });
    progress.start({ models: [{ name: 'train', trainer: t }], source: { name: 'sim' } });
    stdout.broken = true;
    vi.advanceTimersByTime(3000);
    expect(() => progress.finish()).not.toThrow();
    expect(stdout.events().map((e) => e.event)).toEqual(['start']);
  });
});

describe('following a TrainingRun', () => {
  it('takes its step results and announces its checkpoints, written or failed', async () => {
    vi.useRealTimers();
    const t = trainer();
    let writes = 0;
    const run = new TrainingRun({
      id: 'run',
      trainer: t,
      source: Array.from({ length: 20 }, (_, i) => ({ x: [i / 20, 1], y: [i / 10] })),
      checkpoint: async () => (++writes === 2 ? { failed: 'ENOSPC: no space left on device' } : `ckpt-${writes}`),
      autoCheckpoint: { everySteps: 8 },
    });
    const { stdout, progress } = harness({ json: true });
    progress.start({ models: [{ name: 'run', trainer: t }], source: { name: 'array', samples: 20 } });
    const unfollow = progress.follow(run);
    await run.start();
    unfollow();
    progress.finish();
    const events = stdout.events();
    const checkpoints = events.filter((e) => e.event === 'checkpoint');
    expect(checkpoints).toEqual([
      expect.objectContaining({ model: 'run', step: 8, path: 'ckpt-1', sourceOffset: 8 }),
      expect.objectContaining({ model: 'run', path: null, error: expect.objectContaining({ message: expect.any(String) }) }),
      expect.objectContaining({ model: 'run', step: 20, path: 'ckpt-3', sourceOffset: 20 }),
    ]);
    expect(events.at(-1)).toMatchObject({ event: 'done', models: [{ model: 'run', steps: 20, samples: 20, window: 20 }] });
  });
});

describe('openData counts the bytes read', () => {
  const dir = mkdtempSync(join(tmpdir(), 'streamgrad-progress-'));
  afterAll(() => rmSync(dir, { recursive: true, force: true }));

  it('knows a file\'s size before reading and how much has been read', async () => {
    vi.useRealTimers();
    const path = join(dir, 'samples.ndjson');
    const text = Array.from({ length: 20_000 }, (_, i) => JSON.stringify({ x: [i, i / 2], y: [i % 7] })).join('\n') + '\n';
    writeFileSync(path, text);
    const input = await openData(path);
    const meter = byteMeter(input)!;
    expect(meter).toEqual({ bytesRead: 0, totalBytes: Buffer.byteLength(text) });
    let lines = 0;
    let early = NaN;
    for await (const record of ndjsonRecords(input)) {
      if (++lines === 10) early = meter.bytesRead;
      expect(record.error).toBeUndefined();
    }
    expect(lines).toBe(20_000);
    expect(early).toBeGreaterThan(0);
    expect(early).toBeLessThan(meter.totalBytes!); // read as training pulls, not all at once
    expect(meter.bytesRead).toBe(meter.totalBytes);
  });

  it('has no meter for streams it did not open', () => {
    expect(byteMeter(new PassThrough())).toBeUndefined();
  });
});
