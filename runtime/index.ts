/**
 * `streamgrad/runtime`: the experiment runtime. `runExperiment(config, { signal, hooks })`
 * runs what a config file says (`streamgrad run experiment.json`) from code: its source
 * (CSV, NDJSON, standard input, MQTT, a simulated stream, delayed labels), every model as a
 * `TrainingRun` on its feed, normalisation, checkpoints and exact resume, drift reactions,
 * the dashboard's server, the predictions file, dead letters and saved models. The CLI's
 * `run` and `start` are thin shells over it. Errors a config can cause are typed:
 * `ExperimentConfigError` (every problem with its path), `ConfigError` (`SG_ERR_CONFIG`,
 * naming the field or file) and `OutputError` (`SG_ERR_OUTPUT`).
 *
 * @example
 * import { runExperiment } from 'streamgrad/runtime';
 * const stop = new AbortController();
 * process.once('SIGINT', () => stop.abort());
 * const result = await runExperiment({
 *   source: { simulated: 'michaelis-menten', samples: 20000, normalize: true },
 *   models: [{ name: 'small', layers: '3,16:tanh,1:linear', optimizer: { type: 'adam', lr: 0.003 }, save: 'small.json' }],
 *   server: { port: 0 },
 * }, { signal: stop.signal, hooks: { notice: console.error } });
 * console.log(result.outcome, result.models[0].metrics.loss);
 *
 * @packageDocumentation
 */
export {
  checkExperiment, ExperimentConfigError, runExperiment,
  type ExperimentConfig, type ExperimentHooks, type ExperimentModel, type ExperimentResult, type ExperimentStarted,
  type IngestOutcome, type ModelOutcome, type RunExperimentOptions,
} from './run-experiment.ts';
export { EXPERIMENT_SCHEMA_ID, experimentJsonSchema, parseExperiment, type Experiment, type Parsed, type Problem } from './experiment-schema.ts';
export type { Planned } from './experiment-plan.ts';
export { ConfigError, OutputError } from './errors.ts';
