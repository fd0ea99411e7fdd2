import { spawn } from 'node:child_process';
import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { createModel } from '../core/model.ts';
import { initialize } from '../core/init.ts';
import { modelToJSON } from '../pipeline/model-file.ts';
import { distance, nearest } from '../cli/suggest.ts';
import { BIN, pool, runCli } from './helpers/cli.ts';

/**
 * Command-line conventions (issue #16), on the real command line: `| head` ends quietly,
 * `streamgrad help <command>`, "did you mean" for commands and options, usage errors on
 * stderr, and an `error` event under `--log-json` for every exit-2 error.
 */

let work: string;
const lines = (text: string) => text.split('\n').filter((l) => l !== '');

beforeAll(() => {
  work = mkdtempSync(join(tmpdir(), 'streamgrad-conventions-'));
  writeFileSync(join(work, 'model.json'), JSON.stringify(modelToJSON(initialize(createModel({ inputSize: 3, layers: [{ units: 1, activation: 'linear' }] }), 'he', 1))));
  // ~2.5 MB of predictions: far more than a pipe holds, so the writer meets the closed pipe
  const inputs = Array.from({ length: 60_000 }, (_, i) => `{"x":[${i % 7},${i % 5},${i % 3}]}\n`).join('');
  writeFileSync(join(work, 'inputs.ndjson'), inputs);
  writeFileSync(join(work, 'samples.ndjson'), '{"x":[1,2,3],"y":[1]}\n');
});

afterAll(() => rmSync(work, { recursive: true, force: true }));

describe('streamgrad … | head', () => {
  it('ends quietly with exit 0 when the reader closes the pipe (EPIPE is not an internal error)', async () => {
    const child = spawn(process.execPath, [BIN, 'predict', '--model', 'model.json', '--data', 'inputs.ndjson'], { cwd: work, stdio: ['ignore', 'pipe', 'pipe'] });
    let stderr = '';
    let first = '';
    child.stderr.setEncoding('utf8').on('data', (d: string) => { stderr += d; });
    // like `head -1`: read the first line, then close the pipe
    child.stdout.setEncoding('utf8').on('data', (d: string) => {
      if (first === '') {
        first = d.split('\n')[0];
        child.stdout.destroy();
      }
    });
    const code = await new Promise<number | null>((done) => child.on('close', (c) => done(c)));
    expect(JSON.parse(first)).toMatchObject({ line: 1 });
    expect(stderr).toBe('');
    expect(code).toBe(0);
  });
});

describe('help, usage errors and "did you mean"', () => {
  it('`streamgrad help <command>` is `streamgrad <command> --help`', async () => {
    const [help, dashHelp, bare] = await pool([() => runCli(work, ['help', 'train']), () => runCli(work, ['train', '--help']), () => runCli(work, ['help'])]);
    expect(help.code).toBe(0);
    expect(help.stdout).toBe(dashHelp.stdout);
    expect(help.stdout).toMatch(/^Usage: streamgrad train/);
    expect(bare.code).toBe(0);
    expect(bare.stdout).toMatch(/^Usage: streamgrad <command>/);
    expect(bare.stdout).toContain('streamgrad help <command>');
  });

  it('prints usage errors on stderr only, with exit 2: no command, unknown commands and options, with the nearest name', async () => {
    const cases: [string[], RegExp][] = [
      [[], /^Usage: streamgrad <command>/],
      [['trian'], /^streamgrad: unknown command "trian"; did you mean train\? use train, start/],
      [['strat', '--samples', '10'], /^streamgrad: unknown command "strat"; did you mean start\?/],
      [['fly'], /^streamgrad: unknown command "fly"; use train, start/],
      [['help', 'prdict'], /^streamgrad: unknown command "prdict"; did you mean predict\?/],
      [['help', 'train', 'start'], /^streamgrad: help takes one command/],
      [['train', '--data', 'samples.ndjson', '--layers', '3,1:linear', '--bath', '2'], /^streamgrad: --bath: unknown option for streamgrad train \(did you mean --batch\? see streamgrad train --help\)/],
      [['inspect', 'model.json', '--jsno'], /^streamgrad: --jsno: unknown option for streamgrad inspect \(did you mean --json\?/],
      [['start', '--zzz'], /^streamgrad: --zzz: unknown option for streamgrad start \(see streamgrad start --help\)/],
    ];
    const runs = await pool(cases.map(([args]) => () => runCli(work, args)));
    cases.forEach(([args, pattern], i) => {
      const what = `streamgrad ${args.join(' ')}`;
      expect(runs[i].code, what).toBe(2);
      expect(runs[i].stdout, what).toBe('');
      expect(runs[i].stderr, what).toMatch(pattern);
    });
  });

  it('suggests by an edit distance where a swap of two letters is one edit', () => {
    expect(distance('trian', 'train')).toBe(1);
    expect(distance('Batch', 'batch')).toBe(0);
    expect(distance('', 'abc')).toBe(3);
    expect(distance('kitten', 'sitting')).toBe(3);
    expect(nearest('optimzer', ['loss', 'optimizer', 'batch'])).toBe('optimizer');
    expect(nearest('lr', ['loss', 'batch'])).toBeUndefined();
    expect(nearest('sead', ['seed', 'sea'])).toBe('seed');
  });
});

describe('--log-json', () => {
  it('writes one error event on stdout for every exit-2 error, before and after the job starts', async () => {
    const train = ['train', '--data', 'samples.ndjson', '--layers', '3,1:linear', '--log-json'];
    const cases: [string[], RegExp][] = [
      [[...train, '--lr', 'abc'], /^--lr: must be a finite number/],
      [[...train, '--bogus'], /^--bogus: unknown option for streamgrad train/],
      [['train', '--data', 'missing.ndjson', '--layers', '3,1:linear', '--log-json'], /^--data missing\.ndjson: cannot read/],
      [['train', '--data', 'samples.ndjson', '--layers', '3,1:relux', '--log-json'], /^--layers: layer 1/],
      [['start', '--samples', '0', '--log-json'], /^--samples: must be an integer ≥ 1/],
      [['run', 'missing.json', '--log-json'], /missing\.json/],
    ];
    const runs = await pool(cases.map(([args]) => () => runCli(work, args)));
    cases.forEach(([args, pattern], i) => {
      const what = `streamgrad ${args.join(' ')}`;
      const { code, stdout, stderr } = runs[i];
      expect(code, `${what}: ${stderr}`).toBe(2);
      const events = lines(stdout).map((l) => JSON.parse(l) as { event: string; code: string; message: string; exitCode: number });
      const errors = events.filter((e) => e.event === 'error');
      expect(errors, `${what}: ${stdout}`).toHaveLength(1);
      expect(errors[0], what).toMatchObject({ code: 'SG_ERR_CONFIG', exitCode: 2 });
      expect(errors[0].message, what).toMatch(pattern);
      expect(stderr, what).toContain(errors[0].message);
    });
  });
});
