import type { Problem } from '../runtime/experiment-schema.ts';
import { StreamgradError } from '../core/errors.ts';
import { CliError, EXIT_USAGE, exitCodeOf } from './cli-error.ts';
import { ExperimentConfigError } from '../runtime/run-experiment.ts';

/**
 * `train` and `start` compile their options into an experiment config and run it with the
 * library's runtime (`runExperiment`). A problem the config's checks find is about an
 * option the person typed, so it is told as that option: `models[0].optimizer.lr: must be
 * …` becomes `--lr: must be …`. `options` maps config paths (patterns over the problem's
 * path, `[N]` for any index) to the options that set them; the first problem is the error.
 */
export function asOptionProblem(error: unknown, options: readonly (readonly [path: string, option: string])[]): unknown {
  if (error instanceof ExperimentConfigError) return new CliError(optionMessage(error.problems[0], options), EXIT_USAGE, { cause: error });
  // what the runtime finds once it runs (a file it cannot open, a resume on other data) names config paths too
  const exitCode = exitCodeOf(error);
  if (error instanceof StreamgradError && exitCode !== undefined) return new CliError(optionWords(error.message, options), exitCode, { cause: error });
  return error;
}

/**
 * A runtime message with the config paths it starts with (or names after a `: `, or in a
 * list after `; ` or ` and `) told as options: `--resume: source.csv d.csv is not the data …`
 * is `--resume: --data d.csv is not …`.
 */
export function optionWords(message: string, options: readonly (readonly [path: string, option: string])[]): string {
  return message.replace(/(^|: |; | and )([\w$]+(?:\[\d+\]|\.[\w$]+)+)(?=[ :])/g, (whole, before: string, path: string) => {
    const option = optionOf(path, options);
    return option === undefined ? whole : `${before}${option}`;
  });
}

/** The option that sets the config path `path` (`models[0].optimizer.lr` → `--lr`), if any. */
function optionOf(path: string, options: readonly (readonly [path: string, option: string])[]): string | undefined {
  const general = path.replace(/\[\d+\]/g, '[N]');
  return options.find(([p]) => general === p || general.startsWith(`${p}.`) || general.startsWith(`${p}[`))?.[1];
}

/**
 * `--lr: must be a finite number > 0, got -1` for the problem at `models[1].optimizer.lr`;
 * a problem about a file names it after its option, as typed: `--data d.csv: cannot read: …`.
 */
export function optionMessage(problem: Problem, options: readonly (readonly [path: string, option: string])[]): string {
  const option = optionOf(problem.path, options);
  if (option === undefined) return `${problem.path}: ${problem.message}`;
  return problem.file !== undefined && problem.message.startsWith(`${problem.file}: `) ? `${option} ${problem.message}` : `${option}: ${problem.message}`;
}
