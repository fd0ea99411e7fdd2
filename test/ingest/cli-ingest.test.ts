import { mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { createRequire } from 'node:module';
import { tmpdir } from 'node:os';
import { dirname, join } from 'node:path';
import { connectAsync } from 'mqtt';
import { afterAll, describe, expect, it } from 'vitest';
import { CliError } from '../../cli/cli-error.ts';
import { parseTrainArgs } from '../../cli/train-command.ts';
import type { DeadLetter } from '../../core/dead-letter.ts';
import { type CliOptions, runCli } from '../helpers/cli.ts';
import { findMosquitto, mosquittoForThisFile } from '../helpers/mosquitto.ts';

/** `streamgrad train` on CSV, named NDJSON and MQTT, spawned as the real command (as test/cli.test.ts does). */
const DATA = join(dirname(createRequire(import.meta.url).resolve('vega-datasets')), '..', 'data');
const work = mkdtempSync(join(tmpdir(), 'streamgrad-cli-ingest-'));
afterAll(() => rmSync(work, { recursive: true, force: true }));
const write = (name: string, text: string) => {
  writeFileSync(join(work, name), text);
  return name;
};

const cli = (args: readonly string[], options: CliOptions = {}) => runCli(work, args, options);

const usageOf = (args: string[]) => {
  try {
    parseTrainArgs(args);
  } catch (error) {
    if (error instanceof CliError) return error.message;
    throw error;
  }
  return 'ok';
};

describe('streamgrad train: ingestion options', () => {
  it('trains on a CSV file by column names, discovers the classes, normalises, writes dead letters with line numbers', async () => {
    const csv = readFileSync(join(DATA, 'seattle-weather.csv'), 'utf8').trimEnd().split('\n');
    // spoil a few rows: a word, an empty cell, a short row, an unknown class
    csv[10] = csv[10].replace(/,([\d.]+),/, ',warm,');
    csv[20] = csv[20].replace(/,([\d.]+),/, ',,');
    csv[30] = '2012-01-30,1.0,2.0';
    csv[40] = csv[40].replace(/[a-z]+$/, 'hail');
    const data = write('weather.csv', `${csv.join('\n')}\n`);
    const run = await cli(['train', '--data', data, '--features', 'precipitation,temp_max,temp_min,wind', '--targets', 'weather', '--classes', 'drizzle,fog,rain,snow,sun', '--normalize',
      '--layers', '4,16:tanh,5:softmax', '--loss', 'cross_entropy', '--optimizer', 'adam', '--lr', '0.01', '--window', '2000',
      '--dead-letter', 'dead.ndjson', '--save', 'weather.json']);
    expect(run.code, run.stderr).toBe(0);
    expect(run.stderr).toContain('trained 1457 samples');
    expect(run.stderr).toContain('rejected line 11 (SG_ERR_TYPE): precipitation: must be a number, got the string "warm"');
    expect(run.stderr).toContain('rejected line 31 (SG_ERR_ARITY): has 3 fields, the header has 6');
    // the summary's noun fits the source: CSV rows (never "not JSON")
    expect(run.stderr).toContain('rejected 4 rows (4 invalid samples)');
    const accuracy = Number(/accuracy ([\d.]+)%/.exec(run.stderr)?.[1]);
    expect(accuracy).toBeGreaterThanOrEqual(68);
    const letters = readFileSync(join(work, 'dead.ndjson'), 'utf8').trimEnd().split('\n').map((l) => JSON.parse(l) as DeadLetter);
    expect(letters.map((l) => [l.line, l.code])).toEqual([[11, 'SG_ERR_TYPE'], [21, 'SG_ERR_MISSING'], [31, 'SG_ERR_ARITY'], [41, 'SG_ERR_TYPE']]);
    expect(letters[0].raw).toBe(csv[10]);
    const { preprocessing } = JSON.parse(readFileSync(join(work, 'weather.json'), 'utf8'));
    expect(preprocessing).toMatchObject({ features: ['precipitation', 'temp_max', 'temp_min', 'wind'], classes: ['drizzle', 'fog', 'rain', 'snow', 'sun'], normalizer: { x: { count: 1457 } } });
  });

  it('reads CSV from standard input (--data - --format csv) and named NDJSON records with a missing-value policy', async () => {
    const rows = Array.from({ length: 200 }, (_, i) => `${i % 10},${(i * 7) % 13},${(i % 10) + 0.5 * ((i * 7) % 13)}`);
    const [stdin, named] = await Promise.all([
      cli(['train', '--data', '-', '--format', 'csv', '--features', 'a,b', '--targets', 'y', '--layers', '2,1:linear', '--lr', '0.001'], { stdin: `a,b,y\n${rows.join('\n')}\n` }),
      cli(['train', '--data', write('named.ndjson', '{"a":1,"b":2,"y":2}\n{"b":4,"y":3,"extra":1}\n{"a":"x","b":1,"y":1}\n'),
        '--features', 'a,b', '--targets', 'y', '--missing', 'a=last', '--layers', '2,1:linear']),
    ]);
    expect(stdin.code, stdin.stderr).toBe(0);
    expect(stdin.stderr).toContain('trained 200 samples');
    expect(named.code, named.stderr).toBe(0);
    expect(named.stderr).toContain('trained 2 samples');
    expect(named.stderr).toContain('rejected line 3 (SG_ERR_TYPE): a: must be a number');
    expect(named.stderr).toContain('ignored 1 unknown field (extra); imputed 1 missing value');
  });

  it('refuses bad ingestion options with a one-line usage error naming the option', async () => {
    const base = ['--layers', '2,1:linear'];
    expect(usageOf(['--data', 'x.csv', ...base])).toBe('--targets: required for CSV data: the column(s) to predict');
    expect(usageOf(['--data', 'x.ndjson', '--features', 'a', ...base])).toBe('--targets: required with --features');
    expect(usageOf(['--data', 'x.ndjson', '--topic', 't', ...base])).toBe('--topic: only applies with --mqtt URL');
    expect(usageOf(['--mqtt', 'mqtt://127.0.0.1:1', ...base])).toBe('--topic: required with --mqtt: the topic filter(s) to subscribe to');
    expect(usageOf(['--mqtt', 'http://x', '--topic', 't', ...base])).toMatch(/^--mqtt: must be a broker URL/);
    expect(usageOf(['--data', 'x', '--mqtt', 'mqtt://h', ...base])).toBe('--data/--mqtt: give only one source');
    expect(usageOf(['--data', 'x.csv', '--targets', 'y', '--missing', 'a=median', ...base])).toMatch(/^--missing: "a=median"/);
    expect(usageOf(['--data', 'x.csv', '--targets', 'y', '--classes', 'a,b', '--normalize-target', ...base])).toMatch(/^--normalize-target: is for a regression target/);
    expect(usageOf(['--mqtt', 'mqtt://h', '--topic', 't', '--overflow', 'spill', ...base])).toMatch(/^--overflow: unknown value "spill"/);
    expect(usageOf(['--data', 'x.csv', '--targets', 'y', '--normalize-warmup', '5', ...base])).toBe('--normalize-warmup: only applies with --normalize or --normalize-target');
    expect(usageOf(['--data', 'x.csv', '--targets', 'y', '--normalize-clip', '3', ...base])).toBe('--normalize-clip: only applies with --normalize or --normalize-target');
    expect(usageOf(['--data', 'x.csv', '--targets', 'y', '--normalize', '--normalize-warmup', '1', ...base])).toBe('--normalize-warmup: must be an integer ≥ 2, got "1"');
    for (const bad of ['0', '-1', 'x', 'Infinity']) {
      expect(usageOf(['--data', 'x.csv', '--targets', 'y', '--normalize', '--normalize-clip', bad, ...base]), bad).toMatch(/^--normalize-clip: must be/);
    }
    const settings = parseTrainArgs(['--data', 'x.csv', '--targets', 'y', '--normalize-target', '--normalize-warmup', '20', '--normalize-clip', 'none', ...base]);
    expect(settings !== 'help' && settings.ingest).toMatchObject({ normalize: true, normalizeTarget: true, normalizeWarmup: 20, normalizeClip: Infinity });
    expect(usageOf(['--mqtt', 'mqtt://h', '--topic', 't', '--mqtt-client-id', 'two words', ...base])).toBe('--mqtt-client-id: must be 1 to 128 printable ASCII characters without spaces, got "two words"');
    expect(usageOf(['--data', 'x.ndjson', '--mqtt-client-id', 'lab', ...base])).toBe('--mqtt-client-id: only applies with --mqtt URL');
    const missingColumn = await cli(['train', '--data', write('cols.csv', 'a,b,y\n1,2,3\n'), '--features', 'a,c', '--targets', 'y', ...base]);
    expect(missingColumn.code).toBe(2);
    expect(missingColumn.stderr.trim()).toBe('streamgrad: --features: no column "c" in cols.csv (it has a, b, y)');
  });

  describe.skipIf(findMosquitto({ requiredInCi: true }) === null)('on a real Mosquitto broker', () => {
    const broker = mosquittoForThisFile();
    it('trains on an MQTT subscription until Ctrl-C (--mqtt URL --topic T), with dead letters by message id', async () => {
      let published = false;
      const run = await cli(['train', '--mqtt', broker.url, '--topic', 'lab/#', '--features', 'a,b', '--targets', 'y', '--layers', '2,1:linear',
        '--overflow', 'block', '--dead-letter', 'mqtt-dead.ndjson'], {
        onStderr: (text, child) => {
          if (published || !text.includes('until Ctrl-C')) return;
          published = true;
          void (async () => {
            const client = await connectAsync(broker.url);
            for (let i = 0; i < 300; i++) await client.publishAsync('lab/a', i % 100 === 5 ? '{"a":1' : JSON.stringify({ a: i / 300, b: 1, y: i / 150 }), { qos: 1 });
            await client.endAsync();
            await new Promise((r) => setTimeout(r, 300));
            child.kill('SIGINT');
          })();
        },
      });
      expect(run.code, run.stderr).toBe(0);
      expect(run.stderr).toContain('trained 297 samples');
      expect(run.stderr).toMatch(/rejected message lab\/a#6 \(SG_ERR_BAD_JSON\)/);
      expect(run.stderr).toContain('rejected 3 messages (3 not JSON, 0 invalid samples)');
      const letters = readFileSync(join(work, 'mqtt-dead.ndjson'), 'utf8').trimEnd().split('\n').map((l) => JSON.parse(l) as DeadLetter);
      expect(letters.map((l) => l.messageId)).toEqual(['lab/a#6', 'lab/a#106', 'lab/a#206']);
    });
  });
});
