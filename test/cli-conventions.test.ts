import { spawn, spawnSync } from 'node:child_process';
import { existsSync, mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { createModel } from '../core/model.ts';
import { initialize } from '../core/init.ts';
import { modelToJSON } from '../pipeline/model-file.ts';
import { distance, nearest } from '../runtime/suggest.ts';
import { BIN, killWhenTestEnds, pool, runCli } from './helpers/cli.ts';

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
    killWhenTestEnds(child);
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

/** Spawns the CLI with standard input left open (written to, never ended), in `work`. */
function openStdin(args: readonly string[]) {
  const { PORT: _port, ...env } = process.env;
  const child = spawn(process.execPath, [BIN, ...args], { cwd: work, env, stdio: ['pipe', 'pipe', 'pipe'] });
  killWhenTestEnds(child);
  let stderr = '';
  let stdout = '';
  child.stderr.setEncoding('utf8').on('data', (d: string) => { stderr += d; });
  child.stdout.setEncoding('utf8').on('data', (d: string) => { stdout += d; });
  child.stdin.on('error', () => undefined);
  const exited = new Promise<{ code: number | null; signal: NodeJS.Signals | null }>((resolve) => child.on('close', (code, signal) => resolve({ code, signal })));
  return { child, exited, stderr: () => stderr, output: () => stdout + stderr };
}

async function until(check: () => boolean, what: () => string, ms = 30_000): Promise<void> {
  const deadline = Date.now() + ms;
  while (!check()) {
    if (Date.now() > deadline) throw new Error(`timed out waiting: ${what()}`);
    await new Promise((r) => setTimeout(r, 50));
  }
}

describe('train --data - on an idle standard input', () => {
  it.each(['SIGINT', 'SIGTERM'] as const)('stops on one %s while the read waits: the model and the checkpoint are saved, exit 0', async (signal) => {
    const dir = `idle-${signal}`;
    const cli = openStdin(['train', '--data', '-', '--layers', '3,1:linear', '--checkpoint-dir', `${dir}/ck`, '--checkpoint-every', '5', '--save', `${dir}.model.json`]);
    cli.child.stdin.write('{"x":[1,2,3],"y":[1]}\n'.repeat(5));
    // the five lines are trained (their checkpoint is written); standard input stays open and idle
    await until(() => existsSync(join(work, dir, 'ck', 'train-000000000005.sgck')), cli.stderr);
    cli.child.kill(signal);
    const exit = await Promise.race([cli.exited, new Promise<null>((r) => setTimeout(() => r(null), 20_000))]);
    if (exit === null) cli.child.kill('SIGKILL');
    expect(exit, cli.stderr()).toEqual({ code: 0, signal: null });
    expect(cli.stderr()).toMatch(new RegExp(`${signal}: stopping after the batch in progress and writing a checkpoint`));
    expect(cli.stderr()).toMatch(/interrupted after 5 samples/);
    expect(JSON.parse(readFileSync(join(work, `${dir}.model.json`), 'utf8'))).toMatchObject({ format: 'streamgrad/model@1' });
  }, 60_000);
});

describe('train --labels - on an idle standard input', () => {
  it('stops on one SIGINT while the labels read waits: checkpoint written, model saved, exit 0', async () => {
    // before: only --data - gave up its pending read; a labels stream on standard input kept
    // the run waiting for a line after the SIGINT, until it was killed
    writeFileSync(join(work, 'idle-labels.ndjson'), Array.from({ length: 10 }, (_, i) => `{"id":"f${i}","x":[${i},1,2]}\n`).join(''));
    const cli = openStdin(['train', '--data', 'idle-labels.ndjson', '--labels', '-', '--id-field', 'id', '--layers', '3,1:linear', '--checkpoint-dir', 'idle-labels/ck', '--checkpoint-every', '5', '--save', 'idle-labels.model.json']);
    cli.child.stdin.write(Array.from({ length: 5 }, (_, i) => `{"id":"f${i}","y":[${i}]}\n`).join(''));
    // five joined and trained (their checkpoint is written); the labels stay open and idle
    await until(() => existsSync(join(work, 'idle-labels', 'ck', 'train-000000000005.sgck')), cli.stderr);
    cli.child.kill('SIGINT');
    const exit = await Promise.race([cli.exited, new Promise<null>((r) => setTimeout(() => r(null), 20_000))]);
    if (exit === null) cli.child.kill('SIGKILL');
    expect(exit, cli.stderr()).toEqual({ code: 0, signal: null });
    expect(cli.stderr()).toMatch(/SIGINT: stopping after the batch in progress and writing a checkpoint/);
    expect(cli.stderr()).toMatch(/interrupted after 5 samples/);
    expect(cli.stderr()).toMatch(/labels: \d+ features and 5 labels in; 5 joined/);
    expect(JSON.parse(readFileSync(join(work, 'idle-labels.model.json'), 'utf8'))).toMatchObject({ format: 'streamgrad/model@1' });
  }, 60_000);
});

describe('--dead-letter /dev/null', () => {
  it('takes the rejected lines and discards them: a device is not synced (fsync would fail with EINVAL)', async () => {
    const data = '{"x":[1,2,3],"y":[1]}\n{"x":"bad","y":[1]}\n{"x":[1,2,3],"y":[2]}\n';
    const run = await runCli(work, ['train', '--data', '-', '--layers', '3,1:linear', '--dead-letter', '/dev/null', '--checkpoint-dir', 'devnull/ck', '--checkpoint-every', '1'], { stdin: data });
    expect(run.code, run.stderr).toBe(0);
    expect(run.stderr).toContain('rejected 1 line (0 not JSON, 1 invalid sample)');
    expect(run.stderr).toContain('dead letters in /dev/null');
    expect(run.stderr).not.toMatch(/EINVAL|fsync/);
  });
});

describe('a refused resume', () => {
  // two tests of two command lines (before: one of four, one after another)
  it('does not say it is resuming before it refuses', async () => {
    writeFileSync(join(work, 'resume.ndjson'), '{"x":[1,2,3],"y":[1]}\n{"x":[2,2,3],"y":[1]}\n');
    const first = await runCli(work, ['train', '--data', 'resume.ndjson', '--layers', '3,1:linear', '--checkpoint-dir', 'refused/ck', '--checkpoint-every', '1']);
    expect(first.code, first.stderr).toBe(0);
    // other records at the same path (same size, other contents)
    writeFileSync(join(work, 'resume.ndjson'), '{"x":[1,2,3],"y":[1]}\n{"x":[9,2,3],"y":[1]}\n');
    const refused = await runCli(work, ['train', '--data', 'resume.ndjson', '--layers', '3,1:linear', '--checkpoint-dir', 'refused/ck', '--resume']);
    expect(refused.code).toBe(2);
    expect(refused.stderr).toMatch(/--resume: --data resume\.ndjson is not the data the checkpoint was written for/);
    expect(refused.stderr).not.toMatch(/resuming from/);
  });

  it('says it is resuming, naming the checkpoint, when it is not refused', async () => {
    // the records the refused resume above was given, in a file of their own (that test rewrites resume.ndjson)
    writeFileSync(join(work, 'resume-kept.ndjson'), '{"x":[1,2,3],"y":[1]}\n{"x":[9,2,3],"y":[1]}\n');
    const accepted = await runCli(work, ['train', '--data', 'resume-kept.ndjson', '--layers', '3,1:linear', '--checkpoint-dir', 'refused/ck2', '--checkpoint-every', '1']);
    expect(accepted.code, accepted.stderr).toBe(0);
    const resumed = await runCli(work, ['train', '--data', 'resume-kept.ndjson', '--layers', '3,1:linear', '--checkpoint-dir', 'refused/ck2', '--resume']);
    expect(resumed.code, resumed.stderr).toBe(0);
    expect(resumed.stderr).toMatch(/resuming from refused\/ck2\/train-000000000002\.sgck/);
  });
});

describe('run … --serve [PORT]', () => {
  it.each([
    ['--serve 0 after the file', (file: string) => ['run', file, '--serve', '0']],
    ['a bare --serve before the file (auto, --port 0)', (file: string) => ['run', '--serve', file, '--port', '0']],
  ])('serves a config without a server section: %s', async (_what, args) => {
    writeFileSync(join(work, 'serve.json'), JSON.stringify({ source: { simulated: 'xor', seed: 1 }, models: [{ name: 'x', layers: '2,4:tanh,1:sigmoid', loss: 'bce' }], limit: { samples: 300 } }));
    const cli = openStdin(args('serve.json'));
    await until(() => /still serving (http:\/\/127\.0\.0\.1:\d+)\//.test(cli.stderr()), cli.stderr);
    const url = /still serving (http:\/\/127\.0\.0\.1:\d+)\//.exec(cli.stderr())![1];
    const health = await fetch(`${url}/healthz`);
    expect(health.status).toBe(200);
    const runs = await (await fetch(`${url}/metrics`)).text();
    expect(runs).toMatch(/streamgrad_samples_total\{run="x"\} 300/);
    // watch takes the dashboard's address as the server prints it
    const watch = openStdin(['watch', `${url}/`]);
    await until(() => watch.output().includes(`connected to ${url.replace('http:', 'ws:')}/ws`), watch.output);
    watch.child.kill('SIGINT');
    expect((await watch.exited).code, watch.output()).toBe(0);
    cli.child.kill('SIGINT');
    expect(await cli.exited, cli.stderr()).toEqual({ code: 0, signal: null });
    expect(cli.stderr()).toMatch(/dashboard at http:\/\/127\.0\.0\.1:\d+\//);
  }, 60_000);
});

const hasScript = spawnSync('script', ['--version'], { encoding: 'utf8' }).status === 0;

describe('predict reading standard input', () => {
  it.skipIf(!hasScript)('on a terminal says that it reads standard input and how to end it', async () => {
    // a pseudo-terminal made by util-linux `script`; Ctrl-D ends the input
    const { PORT: _port, ...env } = process.env;
    const child = spawn('script', ['-qfec', `exec "${process.execPath}" "${BIN}" predict --model model.json`, '/dev/null'], { cwd: work, env: { ...env, TERM: 'dumb' }, stdio: ['pipe', 'pipe', 'pipe'] });
    let out = '';
    child.stdout.setEncoding('utf8').on('data', (d: string) => { out += d; });
    await until(() => out.includes('reading inputs from standard input'), () => out);
    child.stdin.write('{"x":[1,2,3]}\n');
    await until(() => out.includes('"y":'), () => out);
    child.stdin.write('\x04');
    const code = await new Promise<number | null>((resolve) => child.on('close', resolve));
    expect(code, out).toBe(0);
    expect(out).toMatch(/streamgrad: reading inputs from standard input, one JSON object per line; Ctrl-D ends/);
  }, 60_000);

  it('from a pipe stays quiet (a script gets only the predictions)', async () => {
    const run = await runCli(work, ['predict', '--model', 'model.json'], { stdin: '{"x":[1,2,3]}\n' });
    expect(run.code, run.stderr).toBe(0);
    expect(run.stderr).not.toMatch(/reading inputs/);
    expect(lines(run.stdout)).toHaveLength(1);
  });
});

describe('a save killed between its write and its rename', () => {
  it('leaves a temporary file that the next save to that path removes (a running writer\'s is kept)', async () => {
    // the id of a process that has exited
    const dead = spawnSync(process.execPath, ['-e', '0']).pid!;
    const stale = `.saved.json.${dead}.0badc0de.tmp`;
    const live = `.saved.json.${process.pid}.cafebabe.tmp`;
    const other = `.other.json.${dead}.0badc0de.tmp`;
    for (const name of [stale, live, other]) writeFileSync(join(work, name), '{"half":');
    const run = await runCli(work, ['train', '--data', 'samples.ndjson', '--layers', '3,1:linear', '--save', 'saved.json']);
    expect(run.code, run.stderr).toBe(0);
    expect(existsSync(join(work, stale))).toBe(false);
    expect(existsSync(join(work, live))).toBe(true);
    expect(existsSync(join(work, other))).toBe(true);
    expect(JSON.parse(readFileSync(join(work, 'saved.json'), 'utf8'))).toMatchObject({ format: 'streamgrad/model@1' });
  });
});
