import { describeValue, type ErrorCode, requireConfig, StreamgradError, typeError } from './errors.ts';
import type { IngestCounters } from './record.ts';
import type { Sample } from './sample.ts';

/**
 * What to do when a named record lacks a feature: turn it away (`reject`, the default),
 * fill in the running mean of the values seen so far (`mean`), or repeat the last value
 * seen (`last`). Before any value was seen, `mean` and `last` reject too. Targets are
 * never imputed.
 */
export type MissingPolicy = 'reject' | 'mean' | 'last';
/** Every missing-feature policy, for option parsing and help texts. */
export const MISSING_POLICIES: readonly MissingPolicy[] = ['reject', 'mean', 'last'];

/** How named records (CSV rows, JSON objects) become the model's ordered vectors. Frozen at construction. */
export interface FeatureMapConfig {
  /** The model's inputs, in order: `x[i]` is the field named `features[i]`. */
  readonly features: readonly string[];
  /** Numeric targets in order; with `classes`, exactly one field holding a class label. */
  readonly targets: readonly string[];
  /** Class labels of a categorical target: `y` is one-hot over them, in this order. */
  readonly classes?: readonly string[];
  /** One policy for every feature, or one per feature name (unnamed ones: `reject`). */
  readonly missing?: MissingPolicy | Readonly<Record<string, MissingPolicy>>;
}

/** A feature map's learned state (imputation statistics), as plain numbers. */
export interface FeatureMapState {
  readonly features: readonly string[];
  /** Values observed per feature (imputed ones are not counted). */
  readonly seen: readonly number[];
  readonly mean: readonly number[];
  /** Last observed value per feature (null before the first). */
  readonly last: readonly (number | null)[];
}

/** The outcome of mapping one record: a sample, or the first thing wrong with it. */
export type MapResult = { readonly sample: Sample; readonly error?: undefined } | { readonly error: StreamgradError; readonly sample?: undefined };

/** Strict decimal numbers as CSV writes them: `-1`, `2.5`, `.5`, `1e-3`, `1E+309` (which is Infinity). */
const NUMBER = /^[+-]?(?:\d+\.?\d*|\.\d+)(?:[eE][+-]?\d+)?$/;
const NONFINITE_TEXT = /^[+-]?(?:nan|inf|infinity)$/i;

/**
 * A text cell (CSV) as the JSON value it stands for, for a record of JSON values: a number
 * cell as its number (`" 5 "` → 5, `"nan"` → NaN, which the checks then refuse as not
 * finite), an empty cell as undefined (missing), any other text as itself (a class label).
 * Used where a CSV record's fields join a JSON one (CSV labels for NDJSON features).
 *
 * @example
 * cellValue('2.5'); // 2.5
 * cellValue('sun'); // 'sun'
 * cellValue('');    // undefined
 */
export function cellValue(cell: string): unknown {
  const text = cell.trim();
  if (text === '') return undefined;
  if (NUMBER.test(text)) return Number(text);
  if (NONFINITE_TEXT.test(text)) return Number(text.replace(/^([+-]?)inf(?:inity)?$/i, '$1Infinity'));
  return cell;
}

const fail = (code: ErrorCode, field: string, message: string): MapResult => ({ error: new StreamgradError(code, `${field}: ${message}`, field) });

/** A record that is not an object of named values. */
const notARecord = (record: unknown) => ({ error: typeError('record', 'must be an object of named values', record) });

/**
 * Maps named records to samples over a frozen, ordered feature list (STYLE 11,
 * RELIABILITY 5): the order of keys in a record does not matter; keys that are neither
 * features nor targets are ignored and counted; a missing feature follows its
 * `MissingPolicy`; a categorical target is one-hot encoded over `classes`.
 *
 * Values are never coerced: in a JSON record a feature must be a number (`"1.5"`, null,
 * true are `SG_ERR_TYPE`); in a text record (a CSV row) it must be a decimal number
 * (`""` is missing; `NaN`, `inf`, `1e309` are `SG_ERR_NONFINITE_INPUT`; anything else
 * is `SG_ERR_TYPE`). A rejected record changes no imputation statistic.
 *
 * The imputation statistics are learned state: `state()`/`restore()` for checkpoints.
 *
 * @example
 * const map = new FeatureMap({ features: ['temp', 'wind'], targets: ['weather'], classes: ['rain', 'sun'], missing: 'mean' });
 * map.map({ wind: 3, temp: 12.5, weather: 'sun' }); // { sample: { x: [12.5, 3], y: [0, 1] } }
 */
export class FeatureMap {
  readonly features: readonly string[];
  readonly targets: readonly string[];
  readonly classes: readonly string[] | null;
  readonly policies: readonly MissingPolicy[];
  /** Sizes of the vectors this map produces. */
  readonly shape: { readonly inputs: number; readonly outputs: number };
  private readonly known: ReadonlySet<string>;
  private readonly classIndex: ReadonlyMap<string, number>;
  private readonly seen: Float64Array;
  private readonly mean: Float64Array;
  private readonly last: Float64Array;
  /** Features imputed in the record `inputsOf` mapped last. */
  private imputed = 0;
  /** Distinct unknown keys seen (the first 32), for reports. */
  readonly unknownNames = new Set<string>();

  constructor(config: FeatureMapConfig) {
    const { features, targets, classes, missing = 'reject' } = config;
    const names = (list: unknown, field: string) => {
      requireConfig(Array.isArray(list) && list.length > 0, field, 'must be a non-empty list of names');
      for (const [i, name] of (list as unknown[]).entries()) requireConfig(typeof name === 'string' && name !== '', `${field}[${i}]`, `must be a non-empty string, got ${describeValue(name)}`);
      requireConfig(new Set(list as string[]).size === (list as string[]).length, field, 'names must be distinct');
    };
    names(features, 'features');
    names(targets, 'targets');
    for (const t of targets) requireConfig(!features.includes(t), 'targets', `${JSON.stringify(t)} is also a feature`);
    if (classes !== undefined) {
      names(classes, 'classes');
      requireConfig(targets.length === 1, 'classes', `a categorical target is one field, got ${targets.length} targets`);
      requireConfig(classes.length >= 2, 'classes', `need at least 2 classes, got ${classes.length}`);
    }
    const policies = features.map((name) => {
      const p = typeof missing === 'string' ? missing : Object.hasOwn(missing, name) ? missing[name] : 'reject';
      requireConfig(MISSING_POLICIES.includes(p), `missing.${name}`, `must be one of ${MISSING_POLICIES.join(', ')}, got ${String(p)}`);
      return p;
    });
    if (typeof missing === 'object') {
      for (const name of Object.keys(missing)) requireConfig(features.includes(name), `missing.${name}`, 'is not a feature');
    }
    this.features = Object.freeze([...features]);
    this.targets = Object.freeze([...targets]);
    this.classes = classes === undefined ? null : Object.freeze([...classes]);
    this.policies = Object.freeze(policies);
    this.shape = { inputs: features.length, outputs: classes?.length ?? targets.length };
    this.known = new Set([...features, ...targets]);
    this.classIndex = new Map((classes ?? []).map((c, i) => [c, i]));
    this.seen = new Float64Array(features.length);
    this.mean = new Float64Array(features.length);
    this.last = new Float64Array(features.length).fill(NaN);
  }

  /**
   * Maps one record to a sample, or says what is wrong with it. `text` records hold
   * text cells (CSV). Counts unknown keys and imputations in `counters` when given.
   */
  map(record: unknown, text = false, counters?: IngestCounters): MapResult {
    if (typeof record !== 'object' || record === null || Array.isArray(record)) {
      return notARecord(record);
    }
    const fields = record as Record<string, unknown>;
    const n = this.features.length;
    const inputs = this.inputsOf(fields, text);
    if (!(inputs instanceof Float64Array)) return inputs;
    const x = inputs;
    const imputed = this.imputed;
    const y = this.target(fields, text);
    if (!(y instanceof Float64Array)) return y;

    // the record is good: only now learn from it
    for (let i = 0; i < n; i++) {
      const name = this.features[i];
      const raw = Object.hasOwn(fields, name) ? fields[name] : undefined;
      if (raw === undefined || (text && raw === '')) continue;
      const count = ++this.seen[i];
      this.mean[i] += (x[i] - this.mean[i]) / count;
      this.last[i] = x[i];
    }
    if (counters !== undefined) {
      counters.imputed += imputed;
      const keys = Object.keys(fields);
      if (keys.length !== this.known.size || imputed > 0) {
        for (const key of keys) {
          if (this.known.has(key)) continue;
          counters.unknownKeys++;
          if (this.unknownNames.size < 32) this.unknownNames.add(key);
        }
      }
    }
    return { sample: { x, y } };
  }

  /**
   * The features alone, frozen: a missing one is imputed with the statistics as they
   * are, and nothing is learned (prediction must not move the statistics). Targets and
   * unknown keys are ignored. The same rules for values as `map`.
   *
   * @example
   * map.mapInputs({ temp: 12.5, wind: 3 }); // { x: Float64Array [12.5, 3] }
   */
  mapInputs(record: unknown, text = false): { readonly x: Float64Array; readonly error?: undefined } | { readonly error: StreamgradError; readonly x?: undefined } {
    if (typeof record !== 'object' || record === null || Array.isArray(record)) {
      return notARecord(record);
    }
    const x = this.inputsOf(record as Record<string, unknown>, text);
    return x instanceof Float64Array ? { x } : { error: x.error! };
  }

  /**
   * The targets of a record alone (a delayed label that comes before its features), checked as
   * `map` checks them — a finite number each, or one of the classes — and given as the values
   * they stand for (a text cell as its number), or what is wrong. Nothing is learned.
   *
   * @example
   * map.labelTargets({ id: 7, weather: 'sun' }); // { targets: { weather: 'sun' } }
   */
  labelTargets(fields: Readonly<Record<string, unknown>>, text = false): { readonly targets: Record<string, number | string>; readonly error?: undefined } | { readonly error: StreamgradError; readonly targets?: undefined } {
    const y = this.target(fields, text);
    if (!(y instanceof Float64Array)) return { error: y.error! };
    return { targets: this.classes === null ? Object.fromEntries(this.targets.map((name, k) => [name, y[k]])) : { [this.targets[0]]: this.classes[y.indexOf(1)] } };
  }

  /** The ordered feature vector of a record, imputing missing values by policy (nothing learned), or what is wrong. */
  private inputsOf(fields: Record<string, unknown>, text: boolean): Float64Array | MapResult {
    const n = this.features.length;
    const x = new Float64Array(n);
    this.imputed = 0;
    for (let i = 0; i < n; i++) {
      const name = this.features[i];
      const raw = Object.hasOwn(fields, name) ? fields[name] : undefined;
      if (raw === undefined || (text && raw === '')) {
        const policy = this.policies[i];
        const fill = policy === 'mean' && this.seen[i] > 0 ? this.mean[i] : policy === 'last' ? this.last[i] : NaN;
        if (Number.isNaN(fill)) {
          const why = policy === 'reject' ? 'missing' : `missing, and no value seen yet to impute (${policy})`;
          return fail('SG_ERR_MISSING', name, why);
        }
        x[i] = fill;
        this.imputed++;
        continue;
      }
      const value = this.number(raw, text, name);
      if (typeof value !== 'number') return { error: value };
      x[i] = value;
    }
    return x;
  }

  private target(fields: Readonly<Record<string, unknown>>, text: boolean): Float64Array | MapResult {
    const m = this.shape.outputs;
    const y = new Float64Array(m);
    if (this.classes !== null) {
      const name = this.targets[0];
      const raw = Object.hasOwn(fields, name) ? fields[name] : undefined;
      if (raw === undefined || (text && raw === '')) return fail('SG_ERR_MISSING', name, 'missing (the class label)');
      const label = typeof raw === 'string' ? raw : typeof raw === 'number' && Number.isFinite(raw) ? String(raw) : null;
      if (label === null) return { error: typeError(name, 'must be a class label (a string)', raw) };
      const k = this.classIndex.get(label);
      if (k === undefined) {
        const shown = this.classes.length > 8 ? `${this.classes.slice(0, 8).join(', ')}, …` : this.classes.join(', ');
        // the record's label is quoted in `message` only
        const quoted = JSON.stringify(label.length > 40 ? `${label.slice(0, 40)}…` : label);
        return { error: new StreamgradError('SG_ERR_TYPE', `${name}: ${quoted} is not one of the classes (${shown})`, name, { publicMessage: `${name}: the label is not one of the classes (${shown})` }) };
      }
      y[k] = 1;
      return y;
    }
    for (let k = 0; k < m; k++) {
      const name = this.targets[k];
      const raw = Object.hasOwn(fields, name) ? fields[name] : undefined;
      if (raw === undefined || (text && raw === '')) return fail('SG_ERR_MISSING', name, 'missing (a target)');
      const value = this.number(raw, text, name);
      if (typeof value !== 'number') return { error: value };
      y[k] = value;
    }
    return y;
  }

  /** A value of `field` as a number, or its typed error (a text cell is quoted in `message` only). */
  private number(raw: unknown, text: boolean, field: string): number | StreamgradError {
    const cell = text && typeof raw === 'string' ? raw.trim() : null;
    if (cell === null ? typeof raw !== 'number' : !NUMBER.test(cell) && !NONFINITE_TEXT.test(cell)) return typeError(field, 'must be a number', raw);
    const v = cell === null ? (raw as number) : Number(cell);
    if (Number.isFinite(v)) return v;
    return new StreamgradError('SG_ERR_NONFINITE_INPUT', `${field}: ${cell ?? v} is not finite`, field, { publicMessage: `${field}: ${cell === null ? v : 'the cell'} is not finite` });
  }

  state(): FeatureMapState {
    return {
      features: [...this.features],
      seen: Array.from(this.seen),
      mean: Array.from(this.mean),
      last: Array.from(this.last, (v) => (Number.isNaN(v) ? null : v)),
    };
  }

  /** Sets the imputation statistics from `state()`; the feature list must be the same, in the same order. */
  restore(state: FeatureMapState): void {
    const bad = (what: string) => new StreamgradError('SG_ERR_STATE', `features.${what}`, 'features');
    if (typeof state !== 'object' || state === null) throw bad('state must be an object');
    const names = state.features;
    if (!Array.isArray(names) || names.length !== this.features.length || names.some((f, i) => f !== this.features[i])) {
      throw bad(`the saved feature list [${Array.isArray(names) ? names.join(', ') : String(names)}] is not this map's [${this.features.join(', ')}]`);
    }
    const n = this.features.length;
    for (const key of ['seen', 'mean', 'last'] as const) {
      const v = state[key];
      if (!Array.isArray(v) || v.length !== n) throw bad(`${key}: must be an array of ${n}`);
      v.forEach((e, i) => {
        const ok = key === 'last' ? e === null || (typeof e === 'number' && Number.isFinite(e)) : typeof e === 'number' && Number.isFinite(e) && (key !== 'seen' || (Number.isSafeInteger(e) && e >= 0));
        if (!ok) throw bad(`${key}[${i}]: ${String(e)} is not allowed`);
      });
    }
    this.seen.set(state.seen);
    this.mean.set(state.mean);
    this.last.set(state.last.map((v) => v ?? NaN));
  }
}
