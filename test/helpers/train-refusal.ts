import { asOptionProblem } from '../../cli/config-flags.ts';
import { CliError, cliErrorOf } from '../../cli/cli-error.ts';
import { parseTrainArgs } from '../../cli/train-command.ts';
import { TRAIN_OPTION_PATHS, trainExperiment } from '../../cli/train-config.ts';
import { checkExperiment, ExperimentConfigError } from '../../runtime/run-experiment.ts';

/** How `streamgrad train` refuses to start: its exit code, and its stderr. */
export interface TrainRefusal {
  readonly code: number;
  /** What the command line prints: `streamgrad: MESSAGE` (main.ts), the whole message, so a test can see it is one line. */
  readonly stderr: string;
}

/**
 * How `streamgrad train …args` (in the folder `cwd`) refuses to start, found in process, or
 * null when it would start training: an option it cannot read (`parseTrainArgs`), or a run
 * it cannot plan (a file it cannot open, a `--label-default` the targets cannot take, an id
 * that is a target), through the same steps as the command line (`trainExperiment`, the
 * runtime's `checkExperiment`, `asOptionProblem`). A command line costs seconds of start-up
 * (tens of seconds on a loaded 2-core machine): a test that checks ten refusals one process
 * after another passed its time-out, so it checks them here and keeps one command line to
 * hold this to the real one.
 *
 * @example
 * const refused = await trainRefusal(work, ['--data', 'f.ndjson', '--layers', '2,1:linear', '--labels', 'l.ndjson', '--id-field', 'y', '--targets', 'y']);
 * expect(refused).toEqual({ code: 2, stderr: expect.stringMatching(/^streamgrad: --id-field: "y" is a target/) });
 */
export async function trainRefusal(cwd: string, args: readonly string[]): Promise<TrainRefusal | null> {
  let refused: unknown;
  try {
    const settings = parseTrainArgs(args);
    if (settings === 'help') return null;
    const { config, overrides } = trainExperiment(settings);
    const planned = await checkExperiment(config, { baseDir: cwd, ...overrides });
    if (planned.ok) return null;
    // what runExperiment throws, and train's catch turns into the option's words
    refused = cliErrorOf(asOptionProblem(new ExperimentConfigError(planned.problems), TRAIN_OPTION_PATHS));
  } catch (thrown) {
    refused = cliErrorOf(asOptionProblem(thrown, TRAIN_OPTION_PATHS));
  }
  if (!(refused instanceof CliError)) throw refused;
  return { code: refused.exitCode, stderr: `streamgrad: ${refused.message}\n` };
}
