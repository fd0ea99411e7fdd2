/**
 * Drift through the real command line: `train --drift-detector/--drift-reaction` reports
 * drifts and reactions as lines and --log-json events, resumes its detector from a
 * checkpoint, refuses bad settings with exit 2 naming the option; a config file's
 * `drift` section does the same for `run` (examples/sine-drift.json).
 */
import { mkdtempSync, readdirSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { dirname, join, resolve } from 'node:path';
import { fileURLToPath } from 'node:url';
import { afterAll, describe, expect, it } from 'vitest';
import { parseExperiment } from '../../runtime/experiment-schema.ts';
import { sineConceptSamples } from '../../sources/sine-concepts.ts';
import { pool, runCli } from '../helpers/cli.ts';

const work = mkdtempSync(join(tmpdir(), 'streamgrad-drift-'));
afterAll(() => rmSync(work, { recursive: true, force: true }));
const EXAMPLE = resolve(dirname(fileURLToPath(import.meta.url)), '../../examples/sine-drift.json');

// labels reverse at 4000: an abrupt drift ADWIN sees within a few dozen samples
writeFileSync(join(work, 'sine.ndjson'), [...sineConceptSamples({ seed: 3, every: 4000, limit: 8000 })].map((s) => JSON.stringify(s)).join('\n'));
const TRAIN = ['train', '--data', 'sine.ndjson', '--layers', '2,16:tanh,1:sigmoid', '--loss', 'bce', '--optimizer', 'adam', '--lr', '0.01', '--seed', '1'];
const events = (stdout: string) => stdout.split('\n').filter((l) => l.startsWith('{')).map((l) => JSON.parse(l) as Record<string, unknown>);

describe('streamgrad train with drift detection', () => {
  it('reports the drift after the change and the reaction, as lines and as --log-json events', async () => {
    const [text, json] = await pool([
      () => runCli(work, [...TRAIN, '--drift-detector', 'adwin', '--drift-reaction', 'reset:seed=5']),
      () => runCli(work, [...TRAIN, '--drift-detector', 'adwin', '--drift-reaction', 'reset:seed=5', '--log-json']),
    ]);
    expect(text.code, text.stderr).toBe(0);
    const line = /drift detected at sample (\d+) \(step \d+\) by adwin/.exec(text.stderr);
    expect(line, text.stderr).not.toBeNull();
    expect(Number(line![1])).toBeGreaterThanOrEqual(4000);
    expect(Number(line![1])).toBeLessThan(4300);
    expect(text.stderr).toMatch(/drift reaction at sample \d+ \(step \d+\): weights reset \(pytorch, seed \d+\) and the optimizer/);
    expect(json.code, json.stderr).toBe(0);
    const drifts = events(json.stdout).filter((e) => e.event === 'drift' && e.direction === 1);
    expect(drifts[0]).toMatchObject({ model: 'train', detector: 'adwin' });
    expect(drifts[0].index).toBe(Number(line![1]));
    expect(events(json.stdout).some((e) => e.event === 'drift-reaction' && e.reaction === 'reset')).toBe(true);
  });

  it('resumes the detector from a checkpoint: the same drifts as one uninterrupted run', async () => {
    const dir = join(work, 'ck');
    // the two independent runs at once: three command lines one after another were 4 (with the refusal below), past 60 s on a loaded machine
    const [whole, first] = await Promise.all([
      runCli(work, [...TRAIN, '--drift-detector', 'page-hinkley:threshold=10', '--log-json']),
      runCli(work, [...TRAIN, '--drift-detector', 'page-hinkley:threshold=10', '--checkpoint-dir', dir, '--checkpoint-every', '1000', '--checkpoint-keep', '10', '--log-json']),
    ]);
    expect(first.code, first.stderr).toBe(0);
    // as if the first run had died after step 5000: only the checkpoints up to it are left
    for (const f of readdirSync(dir)) if (Number(/-(\d+)\./.exec(f)?.[1]) > 5000) rmSync(join(dir, f));
    const rest = await runCli(work, [...TRAIN, '--drift-detector', 'page-hinkley:threshold=10', '--checkpoint-dir', dir, '--resume', '--log-json']);
    expect(rest.code, rest.stderr).toBe(0);
    const at = (out: string) => events(out).filter((e) => e.event === 'drift').map((e) => e.index);
    expect(at(whole.stdout).length).toBeGreaterThan(0);
    expect(at(first.stdout)).toEqual(at(whole.stdout));
    expect([...at(first.stdout).filter((i) => Number(i) < 5000), ...at(rest.stdout)]).toEqual(at(whole.stdout));
  });

  it('a run without drift detection cannot continue a checkpoint with drift detection state (exit 2)', async () => {
    const dir = join(work, 'ck-plain');
    const first = await runCli(work, [...TRAIN, '--drift-detector', 'page-hinkley:threshold=10', '--samples', '1000', '--checkpoint-dir', dir, '--checkpoint-every', '500']);
    expect(first.code, first.stderr).toBe(0);
    const plain = await runCli(work, [...TRAIN, '--checkpoint-dir', dir, '--resume']);
    expect(plain.code).toBe(2);
    expect(plain.stderr).toMatch(/has drift detection state, but the run does not detect drift/);
  });

  it.each([
    [['--drift-detector', 'nope'], /--drift-detector: unknown "nope"; use adwin, page-hinkley, ddm, hddm-a, kswin/],
    [['--drift-detector', 'adwin:delta=2'], /--drift-detector: adwin: delta must be in \(0, 1\), got 2/],
    [['--drift-detector', 'adwin:delta'], /--drift-detector: expected key=value after adwin:, got "delta"/],
    [['--drift-reaction', 'boost-lr:factor=0'], /--drift-reaction: factor must be a number in \(0, 100\], got 0/],
    [['--drift-reaction', 'shrug'], /--drift-reaction: unknown "shrug"; use none, reset/],
    [['--drift-signal', 'vibes'], /--drift-signal: must be one of loss, error, large-error, got vibes/],
  ])('%j exits 2 naming the option', async (args, message) => {
    const r = await runCli(work, [...TRAIN, ...args]);
    expect(r.code).toBe(2);
    expect(r.stderr).toMatch(message);
  });

  it('a detector of 0/1 values on a regression watches its large errors; on the loss it is refused, naming the option', async () => {
    const r = await runCli(work, ['train', '--data', 'sine.ndjson', '--layers', '2,4:tanh,1:linear', '--drift-detector', 'ddm', '--log-json']);
    expect(r.code, r.stderr).toBe(0);
    const loss = await runCli(work, ['train', '--data', 'sine.ndjson', '--layers', '2,4:tanh,1:linear', '--drift-detector', 'ddm', '--drift-signal', 'loss']);
    expect(loss.code).toBe(2);
    expect(loss.stderr).toMatch(/--drift-detector: ddm takes 0\/1 values \(signal error or large-error\)/);
    const error = await runCli(work, ['train', '--data', 'sine.ndjson', '--layers', '2,4:tanh,1:linear', '--drift-signal', 'error']);
    expect(error.code).toBe(2);
    expect(error.stderr).toMatch(/--drift-signal: error needs a classifier \(loss mse has no right or wrong\); use large-error or loss/);
  });
});

describe('streamgrad run with a drift section', () => {
  it('examples/sine-drift.json: the watched model reports drifts and reacts; both finish', async () => {
    const r = await runCli(work, ['run', EXAMPLE, '--log-json']);
    expect(r.code, r.stderr).toBe(0);
    const all = events(r.stdout);
    const drifts = all.filter((e) => e.event === 'drift' && e.direction === 1);
    expect(drifts.length).toBeGreaterThanOrEqual(3); // three reversals in 20,000 samples
    expect(drifts.every((e) => e.model === 'watched')).toBe(true);
    for (const [k, d] of drifts.slice(0, 3).entries()) expect(Number(d.index) - 5000 * (k + 1)).toBeLessThan(300);
    expect(all.filter((e) => e.event === 'drift-reaction' && e.reaction === 'boost-lr' && e.ended !== true).length).toBe(drifts.length);
  });

  it('checks the drift section with the engine: each problem with its path', () => {
    const base = JSON.parse(JSON.stringify({ source: { simulated: 'sine', seed: 1 }, models: [{ layers: '1,4:tanh,1:linear' }] }));
    const problems = (drift: unknown) => {
      const r = parseExperiment({ ...base, models: [{ ...base.models[0], drift }] });
      return r.ok ? [] : r.problems.map((p) => `${p.path}: ${p.message}`);
    };
    expect(problems({ detector: 'adwin', reaction: 'boost-lr' })).toEqual([]);
    expect(problems({ detector: { kind: 'adwin', delta: 3 } })).toEqual([expect.stringMatching(/^models\[0\]\.drift\.detector\.delta: .*must be in \(0, 1\)/)]);
    expect(problems({ reaction: { kind: 'background', horizon: 0 } })).toEqual([expect.stringMatching(/^models\[0\]\.drift\.reaction\.horizon: .*horizon must be an integer ≥ 1/)]);
    expect(problems({ detector: 'ddm' })).toEqual([]);
    expect(problems({ detector: 'ddm', signal: 'large-error', largeError: { quantile: 0.95, reference: 1000 } })).toEqual([]);
    expect(problems({ detector: 'ddm', signal: 'loss' })).toEqual([expect.stringMatching(/^models\[0\]\.drift\.detector: .*takes 0\/1 values/)]);
    expect(problems({ signal: 'large-error', largeError: { quantile: 2 } })).toEqual([expect.stringMatching(/^models\[0\]\.drift\.largeError\.quantile: .*must be a number in \(0, 1\)/)]);
    expect(problems({ detector: 'cusum' })[0]).toMatch(/^models\[0\]\.drift\.detector/);
    // refit-head: its settings, and the squared loss it needs, checked before anything starts
    expect(problems({ reaction: { kind: 'refit-head', samples: 300, forgetting: 0.99, prior: 1 } })).toEqual([]);
    expect(problems({ reaction: { kind: 'refit-head', forgetting: 2 } })).toEqual([expect.stringMatching(/^models\[0\]\.drift\.reaction\.forgetting: .*must be a number in \(0, 1\]/)]);
    const classifier = parseExperiment({ ...base, models: [{ layers: '1,4:tanh,1:sigmoid', loss: 'bce', drift: { reaction: 'refit-head' } }] });
    expect(classifier.ok ? [] : classifier.problems.map((p) => `${p.path}: ${p.message}`)).toEqual([expect.stringMatching(/^models\[0\]\.drift\.reaction: .*needs the squared loss \(mse\), got bce/)]);
  });
});
