import { from } from 'rxjs';
import { TestScheduler } from 'rxjs/testing';
import { describe, expect, it } from 'vitest';
import { validate } from '../operators/validate.ts';
import type { ErrorCode } from '../core/errors.ts';
import type { Rejection, SampleShape } from '../core/sample.ts';
import { collectSync, expectSgError } from './helpers/streams.ts';

const single: SampleShape = { inputs: 2, outputs: 1 };
const double: SampleShape = { inputs: 2, outputs: 2 };

function through(shape: SampleShape, values: readonly unknown[]) {
  const rejected: Rejection[] = [];
  const out = collectSync(from(values).pipe(validate(shape, (r) => rejected.push(r))));
  return { passed: out.values, rejected, completed: out.completed };
}

describe('validate: accepted samples pass through as the very same object', () => {
  const sparseFree = new Float64Array([9, 1, 2, 9]).subarray(1, 3);
  const accepted: [string, SampleShape, unknown][] = [
    ['plain arrays', single, { x: [1, 2], y: [3] }],
    ['scalar y on a single-output model', single, { x: [1, 2], y: 3 }],
    ['Float64Array x', single, { x: Float64Array.of(1, 2), y: [0] }],
    ['Float64Array x and y', double, { x: Float64Array.of(1, 2), y: Float64Array.of(0, 1) }],
    ['a subarray view as x', single, { x: sparseFree, y: 1 }],
    ['Float32Array and Int8Array', single, { x: Float32Array.of(0.5, -1), y: Int8Array.of(1) }],
    ['frozen arrays', double, Object.freeze({ x: Object.freeze([1, 2]), y: Object.freeze([3, 4]) })],
    ['extra keys are ignored', single, { x: [1, 2], y: 0, id: 'abc', t: 17 }],
    ['-0, denormals and ±MAX_VALUE are finite numbers', double, { x: [-0, 5e-324], y: [Number.MAX_VALUE, -Number.MAX_VALUE] }],
    ['a class instance with x and y', single, new (class { x = [1, 2]; y = 1; })()],
  ];
  for (const [name, shape, sample] of accepted) {
    it(name, () => {
      const { passed, rejected } = through(shape, [sample]);
      expect(rejected).toEqual([]);
      expect(passed).toHaveLength(1);
      expect(passed[0]).toBe(sample);
    });
  }

  it('no coercion: what passes is not rewritten (element types and values kept)', () => {
    const s = { x: Float32Array.of(0.1, 0.2), y: 7 };
    const before = { x: Array.from(s.x), y: s.y };
    const { passed } = through(single, [s]);
    expect(passed[0].x).toBe(s.x);
    expect(passed[0].x).toBeInstanceOf(Float32Array);
    expect({ x: Array.from(s.x), y: s.y }).toEqual(before);
  });
});

describe('validate: rejected values go to onReject, typed, unchanged; the stream goes on', () => {
  const rejectedCases: [string, SampleShape, unknown, ErrorCode, string][] = [
    ['NaN', single, { x: [NaN, 1], y: 1 }, 'SG_ERR_NONFINITE_INPUT', 'x[0]'],
    ['Infinity in a Float64Array', single, { x: Float64Array.of(1, Infinity), y: 1 }, 'SG_ERR_NONFINITE_INPUT', 'x[1]'],
    // float arrays take a one-pass finiteness check; the error still names the first bad element
    ['NaN first of a Float64Array', single, { x: Float64Array.of(NaN, 1), y: 1 }, 'SG_ERR_NONFINITE_INPUT', 'x[0]'],
    ['-Infinity then NaN in a Float32Array', single, { x: Float32Array.of(-Infinity, NaN), y: 1 }, 'SG_ERR_NONFINITE_INPUT', 'x[0]'],
    ['NaN target in a Float32Array', double, { x: Float32Array.of(1, 2), y: Float32Array.of(0, NaN) }, 'SG_ERR_NONFINITE_INPUT', 'y[1]'],
    ['Infinity target in a Float64Array view', double, { x: [1, 2], y: new Float64Array([0, 1, Infinity]).subarray(1) }, 'SG_ERR_NONFINITE_INPUT', 'y[1]'],
    ['a BigInt64Array x', single, { x: BigInt64Array.of(1n, 2n), y: 1 }, 'SG_ERR_TYPE', 'x[0]'],
    ['-Infinity target', double, { x: [1, 2], y: [0, -Infinity] }, 'SG_ERR_NONFINITE_INPUT', 'y[1]'],
    ['NaN scalar target', single, { x: [1, 2], y: NaN }, 'SG_ERR_NONFINITE_INPUT', 'y'],
    ['scalar y on a two-output model', double, { x: [1, 2], y: 1 }, 'SG_ERR_TYPE', 'y'],
    ['x too short', single, { x: [1], y: 1 }, 'SG_ERR_ARITY', 'x'],
    ['x too long (a Float64Array)', single, { x: new Float64Array(3), y: 1 }, 'SG_ERR_ARITY', 'x'],
    ['y too short', double, { x: [1, 2], y: [1] }, 'SG_ERR_ARITY', 'y'],
    ['a numeric string element', single, { x: ['1', 2], y: 1 }, 'SG_ERR_TYPE', 'x[0]'],
    ['an empty string element', single, { x: [1, ''], y: 1 }, 'SG_ERR_TYPE', 'x[1]'],
    ['null element', single, { x: [1, null], y: 1 }, 'SG_ERR_TYPE', 'x[1]'],
    ['boolean element', double, { x: [1, 2], y: [false, 1] }, 'SG_ERR_TYPE', 'y[0]'],
    ['boxed Number element', single, { x: [new Number(1), 2], y: 1 }, 'SG_ERR_TYPE', 'x[0]'],
    ['bigint element', single, { x: [1, 2n], y: 1 }, 'SG_ERR_TYPE', 'x[1]'],
    ['object element', single, { x: [{ valueOf: () => 1 }, 2], y: 1 }, 'SG_ERR_TYPE', 'x[0]'],
    ['array element', single, { x: [[1], 2], y: 1 }, 'SG_ERR_TYPE', 'x[0]'],
    ['a hole in x', single, { x: [1, , ], y: 1 }, 'SG_ERR_TYPE', 'x[1]'],
    ['x as a DataView', single, { x: new DataView(new ArrayBuffer(16)), y: 1 }, 'SG_ERR_TYPE', 'x'],
    // Float64Arrays of the right length take a shortcut (core/sample.ts isFiniteFloat64); what it
    // does not let through gets the full check, and errors as it did without the shortcut
    ['an object that only inherits from Float64Array.prototype', single, { x: Object.create(Float64Array.prototype), y: 1 }, 'SG_ERR_TYPE', 'x'],
    ['NaN target in a Float64Array after a Float64Array x', double, { x: Float64Array.of(1, 2), y: Float64Array.of(NaN, 0) }, 'SG_ERR_NONFINITE_INPUT', 'y[0]'],
    ['a Float64Array target too long after a Float64Array x', double, { x: Float64Array.of(1, 2), y: new Float64Array(3) }, 'SG_ERR_ARITY', 'y'],
    ['NaN scalar target after a Float64Array x', single, { x: Float64Array.of(1, 2), y: NaN }, 'SG_ERR_NONFINITE_INPUT', 'y'],
    ['x as an array-like object', single, { x: { length: 2, 0: 1, 1: 2 }, y: 1 }, 'SG_ERR_TYPE', 'x'],
    ['x as a string', single, { x: '12', y: 1 }, 'SG_ERR_TYPE', 'x'],
    ['y as a string', single, { x: [1, 2], y: '1' }, 'SG_ERR_TYPE', 'y'],
    ['y as a boolean', single, { x: [1, 2], y: true }, 'SG_ERR_TYPE', 'y'],
    ['x null', single, { x: null, y: 1 }, 'SG_ERR_TYPE', 'x'],
    ['x undefined', single, { x: undefined, y: 1 }, 'SG_ERR_MISSING', 'x'],
    ['no y', single, { x: [1, 2] }, 'SG_ERR_MISSING', 'y'],
    ['an empty object', single, {}, 'SG_ERR_MISSING', 'x'],
    ['undefined', single, undefined, 'SG_ERR_TYPE', 'sample'],
    ['a string', single, '{"x":[1,2],"y":1}', 'SG_ERR_TYPE', 'sample'],
    ['an array', single, [1, 2], 'SG_ERR_TYPE', 'sample'],
    ['a function', single, () => 1, 'SG_ERR_TYPE', 'sample'],
  ];
  for (const [name, shape, bad, code, field] of rejectedCases) {
    it(`${name} → ${code} at ${field}`, () => {
      const ok = { x: [0.5, 0.25], y: shape.outputs === 1 ? 1 : [1, 0] };
      const { passed, rejected, completed } = through(shape, [ok, bad, ok]);
      expect(completed).toBe(true);
      expect(passed).toEqual([ok, ok]); // the stream went on
      expect(rejected).toHaveLength(1);
      expect(rejected[0].sample).toBe(bad); // the original value, not a copy
      const err = expectSgError(rejected[0].error, code, field);
      expect(err.message.startsWith(field === 'sample' ? 'sample' : field)).toBe(true);
      expect(err.name).toBe('StreamgradError');
    });
  }

  it('the rejected value is handed over unchanged (deep-equal before and after)', () => {
    const bad = { x: [1, '2', { nested: [3] }], y: [1], meta: { seen: false } };
    const before = structuredClone(bad);
    const { rejected } = through(single, [bad]);
    expect(rejected[0].sample).toBe(bad);
    expect(bad).toEqual(before);
  });

  it('an onReject that throws errors the stream with its error', () => {
    const boom = new Error('side channel full');
    const out = collectSync(from([{ x: [1, 2], y: 1 }, { x: [NaN, 2], y: 1 }, { x: [1, 2], y: 1 }]).pipe(validate(single, () => { throw boom; })));
    expect(out.values).toHaveLength(1);
    expect(out.error).toBe(boom);
  });
});

describe('validate: prototype pollution (RELIABILITY 11)', () => {
  it('a "__proto__" key from JSON text neither pollutes Object.prototype nor supplies x', () => {
    const polluting = JSON.parse('{"__proto__":{"polluted":"yes","x":[1,2]},"y":1}');
    const withData = JSON.parse('{"__proto__":{"polluted":"yes"},"x":[1,2],"y":1}');
    const viaConstructor = JSON.parse('{"constructor":{"prototype":{"polluted":"yes"}},"x":[1,2],"y":1}');
    const { passed, rejected } = through(single, [polluting, withData, viaConstructor]);
    expect(rejected).toHaveLength(1);
    expectSgError(rejected[0].error, 'SG_ERR_MISSING', 'x'); // an own "__proto__" property is just data
    expect(passed).toEqual([withData, viaConstructor]);
    expect(Object.prototype).not.toHaveProperty('polluted');
    expect(({} as Record<string, unknown>).polluted).toBeUndefined();
    expect(Object.getPrototypeOf(withData)).toBe(Object.prototype);
  });
});

describe('validate: marbles', () => {
  it('keeps time and order of the good samples, completes and errors like its source', () => {
    const ts = new TestScheduler((a, b) => expect(a).toEqual(b));
    ts.run(({ cold, expectObservable, expectSubscriptions }) => {
      const values = { a: { x: [1, 2], y: 1 }, b: { x: [1], y: 1 }, c: { x: [3, 4], y: 0 } };
      const e1 = cold('  -a-b-c-|', values);
      const seen: unknown[] = [];
      expectObservable(e1.pipe(validate(single, (r) => seen.push(r.sample)))).toBe('-a---c-|', values);
      expectSubscriptions(e1.subscriptions).toBe('^------!');
      const e2 = cold('  -a-#', values);
      expectObservable(e2.pipe(validate(single, () => undefined))).toBe('-a-#', values);
      const e3 = cold('  -a-b-c-|', values);
      expectObservable(e3.pipe(validate(single, () => undefined)), '--!').toBe('-a', values);
      expectSubscriptions(e3.subscriptions).toBe('^-!');
    });
  });
});
