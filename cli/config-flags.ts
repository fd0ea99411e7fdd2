import type { Problem } from '../runtime/experiment-schema.ts';
import { CliError, EXIT_USAGE } from './cli-error.ts';
import { ExperimentConfigError } from '../runtime/run-experiment.ts';

/**
 * `train` and `start` compile their options into an experiment config and run it with the
 * library's runtime (`runExperiment`). A problem the config's checks find is about an
 * option the person typed, so it is told as that option: `models[0].optimizer.lr: must be
 * …` becomes `--lr: must be …`. `options` maps config paths (patterns over the problem's
 * path, `[N]` for any index) to the options that set them; the first problem is the error.
 */
export function asOptionProblem(error: unknown, options: readonly (readonly [path: string, option: string])[]): unknown {
  if (!(error instanceof ExperimentConfigError)) return error;
  const problem = error.problems[0];
  return new CliError(optionMessage(problem, options), EXIT_USAGE, { cause: error });
}

/** `--lr: must be a finite number > 0, got -1` for the problem at `models[1].optimizer.lr`. */
export function optionMessage(problem: Problem, options: readonly (readonly [path: string, option: string])[]): string {
  const general = problem.path.replace(/\[\d+\]/g, '[N]');
  for (const [path, option] of options) {
    if (general === path || general.startsWith(`${path}.`) || general.startsWith(`${path}[`)) return `${option}: ${problem.message}`;
  }
  return `${problem.path}: ${problem.message}`;
}
