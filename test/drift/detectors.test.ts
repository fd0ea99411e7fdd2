/**
 * The drift detectors against River's documented examples (each docstring's stream,
 * rebuilt value for value with Python's generator, and the positions River prints), their
 * Kolmogorov–Smirnov test against SciPy, checkpointed state, and parameter checks.
 */
import { readFileSync } from 'node:fs';
import { describe, expect, it } from 'vitest';
import { Adwin } from '../../core/drift/adwin.ts';
import { Ddm } from '../../core/drift/ddm.ts';
import type { DriftDetector, DriftLevel } from '../../core/drift/detector.ts';
import { createDetector, type DetectorConfig } from '../../core/drift/detectors.ts';
import { HddmA } from '../../core/drift/hddm-a.ts';
import { ksTwoSample } from '../../core/drift/ks-test.ts';
import { Kswin } from '../../core/drift/kswin.ts';
import { PageHinkley } from '../../core/drift/page-hinkley.ts';
import { StreamgradError } from '../../core/errors.ts';
import { Rng } from '../../core/rng.ts';
import { PythonRandom } from '../helpers/python-random.ts';

const python = JSON.parse(readFileSync(new URL('../fixtures/drift/python.json', import.meta.url), 'utf8'));

/** Every (index, level) other than 'none', as River's examples print them. */
function alarms(detector: DriftDetector, stream: readonly number[]): [number, DriftLevel][] {
  const out: [number, DriftLevel][] = [];
  stream.forEach((x, i) => {
    const level = detector.update(x);
    if (level !== 'none') out.push([i, level]);
  });
  return out;
}

/** River's numeric example: `rng.choices([0, 1], k=1000) + rng.choices(range(4, 8), k=1000)` with seed 12345. */
function twoDistributions(): number[] {
  const rng = new PythonRandom(12345);
  return [...rng.choices([0, 1], 1000), ...rng.choices([4, 5, 6, 7], 1000)];
}

/** River's binary example: fair coin for 1000, then P(1) = 0.7 for 1000, seed 42. */
function errorRateRise(): number[] {
  const rng = new PythonRandom(42);
  return [...rng.choices([0, 1], 1000), ...rng.choices([0, 1], 1000, [0.3, 0.7])];
}

/** The first warning after each drift, and every drift: what River's binary examples print. */
function printed(found: readonly [number, DriftLevel][]): string[] {
  const lines: string[] = [];
  let printWarning = true;
  for (const [i, level] of found) {
    if (level === 'warning' && printWarning) {
      lines.push(`Warning detected at index ${i}`);
      printWarning = false;
    }
    if (level === 'drift') {
      lines.push(`Change detected at index ${i}`);
      printWarning = true;
    }
  }
  return lines;
}

describe('the Python generator stand-in (for River\'s examples)', () => {
  it('gives CPython\'s random(), getrandbits, choices (with and without weights) and sample', () => {
    const r = new PythonRandom(12345);
    expect(Array.from({ length: 5 }, () => r.random())).toEqual(python.random12345);
    const c = new PythonRandom(42);
    expect([...c.choices([0, 1], 20), ...c.choices([0, 1], 20, [0.3, 0.7])]).toEqual(python.choices42);
    const s = new PythonRandom(42);
    expect([0, 1, 2].map(() => s.sample(70, 30))).toEqual(python.sample42);
    expect(new PythonRandom(7).sample(1000, 10)).toEqual(python.sample7_big);
    expect(new PythonRandom(0).getrandbits(32)).toBe(python.u32_0[0]);
  });
});

describe('ksTwoSample', () => {
  it('gives SciPy\'s ks_2samp statistic and exact p-value (samples of 30, ties included)', () => {
    for (const c of python.ks) {
      const { statistic, pValue } = ksTwoSample(c.a, c.b);
      expect(statistic).toBeCloseTo(c.statistic, 14);
      expect(Math.abs(pValue - c.pValue)).toBeLessThan(1e-12);
    }
  });

  it('says p = 1 for identical samples and refuses samples of different sizes', () => {
    expect(ksTwoSample([1, 2, 3], [3, 2, 1])).toEqual({ statistic: 0, pValue: 1 });
    expect(() => ksTwoSample([1], [1, 2])).toThrow(RangeError);
  });
});

describe('River\'s documented alarm positions', () => {
  it('ADWIN: change at index 1023 (value 4)', () => {
    const stream = twoDistributions();
    const found = alarms(new Adwin(), stream);
    expect(found).toEqual([[1023, 'drift']]);
    expect(stream[1023]).toBe(4);
  });

  it('Page-Hinkley: change at index 1006 (value 5)', () => {
    const stream = twoDistributions();
    const found = alarms(new PageHinkley(), stream);
    expect(found.filter(([, l]) => l === 'drift').map(([i]) => i)).toEqual([1006]);
    expect(stream[1006]).toBe(5);
  });

  it('DDM: warning at 1084, change at 1334, warning at 1492', () => {
    expect(printed(alarms(new Ddm(), errorRateRise()))).toEqual([
      'Warning detected at index 1084',
      'Change detected at index 1334',
      'Warning detected at index 1492',
    ]);
  });

  it('HDDM_A: warning at 451, change at 1206', () => {
    expect(printed(alarms(new HddmA(), errorRateRise()))).toEqual([
      'Warning detected at index 451',
      'Change detected at index 1206',
    ]);
  });

  it('KSWIN (alpha 0.0001, seed 42, Python\'s sampler): change at index 1016 (value 6)', () => {
    const stream = twoDistributions();
    const kswin = new Kswin({ alpha: 0.0001, seed: 42, sampler: (seed) => { const r = new PythonRandom(seed); return (n, k) => r.sample(n, k); } });
    const found = alarms(kswin, stream);
    expect(found).toEqual([[1016, 'drift']]);
    expect(stream[1016]).toBe(6);
  });
});

const CONFIGS: DetectorConfig[] = [
  { kind: 'adwin' },
  { kind: 'adwin', clock: 1, delta: 0.01 },
  { kind: 'page-hinkley', threshold: 20, mode: 'up' },
  { kind: 'ddm' },
  { kind: 'hddm-a', twoSided: true },
  { kind: 'kswin', alpha: 0.001, seed: 3 },
];

describe('state for checkpoints', () => {
  /** A stream with several changes: drifts happen before and after the cut. */
  function stream(binary: boolean): number[] {
    const rng = new Rng(9);
    return Array.from({ length: 4000 }, (_, i) => {
      const p = [0.1, 0.5, 0.2, 0.7][Math.floor(i / 1000)];
      return binary ? (rng.next() < p ? 1 : 0) : p * 10 + rng.normal();
    });
  }

  it.each(CONFIGS)('$kind %#: restored through JSON at any point, it goes on exactly as without the cut', (config) => {
    const values = stream(config.kind === 'ddm' || config.kind === 'hddm-a');
    const whole = createDetector(config);
    const expected = alarms(whole, values);
    expect(expected.length).toBeGreaterThan(0);
    for (const cut of [0, 1, 517, 1000, 1999, 2500]) {
      const first = createDetector(config);
      const before = alarms(first, values.slice(0, cut));
      const resumed = createDetector(config, JSON.parse(JSON.stringify(first.state())));
      const after = alarms(resumed, values.slice(cut)).map(([i, l]) => [i + cut, l] as [number, DriftLevel]);
      expect([...before, ...after]).toEqual(expected);
      expect(resumed.evidence()).toEqual(whole.evidence());
    }
  });

  it('refuses the state of another kind of detector', () => {
    expect(() => createDetector({ kind: 'ddm' }, new Adwin().state())).toThrow(/ddm detector cannot restore the state of adwin/);
  });
});

describe('checks', () => {
  it.each([
    [{ kind: 'adwin', delta: 0 }, /adwin: delta must be in \(0, 1\), got 0/],
    [{ kind: 'adwin', clock: 0 }, /clock must be an integer ≥ 1/],
    [{ kind: 'page-hinkley', mode: 'sideways' }, /mode must be up, down or both/],
    [{ kind: 'ddm', warningThreshold: 3, driftThreshold: 2 }, /driftThreshold must be a finite number ≥ warningThreshold/],
    [{ kind: 'hddm-a', driftConfidence: 1 }, /driftConfidence must be in \(0, 1\)/],
    [{ kind: 'kswin', windowSize: 50, statSize: 30 }, /windowSize must be an integer ≥ 2 × statSize \(60\)/],
  ] as [DetectorConfig, RegExp][])('%o is refused with a typed error naming the parameter', (config, message) => {
    expect(() => createDetector(config)).toThrow(message);
    try {
      createDetector(config);
    } catch (error) {
      expect(error).toBeInstanceOf(StreamgradError);
      expect((error as StreamgradError).code).toBe('SG_ERR_CONFIG');
    }
  });

  it('refuses non-finite values, and values outside [0, 1] for the detectors of 0/1 errors', () => {
    expect(() => new Adwin().update(NaN)).toThrow(/finite/);
    expect(() => new PageHinkley().update(Infinity)).toThrow(/finite/);
    expect(() => new Ddm().update(2)).toThrow(/\[0, 1\]/);
    expect(() => new HddmA().update(-0.5)).toThrow(/\[0, 1\]/);
  });

  // KSWIN is the exception, as its authors and River say: it tests at every value, so at
  // α = 0.005 it raises ~130 false alarms per 100k stationary values here (α = 1e-4: ~7)
  it('a drift-free stream raises no alarm with the defaults of ADWIN, Page-Hinkley, DDM and HDDM_A (20,000 values)', () => {
    const rng = new Rng(1);
    const noise = Array.from({ length: 20_000 }, () => 1 + 0.2 * rng.normal());
    const coin = Array.from({ length: 20_000 }, () => (rng.next() < 0.2 ? 1 : 0));
    for (const detector of [new Adwin(), new PageHinkley()]) expect(alarms(detector, noise).filter(([, l]) => l === 'drift')).toEqual([]);
    for (const detector of [new Ddm(), new HddmA()]) expect(alarms(detector, coin).filter(([, l]) => l === 'drift')).toEqual([]);
  });
});
