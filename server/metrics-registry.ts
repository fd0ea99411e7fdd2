import { Counter, Gauge, Registry } from 'prom-client';
import { LABEL_COUNTER_NAMES } from '../core/label-join.ts';
import type { ServedRun } from './run-mirror.ts';

/**
 * The server's Prometheus metrics (`GET /metrics`), in a registry of its own so that
 * several servers in one process never collide. Per-run figures are read from the runs
 * when scraped; only dropped frames are counted as they happen.
 */
export interface ServerMetrics {
  readonly registry: Registry;
  /** Counts frames skipped because a client was over its buffer cap. */
  readonly droppedFrames: Counter;
  /** Counts a run's drift warnings and drifts (`run`, `event`: `drift-warning` or `drift`). */
  readonly driftEvents: Counter<'run' | 'event'>;
  /** Counts a run's drift reactions (`run`, `reaction`: reset, reset-optimizer, boost-lr, background). */
  readonly driftReactions: Counter<'run' | 'reaction'>;
}

/**
 * A counter whose total is kept elsewhere (a queue's own count, shared memory) and copied
 * over at each scrape.
 *
 * @example scrapedCounter([registry], 'streamgrad_x_total', 'Xs so far.', () => queue.xs);
 */
export function scrapedCounter(registers: Registry[], name: string, help: string, value: () => number): Counter {
  return new Counter({ name, help, registers, collect() { this.reset(); this.inc(value()); } });
}

export function createServerMetrics(runs: () => Iterable<ServedRun>, clients: () => number): ServerMetrics {
  const registry = new Registry();
  const registers = [registry];
  const perRun = (name: string, help: string, value: (run: ServedRun) => number) =>
    new Counter({
      name, help, labelNames: ['run'], registers,
      collect() {
        this.reset();
        for (const run of runs()) this.inc({ run: run.id }, value(run));
      },
    });
  const perRunGauge = (name: string, help: string, value: (run: ServedRun) => number | undefined) =>
    new Gauge({
      name, help, labelNames: ['run'], registers,
      collect() {
        this.reset();
        for (const run of runs()) {
          const v = value(run);
          if (v !== undefined && Number.isFinite(v)) this.set({ run: run.id }, v);
        }
      },
    });
  perRun('streamgrad_steps_total', 'Training steps taken (including skipped ones).', (r) => r.trainer.counters.steps);
  perRun('streamgrad_samples_total', 'Samples seen and scored (those of skipped steps included).', (r) => r.trainer.counters.samples);
  perRun('streamgrad_trained_samples_total', 'Samples learned from (those of skipped steps excluded).', (r) => r.trainer.counters.samples - r.trainer.counters.skippedSamples);
  perRun('streamgrad_skipped_samples_total', 'Samples in steps skipped for a non-finite loss or gradient.', (r) => r.trainer.counters.skippedSamples);
  perRun('streamgrad_rejected_samples_total', 'Samples rejected by validation before batching.', (r) => r.trainer.counters.rejected);
  perRun('streamgrad_dropped_samples_total', 'Samples a live source\'s bounded queue dropped (overflow policy).', (r) => r.ingest?.dropped ?? 0);
  perRun('streamgrad_skipped_steps_total', 'Steps skipped for a non-finite loss or gradient.', (r) => r.trainer.counters.skipped);
  perRunGauge('streamgrad_loss', 'Rolling prequential loss over the metrics window (mse of a normalised target: in its own units squared).', (r) => r.latest?.metrics.loss);
  perRunGauge('streamgrad_mae', 'Rolling prequential mean absolute error over the metrics window (a normalised target: in its own units).', (r) => r.latest?.metrics.mae);
  perRunGauge('streamgrad_stream_loss', 'Prequential loss over every sample since the start.', (r) => r.metrics.cumulative().loss);
  perRunGauge('streamgrad_stream_mae', 'Prequential mean absolute error over every sample since the start.', (r) => r.metrics.cumulative().mae);
  perRunGauge('streamgrad_samples_per_second', 'Training throughput over about the last second.', (r) => r.latest?.samplesPerSecond);
  // delayed labels (`joinLabels`): what the join counted, by kind, and what waits
  new Counter({
    name: 'streamgrad_labels_total', help: 'Delayed labels: records the label join counted, by kind (features and labels in, joined, expired, duplicates, unknown ids, ...).', labelNames: ['run', 'kind'], registers,
    collect() {
      this.reset();
      for (const run of runs()) {
        const labels = run.ingest?.labels;
        if (labels === undefined) continue;
        for (const kind of LABEL_COUNTER_NAMES) this.inc({ run: run.id, kind }, labels[kind]);
      }
    },
  });
  new Gauge({
    name: 'streamgrad_labels_waiting', help: 'Delayed labels: features waiting for their labels (side="features") and labels held for their features (side="labels").', labelNames: ['run', 'side'], registers,
    collect() {
      this.reset();
      for (const run of runs()) {
        const labels = run.ingest?.labels;
        if (labels === undefined) continue;
        this.set({ run: run.id, side: 'features' }, labels.waiting);
        this.set({ run: run.id, side: 'labels' }, labels.holding);
      }
    },
  });
  new Gauge({
    name: 'streamgrad_clients', help: 'Connected WebSocket clients.', registers,
    collect() {
      this.set(clients());
    },
  });
  const droppedFrames = new Counter({ name: 'streamgrad_dropped_frames_total', help: 'Frames not sent because the client was over its buffer cap.', registers });
  const driftEvents = new Counter({ name: 'streamgrad_drift_events_total', help: 'Drift warnings and drifts a run\'s detector raised.', labelNames: ['run', 'event'] as const, registers });
  const driftReactions = new Counter({ name: 'streamgrad_drift_reactions_total', help: 'What runs did about drifts (a boost-lr counts its start and its end; background its start, swap or drop).', labelNames: ['run', 'reaction'] as const, registers });
  return { registry, droppedFrames, driftEvents, driftReactions };
}
