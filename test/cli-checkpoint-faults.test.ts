import { spawn } from 'node:child_process';
import { createHash } from 'node:crypto';
import { appendFileSync, existsSync, mkdirSync, mkdtempSync, readdirSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { decodeCheckpoint } from '../pipeline/checkpoint.ts';
import { BIN, type CliRun, killWhenTestEnds, runCli } from './helpers/cli.ts';

/**
 * Faults around checkpoints that the probe of issue 17 found, through the real command
 * line: a disk that fills mid-write (`ulimit -f`), a data file replaced under a
 * checkpoint, and two trainers on one checkpoint folder.
 */
const work = mkdtempSync(join(tmpdir(), 'streamgrad-ckpt-faults-'));
afterAll(() => rmSync(work, { recursive: true, force: true }));

/** A seeded generator (a Lehmer LCG). */
function lcg(seed: number) {
  let r = seed;
  return () => (r = (r * 16807) % 2147483647) / 2147483647;
}

/** CSV rows `from`..`to` (exclusive) of one endless seeded table a,b,c → y: a prefix of a longer file is the longer file's prefix. */
function rows(from: number, to: number, seed = 1): string {
  const rnd = lcg(seed);
  const out: string[] = [];
  for (let i = 0; i < to; i++) {
    const [a, b, c] = [rnd(), rnd(), rnd()];
    if (i >= from) out.push(`${a},${b},${c},${Math.sin(3 * a) + b * c}\n`);
  }
  return out.join('');
}
const writeCsv = (name: string, count: number, seed = 1) => (writeFileSync(join(work, name), `a,b,c,y\n${rows(0, count, seed)}`), name);

const trainArgs = (data: string, extra: readonly string[] = []) => [
  'train', '--data', data, '--targets', 'y', '--layers', '3,16:tanh,16:tanh,1:linear', '--optimizer', 'adam', ...extra,
];

/** Runs the CLI under `ulimit -f blocks` (1 KiB blocks in bash): files it writes cannot grow past blocks KiB. */
function runLimited(blocks: number, args: readonly string[]): Promise<CliRun> {
  return new Promise((resolve, reject) => {
    const { PORT: _port, ...env } = process.env;
    const quoted = [process.execPath, BIN, ...args].map((a) => `'${a.replace(/'/g, "'\\''")}'`).join(' ');
    const child = spawn('bash', ['-c', `ulimit -f ${blocks} && exec ${quoted}`], { cwd: work, env, stdio: ['ignore', 'pipe', 'pipe'] });
    let stdout = '';
    let stderr = '';
    child.stdout.setEncoding('utf8').on('data', (d: string) => { stdout += d; });
    child.stderr.setEncoding('utf8').on('data', (d: string) => { stderr += d; });
    child.on('error', reject);
    child.on('close', (code, signal) => resolve({ code, signal, stdout, stderr }));
  });
}

const files = (dir: string) => (existsSync(join(work, dir)) ? readdirSync(join(work, dir)).sort() : []);

describe('a disk that fills mid-write (ulimit -f): short writes are failed writes (issue 17 #1)', () => {
  let data: string;
  beforeAll(() => {
    data = writeCsv('d.csv', 3000);
  });

  it('the command of the report: every checkpoint write fails loudly (exit 1, SG_ERR_CHECKPOINT), nothing truncated is left, a resume starts clean', async () => {
    const run = await runLimited(12, trainArgs(data, ['--checkpoint-dir', 'full/ck', '--checkpoint-every', '500']));
    expect(run.code, run.stderr).toBe(1);
    expect(run.stderr).toMatch(/checkpoint at step 500 failed: EFBIG: file too large/);
    expect(run.stderr).toMatch(/checkpoint writes failed 3 times in a row \(last: EFBIG: file too large, write\) \(SG_ERR_CHECKPOINT\)/);
    expect(run.stderr).toMatch(/checkpoints in full\/ck: none written; 3 failed writes/);
    expect(files('full/ck')).toEqual([]); // no truncated checkpoint, no temporary file
    const resumed = await runCli(work, trainArgs(data, ['--checkpoint-dir', 'full/ck', '--checkpoint-every', '500', '--resume']));
    expect(resumed.code, resumed.stderr).toBe(0);
    expect(resumed.stderr).toMatch(/no checkpoint in full\/ck yet: starting from the beginning/);
    expect(resumed.stderr).not.toMatch(/no intact checkpoint/);
  }, 60_000);

  it('good checkpoints written before the disk filled are kept, not pruned, and a later --resume ends as an uninterrupted run', async () => {
    // the reference: the whole 6000 rows in one go
    writeCsv('ref.csv', 6000);
    const reference = await runCli(work, trainArgs('ref.csv', ['--save', 'ref.json']));
    expect(reference.code, reference.stderr).toBe(0);
    // the first 3000 rows with checkpoints, then 3000 more rows arrive (appended: still the same data)
    writeCsv('grow.csv', 3000);
    const args = trainArgs('grow.csv', ['--checkpoint-dir', 'grow/ck', '--checkpoint-every', '500', '--save', 'grow/model.json', '--resume']);
    mkdirSync(join(work, 'grow'), { recursive: true });
    expect((await runCli(work, args)).code).toBe(0);
    const good = files('grow/ck');
    expect(good).toEqual(['train-000000002000.sgck', 'train-000000002500.sgck', 'train-000000003000.sgck']);
    appendFileSync(join(work, 'grow.csv'), rows(3000, 6000));
    // the disk is full now: the resumed run cannot write a checkpoint
    const full = await runLimited(12, args);
    expect(full.code, full.stderr).toBe(1);
    expect(full.stderr).toMatch(/resuming from grow\/ck\/train-000000003000\.sgck/);
    expect(full.stderr).toMatch(/checkpoint writes failed 3 times in a row \(last: EFBIG/);
    expect(files('grow/ck')).toEqual(good);
    for (const f of good) expect(decodeCheckpoint(readFileSync(join(work, 'grow/ck', f))).header.format).toBe('streamgrad/checkpoint@1');
    // space again: the resume continues from the newest good one and ends bitwise where the reference does
    const rest = await runCli(work, args);
    expect(rest.code, rest.stderr).toBe(0);
    expect(rest.stderr).toMatch(/resuming from grow\/ck\/train-000000003000\.sgck/);
    expect(readFileSync(join(work, 'grow/model.json'), 'utf8')).toBe(readFileSync(join(work, 'ref.json'), 'utf8'));
  }, 90_000);

  it('--save cut short: exit 1 naming the file, the previous model file untouched, no temporary file left', async () => {
    mkdirSync(join(work, 'save'), { recursive: true });
    writeFileSync(join(work, 'save/model.json'), 'the previous model\n');
    // a model of 4,417 parameters is ~90 KB of JSON: more than the 40 KiB the limit lets a file hold
    const run = await runLimited(40, ['train', '--data', data, '--targets', 'y', '--layers', '3,64:tanh,64:tanh,1:linear', '--save', 'save/model.json']);
    expect(run.code, run.stderr).toBe(1);
    expect(run.stderr).toMatch(/--save save\/model\.json: cannot write: EFBIG: file too large/);
    expect(readFileSync(join(work, 'save/model.json'), 'utf8')).toBe('the previous model\n');
    expect(files('save')).toEqual(['model.json']);
  }, 60_000);
});

/** Starts `streamgrad …args` in the background; resolves once `ready(stderr)` holds or a file `waitFor` exists. */
function startBackground(args: readonly string[], waitFor: string) {
  const { PORT: _port, ...env } = process.env;
  const child = spawn(process.execPath, [BIN, ...args], { cwd: work, env, stdio: ['ignore', 'pipe', 'pipe'] });
  killWhenTestEnds(child);
  let stderr = '';
  child.stderr.setEncoding('utf8').on('data', (d: string) => { stderr += d; });
  child.stdout.resume();
  const done = new Promise<CliRun>((resolve) => child.on('close', (code, signal) => resolve({ code, signal, stdout: '', stderr })));
  const ready = new Promise<void>((resolve, reject) => {
    const poll = setInterval(() => {
      if (existsSync(join(work, waitFor))) {
        clearInterval(poll);
        resolve();
      }
    }, 5);
    void done.then((r) => {
      clearInterval(poll);
      reject(new Error(`ended before ${waitFor} appeared: ${r.stderr}`));
    });
  });
  return { child, done, ready };
}

/** A CSV where every 50th row is malformed (a dead letter). */
function writeDirtyCsv(name: string, count: number): string {
  const lines = rows(0, count).split('\n').filter(Boolean).map((l, i) => (i % 50 === 7 ? l.replace(/^[^,]*/, 'oops') : l));
  writeFileSync(join(work, name), `a,b,c,y\n${lines.join('\n')}\n`);
  return name;
}
const deadLines = (path: string) => readFileSync(join(work, path), 'utf8').split('\n').filter(Boolean).map((l) => {
  const { time: _time, ...rest } = JSON.parse(l) as Record<string, unknown>;
  return JSON.stringify(rest);
});

describe('two trainers on one checkpoint folder or dead-letter file (issue 17 #5)', () => {
  // slow enough per row (a wide network, batch 1) that the first job is still training when the second starts
  const slowArgs = (data: string, extra: readonly string[]) => ['train', '--data', data, '--targets', 'y', '--layers', '3,256:tanh,256:tanh,1:linear', '--optimizer', 'adam', ...extra];
  let data: string;
  beforeAll(() => {
    data = writeDirtyCsv('dirty.csv', 200_000);
  });

  it('the second writer of a checkpoint folder is refused (exit 2, naming the folder and the pid); the first finishes with its dead letters whole and once each', async () => {
    mkdirSync(join(work, 'two'), { recursive: true });
    const args = slowArgs(data, ['--checkpoint-dir', 'two/ck', '--checkpoint-every', '200', '--dead-letter', 'two/dead.ndjson', '--save', 'two/model.json']);
    const first = startBackground(args, 'two/ck/train-000000000200.sgck');
    await first.ready;
    expect(readFileSync(join(work, 'two/ck/train.lock'), 'utf8')).toContain(`"pid":${first.child.pid}`);
    const second = await runCli(work, args);
    expect(second.code, second.stderr).toBe(2);
    expect(second.stderr).toMatch(new RegExp(`--checkpoint-dir two/ck: .*in use by process ${first.child.pid} since \\d{4}-`));
    // the same with --resume (which would otherwise cut the dead-letter file under the first)
    const third = await runCli(work, [...args, '--resume']);
    expect(third.code, third.stderr).toBe(2);
    expect(third.stderr).toMatch(new RegExp(`in use by process ${first.child.pid}`));
    first.child.kill('SIGINT');
    const firstDone = await first.done;
    expect(firstDone.code, firstDone.stderr).toBe(0);
    expect(existsSync(join(work, 'two/ck/train.lock'))).toBe(false); // released on exit
    // every letter whole (parses) and no record twice
    const letters = deadLines('two/dead.ndjson');
    expect(letters.length).toBeGreaterThan(0);
    expect(new Set(letters).size).toBe(letters.length);
  }, 120_000);

  it('the second writer of a dead-letter file is refused even with another checkpoint folder (exit 2, naming the file and the pid)', async () => {
    mkdirSync(join(work, 'dl'), { recursive: true });
    const first = startBackground(slowArgs(data, ['--checkpoint-dir', 'dl/ck1', '--checkpoint-every', '200', '--dead-letter', 'dl/dead.ndjson']), 'dl/ck1/train-000000000200.sgck');
    await first.ready;
    const second = await runCli(work, slowArgs(data, ['--dead-letter', 'dl/dead.ndjson']));
    expect(second.code, second.stderr).toBe(2);
    expect(second.stderr).toMatch(new RegExp(`--dead-letter dl/dead\\.ndjson: cannot write: in use by process ${first.child.pid}`));
    first.child.kill('SIGINT');
    expect((await first.done).code).toBe(0);
    expect(existsSync(join(work, 'dl/dead.ndjson.lock'))).toBe(false);
    const letters = deadLines('dl/dead.ndjson');
    expect(new Set(letters).size).toBe(letters.length);
  }, 120_000);

  it('a lock left by a trainer killed with SIGKILL does not block the restart', async () => {
    mkdirSync(join(work, 'killed'), { recursive: true });
    const args = slowArgs(data, ['--checkpoint-dir', 'killed/ck', '--checkpoint-every', '200', '--dead-letter', 'killed/dead.ndjson', '--resume']);
    const first = startBackground(args, 'killed/ck/train-000000000200.sgck');
    await first.ready;
    first.child.kill('SIGKILL');
    expect((await first.done).signal).toBe('SIGKILL');
    // both locks are still there, naming a process that is gone
    expect(readFileSync(join(work, 'killed/ck/train.lock'), 'utf8')).toContain(`"pid":${first.child.pid}`);
    expect(readFileSync(join(work, 'killed/dead.ndjson.lock'), 'utf8')).toContain(`"pid":${first.child.pid}`);
    const again = startBackground(args, 'killed/ck/train-000000000400.sgck');
    await again.ready;
    again.child.kill('SIGINT');
    const done = await again.done;
    expect(done.code, done.stderr).toBe(0);
    expect(done.stderr).toMatch(/resuming from killed\/ck\/train-\d+\.sgck/);
  }, 120_000);
});

describe('a resume on other data at the same path is refused (issue 17 #4)', () => {
  const args = (dir: string, extra: readonly string[] = []) => trainArgs(`${dir}/data.csv`, ['--checkpoint-dir', `${dir}/ck`, '--checkpoint-every', '500', ...extra]);
  /** Trains on 2,000 rows with checkpoints, then lets `change` alter the file and resumes. */
  async function resumeAfter(dir: string, change: (path: string) => void): Promise<CliRun> {
    mkdirSync(join(work, dir), { recursive: true });
    writeCsv(`${dir}/data.csv`, 2000);
    const first = await runCli(work, args(dir));
    expect(first.code, first.stderr).toBe(0);
    change(join(work, dir, 'data.csv'));
    return runCli(work, args(dir, ['--resume']));
  }
  const refused = (run: CliRun, dir: string, why: RegExp) => {
    expect(run.code, run.stderr).toBe(2);
    expect(run.stderr).toMatch(new RegExp(`--resume: --data ${dir}/data\\.csv is not the data the checkpoint was written for: ${why.source}`));
    expect(run.stderr).not.toMatch(/^streamgrad: trained/m);
  };

  it('another file of the same length at the same path (other values): exit 2, naming the file', async () => {
    const run = await resumeAfter('other', (path) => {
      const text = readFileSync(path, 'utf8');
      // the same rows with every digit 3 made a 4: same size, other data
      writeFileSync(path, text.replace(/3/g, '4'));
    });
    refused(run, 'other', /its first 2000 records differ from the ones the checkpoint trained on \(modified /);
  }, 60_000);

  it('one value changed in the part already trained on (same size): exit 2', async () => {
    const run = await resumeAfter('edited', (path) => {
      const lines = readFileSync(path, 'utf8').split('\n');
      lines[1000] = lines[1000].replace(/\d(?=,)/, (d) => String((Number(d) + 1) % 10));
      writeFileSync(path, lines.join('\n'));
    });
    refused(run, 'edited', /its first 2000 records differ/);
  }, 60_000);

  it('a shorter file (replaced or cut): exit 2, with both sizes', async () => {
    const run = await resumeAfter('shorter', (path) => writeFileSync(path, `a,b,c,y\n${rows(0, 1500)}`));
    refused(run, 'shorter', /it was \d+ bytes \(modified .*\), it is \d+ bytes now/);
  }, 60_000);

  it('a file that only grew (records appended, as a log) resumes', async () => {
    const run = await resumeAfter('appended', (path) => appendFileSync(path, rows(2000, 2600)));
    expect(run.code, run.stderr).toBe(0);
    expect(run.stderr).toMatch(/resuming from appended\/ck\/train-000000002000\.sgck/);
    expect(run.stderr).toMatch(/trained 600 samples in 600 steps/);
  }, 60_000);

  it('streamgrad run: a model resumed on other data at the source path is refused with exit 2', async () => {
    mkdirSync(join(work, 'exp'), { recursive: true });
    writeCsv('exp/data.csv', 2000);
    writeFileSync(join(work, 'exp/config.json'), JSON.stringify({
      source: { csv: 'data.csv', targets: ['y'] },
      models: [{ name: 'm', layers: '3,8:tanh,1:linear', optimizer: { type: 'adam', lr: 0.01 } }],
      checkpoints: { dir: 'ck', everySteps: 500 },
    }));
    const first = await runCli(work, ['run', 'exp/config.json']);
    expect(first.code, first.stderr).toBe(0);
    writeCsv('exp/data.csv', 2000, 99); // other rows, the same path
    const resumed = await runCli(work, ['run', 'exp/config.json', '--resume']);
    expect(resumed.code, resumed.stderr).toBe(2);
    expect(resumed.stderr).toMatch(/--resume: source\.csv exp\/data\.csv is not the data the checkpoint was written for: (its first 2000 records differ|it was \d+ bytes)/);
    // the same data again (restored): resumes
    writeCsv('exp/data.csv', 2000);
    const again = await runCli(work, ['run', 'exp/config.json', '--resume']);
    expect(again.code, again.stderr).toBe(0);
  }, 90_000);
});

/** A checkpoint file with its JSON header changed by `edit` and a fresh, valid SHA-256 trailer (what a bug or a hand edit writes). */
function reforge(bytes: Uint8Array, edit: (header: Record<string, any>, body: Float64Array) => void): Uint8Array { // eslint-disable-line @typescript-eslint/no-explicit-any
  const view = new DataView(bytes.buffer, bytes.byteOffset, bytes.byteLength);
  const length = view.getUint32(8, true);
  const header = JSON.parse(new TextDecoder().decode(bytes.subarray(12, 12 + length))) as Record<string, any>; // eslint-disable-line @typescript-eslint/no-explicit-any
  const oldStart = Math.ceil((12 + length) / 8) * 8;
  const body = new Float64Array(Uint8Array.prototype.slice.call(bytes, oldStart, bytes.length - 32).buffer); // a copy (a Buffer's slice is a view)
  edit(header, body);
  const json = new TextEncoder().encode(JSON.stringify(header));
  const start = Math.ceil((12 + json.length) / 8) * 8;
  const out = new Uint8Array(start + body.byteLength + 32);
  out.set(bytes.subarray(0, 8));
  new DataView(out.buffer).setUint32(8, json.length, true);
  out.set(json, 12);
  out.set(new Uint8Array(body.buffer), start);
  out.set(createHash('sha256').update(out.subarray(0, start + body.byteLength)).digest(), start + body.byteLength);
  return out;
}

describe('a checkpoint with a valid checksum but impossible contents is refused like a corrupt one (issue 17 #11)', () => {
  const cases: [string, RegExp, (h: Record<string, any>, body: Float64Array) => void][] = [ // eslint-disable-line @typescript-eslint/no-explicit-any
    ['NaN weights', /params\[0\] is NaN/, (_h, body) => { body[0] = NaN; }],
    ['a negative learning rate', /optimizer\.learningRate: must be a finite number > 0, got -0\.01/, (h) => { h.optimizer.learningRate = -0.01; }],
    ['more steps than samples', /counters\.steps \(\d+\) exceeds counters\.samples/, (h) => { h.counters.steps = h.counters.samples + 5; }],
    ['a source offset beyond the records its counters read', /sourceOffset \d+ is not the \d+ records the ingestion counters read/, (h) => { h.sourceOffset += 1000; }],
  ];
  let reference: string;
  beforeAll(async () => {
    writeCsv('valid.csv', 1500);
    const run = await runCli(work, trainArgs('valid.csv', ['--save', 'valid-ref.json']));
    expect(run.code, run.stderr).toBe(0);
    reference = readFileSync(join(work, 'valid-ref.json'), 'utf8');
  }, 60_000);
  for (const [name, why, edit] of cases) {
    it(`${name}: the newest is refused, naming the field, and the run resumes from the one before it`, async () => {
      const dir = `valid-${name.replace(/\W+/g, '-')}`;
      mkdirSync(join(work, dir), { recursive: true });
      const args = trainArgs('valid.csv', ['--checkpoint-dir', `${dir}/ck`, '--checkpoint-every', '500', '--save', `${dir}/model.json`]);
      expect((await runCli(work, args)).code).toBe(0);
      const names = files(`${dir}/ck`).filter((n) => n.endsWith('.sgck'));
      expect(names).toEqual(['train-000000000500.sgck', 'train-000000001000.sgck', 'train-000000001500.sgck']);
      const newest = join(work, dir, 'ck', names[2]);
      writeFileSync(newest, reforge(readFileSync(newest), edit));
      const resumed = await runCli(work, [...args, '--resume']);
      expect(resumed.code, resumed.stderr).toBe(0);
      expect(resumed.stderr).toMatch(new RegExp(`refused checkpoint ${dir}/ck/${names[2]}: ${why.source}[^\n]*; trying the one before it`));
      expect(resumed.stderr).toMatch(new RegExp(`resuming from ${dir}/ck/${names[1]}`));
      expect(readFileSync(join(work, dir, 'model.json'), 'utf8')).toBe(reference);
    }, 60_000);
  }
});
