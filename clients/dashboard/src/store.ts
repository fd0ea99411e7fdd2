import type { DecodedFrame } from '../../../server/snapshot-frame.ts';
import type { EventMessage, MetricsMessage, PredictionsMessage, RunInfo, ScalarsMessage } from '../../../server/protocol.ts';
import { runColor } from './palette.ts';
import { RowRing, SeriesBuffer } from './ring.ts';
import { createSummary, QUANTILES, type Summary, summarize } from './stats.ts';

/** Columns of a run's metric series. */
export const COL = { step: 0, time: 1, loss: 2, batchLoss: 3, mae: 4, accuracy: 5, gradNorm: 6, learningRate: 7, samplesPerSecond: 8 } as const;
export type SeriesColumn = keyof typeof COL;
const COLUMN_COUNT = 9;

/** Points of a metric curve kept per run (the whole run, evenly thinned: see SeriesBuffer). */
export const SERIES_CAPACITY = 4096;
/** Columns of a layer's distribution-over-time chart (step + the quantiles). */
export const DIST_CAPACITY = 512;
/** Prediction/target points kept per run. */
export const PREDICTION_CAPACITY = 512;
/** Events kept per run for the log. */
export const EVENT_CAPACITY = 40;
/** Drift alarms and reactions kept per run, for the markers on the loss chart. */
export const MARK_CAPACITY = 200;
/** Inputs kept per prediction row (for the prediction view on pinned weights). */
export const MAX_ROW_INPUTS = 16;

/** A drift alarm or reaction at a step: a marker on the loss chart. */
export interface DriftMark {
  readonly step: number;
  /** Seconds on the page's time axis. */
  readonly time: number;
  readonly kind: 'drift-warning' | 'drift' | 'drift-reaction';
}

/** A layer's weight (or gradient) statistics over time: step + QUANTILES per column. */
export interface LayerDistribution {
  readonly series: SeriesBuffer;
  /** The latest summary (also the colour scale of heatmaps). */
  readonly latest: Summary;
}

export interface RunStore {
  info: RunInfo;
  readonly color: string;
  readonly series: SeriesBuffer;
  metrics: MetricsMessage | null;
  /** The newest parameters frame (live). */
  params: DecodedFrame | null;
  grads: DecodedFrame | null;
  /** Per layer: weights' and gradients' distributions over time. */
  readonly weightDist: LayerDistribution[];
  readonly gradDist: LayerDistribution[];
  /** Recent samples: [target..., output..., input0, input1] per row (inputs NaN when unknown). */
  predictions: RowRing;
  /** The same rows' inputs (the first `MAX_ROW_INPUTS`; NaN when unknown), to run them through pinned weights. */
  rowInputs: RowRing;
  /**
   * The same rows' target units, [mean..., scale...] per row (0 and 1 for a raw target):
   * outputs computed in the page (pinned weights) are in the model's standardised units
   * and map to the user's with the row's `z · scale + mean`, as the server mapped the row.
   */
  rowUnits: RowRing;
  /** Outputs per prediction row. */
  outputSize: number;
  /** Drift alarms and reactions, oldest first (the last `MARK_CAPACITY`). */
  readonly marks: DriftMark[];
  /** Bumped when a mark was added. */
  marksVersion: number;
  /** Sample number of the newest prediction row stored. */
  lastSample: number;
  readonly events: EventMessage[];
  /** Bumped on every change a view may draw (coalesced per animation frame). */
  version: number;
  /** Bumped per kind of change, so each view redraws only for its own data. */
  metricsVersion: number;
  paramsVersion: number;
  gradsVersion: number;
  predictionsVersion: number;
  /** Bumped when a distribution column was added. */
  distVersion: number;
  /** Whether this run's curves are shown in the overlay charts. */
  visible: boolean;
  /** The server reported non-finite parameters (snapshots withheld) until a reset. */
  diverged: boolean;
}

const nullable = (v: number | null | undefined) => (v === null || v === undefined ? Number.NaN : v);

/**
 * Everything the page knows, kept in fixed-size buffers. Messages only write here (at
 * any rate); views read it once per animation frame, so many messages between two frames
 * cost one draw (latest wins).
 */
export class Store {
  readonly runs = new Map<string, RunStore>();
  /** Server time (ms since the epoch) of x = 0 on the time axis: the first time heard. */
  private timeOrigin: number | null = null;
  /** Events already taken (a subscription replays a run's recent events): run, event, step, time. */
  private readonly seenEvents = new Set<string>();
  /** Bumped when runs are added or removed. */
  listVersion = 0;
  private readonly row = new Float64Array(COLUMN_COUNT);
  private readonly distRow = new Float64Array(1 + QUANTILES.length);

  /** The runs of a (new) hello: keeps what is known of runs still there, unless they restarted. */
  setRuns(infos: readonly RunInfo[]): void {
    const ids = new Set(infos.map((r) => r.id));
    for (const id of [...this.runs.keys()]) if (!ids.has(id)) this.runs.delete(id);
    for (const info of infos) this.upsert(info);
    this.listVersion++;
  }

  /** Adds a run, or updates one; a run whose step went back is a new run under the same name. */
  upsert(info: RunInfo): RunStore {
    let run = this.runs.get(info.id);
    if (run !== undefined && info.step < lastStep(run)) {
      this.runs.delete(info.id);
      run = undefined;
    }
    if (run === undefined) {
      const layers = info.topology.layers.length;
      const outputs = info.topology.layers[layers - 1].units;
      run = {
        info,
        color: runColor(info.id),
        series: new SeriesBuffer(SERIES_CAPACITY, COLUMN_COUNT),
        metrics: null,
        params: null,
        grads: null,
        weightDist: Array.from({ length: layers }, () => distribution()),
        gradDist: Array.from({ length: layers }, () => distribution()),
        predictions: new RowRing(PREDICTION_CAPACITY, 2 * outputs + 2),
        rowInputs: new RowRing(PREDICTION_CAPACITY, Math.max(1, Math.min(MAX_ROW_INPUTS, info.topology.inputSize))),
        rowUnits: new RowRing(PREDICTION_CAPACITY, 2 * outputs),
        outputSize: outputs,
        marks: [],
        marksVersion: 0,
        lastSample: -1,
        events: [],
        version: 0,
        metricsVersion: 0,
        paramsVersion: 0,
        gradsVersion: 0,
        predictionsVersion: 0,
        distVersion: 0,
        visible: true,
        diverged: false,
      };
      this.runs.set(info.id, run);
      this.listVersion++;
    } else {
      run.info = info;
    }
    run.version++;
    return run;
  }

  remove(id: string): void {
    if (this.runs.delete(id)) this.listVersion++;
  }

  metrics(m: MetricsMessage): void {
    const run = this.runs.get(m.run);
    if (run === undefined) return;
    if (m.step < lastStep(run)) return; // older than what is shown (a late message)
    const r = this.row;
    r[COL.step] = m.step;
    r[COL.time] = this.seconds(m.time ?? Date.now());
    r[COL.loss] = nullable(m.metrics.loss);
    r[COL.batchLoss] = nullable(m.loss);
    r[COL.mae] = nullable(m.metrics.mae);
    r[COL.accuracy] = nullable(m.metrics.accuracy);
    r[COL.gradNorm] = nullable(m.gradNorm);
    r[COL.learningRate] = m.learningRate;
    r[COL.samplesPerSecond] = nullable(m.samplesPerSecond);
    run.series.push(r);
    run.metricsVersion++;
    run.metrics = m;
    run.info = { ...run.info, state: m.state, step: m.step, optimizer: { ...run.info.optimizer, learningRate: m.learningRate } };
    run.version++;
  }

  /** Seconds since the first server time heard (the time axis of every run). */
  private seconds(time: number): number {
    this.timeOrigin ??= time;
    return (time - this.timeOrigin) / 1000;
  }

  /**
   * A run's scalar history (sent once per subscription): replaces its curve with the whole
   * run so far, so a page opened late or reloaded shows everything; live metrics append.
   */
  scalars(s: ScalarsMessage): void {
    const run = this.runs.get(s.run);
    if (run === undefined) return;
    const r = this.row;
    const latest = run.metrics;
    run.series.clear();
    for (let i = 0; i < s.points; i++) {
      const t = s.time[i];
      r[COL.step] = s.step[i];
      r[COL.time] = t === null ? Number.NaN : this.seconds(s.t0 + t);
      r[COL.loss] = nullable(s.loss[i]);
      r[COL.batchLoss] = nullable(s.batchLoss[i]);
      r[COL.mae] = nullable(s.mae[i]);
      r[COL.accuracy] = nullable(s.accuracy[i]);
      r[COL.gradNorm] = nullable(s.gradNorm[i]);
      r[COL.learningRate] = nullable(s.learningRate[i]);
      r[COL.samplesPerSecond] = Number.NaN;
      run.series.push(r);
    }
    // live metrics newer than the history stay at the end
    if (latest !== null && latest.step > (s.step[s.points - 1] ?? -1)) this.metrics(latest);
    run.metricsVersion++;
    run.version++;
  }

  event(e: EventMessage): void {
    const run = this.runs.get(e.run);
    if (run === undefined) return;
    const key = `${e.run}\u0000${e.event}\u0000${e.step}\u0000${e.time}`;
    if (this.seenEvents.has(key)) return; // a replayed event (a new subscription) already taken
    this.seenEvents.add(key);
    if (this.seenEvents.size > 4096) this.seenEvents.delete(this.seenEvents.values().next().value!);
    if (e.event === 'drift-warning' || e.event === 'drift' || e.event === 'drift-reaction') {
      run.marks.push({ step: e.step, time: this.seconds(e.time), kind: e.event });
      if (run.marks.length > MARK_CAPACITY) run.marks.splice(0, run.marks.length - MARK_CAPACITY);
      run.marksVersion++;
    }
    run.events.push(e);
    if (run.events.length > EVENT_CAPACITY) run.events.splice(0, run.events.length - EVENT_CAPACITY);
    if (e.event === 'diverged') run.diverged = true;
    if (e.event === 'reset') run.diverged = false;
    const state = STATE_AFTER[e.event];
    if (state !== undefined) run.info = { ...run.info, state };
    if (e.event === 'learning-rate' && typeof e.detail?.to === 'number' && Number.isFinite(e.detail.to)) {
      run.info = { ...run.info, optimizer: { ...run.info.optimizer, learningRate: e.detail.to } };
    }
    run.version++;
  }

  /** A live parameters or gradients frame; false when it does not fit the run's topology. */
  frame(frame: DecodedFrame): boolean {
    const run = this.runs.get(frame.run);
    if (run === undefined || !matches(run.info, frame)) return false;
    if (frame.kind === 'parameters') {
      run.params = frame;
      run.paramsVersion++;
    } else if (frame.kind === 'gradients') {
      run.grads = frame;
      run.gradsVersion++;
    } else {
      return false;
    }
    run.version++;
    return true;
  }

  /**
   * Adds a distribution column per layer from the newest frames; called once per
   * animation frame for runs whose frames changed (so at most the frame rate).
   */
  summarize(run: RunStore, kind: 'parameters' | 'gradients'): void {
    const frame = kind === 'parameters' ? run.params : run.grads;
    const dists = kind === 'parameters' ? run.weightDist : run.gradDist;
    if (frame === null) return;
    frame.layers.forEach((layer, l) => {
      const d = dists[l];
      if (d === undefined) return;
      summarize(layer.weights, d.latest);
      this.distRow[0] = frame.step;
      this.distRow.set(d.latest.quantiles, 1);
      d.series.push(this.distRow);
    });
    run.distVersion++;
  }

  predictions(p: PredictionsMessage): void {
    const run = this.runs.get(p.run);
    if (run === undefined) return;
    const m = p.outputSize;
    const width = 2 * m + 2;
    if (run.predictions.width !== width) {
      run.predictions = new RowRing(PREDICTION_CAPACITY, width);
      run.rowInputs = new RowRing(PREDICTION_CAPACITY, run.rowInputs.width);
      run.rowUnits = new RowRing(PREDICTION_CAPACITY, 2 * m);
    }
    const unitsRow = new Float64Array(2 * m);
    for (let k = 0; k < m; k++) {
      unitsRow[k] = p.units?.mean[k] ?? 0;
      unitsRow[m + k] = p.units?.scale[k] ?? 1;
    }
    run.outputSize = m;
    const inputSize = p.inputs === undefined ? 0 : p.inputs.length / Math.max(1, p.rows);
    const inputRow = new Float64Array(run.rowInputs.width);
    const first = p.samples - p.rows + 1;
    if (first + p.rows - 1 < run.lastSample) run.lastSample = -1; // the run was reset or restarted
    const row = new Float64Array(width);
    for (let i = 0; i < p.rows; i++) {
      const sample = first + i;
      if (sample <= run.lastSample) continue;
      for (let k = 0; k < m; k++) {
        row[k] = p.targets[i * m + k];
        row[m + k] = p.outputs[i * m + k];
      }
      row[2 * m] = inputSize >= 1 && p.inputs !== undefined ? p.inputs[i * inputSize] : Number.NaN;
      row[2 * m + 1] = inputSize >= 2 && p.inputs !== undefined ? p.inputs[i * inputSize + 1] : Number.NaN;
      run.predictions.push(row);
      for (let k = 0; k < inputRow.length; k++) inputRow[k] = k < inputSize && p.inputs !== undefined ? p.inputs[i * inputSize + k] : Number.NaN;
      run.rowInputs.push(inputRow);
      run.rowUnits.push(unitsRow);
    }
    run.lastSample = Math.max(run.lastSample, p.samples);
    run.predictionsVersion++;
    run.version++;
  }
}

const STATE_AFTER: Partial<Record<EventMessage['event'], RunInfo['state']>> = {
  started: 'running', paused: 'paused', resumed: 'running', stopped: 'stopped', completed: 'completed', failed: 'failed', diverged: 'failed',
};

function distribution(): LayerDistribution {
  return { series: new SeriesBuffer(DIST_CAPACITY, 1 + QUANTILES.length), latest: createSummary() };
}

function lastStep(run: RunStore): number {
  const s = run.series.last(COL.step);
  return Number.isNaN(s) ? -1 : s;
}

/** Whether a frame has the run's topology (a frame of another shape is not drawn). */
export function matches(info: RunInfo, frame: DecodedFrame): boolean {
  const layers = info.topology.layers;
  if (frame.inputSize !== info.topology.inputSize || frame.layers.length !== layers.length) return false;
  return frame.layers.every((l, i) => l.units === layers[i].units);
}
