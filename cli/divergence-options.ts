import { DIVERGENCE_DEFAULTS, type DivergenceConfig } from '../core/divergence.ts';
import { integer, number, type OptionSpec, type Options } from './options.ts';

/** The divergence options of `streamgrad train` (a config file's `models[i].divergence`). */
export const DIVERGENCE_SPEC: OptionSpec = {
  'max-consecutive-skips': { type: 'string' },
  'max-skip-rate': { type: 'string' },
  'skip-window': { type: 'string' },
};

export const DIVERGENCE_HELP = `Divergence (a step whose loss or gradient is NaN or Infinity is skipped, the
weights untouched; the first one is reported at once):
  --max-consecutive-skips K  stop with SG_ERR_DIVERGED after K skipped steps in a row
                       (default ${DIVERGENCE_DEFAULTS.maxConsecutiveSkips})
  --max-skip-rate X    ... or when more than X of the last --skip-window steps were
                       skipped (default ${DIVERGENCE_DEFAULTS.maxSkipRate}: more than 1%; 0: the first skip stops)
  --skip-window N      steps the rate is measured over (default ${DIVERGENCE_DEFAULTS.skipWindow})
  A diverged run exits 1 and does not write --save; its model goes to FILE.diverged.json.
`;

/** Reads the divergence options (their ranges are checked by the runtime's plan, told as these options by `TRAIN_OPTION_PATHS`). */
export function parseDivergenceOptions(options: Options): DivergenceConfig {
  const maxConsecutiveSkips = integer(options, 'max-consecutive-skips', 1);
  const maxSkipRate = number(options, 'max-skip-rate');
  const skipWindow = integer(options, 'skip-window', 1);
  return {
    ...(maxConsecutiveSkips !== undefined && { maxConsecutiveSkips }),
    ...(maxSkipRate !== undefined && { maxSkipRate }),
    ...(skipWindow !== undefined && { skipWindow }),
  };
}

