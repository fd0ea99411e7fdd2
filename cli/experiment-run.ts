import { parameterCount } from '../core/model.ts';
import type { RollingMetrics } from '../core/evaluation.ts';
import { type ExperimentModel, type ExperimentResult, type ModelOutcome, runPlan } from '../runtime/run-experiment.ts';
import { EXIT_FAILURE, EXIT_OK, oneLine } from './cli-error.ts';
import type { ExperimentPlan } from '../runtime/experiment-plan.ts';
import { labelSummary } from '../runtime/delayed-labels.ts';
import { formatMetrics, formatNumber, formatRate, formatSeconds, formatTopology, formatTrained } from './format.ts';
import type { ProgressReporter, RejectedSummary } from './progress.ts';
import { mqttSummary } from '../runtime/ingestion.ts';
import { countOf, type RecordNoun, recordNoun as nounOf, rejectedSummary } from '../runtime/rejections.ts';

/**
 * `streamgrad run`'s side of an experiment: the library's runtime (`runtime/run-experiment.ts`)
 * trains, checkpoints, serves and saves; this shows it: the start lines, the progress
 * (status lines or bars, `--quiet`, `--log-json`), one summary line per model, the
 * leader, and the models saved.
 */

/**
 * Runs a checked experiment, reporting through `progress`; resolves with the exit status
 * (0 done or interrupted, 1 a model failed).
 */
export async function runExperiment(plan: ExperimentPlan, progress: ProgressReporter): Promise<number> {
  const { say, notice, summary } = progress;
  say(`experiment ${plan.file?.shown ?? '(config)'}${plan.description === undefined ? '' : `: ${plan.description}`}`);
  let models: readonly ExperimentModel[] = [];
  const following: (() => void)[] = [];
  const result = await runPlan(plan, {
    handleSignals: true,
    hooks: {
      say,
      notice,
      models(built) {
        models = built;
        for (const m of built) say(startLine(m));
      },
      started({ models: running, source }) {
        say(`streaming ${source.name}${limitText(plan.limit)}; Ctrl-C stops`);
        progress.start({
          models: running.map((m) => ({ name: m.name, trainer: m.trainer, label: label(m), units: m.units, ...(typeof m.plan.batch === 'number' && { batch: m.plan.batch }) })),
          source: {
            name: source.name,
            ...(source.meter !== undefined && { meter: source.meter }),
            ...(source.samples !== undefined && { samples: source.samples }),
            ...(source.steps !== undefined && { steps: source.steps }),
          },
        });
        for (const m of running) following.push(progress.follow(m.run));
      },
      failed: (error, model) => progress.fail(error, model),
      ended(r) {
        summarize(r, models, plan, summary);
        for (const p of r.problems) notice(p);
        if (r.predictions !== undefined) summary(`predictions of ${r.predictions.lines} samples in ${r.predictions.shown}`);
        for (const m of r.models) if (m.checkpoints !== undefined) summary(`${m.name}: ${m.checkpoints}`);
        for (const unfollow of following) unfollow();
        const saved = r.models.flatMap((m) => (m.saved === undefined ? [] : [m.saved.shown]));
        const labels = plan.labels === undefined ? undefined : Object.fromEntries(r.models.map((m) => [m.name, m.labels?.stats]));
        progress.finish({
          outcome: r.outcome,
          ...(r.ingest !== null && { rejected: rejectedEvent(r.ingest) }),
          ...((saved.length > 0 || labels !== undefined) && { extra: { saved, ...(labels !== undefined && { labels }) } }),
        });
      },
    },
  });
  return result.failed ? EXIT_FAILURE : EXIT_OK;
}

/** The `rejected` event's fields (read and imputed besides the totals). */
function rejectedEvent(i: NonNullable<ExperimentResult['ingest']>): RejectedSummary {
  const summary = { read: i.read, total: i.rejected, byCode: i.byCode, imputed: i.imputed, ...(i.deadLetters !== undefined && { deadLetters: i.deadLetters }) };
  return summary;
}

function label(m: { readonly name: string; readonly trainer: ExperimentModel['trainer'] }): string {
  const { model } = m.trainer;
  return `${m.name} ${formatTopology(model.inputSize, model.layers)}`;
}

/** `deep 3→16 relu→16 relu→1 linear: 353 parameters, mse loss, adam lr 0.003, batch 4, seed 2`. */
function startLine(r: ExperimentModel): string {
  const m = r.plan;
  const batch = typeof m.batch === 'number' ? String(m.batch) : [m.batch.count === undefined ? '' : `${m.batch.count}`, m.batch.timeMs === undefined ? '' : `${m.batch.timeMs} ms`].filter(Boolean).join(' or ');
  const start = m.start !== undefined ? `from ${m.start.file.shown}` : `seed ${m.seed}, init ${m.init}`;
  return `${label(r)}: ${parameterCount(r.trainer.model)} parameters, ${m.loss} loss, ${m.optimizer.type} lr ${formatNumber(m.optimizer.learningRate)}, batch ${batch}, ${start}${m.clipNorm === undefined ? '' : `, clip ${m.clipNorm}`}, ${r.trainer.kernels.name} kernels`;
}

/** The summary: how it ended, a line per model (with its whole-stream metrics), the records, MQTT, the leader, the saved models. */
function summarize(r: ExperimentResult, models: readonly ExperimentModel[], plan: ExperimentPlan, summary: (line: string) => void): void {
  const elapsed = r.elapsedMs;
  summary(`${r.outcome} after ${formatSeconds(elapsed)}`);
  const width = Math.max(...r.models.map((o) => label(o).length));
  const lossOf = (m: ModelOutcome) => models.find((o) => o.name === m.name)!.plan.loss;
  for (const m of r.models) {
    const average = elapsed > 0 ? (m.trainer.counters.samples * 1000) / elapsed : NaN;
    const c = m.trainer.counters;
    const extra = [c.skipped > 0 ? formatTrained(c) : '', m.failure === undefined ? '' : `stopped: ${oneLine(m.failure)}`].filter(Boolean);
    summary(`${label(m).padEnd(width)}  step ${c.steps}  samples ${c.samples}  ${formatMetrics(m.metrics, lossOf(m), m.units)}  ${formatRate(average)}${extra.length > 0 ? ` (${extra.join('; ')})` : ''}`);
    summary(`${m.name}: whole stream, ${formatMetrics(m.cumulative, lossOf(m), m.units)} over ${m.cumulative.count} samples`);
    if (m.labels !== undefined) summary(`${m.name}: ${labelSummary(m.labels.stats, m.labels.expired)}`);
  }
  const i = r.ingest;
  if (i !== null) {
    const noun = recordNoun(plan);
    const rejected = rejectedSummary(i.rejected, i.byCode.SG_ERR_BAD_JSON ?? 0, noun);
    const unused = i.unusedFields;
    summary(`read ${countOf(i.read, noun)}; rejected ${rejected}${i.imputed > 0 ? `; imputed ${i.imputed} missing value${i.imputed === 1 ? '' : 's'}` : ''}${unused.length > 0 ? `; unused field${unused.length === 1 ? '' : 's'} ${unused.join(', ')}` : ''}${i.dropped > 0 ? `; queue dropped ${i.dropped}` : ''}${i.deadLetters === undefined ? '' : `; dead letters in ${i.deadLetters}`}`);
  }
  if (r.mqtt !== undefined) summary(mqttSummary(r.mqtt));
  const leader = leaderLine(r.models, lossOf);
  if (leader !== null) summary(leader);
  for (const m of r.models) if (m.saved !== undefined) summary(`${m.name}: ${m.savedNote}`);
}

/** What a record of the source is called: a line of NDJSON, a row of CSV, an MQTT message. */
function recordNoun(plan: ExperimentPlan): RecordNoun {
  const s = plan.source;
  return nounOf(s.kind === 'mqtt' ? { mqtt: true } : { format: s.kind === 'csv' || (s.kind === 'stdin' && s.format === 'csv') ? 'csv' : 'ndjson' });
}

/**
 * The leader: by rolling accuracy when every model has one, else by rolling loss when
 * they share a loss function, else by mean absolute error (comparable across losses).
 */
function leaderLine(models: readonly ModelOutcome[], lossOf: (m: ModelOutcome) => string): string | null {
  const scored = models.filter((r) => r.metrics.count > 0 && Number.isFinite(r.metrics.loss));
  if (scored.length < 2) return null;
  const m = (r: ModelOutcome): RollingMetrics => r.metrics;
  let by: string;
  let score: (r: ModelOutcome) => number;
  let shown: (r: ModelOutcome) => string;
  if (scored.every((r) => m(r).accuracy !== undefined)) {
    by = 'rolling accuracy';
    score = (r) => -m(r).accuracy!;
    shown = (r) => `${(m(r).accuracy! * 100).toFixed(1)}%`;
  } else if (scored.every((r) => lossOf(r) === lossOf(scored[0]))) {
    by = `rolling ${lossOf(scored[0])}`;
    score = (r) => m(r).loss;
    shown = (r) => formatNumber(m(r).loss);
  } else {
    by = 'rolling mae';
    score = (r) => m(r).mae;
    shown = (r) => formatNumber(m(r).mae);
  }
  const sorted = [...scored].sort((a, b) => score(a) - score(b));
  return `leader: ${sorted[0].name} (${by} ${sorted.map((r) => `${r.name} ${shown(r)}`).join(' vs ')})`;
}

function limitText(limit: ExperimentPlan['limit']): string {
  const parts = [limit.samples === undefined ? '' : `${limit.samples} samples`, limit.steps === undefined ? '' : `${limit.steps} steps`, limit.trainedSamples === undefined ? '' : `${limit.trainedSamples} trained samples`].filter(Boolean);
  return parts.length === 0 ? '' : `, stopping after ${parts.join(' or ')}`;
}
