import { readFileSync } from 'node:fs';
import { CliError, EXIT_FAILURE, EXIT_OK, EXIT_USAGE, oneLine } from './cli-error.ts';
import { inspectCommand } from './inspect-command.ts';
import { predictCommand } from './predict-command.ts';
import { runCommand } from './run-command.ts';
import { startCommand } from './start-command.ts';
import { trainCommand } from './train-command.ts';
import { watchCommand } from './watch-command.ts';

const HELP = `Usage: streamgrad <command> [options]

Online training of multi-layer perceptrons as an RxJS pipeline.

Commands:
  train    train a model on NDJSON samples from a file or standard input
  start    race two networks live on a simulated Michaelis-Menten sensor stream
  run      run the experiment a config file describes (streamgrad run FILE.json)
  watch    watch the training runs of a streamgrad server live
  predict  run a saved model or checkpoint on NDJSON or CSV inputs, one NDJSON line each
  inspect  print the architecture of a model or checkpoint file (--json for JSON)

Options:
  -h, --help     show this help (streamgrad <command> --help for a command's options)
  -v, --version  show the version
`;

const COMMANDS: Readonly<Record<string, (args: readonly string[]) => Promise<number>>> = {
  train: trainCommand,
  start: startCommand,
  run: runCommand,
  watch: watchCommand,
  predict: predictCommand,
  inspect: inspectCommand,
};

function version(): string {
  const pkg = JSON.parse(readFileSync(new URL('../package.json', import.meta.url), 'utf8')) as { version: string };
  return pkg.version;
}

/** Runs the command line `args` (without node and the script) and returns the exit status. */
export async function main(args: readonly string[]): Promise<number> {
  const [name, ...rest] = args;
  try {
    if (name === undefined || name === '--help' || name === '-h' || name === 'help') {
      process.stdout.write(HELP);
      return name === undefined ? EXIT_USAGE : EXIT_OK;
    }
    if (name === '--version' || name === '-v') {
      process.stdout.write(`streamgrad ${version()}\n`);
      return EXIT_OK;
    }
    const command = Object.hasOwn(COMMANDS, name) ? COMMANDS[name] : undefined;
    if (command === undefined) throw new CliError(`unknown command ${JSON.stringify(name)}; use train, start, run, watch, predict or inspect (see streamgrad --help)`);
    return await command(rest);
  } catch (error) {
    if (error instanceof CliError) {
      process.stderr.write(`streamgrad: ${oneLine(error)}\n`);
      return error.exitCode;
    }
    process.stderr.write(`streamgrad: internal error: ${oneLine(error)}\n`);
    if (process.env.STREAMGRAD_DEBUG) process.stderr.write(`${(error as Error)?.stack ?? ''}\n`);
    return EXIT_FAILURE;
  }
}

process.exitCode = await main(process.argv.slice(2));
