import { spawn } from 'node:child_process';
import { existsSync, mkdirSync, mkdtempSync, readdirSync, readFileSync, rmSync, statSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { decodeCheckpoint } from '../pipeline/checkpoint.ts';
import { BIN, killWhenTestEnds, runCli } from './helpers/cli.ts';
import { trainRefusal } from './helpers/train-refusal.ts';

/**
 * Checkpoints and exact resume through the real command line: `streamgrad train` on a CSV
 * file (with malformed rows, normalisation and a dead-letter file), killed and resumed.
 */
const work = mkdtempSync(join(tmpdir(), 'streamgrad-cli-ckpt-'));
afterAll(() => rmSync(work, { recursive: true, force: true }));

/** A seeded generator for the data and the kill points (a Lehmer LCG: reproducible failures). */
function lcg(seed: number) {
  let r = seed;
  return () => (r = (r * 16807) % 2147483647) / 2147483647;
}

/** `rows` rows of a CSV with a nonlinear target; about 1.8% of rows are malformed (a text cell, a short row). */
function writeCsv(name: string, rows: number): string {
  const rnd = lcg(1);
  const lines = ['a,b,c,d,y'];
  for (let i = 0; i < rows; i++) {
    const [a, b, c, d] = [rnd(), rnd(), rnd(), rnd()];
    if (i % 97 === 5) lines.push(`${a},oops,${c},${d},1`);
    else if (i % 131 === 7) lines.push(`${a},${b}`);
    else lines.push(`${a},${b},${c},${d},${Math.sin(3 * a) + b * c - d}`);
  }
  writeFileSync(join(work, name), `${lines.join('\n')}\n`);
  return name;
}

/** The command line of one training job; `dir` holds its outputs. */
const trainArgs = (data: string, dir: string, extra: readonly string[] = []) => (mkdirSync(join(work, dir), { recursive: true }), [
  'train', '--data', data, '--targets', 'y', '--layers', '4,32:tanh,32:tanh,1:linear',
  '--optimizer', 'adam', '--lr', '0.003', '--batch', '4', '--normalize',
  '--dead-letter', `${dir}/dead.ndjson`, '--save', `${dir}/model.json`, ...extra,
]);

/** The summary lines a resumed job must repeat exactly: counts, rejections, rolling metrics. */
const summary = (stderr: string) => stderr.split('\n').filter((l) => /^streamgrad: (rejected \d|rolling over)/.test(l));
/** Dead letters without their wall-clock time. */
const deadLetters = (dir: string) => readFileSync(join(work, dir, 'dead.ndjson'), 'utf8').split('\n').filter(Boolean).map((l) => {
  const { time: _time, ...rest } = JSON.parse(l) as Record<string, unknown>;
  return rest;
});

describe('streamgrad train --checkpoint-dir / --resume', () => {
  let data: string;
  let reference: { model: string; stderr: string };
  beforeAll(async () => {
    data = writeCsv('data.csv', 24_000);
    const run = await runCli(work, trainArgs(data, 'ref'), {});
    expect(run.code, run.stderr).toBe(0);
    reference = { model: readFileSync(join(work, 'ref/model.json'), 'utf8'), stderr: run.stderr };
  }, 120_000);

  it('killed with SIGKILL at 20 random points and resumed each time, ends bitwise identical to an uninterrupted run', async () => {
    // long enough that 20 segments of training never reach its end, however fast the machine
    const long = writeCsv('long.csv', 80_000);
    const uninterrupted = await runCli(work, trainArgs(long, 'long-ref'), {});
    expect(uninterrupted.code, uninterrupted.stderr).toBe(0);
    const dir = 'killed';
    const args = trainArgs(long, dir, ['--checkpoint-dir', `${dir}/ck`, '--checkpoint-every', '40', '--resume']);
    const rnd = lcg(20261128);
    const kills: string[] = [];
    const ckDir = join(work, dir, 'ck');
    for (let k = 0; k < 20; k++) {
      // one kill lands before training can have started; the others a random time after a
      // new checkpoint shows that training is under way (possibly in the middle of a write)
      const early = k === 3 || k === 12;
      const delay = Math.floor(rnd() * (early ? 150 : 30));
      const before = existsSync(ckDir) ? readdirSync(ckDir).filter((n) => n.endsWith('.sgck')).sort().at(-1) : undefined;
      const outcome = await new Promise<{ code: number | null; signal: NodeJS.Signals | null; stderr: string }>((resolve) => {
        const child = spawn(process.execPath, [BIN, ...args], { cwd: work, stdio: ['ignore', 'ignore', 'pipe'] });
        killWhenTestEnds(child);
        let stderr = '';
        child.stderr.setEncoding('utf8').on('data', (d: string) => { stderr += d; });
        const kill = () => setTimeout(() => child.kill('SIGKILL'), delay);
        if (early) kill();
        else {
          const poll = setInterval(() => {
            const newest = existsSync(ckDir) ? readdirSync(ckDir).filter((n) => n.endsWith('.sgck')).sort().at(-1) : undefined;
            if (newest !== undefined && newest !== before) {
              clearInterval(poll);
              kill();
            }
          }, 3);
          child.on('close', () => clearInterval(poll));
        }
        child.on('close', (code, signal) => resolve({ code, signal, stderr }));
      });
      expect(outcome.signal, `kill ${k} (after ${delay} ms): the job ended by itself first:\n${outcome.stderr}`).toBe('SIGKILL');
      const newest = readdirSync(ckDir).filter((n) => n.endsWith('.sgck')).sort().at(-1);
      kills.push(`${early ? 'early' : 'after a checkpoint'} +${delay} ms → newest ${newest ?? 'none'}`);
    }
    const last = await runCli(work, args, {});
    expect(last.code, last.stderr).toBe(0);
    expect(last.stderr).toMatch(/resuming from .*train-\d+\.sgck: step \d+/);
    expect(readFileSync(join(work, dir, 'model.json'), 'utf8'), kills.join('\n')).toBe(readFileSync(join(work, 'long-ref/model.json'), 'utf8'));
    expect(summary(last.stderr)).toEqual(summary(uninterrupted.stderr));
    expect(deadLetters(dir)).toEqual(deadLetters('long-ref'));
    // the checkpoints moved forward through the data
    expect(new Set(kills).size).toBeGreaterThan(10);
  }, 240_000);

  it('Ctrl-C (SIGINT) stops after the batch in progress and writes a checkpoint; --resume finishes the same model', async () => {
    const dir = 'interrupted';
    const args = trainArgs(data, dir, ['--checkpoint-dir', `${dir}/ck`, '--checkpoint-interval', '3600']);
    let sent = false;
    const first = await runCli(work, args, {
      onStderr: (text, child) => {
        // a checkpoint only on request here: the one on Ctrl-C, once training runs (its first rejected line)
        if (!sent && text.includes('rejected line')) {
          sent = true;
          child.kill('SIGINT');
        }
      },
    });
    expect(first.code, first.stderr).toBe(0);
    expect(first.stderr).toMatch(/SIGINT: stopping after the batch in progress and writing a checkpoint/);
    expect(first.stderr).toMatch(/interrupted after \d+ samples/);
    const files = readdirSync(join(work, dir, 'ck'));
    expect(files).toHaveLength(1);
    const checkpoint = decodeCheckpoint(readFileSync(join(work, dir, 'ck', files[0])));
    expect(checkpoint.header.counters.samples).toBeGreaterThan(0);
    expect(checkpoint.header.counters.samples % 4).toBe(0); // a whole number of batches: no half-trained batch
    expect(checkpoint.header.sourceOffset).toBeLessThan(24_000);

    const rest = await runCli(work, [...args, '--resume'], {});
    expect(rest.code, rest.stderr).toBe(0);
    expect(readFileSync(join(work, dir, 'model.json'), 'utf8')).toBe(reference.model);
    expect(summary(rest.stderr)).toEqual(summary(reference.stderr));
  }, 120_000);

  describe('a damaged newest checkpoint is refused, and the one before it is used', () => {
    let small: string;
    let smallReference: string;
    beforeAll(async () => {
      small = writeCsv('small.csv', 2_000);
      const run = await runCli(work, trainArgs(small, 'small-ref'), {});
      expect(run.code, run.stderr).toBe(0);
      smallReference = readFileSync(join(work, 'small-ref/model.json'), 'utf8');
    }, 60_000);

    // byte classes of streamgrad/checkpoint@1: magic + length, JSON header, float64 body, SHA-256 trailer
    const damages: [string, (bytes: Uint8Array, headerEnd: number) => Uint8Array][] = [
      ['cut inside the magic', (b) => b.subarray(0, 5)],
      ['cut inside the header', (b, h) => b.subarray(0, Math.floor(h / 2))],
      ['cut in half (inside the body)', (b) => b.subarray(0, b.length >> 1)],
      ['cut inside the checksum', (b) => b.subarray(0, b.length - 10)],
      ['one body byte changed', (b) => { const c = b.slice(); c[c.length - 100] ^= 1; return c; }],
      ['one header byte changed', (b) => { const c = b.slice(); c[20] ^= 4; return c; }],
      ['empty', () => new Uint8Array(0)],
    ];
    for (const [name, damage] of damages) {
      it(name, async () => {
        const dir = `damaged-${name.replace(/\W+/g, '-')}`;
        const args = trainArgs(small, dir, ['--checkpoint-dir', `${dir}/ck`, '--checkpoint-every', '100']);
        const first = await runCli(work, args, {});
        expect(first.code, first.stderr).toBe(0);
        const ck = join(work, dir, 'ck');
        const files = readdirSync(ck).sort();
        expect(files.length).toBe(3); // the newest 3 of 5
        const newest = join(ck, files.at(-1)!);
        const bytes = readFileSync(newest);
        writeFileSync(newest, damage(bytes, 12 + new DataView(bytes.buffer, bytes.byteOffset).getUint32(8, true)));
        const resumed = await runCli(work, [...args, '--resume'], {});
        expect(resumed.code, resumed.stderr).toBe(0);
        expect(resumed.stderr).toMatch(new RegExp(`refused checkpoint .*${files.at(-1)}: .*(truncated|corrupt|checksum|too short|magic)`));
        expect(resumed.stderr).toContain(`resuming from ${join(dir, 'ck', files.at(-2)!)}`);
        expect(readFileSync(join(work, dir, 'model.json'), 'utf8')).toBe(smallReference);
      }, 60_000);
    }

    it('every checkpoint damaged: exit 2, naming each file and what is wrong', async () => {
      const dir = 'all-damaged';
      const args = trainArgs(small, dir, ['--checkpoint-dir', `${dir}/ck`, '--checkpoint-every', '200']);
      expect((await runCli(work, args, {})).code).toBe(0);
      for (const f of readdirSync(join(work, dir, 'ck'))) writeFileSync(join(work, dir, 'ck', f), 'garbage');
      const resumed = await runCli(work, [...args, '--resume'], {});
      expect(resumed.code).toBe(2);
      expect(resumed.stderr).toMatch(/--resume: no intact checkpoint in .*ck: .*\.sgck: .*too short/);
    }, 60_000);
  });

  it('writes that fail (the folder gone) are reported and training goes on; N in a row stop it with exit 1', async () => {
    /**
     * Replaces the checkpoint folder with a plain file once the first checkpoint is there:
     * every later write fails (ENOTDIR). Polled from the job's first line of output; a
     * removal that races a write into the folder (ENOTEMPTY) is tried again.
     */
    const breakFolder = (dir: string) => {
      let polling = false;
      return () => {
        if (polling) return;
        polling = true;
        const ck = join(work, dir, 'ck');
        const poll = setInterval(() => {
          try {
            if (!existsSync(ck) || !statSync(ck).isDirectory() || !readdirSync(ck).some((n) => n.endsWith('.sgck'))) return;
            rmSync(ck, { recursive: true });
            writeFileSync(ck, 'not a folder');
            clearInterval(poll);
          } catch {
            // the job wrote into the folder meanwhile: next time
          }
        }, 2);
        setTimeout(() => clearInterval(poll), 30_000).unref();
      };
    };
    const lenient = await runCli(work, trainArgs(data, 'full-1', ['--checkpoint-dir', 'full-1/ck', '--checkpoint-every', '2', '--checkpoint-failures', '1000000']), { onStderr: breakFolder('full-1') });
    expect(lenient.code, lenient.stderr).toBe(0);
    // the first failure may be caught mid-swap (ENOENT...); from then on the folder is a file
    expect(lenient.stderr).toMatch(/checkpoint at step \d+ failed: .*\(1 failed so far; training goes on\)/);
    expect(lenient.stderr).toMatch(/failed: ENOTDIR: not a directory, .*\(10 failed so far; training goes on\)/);
    expect(lenient.stderr).toMatch(/\(100 failed so far; training goes on\)/);
    expect(lenient.stderr).not.toMatch(/\(2 failed so far/); // reported, not flooded
    expect(lenient.stderr).toMatch(/checkpoints in full-1\/ck: none written; \d+ failed writes/);
    expect(readFileSync(join(work, 'full-1/model.json'), 'utf8')).toBe(reference.model); // the failures never touched training
    const strict = await runCli(work, trainArgs(data, 'full-2', ['--checkpoint-dir', 'full-2/ck', '--checkpoint-every', '1', '--checkpoint-failures', '3']), { onStderr: breakFolder('full-2') });
    expect(strict.code).toBe(1);
    expect(strict.stderr).toMatch(/checkpoint writes failed 3 times in a row \(last: E[A-Z]+: .*\) \(SG_ERR_CHECKPOINT\); model not saved/);
  }, 120_000);

  it('--log-json: the job as NDJSON events on stdout (start, checkpoints, rejected, done), stderr only the summary', async () => {
    const dir = 'json';
    const run = await runCli(work, trainArgs(data, dir, ['--checkpoint-dir', `${dir}/ck`, '--checkpoint-every', '2000', '--log-json']), {});
    expect(run.code, run.stderr).toBe(0);
    const events = run.stdout.split('\n').filter(Boolean).map((l) => JSON.parse(l) as Record<string, unknown>);
    expect(events[0]).toMatchObject({ event: 'start', command: 'train', source: { name: data, totalBytes: statSync(join(work, data)).size } });
    expect(events.filter((e) => e.event === 'checkpoint').map((e) => e.step)).toEqual([2000, 4000, 5893]);
    const rejected = events.find((e) => e.event === 'rejected');
    expect(rejected).toEqual(expect.objectContaining({ total: 430, byCode: { SG_ERR_TYPE: 248, SG_ERR_ARITY: 182 }, deadLetters: `${dir}/dead.ndjson` }));
    expect(events.at(-1)).toMatchObject({ event: 'done', outcome: 'finished', models: [{ model: 'train', steps: 5893 }], saved: [`${dir}/model.json`] }); // one artifact: the preprocessing is inside
    expect(run.stderr).not.toMatch(/rejected line/); // informational lines are off with --log-json
    expect(summary(run.stderr)).toEqual(summary(reference.stderr));
  }, 60_000);

  it('--normalize-warmup / --normalize-clip travel in the checkpoint: resumed from the middle with the same ones, bitwise the uninterrupted model; with others, refused (exit 2)', async () => {
    const dir = 'normaliser';
    const small = writeCsv('normaliser.csv', 2_000);
    const args = trainArgs(small, dir, ['--normalize-warmup', '7', '--normalize-clip', '4', '--checkpoint-dir', `${dir}/ck`, '--checkpoint-every', '100', '--checkpoint-keep', '100']);
    // other settings give another model: the options reach the normaliser (the two at once: one command line less one after another)
    const [whole, plain] = await Promise.all([runCli(work, args, {}), runCli(work, trainArgs(small, `${dir}-plain`), {})]);
    expect(whole.code, whole.stderr).toBe(0);
    const final = readFileSync(join(work, dir, 'model.json'), 'utf8');
    expect(plain.code, plain.stderr).toBe(0);
    expect(readFileSync(join(work, `${dir}-plain`, 'model.json'), 'utf8')).not.toBe(final);
    // keep only a checkpoint from the middle, and resume from it
    const ck = join(work, dir, 'ck');
    const files = readdirSync(ck).filter((n) => n.endsWith('.sgck')).sort();
    expect(files.length).toBeGreaterThan(3);
    const middle = files[Math.floor(files.length / 2)];
    const header = decodeCheckpoint(readFileSync(join(ck, middle))).header;
    expect((header.sections.normalizer as { settings?: unknown }).settings).toEqual({ warmup: 7, clip: 4 });
    for (const f of files) if (f !== middle) rmSync(join(ck, f));
    rmSync(join(work, dir, 'model.json'));
    const at = args.indexOf('--normalize-clip');
    const other = await runCli(work, [...args.slice(0, at), '--normalize-clip', 'none', ...args.slice(at + 2), '--resume'], {});
    expect(other.code).toBe(2);
    expect(other.stderr).toMatch(/--resume: normalizer\.settings: the saved statistics were used with warm-up 7, clip 4, this normaliser has warm-up 7, clip none/);
    const resumed = await runCli(work, [...args, '--resume'], {});
    expect(resumed.code, resumed.stderr).toBe(0);
    expect(resumed.stderr).toMatch(new RegExp(`resuming from .*${middle.replace('.', '\\.')}`));
    expect(readFileSync(join(work, dir, 'model.json'), 'utf8')).toBe(final);
    expect(summary(resumed.stderr)).toEqual(summary(whole.stderr));
  }, 400_000); // four short runs (three one after another), but each starts a process: minutes on a loaded machine

  it('refuses to resume another model or other data, and bad checkpoint options, with exit 2', async () => {
    const dir = 'mismatch';
    const base = trainArgs(data, dir, ['--checkpoint-dir', `${dir}/ck`, '--checkpoint-every', '2000']);
    expect((await runCli(work, base, {})).code).toBe(0);
    const other = base.map((a) => (a === '4,32:tanh,32:tanh,1:linear' ? '4,16:tanh,1:linear' : a));
    const wrongModel = await runCli(work, [...other, '--resume'], {});
    expect(wrongModel.code).toBe(2);
    expect(wrongModel.stderr).toMatch(/--resume .*: topology 4→32:tanh→32:tanh→1:linear does not match the model's 4→16:tanh→1:linear/);
    writeCsv('copy.csv', 100);
    const wrongData = await runCli(work, [...base.map((a) => (a === data ? 'copy.csv' : a)), '--resume'], {});
    expect(wrongData.code).toBe(2);
    expect(wrongData.stderr).toMatch(/it was written for other data/);
    // refused as the options are read: in process (before: two more command lines, five in all one after another)
    const noDir = await trainRefusal(work, trainArgs(data, dir, ['--resume']).slice(1));
    expect(noDir?.code).toBe(2);
    expect(noDir?.stderr).toMatch(/--resume: needs --checkpoint-dir DIR/);
    const badEvery = await trainRefusal(work, trainArgs(data, dir, ['--checkpoint-dir', 'x', '--checkpoint-every', '0']).slice(1));
    expect(badEvery?.code).toBe(2);
    expect(badEvery?.stderr).toMatch(/--checkpoint-every: must be an integer ≥ 1, got "0"/);
  }, 120_000);
});
