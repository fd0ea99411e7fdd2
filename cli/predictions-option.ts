import { usage } from './cli-error.ts';
import { flag, type Options, text } from './options.ts';

export const PREDICTIONS_HELP = `  --predictions FILE|-  one NDJSON line per sample: model, sample, step, line (or
                       messageId), the prediction made before learning from it and the
                       target (in the target's units; class names for classifiers, with
                       probabilities), loss, learned; - is standard output (not with --log-json)`;

/** Reads `--predictions FILE|-` (refused on standard output beside --log-json's events). */
export function parsePredictionsOption(options: Options): string | undefined {
  const path = text(options, 'predictions');
  if (path === '') usage('--predictions', 'must be a file path, or - for standard output');
  if (path === '-' && flag(options, 'log-json')) usage('--predictions', '- (standard output) cannot share it with --log-json\'s events; give a file');
  return path;
}

