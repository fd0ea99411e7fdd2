import { firstValueFrom, from, toArray } from 'rxjs';
import { describe, expect, it } from 'vitest';
import { StreamgradError } from '../core/errors.ts';
import { CUT } from '../pipeline/cut.ts';
import { type RunEvent, TrainingRun } from '../pipeline/run.ts';
import { train } from '../pipeline/train.ts';
import { regressionSamples, tinyTrainer, weightsHash } from './helpers/streams.ts';

function* endless(seed = 7) {
  for (let round = 0; ; round++) yield* regressionSamples(1000, 3, 1, seed + round);
}

function* limited(n: number) {
  yield* regressionSamples(n);
}

const collectEvents = (run: TrainingRun) => {
  const events: RunEvent[] = [];
  run.events.subscribe((e) => events.push(e));
  return events;
};

describe('TrainingRun', () => {
  it('trains a finite source to completion exactly like train() over the same samples', async () => {
    const viaRun = tinyTrainer();
    const alone = tinyTrainer();
    const run = new TrainingRun({ id: 'a', trainer: viaRun, source: limited(250), train: { batch: 8 } });
    const events = collectEvents(run);
    const results = firstValueFrom(run.results.pipe(toArray()));
    await run.start();
    await firstValueFrom(from(regressionSamples(250)).pipe(train(alone, { batch: 8 }), toArray()));
    expect(weightsHash(viaRun.model)).toBe(weightsHash(alone.model));
    expect((await results).map((r) => r.size)).toEqual([...Array(31).fill(8), 2]);
    expect(run.state).toBe('completed');
    expect(events.map((e) => e.type)).toEqual(['started', 'completed']);
    expect(events[1].detail).toEqual({ steps: 32, samples: 250 });
  });

  it('a CUT in the source trains the partial batch there, is not a record, and is the same as train() over those batches', async () => {
    const samples = regressionSamples(20);
    const viaRun = tinyTrainer();
    const source = [...samples.slice(0, 5), CUT, CUT, ...samples.slice(5, 13), CUT, ...samples.slice(13)];
    const run = new TrainingRun({ id: 'a', trainer: viaRun, source, train: { batch: 4 } });
    const results = firstValueFrom(run.results.pipe(toArray()));
    await run.start();
    expect((await results).map((r) => r.size)).toEqual([4, 1, 4, 4, 4, 3]);
    expect(run.sourceOffset).toBe(20);
    const alone = tinyTrainer();
    for (const part of [samples.slice(0, 4), samples.slice(4, 5), samples.slice(5, 13), samples.slice(13)]) {
      await firstValueFrom(from(part).pipe(train(alone, { batch: 4 }), toArray()));
    }
    expect(weightsHash(viaRun.model)).toBe(weightsHash(alone.model));
  });

  it('accepts async iterables (file readers, sockets)', async () => {
    async function* source() {
      for (const s of regressionSamples(40)) yield s;
    }
    const run = new TrainingRun({ id: 'a', trainer: tinyTrainer(), source: source() });
    await run.start();
    expect(run.latest?.step).toBe(39);
  });

  it('takes the records an async source already holds without a promise each (takeReady), trains as with next() alone, and still yields to timers', async () => {
    // an async source of 50-record messages: next() waits for a "message", takeReady() hands over the rest of it
    const samples = regressionSamples(5000, 3, 1, 11);
    const made = (ready: boolean) => {
      let at = 0;
      const calls = { next: 0, ready: 0 };
      const iterator = {
        async next(): Promise<IteratorResult<unknown>> {
          calls.next++;
          await Promise.resolve(); // a message already here: microtasks only, so only the run's slices let timers run
          return at < samples.length ? { done: false, value: samples[at++] } : { done: true, value: undefined };
        },
        ...(ready && {
          takeReady(): IteratorResult<unknown> | undefined {
            if (at >= samples.length || at % 50 === 0) return undefined; // the next message has to come first
            calls.ready++;
            return { done: false, value: samples[at++] };
          },
        }),
      };
      return { calls, source: { [Symbol.asyncIterator]: () => iterator } };
    };
    const fast = made(true), slow = made(false);
    const viaReady = tinyTrainer(), viaNext = tinyTrainer();
    let timers = 0;
    const timer = setInterval(() => timers++, 1);
    const run = new TrainingRun({ id: 'a', trainer: viaReady, source: fast.source, train: { batch: 4 }, sliceMs: 1 });
    await run.start();
    clearInterval(timer);
    await new TrainingRun({ id: 'b', trainer: viaNext, source: slow.source, train: { batch: 4 } }).start();
    expect(weightsHash(viaReady.model)).toBe(weightsHash(viaNext.model));
    expect(run.sourceOffset).toBe(5000);
    expect(fast.calls).toEqual({ next: 101, ready: 4900 }); // one wait per message (and the end), never per record
    expect(slow.calls.next).toBe(5001);
    expect(timers).toBeGreaterThan(0); // the slices still end by time on the ready path
  });

  it('yields to the event loop while training flat out, so timers and I/O keep running', async () => {
    const run = new TrainingRun({ id: 'a', trainer: tinyTrainer(), source: endless(), sliceMs: 5 });
    const started = run.start();
    const gaps: number[] = [];
    let last = performance.now();
    await new Promise<void>((resolve) => {
      let ticks = 0;
      const timer = setInterval(() => {
        const now = performance.now();
        gaps.push(now - last);
        last = now;
        if (++ticks === 20) {
          clearInterval(timer);
          resolve();
        }
      }, 2);
    });
    run.stop();
    await started;
    expect(run.trainer.counters.steps).toBeGreaterThan(100); // it was training meanwhile
    // the source is endless, so the timer firing at all proves the run yields; a 2 ms timer
    // fires every few ms (median), not only now and then (a loaded machine can stretch single gaps)
    gaps.sort((a, b) => a - b);
    expect(gaps[gaps.length >> 1]).toBeLessThan(50);
  });

  it('pause stops training at the step boundary, step trains exactly one batch, resume continues', async () => {
    const trainer = tinyTrainer();
    const run = new TrainingRun({ id: 'a', trainer, source: endless(), train: { batch: 4 }, paused: true });
    const events = collectEvents(run);
    const started = run.start();
    await new Promise((r) => setTimeout(r, 20));
    expect(trainer.counters.steps).toBe(0);
    const hash = weightsHash(trainer.model);
    const first = await run.step();
    expect(first?.step).toBe(0);
    expect(first?.size).toBe(4);
    expect(trainer.counters.steps).toBe(1);
    expect(weightsHash(trainer.model)).not.toBe(hash);
    const second = await run.step();
    expect(second?.step).toBe(1);
    await new Promise((r) => setTimeout(r, 20));
    expect(trainer.counters.steps).toBe(2); // still paused after the steps
    run.resume();
    await new Promise((r) => setTimeout(r, 30));
    expect(trainer.counters.steps).toBeGreaterThan(10);
    run.pause();
    await new Promise((r) => setTimeout(r, 0)); // the loop notices at its next sample or slice
    const frozen = trainer.counters.steps;
    await new Promise((r) => setTimeout(r, 30));
    expect(trainer.counters.steps).toBe(frozen);
    run.stop();
    await started;
    expect(run.state).toBe('stopped');
    expect(events.map((e) => e.type)).toEqual(['started', 'resumed', 'paused', 'stopped']);
  });

  it('refuses a step while running, with SG_ERR_STATE', async () => {
    const run = new TrainingRun({ id: 'a', trainer: tinyTrainer(), source: endless() });
    const started = run.start();
    const error = await run.step().catch((e: unknown) => e);
    expect(error).toBeInstanceOf(StreamgradError);
    expect((error as StreamgradError).code).toBe('SG_ERR_STATE');
    run.stop();
    await started;
  });

  it('a step requested when the source ends resolves with null', async () => {
    const run = new TrainingRun({ id: 'a', trainer: tinyTrainer(), source: limited(3), train: { batch: 4 }, paused: true });
    const started = run.start();
    // three samples: the partial batch is trained on completion, which answers the step
    const result = await run.step();
    await started;
    expect(result?.size ?? null).toBe(3);
    expect(await run.step().catch((e: StreamgradError) => e.code)).toBe('SG_ERR_STATE');
  });

  it('setLearningRate applies from the next update and is announced; a bad rate is refused', async () => {
    const trainer = tinyTrainer();
    const run = new TrainingRun({ id: 'a', trainer, source: endless(), paused: true });
    const events = collectEvents(run);
    const started = run.start();
    run.setLearningRate(0.2);
    const r = await run.step();
    expect(r?.learningRate).toBe(0.2);
    expect(() => run.setLearningRate(-1)).toThrow(/learningRate/);
    expect(trainer.optimizer.learningRate).toBe(0.2);
    expect(events.find((e) => e.type === 'learning-rate')?.detail).toEqual({ from: 0.05, to: 0.2 });
    run.stop();
    await started;
  });

  it('reset restores the initial parameters and clears the optimizer state', async () => {
    const trainer = tinyTrainer({ optimizer: { type: 'adam', learningRate: 0.01 } });
    const initial = weightsHash(trainer.model);
    const run = new TrainingRun({ id: 'a', trainer, source: endless(), paused: true });
    const started = run.start();
    await run.step();
    await run.step();
    expect(weightsHash(trainer.model)).not.toBe(initial);
    expect(trainer.optimizer.t).toBe(2);
    run.reset();
    expect(weightsHash(trainer.model)).toBe(initial);
    expect(trainer.optimizer.t).toBe(0);
    expect(trainer.optimizer.m.every((v) => v === 0) && trainer.optimizer.v.every((v) => v === 0)).toBe(true);
    run.stop();
    await started;
  });

  it('checkpoint goes through the configured checkpointer, and is refused without one', async () => {
    const saved: number[] = [];
    const run = new TrainingRun({
      id: 'a', trainer: tinyTrainer(), source: limited(10),
      checkpoint: async (r) => {
        saved.push(r.trainer.counters.steps);
        return `/tmp/ckpt-${r.trainer.counters.steps}`;
      },
    });
    const events = collectEvents(run);
    await run.start();
    expect(await run.checkpoint()).toBe('/tmp/ckpt-10'); // a finished run can still be saved, and says so
    expect(saved).toEqual([10]);
    expect(events.map((e) => e.type)).toEqual(['started', 'completed', 'checkpoint']);
    expect(events.at(-1)?.detail).toEqual({ path: '/tmp/ckpt-10', step: 10, sourceOffset: 10 });
    run.dispose();
    expect(() => run.reset()).not.toThrow(); // no listeners left, nothing breaks
    const bare = new TrainingRun({ id: 'b', trainer: tinyTrainer(), source: limited(1) });
    expect(await bare.checkpoint().catch((e: StreamgradError) => e.code)).toBe('SG_ERR_STATE');
  });

  it('a paused run is held still while its checkpoint is written: a step asked meanwhile trains after it, so the checkpointer reads one moment', async () => {
    // before: the step trained during the checkpointer's awaits, so a cluster partition's
    // commit held the source position from before the step and the weights from after it
    const read: { offset: number; steps: number }[] = [];
    const run = new TrainingRun({
      id: 'a', trainer: tinyTrainer(), source: endless(), train: { batch: 2 }, paused: true,
      checkpoint: async (r) => {
        read.push({ offset: r.sourceOffset, steps: r.trainer.counters.steps });
        // a checkpointer's own waits (a flush, a write)
        for (let i = 0; i < 3; i++) await new Promise((resolve) => setImmediate(resolve));
        read.push({ offset: r.sourceOffset, steps: r.trainer.counters.steps });
        return 'saved';
      },
    });
    const started = run.start();
    await new Promise((r) => setTimeout(r, 20));
    const order: string[] = [];
    const saved = run.checkpoint().then((where) => order.push(`checkpoint ${where}`));
    const stepped = run.step().then((result) => order.push(`step ${result?.step}`));
    await Promise.all([saved, stepped]);
    expect(read).toEqual([{ offset: 0, steps: 0 }, { offset: 0, steps: 0 }]);
    expect(order).toEqual(['checkpoint saved', 'step 0']);
    expect(run.trainer.counters.steps).toBe(1);
    expect(run.sourceOffset).toBe(2);
    run.stop();
    await started;
  });

  it('a failing source fails the run with its error and a failed event', async () => {
    function* broken() {
      yield* regressionSamples(5);
      throw new Error('disk gone');
    }
    const run = new TrainingRun({ id: 'a', trainer: tinyTrainer(), source: broken() });
    const events = collectEvents(run);
    await expect(run.start()).rejects.toThrow('disk gone');
    expect(run.state).toBe('failed');
    expect(events.at(-1)?.type).toBe('failed');
    expect(run.trainer.counters.steps).toBe(5);
  });

  it('divergence ends the run with a diverged event and the last good weights', async () => {
    function* poison() {
      yield* regressionSamples(3);
      for (;;) yield { x: [1, 1, 1], y: [1e300] }; // (a − 1e300)² overflows: loss is Infinity
    }
    const trainer = tinyTrainer({ maxConsecutiveSkips: 3 });
    const run = new TrainingRun({ id: 'a', trainer, source: poison() });
    const events = collectEvents(run);
    let hashAfterGood = '';
    run.results.subscribe((r) => {
      if (r.step === 2) hashAfterGood = weightsHash(trainer.model);
    });
    const error = await run.start().catch((e: unknown) => e);
    expect((error as StreamgradError).code).toBe('SG_ERR_DIVERGED');
    expect(events.at(-1)?.type).toBe('diverged');
    expect(weightsHash(trainer.model)).toBe(hashAfterGood);
  });

  it('rejected samples come out on the rejections stream and the run goes on', async () => {
    const bad = [{ x: [1, NaN, 0], y: [1] }, { x: [1, 2], y: [1] }];
    const run = new TrainingRun({ id: 'a', trainer: tinyTrainer(), source: [...regressionSamples(2), ...bad, ...regressionSamples(2)] });
    const rejections = firstValueFrom(run.rejections.pipe(toArray()));
    await run.start();
    expect((await rejections).map((r) => r.error.code)).toEqual(['SG_ERR_NONFINITE_INPUT', 'SG_ERR_ARITY']);
    expect(run.trainer.counters.steps).toBe(4);
  });
});
