import type { CheckpointSettings } from '../runtime/checkpointing.ts';
import { MAX_TIMER_SECONDS } from '../runtime/timer-limit.ts';
import { usage } from './cli-error.ts';
import { atMost, flag, integer, number, type Options, type OptionSpec, text } from './options.ts';

/** The checkpoint options of `streamgrad train` (and the `checkpoints` section of a config file). */
export const CHECKPOINT_SPEC: OptionSpec = {
  'checkpoint-dir': { type: 'string' },
  'checkpoint-every': { type: 'string' },
  'checkpoint-interval': { type: 'string' },
  'checkpoint-keep': { type: 'string' },
  'checkpoint-failures': { type: 'string' },
  resume: { type: 'boolean' },
};

export const CHECKPOINT_HELP = `Checkpoints and resume:
  --checkpoint-dir DIR       write checkpoints into DIR (streamgrad/checkpoint@1: weights,
                             optimizer state, normaliser and imputation statistics, rolling
                             metrics, counters, source offset; written in full to a temporary
                             file, fsynced, read back, renamed), periodically, on Ctrl-C/SIGTERM
                             and when the data ends; one trainer per DIR (DIR/train.lock)
  --checkpoint-every N       every N steps
  --checkpoint-interval S    every S seconds (default 60 unless --checkpoint-every is given)
  --checkpoint-keep K        keep the newest K checkpoints (default 3)
  --checkpoint-failures N    a failed write (a full disk) is reported and training goes on;
                             N failed writes in a row stop it with an error (default 3)
  --resume                   continue exactly where the newest intact checkpoint in DIR left
                             off: the same command line with --resume reads the data from the
                             first record the checkpoint did not account for (no checkpoint yet:
                             start from the beginning); a truncated or corrupt newest
                             checkpoint is reported and the one before it is used; data other
                             than the checkpoint read (a replaced or edited file) is refused
`;

/** Reads the checkpoint options; undefined without `--checkpoint-dir`. */
export function parseCheckpointOptions(options: Options): CheckpointSettings | undefined {
  const dir = text(options, 'checkpoint-dir');
  if (dir === undefined) {
    for (const name of ['checkpoint-every', 'checkpoint-interval', 'checkpoint-keep', 'checkpoint-failures', 'resume']) {
      if (options.has(name)) usage(`--${name}`, 'needs --checkpoint-dir DIR (where the checkpoints are)');
    }
    return undefined;
  }
  if (dir === '') usage('--checkpoint-dir', 'must be a folder path');
  const everySteps = integer(options, 'checkpoint-every', 1);
  const everySeconds = atMost(number(options, 'checkpoint-interval'), 'checkpoint-interval', MAX_TIMER_SECONDS);
  if (everySeconds !== undefined && everySeconds <= 0) usage('--checkpoint-interval', `must be a number of seconds > 0, got ${everySeconds}`);
  return {
    dir,
    ...(everySteps !== undefined && { everySteps }),
    ...(everySeconds !== undefined || everySteps === undefined ? { everySeconds: everySeconds ?? 60 } : {}),
    keep: integer(options, 'checkpoint-keep', 1, 3),
    maxFailures: integer(options, 'checkpoint-failures', 1, 3),
    resume: flag(options, 'resume'),
  };
}

