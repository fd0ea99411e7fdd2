import { existsSync, mkdtempSync, readdirSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join, relative } from 'node:path';
import mqtt from 'mqtt';
import { afterAll, describe, expect, it } from 'vitest';
import { StreamgradError } from '../core/errors.ts';
import { ConfigError, type ExperimentConfig, ExperimentConfigError, type ExperimentStarted, runExperiment } from '../runtime/index.ts';
import { findMosquitto, mosquittoForThisFile } from './helpers/mosquitto.ts';

/**
 * The experiment runtime from TypeScript, as a program would use it (`streamgrad/runtime`):
 * a real Mosquitto broker, real checkpoint files, the threaded server on a real port.
 */
const work = mkdtempSync(join(tmpdir(), 'streamgrad-runtime-'));
afterAll(() => rmSync(work, { recursive: true, force: true }));

const LAYERS = [{ units: 4, activation: 'tanh' }, { units: 1, activation: 'linear' }] as const;

describe('runExperiment', () => {
  describe.skipIf(findMosquitto({ requiredInCi: true }) === null)('on a real Mosquitto broker', () => {
    const broker = mosquittoForThisFile();
    it('trains on an MQTT subscription with checkpoints and a live server, until its sample limit', async () => {
      const publisher = await mqtt.connectAsync(broker.url);
      try {
        const config: ExperimentConfig = {
          source: { mqtt: { url: broker.url, topics: 'lab/+/reading' }, features: ['a', 'b'], targets: ['y'] },
          models: [{ name: 'small', inputs: 2, layers: [...LAYERS], optimizer: { type: 'adam', lr: 0.01 }, save: 'small.json' }],
          checkpoints: { dir: 'ckpt', everySteps: 50 },
          server: { port: 0, keepServing: false },
          limit: { samples: 300 },
        };
        let health: { status: number; body: Record<string, unknown> } | null = null;
        const notices: string[] = [];
        let started: ExperimentStarted | null = null;
        const result = await runExperiment(config, {
          baseDir: work,
          hooks: {
            notice: (line) => notices.push(line),
            async started(s) {
              started = s;
              // the server answers while the run waits for messages; then the messages come
              const response = await fetch(`${s.server!.url}/healthz`);
              health = { status: response.status, body: (await response.json()) as Record<string, unknown> };
              for (let i = 0; i < 310; i++) {
                const a = (i % 17) / 17;
                const b = (i % 5) / 5;
                const payload = i === 7 ? '{"a": "oops", "b": 1, "y": 0}' : JSON.stringify({ a, b, y: 2 * a - b });
                await publisher.publishAsync(`lab/s${i % 2}/reading`, payload, { qos: 1 });
              }
            },
          },
        });
        expect(started!.server!.url).toMatch(/^http:\/\/127\.0\.0\.1:\d+$/);
        expect(started!.models.map((m) => m.name)).toEqual(['small']);
        expect(health).toMatchObject({ status: 200 });
        expect(notices.some((l) => l.startsWith('dashboard at http://127.0.0.1:')), notices.join('\n')).toBe(true);
        expect(result.outcome).toBe('finished');
        expect(result.failed).toBe(false);
        const [model] = result.models;
        // 300 records read, one of them rejected (and counted, not lost)
        expect(result.ingest).toMatchObject({ read: 300, rejected: 1, byCode: { SG_ERR_TYPE: 1 } });
        expect(model.trainer.counters.samples).toBe(299);
        expect(model.cumulative.count).toBe(299);
        expect(Number.isFinite(model.metrics.loss)).toBe(true);
        expect(model.saved?.path).toBe(join(work, 'small.json'));
        expect(JSON.parse(readFileSync(join(work, 'small.json'), 'utf8'))).toMatchObject({ format: 'streamgrad/model@1' });
        const checkpoints = readdirSync(join(work, 'ckpt')).filter((f) => f.endsWith('.sgck'));
        expect(checkpoints.length, checkpoints.join(', ')).toBeGreaterThanOrEqual(2);
        expect(model.checkpoints).toMatch(/newest .*small-000000000299\.sgck$/);
        expect(result.mqtt?.stats).toBeDefined();
      } finally {
        await publisher.endAsync();
      }
    }, 60_000);
  });

  it('stops on an AbortSignal after the batch in progress, writes its checkpoint, saves, and ends serving', async () => {
    const stop = new AbortController();
    const config: ExperimentConfig = {
      // an endless simulated stream: only the abort ends it
      source: { simulated: 'sine', seed: 3 },
      models: [{ name: 'a', layers: '1,8:tanh,1:linear' }, { name: 'b', layers: '1,4:tanh,1:linear', save: 'b.json' }],
      checkpoints: { dir: 'abort-ckpt', everySeconds: 3600 },
      server: { port: 0 },
    };
    let ended = false;
    const result = await runExperiment(config, {
      baseDir: work,
      signal: stop.signal,
      hooks: {
        started: ({ models }) => {
          // abort once both have trained a little
          const poll = setInterval(() => {
            if (models.every((m) => m.trainer.counters.samples > 500)) {
              clearInterval(poll);
              stop.abort();
            }
          }, 10);
        },
        ended: () => { ended = true; },
      },
    });
    expect(ended).toBe(true);
    expect(result.outcome).toBe('interrupted');
    expect(result.failed).toBe(false);
    for (const m of result.models) expect(m.trainer.counters.samples).toBeGreaterThan(500);
    // the last checkpoint of each model was written when it stopped (the interval is an hour)
    const written = readdirSync(join(work, 'abort-ckpt')).filter((f) => f.endsWith('.sgck'));
    expect(written.filter((f) => f.startsWith('a-'))).toHaveLength(1);
    expect(written.filter((f) => f.startsWith('b-'))).toHaveLength(1);
    expect(existsSync(join(work, 'b.json'))).toBe(true);
  }, 60_000);

  it('limit.trainedSamples ends each model after that many trained samples (rejected records do not count), as train --samples; without checkpoints a checkpoint request saves the model to `save`', async () => {
    const lines = Array.from({ length: 200 }, (_, i) => (i === 5 ? '{"a": "oops", "y": 0}' : JSON.stringify({ a: i / 200, y: i / 100 })));
    writeFileSync(join(work, 'trained.ndjson'), `${lines.join('\n')}\n`);
    const config: ExperimentConfig = {
      source: { ndjson: 'trained.ndjson', features: ['a'], targets: ['y'] },
      models: [{ name: 'train', inputs: 1, layers: [...LAYERS], batch: 4, save: 'trained.json' }],
      limit: { trainedSamples: 40 },
    };
    let requested: Promise<string | null> | null = null;
    const result = await runExperiment(config, {
      baseDir: work,
      hooks: {
        started: ({ models, source }) => {
          expect(source.samples).toBe(40);
          // asked while it trains (as the dashboard's checkpoint button does): the model is saved at the next step boundary
          requested = models[0].run.checkpoint();
        },
      },
    });
    expect(result.outcome).toBe('finished');
    const [model] = result.models;
    expect(model.trainer.counters.samples).toBe(40);
    expect(model.trainer.counters.steps).toBe(10);
    expect(result.ingest).toMatchObject({ rejected: 1, byCode: { SG_ERR_TYPE: 1 } });
    expect(await requested).toBe(relative(process.cwd(), join(work, 'trained.json'))); // as messages show it
    expect(JSON.parse(readFileSync(join(work, 'trained.json'), 'utf8'))).toMatchObject({ format: 'streamgrad/model@1', preprocessing: { features: ['a'] } });
  }, 60_000);

  it('rejects a config that does not hold with every problem, before anything starts', async () => {
    const config = {
      source: { ndjson: 'absent.ndjson' },
      models: [{ layers: '2,4:relux,1:linear', optimizer: { type: 'adam', lr: -1 } }],
      checkpoints: { dir: 'never' },
    } as ExperimentConfig;
    const error = await runExperiment(config, { baseDir: work }).catch((e: unknown) => e);
    expect(error).toBeInstanceOf(ExperimentConfigError);
    const { problems, code } = error as ExperimentConfigError;
    expect(code).toBe('SG_ERR_CONFIG');
    expect(problems.map((p) => p.path)).toEqual(expect.arrayContaining(['models[0].layers', 'models[0].optimizer.lr', 'source.ndjson']));
    expect(existsSync(join(work, 'never'))).toBe(false);
  });

  it('a refusal the world makes after the checks is a typed library error (ConfigError, SG_ERR_CONFIG, naming the field), not a CLI type; checkpoint folders are unlocked after a run', async () => {
    const config: ExperimentConfig = {
      source: { simulated: 'sine', seed: 5, samples: 200 },
      models: [{ name: 'm', layers: '1,4:tanh,1:linear' }],
      checkpoints: { dir: 'typed-ckpt', everySteps: 50 },
    };
    expect((await runExperiment(config, { baseDir: work })).outcome).toBe('finished');
    // the same checkpoints resumed on another stream (seed 6): refused before training
    const error = await runExperiment({ ...config, source: { simulated: 'sine', seed: 6, samples: 200 } }, { baseDir: work, resume: true }).catch((e: unknown) => e);
    expect(error).toBeInstanceOf(ConfigError);
    expect(error).toBeInstanceOf(StreamgradError);
    expect(error).not.toBeInstanceOf(ExperimentConfigError);
    expect((error as ConfigError).code).toBe('SG_ERR_CONFIG');
    expect((error as ConfigError).message).toMatch(/^--resume \S+m-\d+\.sgck: it was written for other data/);
    expect((error as ConfigError).field).toBe('--resume');
    // the folder was unlocked after each run and after the refusal: the right stream resumes in this same process
    const resumed = await runExperiment({ ...config, source: { simulated: 'sine', seed: 5, samples: 400 } }, { baseDir: work, resume: true });
    expect(resumed.outcome).toBe('finished');
    expect(resumed.models[0].trainer.counters.samples).toBe(400);
    // a config that does not hold is a ConfigError too (one `instanceof` for both)
    expect(new ExperimentConfigError([{ path: 'models[0].batch', message: 'x' }])).toBeInstanceOf(ConfigError);
  });
});
