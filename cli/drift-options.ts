import { type DriftConfig, driftSettings, type DriftSignal, REACTIONS, type ReactionConfig } from '../pipeline/drift-adaptation.ts';
import { DETECTOR_KINDS } from '../core/drift/detector.ts';
import type { DetectorConfig } from '../core/drift/detectors.ts';
import { StreamgradError } from '../core/errors.ts';
import type { Loss } from '../core/losses.ts';
import { usage } from './cli-error.ts';
import { type OptionSpec, type Options, text } from './options.ts';

/** The drift options of `streamgrad train` (and a model's `drift` section in a config file). */
export const DRIFT_SPEC: OptionSpec = {
  'drift-detector': { type: 'string' },
  'drift-reaction': { type: 'string' },
  'drift-signal': { type: 'string' },
};

export const DRIFT_HELP = `Drift (the stream changes: detect it, react to it):
  --drift-detector NAME[:k=v,...]  watch the model's prequential signal with a detector:
                             ${DETECTOR_KINDS.join(', ')}, with River's parameters and
                             defaults, e.g. adwin:delta=0.002,clock=32 or page-hinkley:threshold=20;
                             warnings, drifts and reactions are reported as they happen
  --drift-reaction NAME[:k=v,...]  what the model does at a drift (default: for a
                             classifier boost-lr:factor=4,samples=400,minRise=6 on
                             page-hinkley:threshold=100, for a regression refit-head on
                             page-hinkley:delta=0.01,threshold=0.5,alpha=1,minInstances=1000,
                             mode=up (none when its output layer is not linear);
                             npm run bench:drift): reset[:init=pytorch,seed=0],
                             reset-optimizer, boost-lr[:factor=3,samples=500,minRise=0],
                             background[:challenger=fresh|copy,horizon=500,factor=1,
                             recent=horizon,margin=0],
                             refit-head[:samples=1000,forgetting=0.998,prior=10]
                             (a linear output layer and mse only)
  --drift-signal loss|error|large-error  what the detector watches: the per-sample loss,
                             0/1 errors (classifiers; the default for ddm and hddm-a), or
                             0/1 large errors: the loss above the 0.9 quantile of a
                             reference window (any model; ddm and hddm-a on a regression)
`;

/**
 * `adwin:delta=0.01,clock=16` → `{kind: 'adwin', delta: 0.01, clock: 16}`: numbers are
 * numbers, true/false booleans, anything else a string (checked by the engine after).
 */
function parseNamed(option: string, spec: string, kinds: readonly string[]): { kind: string } & Record<string, unknown> {
  const [kind, params = ''] = spec.split(/:(.*)/s, 2);
  if (!kinds.includes(kind)) usage(option, `unknown ${JSON.stringify(kind)}; use ${kinds.join(', ')}`);
  const out: { kind: string } & Record<string, unknown> = { kind };
  for (const pair of params.split(',').filter((p) => p !== '')) {
    const eq = pair.indexOf('=');
    if (eq <= 0) usage(option, `expected key=value after ${kind}:, got ${JSON.stringify(pair)}`);
    const key = pair.slice(0, eq), raw = pair.slice(eq + 1);
    if (key === 'kind' || key === '__proto__' || key === 'constructor') usage(option, `${JSON.stringify(key)} is not a parameter`);
    out[key] = raw === 'true' ? true : raw === 'false' ? false : raw.trim() !== '' && Number.isFinite(Number(raw)) ? Number(raw) : raw;
  }
  return out;
}

/** Reads the drift options, checked against the model's loss; undefined when none is given. */
export function parseDriftOptions(options: Options, loss: Loss): DriftConfig | undefined {
  const detector = text(options, 'drift-detector');
  const reaction = text(options, 'drift-reaction');
  const signal = text(options, 'drift-signal');
  if (detector === undefined && reaction === undefined && signal === undefined) return undefined;
  const config: DriftConfig = {
    ...(detector !== undefined && { detector: parseNamed('--drift-detector', detector, DETECTOR_KINDS) as unknown as DetectorConfig }),
    ...(reaction !== undefined && { reaction: parseNamed('--drift-reaction', reaction, REACTIONS) as unknown as ReactionConfig }),
    ...(signal !== undefined && { signal: signal as DriftSignal }),
  };
  try {
    driftSettings(config, loss);
  } catch (error) {
    if (!(error instanceof StreamgradError)) throw error;
    const field = error.field ?? '';
    const option = field.startsWith('drift.reaction') ? '--drift-reaction' : field === 'drift.signal' ? '--drift-signal' : '--drift-detector';
    usage(option, error.message.replace(/^drift\.reaction\./, '').replace(/^drift\.\w+:? /, ''));
  }
  return config;
}
