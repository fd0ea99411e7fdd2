import { spawn } from 'node:child_process';
import { mkdtempSync, readFileSync, rmSync, truncateSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, describe, expect, it } from 'vitest';
import { CliError } from '../../cli/cli-error.ts';
import { parsePredictArgs } from '../../cli/predict-command.ts';
import { parseTrainArgs } from '../../cli/train-command.ts';
import type { DeadLetter } from '../../core/dead-letter.ts';
import { BIN, killWhenTestEnds, runCli } from '../helpers/cli.ts';

/**
 * Hostile input through the real command line (issue #17, items 2, 9 and 10): a broken
 * CSV quote, a line longer than memory should hold, bytes that are not UTF-8, numbers
 * that would allocate what cannot be allocated, files that never end.
 */
const work = mkdtempSync(join(tmpdir(), 'streamgrad-cli-hostile-'));
afterAll(() => rmSync(work, { recursive: true, force: true }));
const write = (name: string, content: string | Buffer) => {
  writeFileSync(join(work, name), content);
  return name;
};
const events = (stdout: string) => stdout.split('\n').filter((l) => l.startsWith('{')).map((l) => JSON.parse(l) as Record<string, unknown> & { event: string });
const letters = (name: string) => readFileSync(join(work, name), 'utf8').trimEnd().split('\n').filter(Boolean).map((l) => JSON.parse(l) as DeadLetter);
const usageOf = (parse: () => unknown) => {
  try {
    parse();
  } catch (error) {
    if (error instanceof CliError) return error.message;
    throw error;
  }
  return 'ok';
};

describe('streamgrad train: every row is trained or rejected, once', () => {
  it('one unclosed quote in row 11 of 100,000 costs that row only: 99,999 trained + 1 rejected = the file (issue #17 item 2)', async () => {
    const rows = Array.from({ length: 100_000 }, (_, i) => `${(i % 7) / 7},${(i % 5) / 5},${(i % 3) / 3},${(i % 11) / 11}`);
    rows[10] = '"oops,2,3,4';
    write('quote.csv', `a,b,c,y\n${rows.join('\n')}\n`);
    const run = await runCli(work, ['train', '--data', 'quote.csv', '--targets', 'y', '--layers', '3,1:linear', '--dead-letter', 'quote-dead.ndjson', '--log-json']);
    expect(run.code).toBe(0);
    const all = events(run.stdout);
    const done = all.find((e) => e.event === 'done') as unknown as { models: { samples: number; rejected: number }[] };
    const rejected = all.find((e) => e.event === 'rejected') as unknown as { total: number; byCode: Record<string, number> };
    expect(done.models[0].samples).toBe(99_999);
    expect(rejected).toMatchObject({ total: 1, byCode: { SG_ERR_TYPE: 1 } });
    expect(done.models[0].samples + rejected.total).toBe(rows.length);
    const dead = letters('quote-dead.ndjson');
    expect(dead).toHaveLength(1);
    expect(dead[0]).toMatchObject({ line: 12, code: 'SG_ERR_TYPE', raw: '"oops,2,3,4' });
    expect(dead[0].message).toMatch(/^line 12: not a CSV record: unclosed quote/);
  });

  it('a line of hundreds of megabytes on standard input is one SG_ERR_LINE_TOO_LONG dead letter with a bounded prefix; memory stays far below the line; training goes on to done (issue #17 item 9)', { timeout: 120_000 }, async () => {
    const LINE_MB = 320;
    const child = spawn(process.execPath, [BIN, 'train', '--data', '-', '--layers', '3,1:linear', '--dead-letter', 'long-dead.ndjson', '--log-json'], { cwd: work, stdio: ['pipe', 'pipe', 'pipe'] });
    killWhenTestEnds(child);
    let stdout = '';
    let stderr = '';
    child.stdout.setEncoding('utf8').on('data', (d: string) => { stdout += d; });
    child.stderr.setEncoding('utf8').on('data', (d: string) => { stderr += d; });
    // the child's peak resident memory, from the kernel's high-water mark
    let peakKb = 0;
    const gauge = setInterval(() => {
      try {
        const kb = Number(/VmHWM:\s+(\d+)/.exec(readFileSync(`/proc/${child.pid}/status`, 'utf8'))?.[1] ?? 0);
        peakKb = Math.max(peakKb, kb);
      } catch {
        // exited
      }
    }, 20);
    const closed = new Promise<number | null>((resolve) => child.on('close', resolve));
    child.stdin.on('error', () => undefined);
    const chunk = Buffer.alloc(1 << 20, 0x61);
    const send = (b: Buffer | string) => (child.stdin.write(b) ? Promise.resolve() : new Promise<void>((resolve) => child.stdin.once('drain', () => resolve())));
    await send('{"x":[1,2,3],"y":[1]}\n');
    for (let i = 0; i < LINE_MB; i++) await send(chunk);
    await send('\n{"x":[3,2,1],"y":[2]}\n');
    child.stdin.end();
    const code = await closed;
    clearInterval(gauge);
    expect(stderr).not.toMatch(/RangeError|internal error/);
    expect(code).toBe(0);
    const all = events(stdout);
    expect(all.at(-1)).toMatchObject({ event: 'done', outcome: 'finished', models: [{ samples: 2, rejected: 1 }] });
    expect(all.find((e) => e.event === 'rejected')).toMatchObject({ total: 1, byCode: { SG_ERR_LINE_TOO_LONG: 1 } });
    const dead = letters('long-dead.ndjson');
    expect(dead).toHaveLength(1);
    expect(dead[0]).toMatchObject({ line: 2, code: 'SG_ERR_LINE_TOO_LONG', raw: 'a'.repeat(256) });
    expect(dead[0].message).toBe(`line 2: longer than the 16 MiB limit (${LINE_MB * 2 ** 20} bytes); skipped to the next line`);
    expect(peakKb).toBeGreaterThan(0);
    expect(peakKb / 1024).toBeLessThan(220); // the line is 320 MiB; the process holds at most the 16 MiB limit beyond its ~120 MB baseline
  });

  it('predict reads through the same bounded reader: --max-line-bytes, the over-long line reported, the rest predicted', async () => {
    write('m.json', JSON.stringify({ format: 'streamgrad/model@1', inputSize: 2, layers: [{ activation: 'linear', weights: [[1, 1]], bias: [0] }] }));
    const stdin = `{"x":[1,2]}\n{"x":[${'1,'.repeat(2000)}1]}\n{"x":[3,4]}\n`;
    const run = await runCli(work, ['predict', '--model', 'm.json', '--max-line-bytes', '1024'], { stdin });
    expect(run.code).toBe(0);
    expect(run.stdout.trim().split('\n').map((l) => JSON.parse(l) as unknown)).toEqual([{ line: 1, y: [3] }, { line: 3, y: [7] }]);
    expect(run.stderr).toMatch(/rejected line 2 \(SG_ERR_LINE_TOO_LONG\): longer than the 1 KiB limit \(4009 bytes\)/);
  });

  it('invalid UTF-8 inside a JSON string is rejected as SG_ERR_BAD_JSON, never trained on (issue #17 item 10)', async () => {
    write('bytes.ndjson', Buffer.concat([Buffer.from('{"x":[1],"y":[1]}\n{"x":[2],"y":[2],"tag":"'), Buffer.from([0xff]), Buffer.from('"}\n{"x":[3],"y":[3]}\n')]));
    const run = await runCli(work, ['train', '--data', 'bytes.ndjson', '--layers', '1,1:linear', '--log-json']);
    expect(run.code).toBe(0);
    const all = events(run.stdout);
    expect(all.find((e) => e.event === 'rejected')).toMatchObject({ total: 1, byCode: { SG_ERR_BAD_JSON: 1 } });
    expect(all.at(-1)).toMatchObject({ event: 'done', models: [{ samples: 2 }] });
  });
});

describe('bounds: a size that cannot be allocated, or a file that never ends, is exit 2 naming it (issue #17 items 9, 10)', () => {
  it('--window 1e12 and a layer of 10^8 units end in exit 2 naming the option, not an internal error', async () => {
    write('s.ndjson', '{"x":[1,2,3],"y":[1]}\n');
    const [window, wasm] = await Promise.all([
      runCli(work, ['train', '--data', 's.ndjson', '--layers', '3,1:linear', '--window', '1000000000000']),
      runCli(work, ['train', '--data', 's.ndjson', '--layers', '3,100000000:relu,1:linear', '--backend', 'wasm']),
    ]);
    expect(window).toMatchObject({ code: 2, stderr: 'streamgrad: --window: must be at most 1000000, got 1000000000000\n' });
    expect(wasm).toMatchObject({ code: 2, stderr: 'streamgrad: --layers: layer 1: units must be at most 1048576, got 100000000\n' });
  });

  it('every size option has a documented bound, checked before anything is allocated', () => {
    const base = ['--data', 's.ndjson', '--layers', '3,1:linear'];
    const train = (...more: string[]) => usageOf(() => parseTrainArgs([...base, ...more]));
    expect(usageOf(() => parseTrainArgs(['--data', 'x', '--layers', '3,100000000:relu,1:linear', '--backend', 'js']))).toBe('--layers: layer 1: units must be at most 1048576, got 100000000');
    expect(usageOf(() => parseTrainArgs(['--data', 'x', '--layers', '3,5000:relu,5000:relu,1:linear']))).toMatch(/^--layers: 25,030,001 parameters, more than the 16,777,216 a model may have/);
    expect(usageOf(() => parseTrainArgs(['--data', 'x', '--layers', '2000000,1:linear']))).toBe('--layers: the input size must be at most 1048576, got 2000000');
    expect(train('--batch', '1000000')).toBe('--batch: must be at most 65536, got 1000000');
    expect(train('--window', '1000001')).toBe('--window: must be at most 1000000, got 1000001');
    expect(train('--status-interval', '1e10')).toBe('--status-interval: must be at most 2147483, got 10000000000');
    expect(train('--checkpoint-dir', 'ck', '--checkpoint-interval', '1e10')).toBe('--checkpoint-interval: must be at most 2147483, got 10000000000');
    expect(usageOf(() => parseTrainArgs(['--mqtt', 'mqtt://127.0.0.1:1', '--topic', 't', '--layers', '3,1:linear', '--queue', '1000000000000']))).toBe('--queue: must be at most 1048576, got 1000000000000');
    expect(train('--max-line-bytes', '10')).toBe('--max-line-bytes: must be an integer from 64 to 268435456 (256 MiB), got 10');
    expect(train('--max-line-bytes', '1e9')).toMatch(/^--max-line-bytes: must be an integer/);
    expect(usageOf(() => parseTrainArgs(['--mqtt', 'mqtt://127.0.0.1:1', '--topic', 't', '--layers', '3,1:linear', '--max-line-bytes', '1024']))).toMatch(/^--max-line-bytes: applies to --data/);
    expect(usageOf(() => parsePredictArgs(['--model', 'm.json', '--max-line-bytes', '268435457']))).toMatch(/^--max-line-bytes: must be an integer from 64/);
    expect(train('--max-line-bytes', '1024')).toBe('ok');
  });

  it('a batch that fits alone but not with the model\'s width is refused with the memory it would take', async () => {
    const run = await runCli(work, ['train', '--data', 's.ndjson', '--layers', '3,1000000:relu,1:linear', '--batch', '1000', '--backend', 'js']);
    expect(run.code).toBe(2);
    expect(run.stderr).toMatch(/^streamgrad: --batch: 1000 rows of this model need 3,000,008,000 buffer values \(22889 MiB\), more than the 67,108,864 \(512 MiB\) a batch may take/);
  });

  it('inspect and predict bound what they read: /dev/zero, an over-large file and run /dev/zero are exit 2 naming the file', async () => {
    const huge = join(work, 'huge.json');
    writeFileSync(huge, '{');
    truncateSync(huge, 513 * 2 ** 20); // sparse: 513 MiB that cost nothing to make
    const [zero, big, predict, config] = await Promise.all([
      runCli(work, ['inspect', '/dev/zero']),
      runCli(work, ['inspect', 'huge.json']),
      runCli(work, ['predict', '--model', '/dev/zero']),
      runCli(work, ['run', '/dev/zero']),
    ]);
    expect(zero).toMatchObject({ code: 2, stderr: 'streamgrad: inspect /dev/zero: not read: not a streamgrad model or checkpoint (it starts with byte 0x00)\n' });
    expect(big).toMatchObject({ code: 2, stderr: `streamgrad: inspect huge.json: not read: ${513 * 2 ** 20} bytes, larger than the 512 MiB such a file may have\n` });
    expect(predict).toMatchObject({ code: 2, stderr: 'streamgrad: --model /dev/zero: not read: not a streamgrad model or checkpoint (it starts with byte 0x00)\n' });
    expect(config.code).toBe(2);
    expect(config.stderr).toMatch(/^streamgrad: \/dev\/zero: not read: not a JSON config/);
  });

  it('a config file is held to the same bounds: every problem named by its path (issue #17 item 10)', async () => {
    write('bounds.json', JSON.stringify({
      source: { ndjson: 's.ndjson', maxLineBytes: 10 },
      models: [
        { layers: '3,100000000:relu,1:linear', backend: 'js' },
        { layers: [{ units: 1000000, activation: 'relu' }, { units: 1, activation: 'linear' }], inputs: 3, batch: 1000 },
        { layers: '3,1:linear', batch: 100000 },
      ],
      evaluation: { window: 1e12 },
      checkpoints: { dir: '.', everySeconds: 1e12 },
    }));
    write('mqtt-queue.json', JSON.stringify({ source: { mqtt: { url: 'mqtt://127.0.0.1:1', topics: 't', queue: 1e9 } }, models: [{ layers: '1,1:linear' }] }));
    write('mqtt-ok.json', JSON.stringify({ source: { mqtt: { url: 'mqtt://127.0.0.1:1', topics: 't' } }, models: [{ layers: '1,1:linear' }] }));
    const [bounds, queue, override] = await Promise.all([
      runCli(work, ['run', 'bounds.json', '--check']),
      runCli(work, ['run', 'mqtt-queue.json', '--check']),
      runCli(work, ['run', 'mqtt-ok.json', '--check', '--max-line-bytes', '1024']),
    ]);
    expect(bounds.code).toBe(2);
    const problems = bounds.stderr.split('\n');
    expect(problems).toContain('streamgrad: source.maxLineBytes: must be an integer ≥ 64, got 10');
    expect(problems).toContain('streamgrad: models[0].layers: layer 1: units must be at most 1048576, got 100000000');
    expect(problems.some((p) => p.startsWith('streamgrad: models[1].batch: 1000 rows of this model need'))).toBe(true);
    expect(problems).toContain('streamgrad: models[2].batch: must be at most 65536, got 100000');
    expect(problems).toContain('streamgrad: evaluation.window: must be an integer ≤ 1000000, got 1000000000000');
    expect(problems).toContain('streamgrad: checkpoints.everySeconds: must be a number ≤ 2147483, got 1000000000000');
    expect(queue.code).toBe(2);
    expect(queue.stderr).toContain('streamgrad: source.mqtt.queue: must be an integer ≤ 1048576, got 1000000000');
    expect(override.code).toBe(2);
    expect(override.stderr).toContain('--max-line-bytes: applies to a source that reads lines (csv, ndjson, stdin), not to mqtt');
  });

  it('a CSV header that names a column twice is exit 2 naming the header, with --features or without (not an option never given, not exit 1 after a summary)', async () => {
    write('dup.csv', 'a,a,y\n1,2,3\n4,5,6\n');
    for (const args of [['--layers', '2,4:tanh,1:linear'], ['--features', 'a', '--layers', '1,4:tanh,1:linear']]) {
      const run = await runCli(work, ['train', '--data', 'dup.csv', '--targets', 'y', ...args]);
      expect(run.code).toBe(2);
      expect(run.stderr).toContain('dup.csv: header names column "a" twice (line 1)');
      expect(run.stderr).not.toContain('--features');
      expect(run.stderr).not.toContain('trained 0 samples');
    }
  });
});

