#!/usr/bin/env node
// Only node:fs is imported statically: `--version` and `--help` are answered before any
// other module loads (issue #16's start-up budget: ≤ 150 ms and ≤ 300 ms, of which node
// itself takes about 115); everything else is imported once a command is asked for.
import { readFileSync } from 'node:fs';

// cli-error.ts's exit codes, not imported for the answers that need nothing else
const EXIT_OK = 0;
const EXIT_USAGE = 2;

const HELP = `Usage: streamgrad <command> [options]

Online training of multi-layer perceptrons as an RxJS pipeline.

Commands:
  train    train a model on NDJSON samples from a file or standard input
  start    race two networks live on a simulated Michaelis-Menten sensor stream
  run      run the experiment a config file describes (streamgrad run FILE.json)
  watch    watch the training runs of a streamgrad server live
  predict  run a saved model or checkpoint on NDJSON or CSV inputs, one NDJSON line each
  serve    answer predictions of saved models over HTTP and WebSocket (POST /predict)
  inspect  print the architecture of a model or checkpoint file (--json for JSON)
  export   write a model or checkpoint as ONNX or TensorFlow.js (with its preprocessing)
  cluster  train across processes and machines on NATS JetStream (worker, gateway, publish, status)
  sample   write samples of a simulated stream (NDJSON or CSV), data to try the others on

Options:
  -h, --help     show this help (streamgrad help <command> or streamgrad <command> --help
                 for a command's options)
  -v, --version  show the version
`;

type Command = (args: readonly string[]) => Promise<number>;

// Each command's module (and what it pulls in: RxJS, the kernels, the server, MQTT) loads
// only when that command runs, so `--version` and `--help` start in a few tens of ms.
const COMMANDS: Readonly<Record<string, () => Promise<Command>>> = {
  train: async () => (await import('./train-command.ts')).trainCommand,
  start: async () => (await import('./start-command.ts')).startCommand,
  run: async () => (await import('./run-command.ts')).runCommand,
  watch: async () => (await import('./watch-command.ts')).watchCommand,
  predict: async () => (await import('./predict-command.ts')).predictCommand,
  serve: async () => (await import('./serve-command.ts')).serveCommand,
  inspect: async () => (await import('./inspect-command.ts')).inspectCommand,
  export: async () => (await import('./export-command.ts')).exportCommand,
  cluster: async () => (await import('./cluster-command.ts')).clusterCommand,
  sample: async () => (await import('./sample-command.ts')).sampleCommand,
};

/**
 * The package's version: the compiled `dist/cli/` sits two folders below package.json (the
 * published command: one read), the sources' `cli/` one.
 */
function version(): string {
  for (const path of ['../../package.json', '../package.json']) {
    let text: string;
    try {
      text = readFileSync(new URL(path, import.meta.url), 'utf8');
    } catch {
      continue;
    }
    const pkg = JSON.parse(text) as { name?: string; version?: string };
    if (pkg.name === 'streamgrad' && typeof pkg.version === 'string') return pkg.version;
  }
  throw new Error('package.json of streamgrad not found');
}

/** Runs the command line `args` (without node and the script) and returns the exit status. */
export async function main(args: readonly string[]): Promise<number> {
  const [name, ...rest] = args;
  if (name === undefined) {
    // a usage error: the help goes to stderr, where errors go, and stdout stays empty
    process.stderr.write(HELP);
    return EXIT_USAGE;
  }
  if (name === '--help' || name === '-h' || (name === 'help' && rest.length === 0)) {
    process.stdout.write(HELP);
    return EXIT_OK;
  }
  try {
    if (name === '--version' || name === '-v') {
      process.stdout.write(`streamgrad ${version()}\n`);
      return EXIT_OK;
    }
    const { CliError } = await import('./cli-error.ts');
    // `streamgrad help train` is `streamgrad train --help`
    const [commandName, commandArgs] = name === 'help' ? [rest[0], ['--help']] : [name, rest];
    if (name === 'help' && rest.length > 1) throw new CliError(`help takes one command, got ${rest.length} arguments (see streamgrad --help)`);
    const command = await loadCommand(commandName);
    return await command(commandArgs);
  } catch (error) {
    return failed(error, rest);
  }
}

/** Reports a failure as one line on stderr (and an `error` event under --log-json); returns the exit status. */
async function failed(error: unknown, rest: readonly string[]): Promise<number> {
  if (brokenPipe(error)) return EXIT_OK;
  if (rest.includes('--log-json')) await writeErrorEvent(error);
  const { EXIT_FAILURE, exitCodeOf, oneLine } = await import('./cli-error.ts');
  // a CliError, or the runtime's ConfigError (exit 2) / OutputError (exit 1)
  const exitCode = exitCodeOf(error);
  if (exitCode !== undefined) {
    process.stderr.write(`streamgrad: ${oneLine(error)}\n`);
    return exitCode;
  }
  process.stderr.write(`streamgrad: internal error: ${oneLine(error)}\n`);
  if (process.env.STREAMGRAD_DEBUG) process.stderr.write(`${(error as Error)?.stack ?? ''}\n`);
  return EXIT_FAILURE;
}

async function loadCommand(name: string): Promise<Command> {
  const load = Object.hasOwn(COMMANDS, name) ? COMMANDS[name] : undefined;
  if (load !== undefined) return load();
  const [{ CliError }, { nearest }] = await Promise.all([import('./cli-error.ts'), import('../runtime/suggest.ts')]);
  const near = nearest(name, Object.keys(COMMANDS));
  throw new CliError(`unknown command ${JSON.stringify(name)}; ${near !== undefined ? `did you mean ${near}? ` : ''}use train, start, run, watch, predict, serve, inspect, export, cluster or sample (see streamgrad --help)`);
}

/**
 * Whether `error` (or one it wraps) is a write to a pipe whose reader has gone, as in
 * `streamgrad predict … | head`: the reader has what it wanted, so the command ends
 * quietly with exit 0, as if it had been stopped, rather than as an internal error.
 */
function brokenPipe(error: unknown): boolean {
  for (let e = error, depth = 0; typeof e === 'object' && e !== null && depth < 8; e = (e as { cause?: unknown }).cause, depth++) {
    if ((e as { code?: unknown }).code === 'EPIPE') return true;
  }
  return false;
}

/**
 * Under `--log-json`, the `error` event of an error no progress reporter wrote (a bad
 * option or file found before the job started), so a script reading stdout sees every
 * failure, not only the ones after the start.
 */
async function writeErrorEvent(error: unknown): Promise<void> {
  const { errorEventLine } = await import('./progress.ts');
  const line = errorEventLine(error);
  if (line !== null) process.stdout.write(line);
}

// `| head` closing stdout early: writes fail with EPIPE, which a command may not be listening
// for; without this listener that would be an uncaught exception.
process.stdout.on('error', (error: NodeJS.ErrnoException) => {
  if (error.code !== 'EPIPE') throw error;
});

process.exitCode = await main(process.argv.slice(2));
