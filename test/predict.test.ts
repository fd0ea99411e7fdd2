import { from, Subject } from 'rxjs';
import { TestScheduler } from 'rxjs/testing';
import { describe, expect, it } from 'vitest';
import { predict, type Prediction } from '../operators/predict.ts';
import { jsKernels } from '../core/kernels-js.ts';
import type { Kernels } from '../core/kernels.ts';
import { forwardPass } from '../core/network.ts';
import type { Rejection } from '../core/sample.ts';
import { defaultKernels } from '../core/backend.ts';
import { train } from '../pipeline/train.ts';
import { createWorkspace } from '../core/workspace.ts';
import { collectSync, expectSgError, regressionSamples, seededModel, tinyTrainer, weightsHash } from './helpers/streams.ts';

type Input = ArrayLike<number> | { readonly x: ArrayLike<number> };

/** forwardPass on one row in a workspace of its own, over the default kernels (predict's): what predict must reproduce bit for bit. */
function reference(model: ReturnType<typeof seededModel>, x: ArrayLike<number>): number[] {
  const ws = createWorkspace(model, 1);
  for (let k = 0; k < model.inputSize; k++) ws.x[k] = x[k];
  forwardPass(defaultKernels(), model, ws, 1);
  return Array.from(ws.a[model.layers.length - 1].subarray(0, model.outputSize));
}

describe('predict(model)', () => {
  const model = seededModel(3, [[5, 'relu'], [4, 'tanh'], [2, 'linear']], 17);
  const xs = regressionSamples(6).map((s) => s.x);

  it('outputs equal forwardPass, for vectors, typed arrays and {x} samples', () => {
    const inputs: Input[] = [xs[0], Float64Array.from(xs[1]), { x: xs[2] }, { x: Float32Array.from(xs[3]), y: [9, 9] } as Input];
    const { values, completed } = collectSync(from(inputs).pipe(predict(model)));
    expect(completed).toBe(true);
    expect(values).toHaveLength(4);
    values.forEach((p, i) => {
      const input = inputs[i];
      expect(p.input).toBe(input); // the input as given
      const x = 'x' in input ? input.x : input;
      expect(p.output).toBeInstanceOf(Float64Array);
      expect(p.output).toHaveLength(2);
      expect(Array.from(p.output)).toEqual(reference(model, x));
    });
  });

  it('returns fresh arrays: an output is not overwritten by the next prediction', () => {
    const { values } = collectSync(from(xs).pipe(predict(model)));
    const copies = values.map((p) => Array.from(p.output));
    expect(new Set(values.map((p) => p.output)).size).toBe(xs.length);
    expect(new Set(values.map((p) => p.output.buffer)).size).toBe(xs.length); // not views of one buffer
    values.forEach((p, i) => expect(Array.from(p.output)).toEqual(copies[i]));
    expect(copies[0]).not.toEqual(copies[1]);
    expect(copies.map((c, i) => c.every((v, k) => v === reference(model, xs[i])[k]))).toEqual(xs.map(() => true));
  });

  it('does not learn: the parameters stay bitwise the same', () => {
    const hash = weightsHash(model);
    collectSync(from(xs).pipe(predict(model)));
    expect(weightsHash(model)).toBe(hash);
  });

  it('invalid inputs go to onReject with their typed error, unchanged; the stream goes on', () => {
    const rejected: Rejection[] = [];
    const bad: unknown[] = [[1, 2], [1, NaN, 3], { x: [1, '2', 3] }, { y: [1, 2] }, null, [1, 2, 3, 4]];
    const inputs = [xs[0], ...bad, xs[1]] as Input[];
    const { values, completed } = collectSync(from(inputs).pipe(predict(model, { onReject: (r) => rejected.push(r) })));
    expect(completed).toBe(true);
    expect(values.map((p) => p.input)).toEqual([xs[0], xs[1]]);
    expect(rejected.map((r) => r.sample)).toEqual(bad);
    rejected.forEach((r, i) => expect(r.sample).toBe(bad[i]));
    expect(rejected.map((r) => [r.error.code, r.error.field])).toEqual([
      ['SG_ERR_ARITY', 'x'],
      ['SG_ERR_NONFINITE_INPUT', 'x[1]'],
      ['SG_ERR_TYPE', 'x[1]'],
      ['SG_ERR_MISSING', 'x'],
      ['SG_ERR_TYPE', 'x'], // null is neither a vector nor an object with x
      ['SG_ERR_ARITY', 'x'],
    ]);
  });

  it('without onReject, an invalid input errors the stream with its typed error', () => {
    const { values, error } = collectSync(from([xs[0], [1, Infinity, 0], xs[1]] as Input[]).pipe(predict(model)));
    expect(values.map((p: Prediction<Input>) => p.input)).toEqual([xs[0]]); // nothing after the error
    expectSgError(error, 'SG_ERR_NONFINITE_INPUT', 'x[1]');
  });

  it('an onReject that throws errors the stream with its error', () => {
    const boom = new Error('log full');
    const { values, error } = collectSync(from([xs[0], [1], xs[1]] as Input[]).pipe(predict(model, { onReject: () => { throw boom; } })));
    expect(values).toHaveLength(1);
    expect(error).toBe(boom);
  });

  it('sees the parameter updates a trainer makes between inputs', () => {
    const trainer = tinyTrainer();
    const trained = trainer.model;
    const inputs = new Subject<Input>();
    const samples = new Subject<unknown>();
    const outputs: number[] = [];
    inputs.pipe(predict(trained)).subscribe((p) => outputs.push(p.output[0]));
    samples.pipe(train(trainer, { batch: 2 })).subscribe();
    const probe = [0.3, -0.2, 0.9];
    const expected: number[] = [];
    const data = regressionSamples(6);
    for (let i = 0; i < 3; i++) {
      inputs.next(probe);
      expected.push(reference(trained, probe)[0]);
      samples.next(data[2 * i]);
      samples.next(data[2 * i + 1]); // a full batch: the weights move
    }
    inputs.next(probe);
    expected.push(reference(trained, probe)[0]);
    expect(outputs).toEqual(expected);
    expect(new Set(outputs).size).toBe(4); // every prediction saw different weights
  });

  it('each subscription has its own buffers: interleaved subscriptions do not disturb each other', () => {
    const a = new Subject<Input>(), b = new Subject<Input>();
    const op = predict(model);
    const outA: number[][] = [], outB: number[][] = [];
    a.pipe(op).subscribe((p) => outA.push(Array.from(p.output)));
    b.pipe(op).subscribe((p) => outB.push(Array.from(p.output)));
    xs.forEach((x, i) => (i % 2 === 0 ? a : b).next(x));
    expect(outA).toEqual(xs.filter((_, i) => i % 2 === 0).map((x) => reference(model, x)));
    expect(outB).toEqual(xs.filter((_, i) => i % 2 === 1).map((x) => reference(model, x)));
  });

  it('runs on the kernels it is given', () => {
    let calls = 0;
    const counting: Kernels = { ...jsKernels, name: 'counting', denseForward: (...args) => { calls++; jsKernels.denseForward(...args); } };
    const { values } = collectSync(from(xs.slice(0, 2)).pipe(predict(model, { kernels: counting })));
    expect(calls).toBe(2 * model.layers.length);
    expect(Array.from(values[1].output)).toEqual(reference(model, xs[1]));
  });

  it('marbles: one prediction per valid input, same timing; completes, errors and unsubscribes with its source', () => {
    const ts = new TestScheduler((x, y) => expect(x).toEqual(y));
    ts.run(({ cold, expectObservable, expectSubscriptions }) => {
      const vals = { a: xs[0], b: xs[1] };
      const e1 = cold<Input>('-a--b-|', vals);
      const outputs = { p: { input: xs[0], output: Float64Array.from(reference(model, xs[0])) }, q: { input: xs[1], output: Float64Array.from(reference(model, xs[1])) } };
      expectObservable(e1.pipe(predict(model))).toBe('-p--q-|', outputs);
      expectSubscriptions(e1.subscriptions).toBe('^-----!');
      const e2 = cold<Input>('-a-#', vals);
      expectObservable(e2.pipe(predict(model))).toBe('-p-#', outputs);
      const e3 = cold<Input>('-a--b-|', vals);
      expectObservable(e3.pipe(predict(model)), '--!').toBe('-p', outputs);
      expectSubscriptions(e3.subscriptions).toBe('^-!');
    });
  });
});
