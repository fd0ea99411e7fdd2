import { spawn, spawnSync } from 'node:child_process';
import { mkdtempSync, readFileSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, describe, expect, it } from 'vitest';
import { raceConfig } from '../cli/start-scene.ts';
import { BIN, type CliRun, runCli } from './helpers/cli.ts';
import { screen } from './helpers/terminal.ts';

/**
 * `streamgrad start`'s progress as people and scripts see it: the real command line,
 * spawned with pipes (not a terminal: plain lines, or events with --log-json), and under a
 * pseudo-terminal made by util-linux `script` (the progress bar, redrawn in place).
 */
const work = mkdtempSync(join(tmpdir(), 'streamgrad-start-'));
afterAll(() => rmSync(work, { recursive: true, force: true }));

const cli = (args: readonly string[]) => runCli(work, args);
const lines = (text: string) => text.split('\n').filter((l) => l !== '');
const SUMMARY = [
  /^streamgrad: finished after [\d.]+ s$/,
  /^streamgrad: wide 3→70 relu→1 linear +step \d+ {2}samples \d+ {2}mse [\d.e-]+, mae [\d.e-]+ {2}\d+ samples\/s$/,
  /^streamgrad: deep 3→16 relu→16 relu→1 linear {2}step \d+ {2}samples \d+ {2}mse [\d.e-]+, mae [\d.e-]+ {2}\d+ samples\/s$/,
  /^streamgrad: leader: (wide|deep) \(rolling mse/,
];

function expectSummaryOnly(stderr: string, what: string): void {
  const got = lines(stderr);
  expect(got, `${what}:\n${stderr}`).toHaveLength(SUMMARY.length);
  got.forEach((line, i) => expect(line, what).toMatch(SUMMARY[i]));
}

describe('streamgrad start is a config the runtime runs', () => {
  it('npm start\'s scene with the defaults is examples/drifting-sensor.json (streamgrad run shows the same demo)', () => {
    const { $schema: _schema, ...example } = JSON.parse(readFileSync(join(import.meta.dirname, '../examples/drifting-sensor.json'), 'utf8')) as Record<string, unknown>;
    expect(raceConfig({ seed: 0, batch: 1, window: 1000, learningRate: 0.003, scene: true, fast: false })).toEqual(example);
  });
});

describe('streamgrad start --log-json', () => {
  it('writes only NDJSON events on stdout: start, progress per model, rejected, done', async () => {
    const run = await cli(['start', '--samples', '100000', '--log-json', '--status-interval', '0.1']);
    expect(run.code, run.stderr).toBe(0);
    const events = lines(run.stdout).map((line) => JSON.parse(line) as Record<string, unknown>);
    const kinds = events.map((e) => e.event);
    expect(kinds[0]).toBe('start');
    expect(kinds.slice(-2)).toEqual(['rejected', 'done']);
    expect(new Set(kinds.slice(1, -2))).toEqual(new Set(['progress']));
    for (const e of events) expect(Number.isNaN(Date.parse(String(e.time))), JSON.stringify(e)).toBe(false);

    expect(events[0]).toMatchObject({
      command: 'start',
      source: { name: 'michaelis-menten (seed 0)', samples: 100000 },
      models: [
        { model: 'wide', topology: '3→70 relu→1 linear', parameters: 351, loss: 'mse', optimizer: 'adam', learningRate: 0.003, batch: 1 },
        { model: 'deep', topology: '3→16 relu→16 relu→1 linear', parameters: 353, loss: 'mse', optimizer: 'adam', learningRate: 0.003, batch: 1 },
      ],
    });
    const progress = events.filter((e) => e.event === 'progress');
    expect(progress.length, run.stdout).toBeGreaterThanOrEqual(2);
    for (const p of progress) {
      expect(['wide', 'deep']).toContain(p.model);
      for (const field of ['elapsed', 'step', 'samples', 'rows', 'fraction']) expect(typeof p[field], `${field} in ${JSON.stringify(p)}`).toBe('number');
      expect(p.samples).toBeLessThanOrEqual(100000);
      expect(p.fraction).toBeCloseTo((p.samples as number) / 100000, 12);
      expect(p.samplesPerSecond === null || (p.samplesPerSecond as number) >= 0).toBe(true);
      expect(p.loss === null || (p.loss as number) >= 0).toBe(true);
      expect(p).toHaveProperty('eta');
    }
    expect(events.at(-2)).toMatchObject({ event: 'rejected', total: 0, byCode: {} });
    const done = events.at(-1)!;
    expect(done).toMatchObject({ event: 'done', outcome: 'finished' });
    expect(done.models).toEqual([
      expect.objectContaining({ model: 'wide', steps: 100000, samples: 100000, skipped: 0, window: 1000, loss: expect.any(Number), mae: expect.any(Number) }),
      expect.objectContaining({ model: 'deep', steps: 100000, samples: 100000, skipped: 0, window: 1000, loss: expect.any(Number), mae: expect.any(Number) }),
    ]);
    // stderr: no header, no status lines, just the summary
    expectSummaryOnly(run.stderr, '--log-json stderr');
  });

  it('reports a bad option as an error event (and its one line on stderr), exit 2', async () => {
    const run = await cli(['start', '--log-json', '--lr', '-1']);
    expect(run.code).toBe(2);
    expect(lines(run.stdout).map((l) => JSON.parse(l))).toEqual([
      { event: 'error', time: expect.any(String), code: 'SG_ERR_CONFIG', message: '--lr: must be a finite number > 0, got -1', exitCode: 2 },
    ]);
    expect(run.stderr).toBe('streamgrad: --lr: must be a finite number > 0, got -1\n');
  });
});

describe('streamgrad start --quiet', () => {
  it('prints only the final summary', async () => {
    const run = await cli(['start', '--samples', '3000', '--quiet']);
    expect(run.code, run.stderr).toBe(0);
    expect(run.stdout).toBe('');
    expectSummaryOnly(run.stderr, '--quiet');
  });

  it('documents the progress options in --help, and refuses a bad --status-interval', async () => {
    const [help, bad] = await Promise.all([cli(['start', '--help']), cli(['start', '--status-interval', '0'])]);
    for (const option of ['--quiet', '--log-json', '--status-interval', 'NO_COLOR']) expect(help.stdout).toContain(option);
    expect(bad.code).toBe(2);
    expect(bad.stderr).toBe('streamgrad: --status-interval: must be a number of seconds ≥ 0.1, got 0\n');
  });
});

const hasScript = spawnSync('script', ['--version'], { encoding: 'utf8' }).status === 0;

/**
 * Runs `streamgrad …args` on a pseudo-terminal of `columns` columns (util-linux `script`),
 * and types Ctrl-C once `interruptWhen` matches its output.
 */
function underTerminal(args: readonly string[], o: { columns: number; env?: Record<string, string>; interruptWhen?: RegExp }): Promise<CliRun> {
  return new Promise((resolve, reject) => {
    const { PORT: _port, NO_COLOR: _noColor, ...env } = process.env;
    const command = `stty cols ${o.columns} rows 40 2>/dev/null; exec "${process.execPath}" "${BIN}" ${args.join(' ')}`;
    const child = spawn('script', ['-qfec', command, '/dev/null'], { cwd: work, env: { ...env, TERM: 'xterm', ...o.env }, stdio: ['pipe', 'pipe', 'pipe'] });
    let stdout = '';
    let interrupted = false;
    child.stdout.setEncoding('utf8').on('data', (d: string) => {
      stdout += d;
      if (!interrupted && o.interruptWhen?.test(stdout)) {
        interrupted = true;
        child.stdin.write('\x03');
      }
    });
    // a test that never sees what it waits for fails on what it got, not on vitest's timeout
    const deadline = setTimeout(() => child.kill('SIGKILL'), 30_000);
    child.on('error', reject);
    child.on('close', (code, signal) => {
      clearTimeout(deadline);
      resolve({ code, signal, stdout, stderr: '' });
    });
  });
}

describe.skipIf(!hasScript)('streamgrad start on a terminal', () => {
  it('draws a progress bar per model in place, in colour, and leaves only the summary when done', async () => {
    const run = await underTerminal(['start', '--samples', '100000'], { columns: 100 });
    expect(run.code, run.stdout).toBe(0);
    const out = run.stdout;
    // redrawn in place: back to the first of the two bar lines, clear, draw
    expect(out).toContain('\r\x1b[1A\x1b[J');
    expect(out).toMatch(/wide +\d+% \[(\x1b\[\d+m)?█/);
    expect(out).toMatch(/deep +\d+% \[.*\/100000 samples {2}[\d.]+k? samples\/s {2}ETA [-\d:]+ {2}mse /);
    expect(out).toMatch(/\x1b\[36m█/); // colour
    const redraws = out.split('\x1b[1A\x1b[J').length - 1;
    expect(redraws).toBeGreaterThan(0);
    const shown = screen(out, { lenient: true }).filter((l) => l !== '');
    expect(shown.slice(0, 3)).toEqual([
      'streamgrad: wide 3→70 relu→1 linear: 351 parameters, mse loss, adam lr 0.003, batch 1',
      'streamgrad: deep 3→16 relu→16 relu→1 linear: 353 parameters, mse loss, adam lr 0.003, batch 1',
      'streamgrad: streaming Michaelis-Menten samples (seed 0), stopping after 100000 samples; Ctrl-C stops',
    ]);
    expectSummaryOnly(shown.slice(3).join('\n'), 'the screen at the end');
  });

  it('shows a live status line on an endless stream, without colour under NO_COLOR, fitted to the width; Ctrl-C ends it cleanly', async () => {
    const run = await underTerminal(['start'], { columns: 50, env: { NO_COLOR: '1' }, interruptWhen: /deep {2}samples [1-9]\d{4}/ });
    expect(run.code, run.stdout).toBe(0);
    const out = run.stdout;
    expect(out).not.toMatch(/\x1b\[\d*m/);
    // (the terminal echoes the Ctrl-C as ^C where the cursor is: at the end of the status line)
    const live = out.split(/\r\n|\r|\x1b\[1A\x1b\[J/).map((l) => l.replace('^C', '')).filter((l) => /^(wide|deep) {2}samples/.test(l));
    expect(live.length, out).toBeGreaterThan(0);
    for (const line of live) expect(line.length, line).toBeLessThanOrEqual(49);
    expect(live.some((l) => /^deep {2}samples \d+ {2}[\d.]+k? samples\/s {2}mse/.test(l)), live.join('\n')).toBe(true);
    const shown = screen(out, { lenient: true }).filter((l) => l !== '');
    expect(shown.at(-4)).toMatch(/^streamgrad: interrupted after [\d.]+ s$/);
    expect(shown.slice(-3).join('\n')).toMatch(/wide 3→70.*\n.*deep 3→16.*\n.*leader/);
    expect(shown.some((l) => /^(wide|deep) {2}samples/.test(l)), shown.join('\n')).toBe(false);
  });
});
