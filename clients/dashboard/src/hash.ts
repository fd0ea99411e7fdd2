/**
 * View settings kept in the URL's hash (`#run=deep&log=1&x=step&metric=mae`) so a view can
 * be bookmarked or shared. Only these keys are read, each checked against its type (numbers
 * for NaN, strings against a whitelist or a length); anything else is dropped. Never secrets:
 * the control token stays in session storage.
 */
export const METRICS = ['mae', 'accuracy', 'batchLoss', 'gradNorm', 'learningRate', 'samplesPerSecond'] as const;
export type MetricChoice = (typeof METRICS)[number];

export interface ViewConfig {
  /** The run the detail views show ('' = the first). */
  run: string;
  /** Log scale for the loss chart. */
  log: boolean;
  /** The x axis of the curves. */
  x: 'step' | 'time';
  /** The second chart's metric. */
  metric: MetricChoice;
  /** Layer whose weight heatmap is shown large (−1 = none). */
  layer: number;
}

export const DEFAULT_CONFIG: ViewConfig = { run: '', log: true, x: 'step', metric: 'mae', layer: -1 };

/** Reads a hash; every key falls back to its default when missing or invalid. */
export function parseHash(hash: string): ViewConfig {
  const params = new URLSearchParams(hash.startsWith('#') ? hash.slice(1) : hash);
  const config: ViewConfig = { ...DEFAULT_CONFIG };
  const run = params.get('run');
  if (run !== null && run.length <= 256) config.run = run;
  const log = params.get('log');
  if (log === '0' || log === '1') config.log = log === '1';
  const x = params.get('x');
  if (x === 'step' || x === 'time') config.x = x;
  const metric = params.get('metric');
  if (metric !== null && (METRICS as readonly string[]).includes(metric)) config.metric = metric as MetricChoice;
  const layer = Number(params.get('layer') ?? Number.NaN);
  if (Number.isSafeInteger(layer) && layer >= -1 && layer < 64) config.layer = layer;
  return config;
}

/** The hash for a config (defaults left out). */
export function formatHash(config: ViewConfig): string {
  const params = new URLSearchParams();
  if (config.run !== DEFAULT_CONFIG.run) params.set('run', config.run);
  if (config.log !== DEFAULT_CONFIG.log) params.set('log', config.log ? '1' : '0');
  if (config.x !== DEFAULT_CONFIG.x) params.set('x', config.x);
  if (config.metric !== DEFAULT_CONFIG.metric) params.set('metric', config.metric);
  if (config.layer !== DEFAULT_CONFIG.layer) params.set('layer', String(config.layer));
  const text = params.toString();
  return text === '' ? '' : `#${text}`;
}
