import { StreamgradError } from '../core/errors.ts';
import type { Model } from '../core/model.ts';
import { oneLine } from './errors.ts';
import { saveModelFile } from './model-io.ts';

/** Whether a run failed by diverging. */
export function isDiverged(error: unknown): boolean {
  return error instanceof StreamgradError && error.code === 'SG_ERR_DIVERGED';
}

/** Where a diverged model goes instead of `save`: `FILE.diverged.json`, so that it is never mistaken for a trained one. */
export const divergedPath = (save: string): string => `${save}.diverged.json`;

/**
 * Keeps a diverged model for inspection, beside the `--save` file and named as such
 * (the good `--save` file, if one exists, is left alone). Returns the line to print, naming
 * the files as `shown` (e.g. relative to the working folder) names `save`.
 */
export async function saveDivergedModel(save: string, model: Model, option = '--save', shown = save): Promise<string> {
  const path = divergedPath(save);
  try {
    await saveModelFile(path, model, option);
    return `diverged: ${shown} not written; the diverged model is in ${divergedPath(shown)}`;
  } catch (error) {
    return `diverged: ${shown} not written; nor the diverged model (${oneLine(error)})`;
  }
}
