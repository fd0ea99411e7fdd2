import { topologyOf } from '../core/model.ts';
import type { RunEvent } from '../pipeline/run.ts';
import type { ServedRun } from './run-mirror.ts';
import type { StepResult } from '../pipeline/train.ts';
import type { ErrorMessage, EventMessage, MetricsMessage, ProtocolErrorCode, RunInfo, ServerMessage } from './protocol.ts';

/**
 * Protocol v1 messages built from the engine's objects. JSON has no NaN or Infinity:
 * a non-finite number (a loss before the first sample, a skipped step's norm) is sent as null.
 */
const finiteOrNull = (value: number): number | null => (Number.isFinite(value) ? value : null);

/** A text frame's payload, encoded once and sent as is to every client that gets it. */
export const encodeMessage = (message: ServerMessage): Buffer => Buffer.from(JSON.stringify(message), 'utf8');

export const errorMessage = (code: ProtocolErrorCode, message: string, id?: string, field?: string): ErrorMessage => ({
  type: 'error', code, message, ...(id !== undefined ? { id } : {}), ...(field !== undefined ? { field } : {}),
});

export function runInfo(run: ServedRun): RunInfo {
  const { model, optimizer, loss, counters } = run.trainer;
  const s = optimizer.settings;
  const hyper: Record<string, number> =
    s.type === 'momentum' ? { momentum: s.momentum }
    : s.type === 'adam' ? { beta1: s.beta1, beta2: s.beta2, epsilon: s.epsilon }
    : s.type === 'rmsprop' ? { alpha: s.alpha, epsilon: s.epsilon }
    : s.type === 'adagrad' ? { epsilon: s.epsilon }
    : {};
  return {
    id: run.id,
    state: run.state,
    topology: topologyOf(model),
    loss,
    optimizer: { type: s.type, learningRate: optimizer.learningRate, ...hyper },
    parameters: model.params.length,
    step: counters.steps,
  };
}

export function metricsMessage(run: ServedRun, result: StepResult): MetricsMessage {
  const m = result.metrics;
  return {
    type: 'metrics',
    run: run.id,
    // the trainer's step count (as in frames and events): the first step's metrics say 1
    step: result.counters.steps,
    size: result.size,
    loss: finiteOrNull(result.loss),
    gradNorm: finiteOrNull(result.gradNorm),
    learningRate: result.learningRate,
    updated: result.updated,
    metrics: {
      window: m.window,
      count: m.count,
      loss: finiteOrNull(m.loss),
      mae: finiteOrNull(m.mae),
      ...(m.accuracy !== undefined ? { accuracy: finiteOrNull(m.accuracy) } : {}),
    },
    samplesPerSecond: finiteOrNull(result.samplesPerSecond),
    counters: { ...run.trainer.counters, ...(run.ingest !== null && { read: run.ingest.read, dropped: run.ingest.dropped }) },
    state: run.state,
    time: Date.now(),
    ...(run.ingest?.labels !== undefined && { labels: { ...run.ingest.labels } }),
  };
}

export function eventMessage(event: RunEvent): EventMessage {
  return { type: 'event', run: event.run, event: event.type, step: event.step, time: event.time, ...(event.detail !== undefined ? { detail: event.detail } : {}) };
}
