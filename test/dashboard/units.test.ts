import fc from 'fast-check';
import { describe, expect, it } from 'vitest';
import { Requests } from '../../clients/dashboard/src/commands.ts';
import { LocalModel, ROWS_PER_PASS } from '../../clients/dashboard/src/engine/local-model.ts';
import { DEFAULT_CONFIG, formatHash, parseHash } from '../../clients/dashboard/src/hash.ts';
import { DIVERGING_LUT, diverging, lutIndex } from '../../clients/dashboard/src/palette.ts';
import { RowRing, SeriesBuffer } from '../../clients/dashboard/src/ring.ts';
import { QUANTILES, summarize } from '../../clients/dashboard/src/stats.ts';
import { COL, Store } from '../../clients/dashboard/src/store.ts';
import { alignSeries, positiveOrNull } from '../../clients/dashboard/src/views/align.ts';
import { edgePoint, graphLayout, shownNodes } from '../../clients/dashboard/src/views/graph-layout.ts';
import { cellAt, cellCenter, heatmapLayout, paintLayer } from '../../clients/dashboard/src/views/heatmap-layout.ts';
import { labelLine } from '../../clients/dashboard/src/views/label-line.ts';
import { parseHistoryResult, parseWire } from '../../clients/dashboard/src/wire.ts';
import type { MetricsMessage, RunInfo } from '../../server/protocol.ts';
import { decodeFrame, encodeFrame } from '../../server/snapshot-frame.ts';
import { jsKernels } from '../../core/kernels-js.ts';
import { instantiateWasmRuntime } from '../../core/kernels-wasm.ts';
import { createModel } from '../../core/model.ts';
import { initialize } from '../../core/init.ts';
import { forwardPass } from '../../core/network.ts';
import { createWorkspace } from '../../core/workspace.ts';

/** The dashboard's pure modules (no DOM): buffers, statistics, layouts, wire checks, hash config. */
describe('dashboard building blocks', () => {
  it('SeriesBuffer: fixed memory, the whole series thinned evenly, the newest row always shown', () => {
    const b = new SeriesBuffer(8, 2);
    const arrays = b.columns.slice();
    for (let i = 0; i < 1000; i++) {
      b.push([i, i * 2]);
      expect(b.length).toBeLessThanOrEqual(10);
      expect(b.last(0)).toBe(i); // the tip
    }
    expect(b.columns).toEqual(arrays); // never reallocated
    expect(b.columns.every((c, k) => c === arrays[k])).toBe(true);
    const xs = Array.from(b.column(0));
    expect(xs[0]).toBe(0);
    expect([...xs].sort((p, q) => p - q)).toEqual(xs);
    const gaps = xs.slice(1, -1).map((x, i) => x - xs[i]);
    expect(new Set(gaps).size).toBe(1); // evenly spaced (the tip aside)
    expect(Array.from(b.column(1))).toEqual(xs.map((x) => 2 * x));
    b.clear();
    expect(b.length).toBe(0);
  });

  it('RowRing keeps the last rows in order', () => {
    const r = new RowRing(3, 2);
    for (let i = 0; i < 5; i++) r.push([i, -i]);
    expect([r.length, r.total]).toEqual([3, 5]);
    expect([0, 1, 2].map((i) => [r.get(i, 0), r.get(i, 1)])).toEqual([[2, -2], [3, -3], [4, -4]]);
  });

  it('summaries: quantiles from an O(n) histogram, within a bin of the exact ones; non-finite values skipped', () => {
    fc.assert(fc.property(fc.array(fc.double({ min: -100, max: 100, noNaN: true }), { minLength: 50, maxLength: 400 }), (values) => {
      const s = summarize(Float64Array.from([...values, Number.NaN, Infinity]));
      const sorted = [...values].sort((a, b) => a - b);
      const bin = (sorted[sorted.length - 1] - sorted[0]) / 512 + 1e-9;
      expect(s.count).toBe(values.length);
      expect(s.min).toBe(sorted[0]);
      expect(s.max).toBe(sorted[sorted.length - 1]);
      QUANTILES.forEach((q, i) => {
        const lo = sorted[Math.max(0, Math.ceil(q * values.length) - 1)], hi = sorted[Math.min(values.length - 1, Math.floor(q * values.length))];
        expect(s.quantiles[i]).toBeGreaterThanOrEqual(Math.min(lo, hi) - bin);
        expect(s.quantiles[i]).toBeLessThanOrEqual(Math.max(lo, hi) + bin);
      });
      expect(s.abs99).toBeLessThanOrEqual(s.absMax + 1e-9);
    }), { numRuns: 50 });
    expect(summarize(new Float64Array(0)).count).toBe(0);
  });

  it('alignSeries merges ascending series into one x column with nulls', () => {
    const data = alignSeries([{ x: [1, 3, 5], y: [10, 30, 50] }, { x: [2, 3, 6], y: [-2, 0, 6] }], positiveOrNull);
    expect(data).toEqual([[1, 2, 3, 5, 6], [10, null, 30, 50, null], [null, null, null, null, 6]]);
    expect(alignSeries([])).toEqual([[]]);
  });

  it('the diverging palette: blue for negative, white at zero, orange for positive; LUT words match', () => {
    expect(diverging(-1)).toEqual([8, 119, 189]);
    expect(diverging(0)).toEqual([247, 247, 247]);
    expect(diverging(1)).toEqual([245, 124, 0]);
    expect(diverging(5)).toEqual(diverging(1));
    expect(lutIndex(Number.NaN, 1)).toBe(128);
    const word = DIVERGING_LUT[lutIndex(2, 2)];
    expect([word & 255, (word >> 8) & 255, (word >>> 16) & 255, word >>> 24]).toEqual([245, 124, 0, 255]);
  });

  it('heatmap layout: cell centres and hit tests agree, weights and biases land where the layout says', () => {
    for (const [units, inputs] of [[2, 2], [70, 3], [1, 70], [256, 64], [10, 256]]) {
      const layout = heatmapLayout(units, inputs, 300, 150);
      expect(layout.transposed).toBe(units > inputs);
      for (const [neuron, input] of [[0, 0], [units - 1, inputs - 1], [units - 1, inputs], [0, inputs]]) {
        const c = cellCenter(layout, neuron, input);
        expect(cellAt(layout, c.x, c.y)).toEqual({ neuron, input });
      }
    }
    const values = Float64Array.of(1, -1, 0.5, 0, /* bias */ 2, -2);
    const frame = decodeFrame(encodeFrame('parameters', 'float64', 'r', 0, { inputSize: 2, units: [2] }, values));
    const matrix = new Uint32Array(4), bias = new Uint32Array(2);
    paintLayer(frame.layers[0], false, 2, matrix, bias);
    expect(matrix[1]).toBe(DIVERGING_LUT[lutIndex(-1, 2)]); // neuron 0, input 1
    expect(bias[1]).toBe(DIVERGING_LUT[0]); // -2 on ±2: full blue
  });

  it('graph layout: at most 16 nodes per column, evenly chosen, first and last kept', () => {
    expect(shownNodes(3)).toEqual([0, 1, 2]);
    const big = shownNodes(256);
    expect(big).toHaveLength(16);
    expect([big[0], big[15]]).toEqual([0, 255]);
    const layout = graphLayout([2, 2, 1], 400, 300);
    expect(layout.columns.map((c) => c.nodes.length)).toEqual([2, 2, 1]);
    const p = edgePoint(layout, 0, 0, 0)!;
    expect(p.y).toBe(layout.columns[0].nodes[0].y); // equal columns: a level edge
    expect(edgePoint(layout, 0, 5, 0)).toBeNull();
  });

  it('URL hash: a typed whitelist; junk, NaN and unknown keys fall back to defaults', () => {
    expect(parseHash('')).toEqual(DEFAULT_CONFIG);
    expect(parseHash('#run=deep&log=0&x=time&metric=gradNorm&layer=2')).toEqual({ run: 'deep', log: false, x: 'time', metric: 'gradNorm', layer: 2 });
    expect(parseHash('#log=yes&x=<b>&metric=__proto__&layer=NaN&token=secret&run=' + 'a'.repeat(300))).toEqual(DEFAULT_CONFIG);
    expect(parseHash('#layer=1.5').layer).toBe(-1);
    const config = { ...DEFAULT_CONFIG, run: 'a b&c', log: false };
    expect(parseHash(formatHash(config))).toEqual(config);
    expect(formatHash(DEFAULT_CONFIG)).toBe('');
  });

  it('wire checks: well-formed messages pass; wrong types, unknown kinds and non-finite numbers are dropped', () => {
    const hello = { type: 'hello', protocol: 1, server: 's', access: 'read-only', runs: [], limits: {} };
    expect(parseWire(JSON.stringify(hello))).toMatchObject({ type: 'hello' });
    expect(parseWire('{"type":"ack","id":"a","command":"pause","duplicate":false}')).toMatchObject({ type: 'ack' });
    for (const text of ['', 'x', '[1]', '{"type":"hello","protocol":1,"access":"root","runs":[]}', '{"type":"ack","id":1}', '{"type":"error","code":"X"}', '{"type":"event","run":"r","event":"started","step":-1,"time":0}']) {
      expect(parseWire(text)).toBeNull();
    }
    // JSON has no NaN; a huge exponent is Infinity: refused where a finite number is required
    expect(parseWire('{"type":"predictions","run":"r","step":1,"samples":1,"rows":1,"outputSize":1,"outputs":[1e999],"targets":[0]}')).toBeNull();
    expect(parseHistoryResult({ run: 'r', steps: [0, 5], sent: [5], intervalMs: 500, capacity: 240 })).not.toBeNull();
    expect(parseHistoryResult({ run: 'r', steps: [0, -5], sent: [], intervalMs: 500, capacity: 240 })).toBeNull();
  });

  it('Requests: routes answers by id, resends commands after a reconnect, fails the rest', () => {
    const sent: { id: string; type: string }[] = [];
    const requests = new Requests((m) => { sent.push(m as { id: string; type: string }); return true; }, 1000);
    const outcomes: string[] = [];
    const a = requests.request({ type: 'pause', run: 'r' }, (o) => outcomes.push(`pause ${o.ok}`));
    requests.request({ type: 'history', run: 'r' }, (o) => outcomes.push(`history ${o.error?.code}`), false);
    requests.dropped();
    expect(outcomes).toEqual(['history SG_ERR_CLOSED']);
    requests.reconnected();
    expect(sent.map((m) => m.id)).toEqual([a, sent[1].id, a]); // the same id again
    expect(requests.answer({ type: 'ack', id: a, command: 'pause', duplicate: true })).toBe(true);
    expect(requests.answer({ type: 'ack', id: a, command: 'pause', duplicate: true })).toBe(false);
    requests.request({ type: 'step', run: 'r' }, (o) => outcomes.push(`step ${o.error?.code}`));
    requests.expire(performance.now() + 2000);
    expect(outcomes).toEqual(['history SG_ERR_CLOSED', 'pause true', 'step SG_ERR_TIMEOUT']);
  });

  it('Store: a run whose step goes back is a new run; predictions are kept once per sample', () => {
    const info: RunInfo = { id: 'r', state: 'running', topology: { inputSize: 1, layers: [{ units: 1, activation: 'linear' }] }, loss: 'mse', optimizer: { type: 'sgd', learningRate: 0.1 }, parameters: 2, step: 0 };
    const metrics = (step: number): MetricsMessage => ({ type: 'metrics', run: 'r', step, size: 1, loss: 1, gradNorm: 1, learningRate: 0.1, updated: true, metrics: { window: 10, count: 1, loss: 1 / step, mae: null }, samplesPerSecond: null, counters: {}, state: 'running' });
    const store = new Store();
    store.setRuns([info]);
    for (let step = 1; step <= 5; step++) store.metrics(metrics(step));
    const run = store.runs.get('r')!;
    expect(Array.from(run.series.column(COL.step))).toEqual([1, 2, 3, 4, 5]);
    expect(Number.isNaN(run.series.last(COL.mae))).toBe(true); // null → NaN, drawn as a gap
    store.predictions({ type: 'predictions', run: 'r', step: 5, samples: 5, rows: 3, outputSize: 1, outputs: [1, 2, 3], targets: [1, 2, 3], inputs: [0.1, 0.2, 0.3] });
    store.predictions({ type: 'predictions', run: 'r', step: 6, samples: 6, rows: 3, outputSize: 1, outputs: [2, 3, 4], targets: [2, 3, 4], inputs: [0.2, 0.3, 0.4] });
    expect(run.predictions.length).toBe(4);
    store.setRuns([{ ...info, step: 2 }]); // a restarted server
    expect(store.runs.get('r')).not.toBe(run);
    expect(store.runs.get('r')!.series.length).toBe(0);
  });
  it('labelLine: the join\'s invalid records by reason (without id, refused, unreadable), and as "invalid" what a server from before the reasons counts in the total only', () => {
    // before: every invalid record was "without id", features and labels refused for their values included
    const base = { joined: 1204, waiting: 37, holding: 0, expired: 0, duplicateFeatures: 0, duplicateLabels: 0, unknownLabels: 0, late: 0, untimed: 0 };
    expect(labelLine({ ...base, invalid: 6, unusableId: 1, refusedFeatures: 2, refusedLabels: 1, unreadable: 2 })).toBe('labels 1\u202f204 joined · 37 waiting · 1 without id · 3 refused · 2 unreadable');
    expect(labelLine({ ...base, invalid: 4 })).toBe('labels 1\u202f204 joined · 37 waiting · 4 invalid');
    expect(labelLine({ ...base, invalid: 0, unusableId: 0, refusedFeatures: 0, refusedLabels: 0, unreadable: 0 })).toBe('labels 1\u202f204 joined · 37 waiting');
  });

  it('LocalModel: passes of ROWS_PER_PASS rows give one pass’s numbers; a model too large for the page’s fixed WebAssembly memory runs on js', async () => {
    // a page's runtime: a plain memory of fixed size, here 1 MiB
    const page = await instantiateWasmRuntime({ shared: false, memoryBytes: 1 << 20 });
    const check = (units: number, backend: string) => {
      const topology = { inputSize: 2, layers: [{ units, activation: 'tanh' as const }, { units: 3, activation: 'softmax' as const }] };
      const reference = initialize(createModel(topology, jsKernels), 'xavier', units);
      const info: RunInfo = { id: 'r', state: 'paused', topology, loss: 'cross_entropy', optimizer: { type: 'sgd', learningRate: 0.1 }, parameters: reference.params.length, step: 0 };
      const frame = decodeFrame(encodeFrame('parameters', 'float64', 'r', 0, { inputSize: 2, units: [units, 3] }, reference.params));
      const local = new LocalModel(page.kernels.f64);
      expect(local.load(info, frame)).toBe(true);
      expect(local.backend).toBe(backend);
      const rows = 3 * ROWS_PER_PASS + 17;
      const inputs = Float64Array.from({ length: 2 * rows }, (_, i) => Math.sin(i));
      const out = new Float64Array(3 * rows);
      expect(local.evaluate(inputs, rows, out)).toBe(true);
      const ws = createWorkspace(reference, rows, jsKernels.allocate);
      forwardPass(jsKernels, reference, ws, rows, inputs);
      expect(out).toEqual(ws.a[1].subarray(0, 3 * rows));
    };
    check(8, 'wasm');
    check(512, 'js'); // its workspace alone (256 rows × 515 units × z, a, delta) is 3 MB
    // an unknown activation is refused by both
    const odd: RunInfo = { id: 'o', state: 'paused', topology: { inputSize: 1, layers: [{ units: 1, activation: 'swish' }] }, loss: 'mse', optimizer: { type: 'sgd', learningRate: 0.1 }, parameters: 2, step: 0 };
    expect(new LocalModel(page.kernels.f64).load(odd, decodeFrame(encodeFrame('parameters', 'float64', 'o', 0, { inputSize: 1, units: [1] }, Float64Array.of(1, 0))))).toBe(false);
  });
});
