import { StreamgradError } from '../core/errors.ts';
import { unwatchFile, watchFile } from 'node:fs';
import { access, constants, stat } from 'node:fs/promises';
import { basename, join } from 'node:path';
import { topologyOf } from '../core/model.ts';
import { makeFolder } from '../pipeline/make-folder.ts';
import { LabelsFileWriter, labelsFileOf, readLabelsFile } from '../server/labels-file.ts';
import { type NumberReservation, numbersFileBeside, numbersFileOf, reserveVersionNumbers } from '../server/version-numbers.ts';
import { serveInThread, type ThreadedServer } from '../server/threaded-server.ts';
import { MAX_PREDICT_BODY_BYTES } from '../server/options.ts';
import { CliError, EXIT_FAILURE, EXIT_OK, EXIT_USAGE, oneLine, usage } from './cli-error.ts';
import { loadArtifact, loadModelOrCheckpoint } from '../runtime/model-io.ts';
import { atMost, flag, integer, type OptionSpec, parseOptions, text } from './options.ts';
import { untilSignal } from '../runtime/serving.ts';
import { parseServeOptions } from './serve-options.ts';

export const SERVE_COMMAND_HELP = `Usage: streamgrad serve --model FILE [--model NAME=FILE ...] [--port P] [options]

Answers predictions from saved models over HTTP and the live protocol's WebSocket
(server/PROTOCOL.md, "Predictions"), until Ctrl-C:

  curl -s -H 'Content-Type: application/json' -d '{"temp": 14, "wind": 2.5}' \\
       'http://127.0.0.1:8080/predict?model=weather'

Each model is applied as streamgrad predict applies it: the preprocessing it was trained
with (named features, imputation, the normaliser's final statistics), outputs in the
target's own units, class names and probabilities for a classifier. Every answer names
the model and its version (a saved model is version 1; a checkpoint's step and samples
are reported, a model file's are 0).

Options:
  --model FILE         a streamgrad/model@1 file or a streamgrad/checkpoint@1 file, served
                       under the file's name without its extension; NAME=FILE names it
                       (letters, digits, . _ -); repeat for more models
  --port PORT          port to listen on (0: any free port; default $PORT, else 8080, else
                       any free port)
  --host ADDR          interface to listen on (default 127.0.0.1, this machine only)
  --token T            clients presenting it may promote a version to "stable" and roll
                       back (default $STREAMGRAD_TOKEN); predictions need no token
  --max-body-bytes N   largest JSON body of POST /predict (default 1 MiB, at most
                       268435456 = 256 MiB: a body is held and parsed whole; bulk goes
                       as NDJSON, streamed)
  --rate N             prediction requests per second per client (default 5000)
  --watch              serve a new version of a model whenever its file is written again
                       (checked every second; a checkpoint's step and samples say which);
                       a file that cannot be read, or has another shape, is reported and
                       the versions already served stay
  --state DIR          keep the models' labels and version numbers in DIR, as
                       NAME.labels.json and NAME.versions.json, instead of beside the
                       model files (for a read-only model folder); made if missing
  -h, --help           show this help

Labels (promote, rollback) are kept beside each model file, in FILE.labels.json (or in
--state DIR), and read back at start: after a restart, "stable" answers as before (same
version, weights and meta). With --state, a model with no labels in DIR yet starts from
FILE.labels.json when there is one. A damaged labels file is refused; delete it to start
without labels. Version numbers are reserved ahead in FILE.versions.json (or --state DIR),
so that a restart never gives a number to other weights (it may skip some).

Also served: GET /models (the models, their versions and labels), /healthz, /metrics
(requests, errors and latency by model and version).
Exit status: 0 stopped with Ctrl-C, 1 the server failed, 2 bad option, model or labels file.
`;

const SPEC: OptionSpec = {
  serve: { type: 'string' },
  port: { type: 'string' },
  host: { type: 'string' },
  token: { type: 'string' },
  'max-body-bytes': { type: 'string' },
  rate: { type: 'string' },
  watch: { type: 'boolean' },
  state: { type: 'string' },
  help: { type: 'boolean', short: 'h' },
};

/** A name a model may be served under. */
const NAME = /^[A-Za-z0-9][A-Za-z0-9._-]{0,63}$/;

/** One `--model`: the name it is served under and its file. */
export interface ServedFile {
  readonly name: string;
  readonly file: string;
}

export interface ServeCommandSettings {
  readonly models: readonly ServedFile[];
  readonly port: number;
  readonly orFreePort: boolean;
  readonly host?: string;
  readonly token?: string;
  readonly maxPredictBodyBytes?: number;
  readonly predictRequestsPerSecond?: number;
  /** Serve a new version when a model file changes. */
  readonly watch: boolean;
  /** `--state DIR`: where the labels files go (default: beside each model file). */
  readonly state?: string;
}

/** `--model` may be repeated (the other options may not): it is taken out before the rest is parsed. */
function takeModels(args: readonly string[]): { models: string[]; rest: string[] } {
  const models: string[] = [];
  const rest: string[] = [];
  for (let i = 0; i < args.length; i++) {
    const arg = args[i];
    if (arg === '--model') {
      if (i + 1 >= args.length || args[i + 1].startsWith('--')) usage('--model', 'needs a value: FILE or NAME=FILE');
      models.push(args[++i]);
    } else if (arg.startsWith('--model=')) {
      models.push(arg.slice('--model='.length));
    } else {
      rest.push(arg);
    }
  }
  return { models, rest };
}

export function parseServeArgs(args: readonly string[], envPort = process.env.PORT): ServeCommandSettings | 'help' {
  const { models: raw, rest } = takeModels(args);
  const options = parseOptions(rest, SPEC, 'streamgrad serve');
  if (flag(options, 'help')) return 'help';
  if (options.has('serve')) usage('--serve', 'is for train and start; serve takes --port');
  if (raw.length === 0) usage('--model', 'required: a streamgrad/model@1 or checkpoint file (repeat --model NAME=FILE for more)');
  const models: ServedFile[] = raw.map((value) => {
    const named = /^([^=/\\]+)=(.+)$/.exec(value);
    const file = named?.[2] ?? value;
    const name = named?.[1] ?? basename(file).replace(/\.[^.]*$/, '');
    if (file === '') usage('--model', 'must name a file');
    if (!NAME.test(name)) usage('--model', `${JSON.stringify(name)} is not a model name (letters, digits, . _ -, up to 64 characters, starting with a letter or digit); name it with --model NAME=FILE`);
    return { name, file };
  });
  const names = models.map((m) => m.name);
  const twice = names.find((n, i) => names.indexOf(n) !== i);
  if (twice !== undefined) usage('--model', `two models are named ${JSON.stringify(twice)}; name them apart with --model NAME=FILE`);
  const served = parseServeOptions(options, envPort);
  const maxBody = atMost(integer(options, 'max-body-bytes', 1), 'max-body-bytes', MAX_PREDICT_BODY_BYTES);
  const rate = integer(options, 'rate', 1);
  const state = text(options, 'state');
  if (state === '') usage('--state', 'must name a folder');
  return {
    models,
    port: served?.port ?? 8080,
    orFreePort: served === undefined || served.orFreePort === true,
    ...(served?.host !== undefined && { host: served.host }),
    ...(served?.token !== undefined && { token: served.token }),
    ...(maxBody !== undefined && { maxPredictBodyBytes: maxBody }),
    ...(rate !== undefined && { predictRequestsPerSecond: rate }),
    watch: flag(options, 'watch'),
    ...(state !== undefined && { state }),
  };
}

/** A model file read whole: the artifact, and its step, samples and time. */
async function readServed(name: string, file: string) {
  const option = `--model ${name === basename(file).replace(/\.[^.]*$/, '') ? '' : `${name}=`}`.trimEnd();
  const { artifact } = await loadArtifact(file, option);
  const { checkpoint } = await loadModelOrCheckpoint(file, option);
  const { mtimeMs } = await stat(file);
  const counters = checkpoint?.header.counters;
  return { name, file, artifact, at: { time: Math.round(mtimeMs), step: counters?.steps ?? 0, samples: counters?.samples ?? 0 } };
}

/**
 * `--state DIR`, made if missing and checked writable before serving: labels promoted into
 * a folder that cannot take them would last only until the process ends, which is what
 * --state is for avoiding.
 */
async function stateFolder(dir: string): Promise<void> {
  try {
    await makeFolder(dir);
    if (!(await stat(dir)).isDirectory()) throw new Error('not a folder');
    await access(dir, constants.W_OK);
  } catch (error) {
    const code = (error as { code?: string }).code;
    const why = code === 'EEXIST' || code === 'ENOTDIR' ? 'not a folder' : code === 'EACCES' || code === 'EROFS' || code === 'EPERM' ? 'cannot write there' : oneLine(error);
    throw new CliError(`--state ${dir}: ${why}`, EXIT_USAGE, { cause: error });
  }
}

/**
 * A saved model's reservation of version numbers (beside its file, or in `--state DIR`), so
 * that a restart never gives a number to other weights than it had (a file rewritten under
 * `--watch`, then a restart, numbered the new weights 1 again). A reservation that cannot
 * be written (a read-only folder without `--state`) is said, and numbering goes without one,
 * as the labels do; a damaged one is exit 2 naming `option`.
 */
async function reserveNumbers(path: string, name: string, option: string, say: (line: string) => void): Promise<NumberReservation | undefined> {
  try {
    return await reserveVersionNumbers(path);
  } catch (error) {
    if (error instanceof StreamgradError) throw new CliError(`${option}: ${error.message}`, EXIT_USAGE, { cause: error });
    say(`model ${name}: cannot reserve version numbers in ${path} (${oneLine(error)}); its numbers may repeat after a restart (--state DIR keeps them elsewhere)`);
    return undefined;
  }
}

/** `streamgrad serve`: serves predictions of saved models until Ctrl-C. */
export async function serveCommand(args: readonly string[]): Promise<number> {
  const settings = parseServeArgs(args);
  if (settings === 'help') {
    process.stdout.write(SERVE_COMMAND_HELP);
    return EXIT_OK;
  }
  const say = (line: string) => process.stderr.write(`${line}\n`);
  if (settings.state !== undefined) await stateFolder(settings.state);
  const loaded = await Promise.all(settings.models.map(async ({ name, file }) => {
    const served = await readServed(name, file);
    const labelsFile = settings.state === undefined ? labelsFileOf(file) : join(settings.state, `${name}.labels.json`);
    const read = (path: string) => readLabelsFile(path, topologyOf(served.artifact.model)).catch((error: unknown) => {
      throw new CliError(`${path === labelsFile && settings.state !== undefined ? '--state' : `--model ${file}`}: ${oneLine(error)}`, EXIT_USAGE, { cause: error });
    });
    // a first start with --state takes the labels the model folder came with, if any
    const labels = (await read(labelsFile)) ?? (settings.state === undefined ? undefined : await read(labelsFileOf(file)));
    const numbers = await reserveNumbers(settings.state === undefined ? numbersFileBeside(file) : numbersFileOf(settings.state, name), name, settings.state !== undefined ? '--state' : `--model ${file}`, say);
    return { ...served, labels, numbers, writer: new LabelsFileWriter(labelsFile, (error) => say(`model ${name}: cannot save its labels to ${labelsFile} (${oneLine(error)}); they hold until the process ends`)) };
  }));
  const writers = new Map(loaded.map((m) => [m.name, m.writer]));
  // on a thread of its own, as train --serve: answers never wait for this thread's file watching and writes
  const listen = (port: number) => serveInThread({
    port,
    ...(settings.host !== undefined && { host: settings.host }),
    ...(settings.token !== undefined && { token: settings.token }),
    ...(settings.maxPredictBodyBytes !== undefined && { maxPredictBodyBytes: settings.maxPredictBodyBytes }),
    ...(settings.predictRequestsPerSecond !== undefined && { predictRequestsPerSecond: settings.predictRequestsPerSecond }),
    onLabels: (model, labels) => writers.get(model)?.write(labels),
  });
  let server: ThreadedServer;
  try {
    server = await listen(settings.port).catch((error: unknown) => {
      if (settings.orFreePort && (error as { code?: string }).code === 'EADDRINUSE') return listen(0);
      throw error;
    });
  } catch (error) {
    const code = (error as { code?: string }).code;
    const why = code === 'EADDRINUSE' ? 'the port is in use' : code === 'EACCES' ? 'permission denied' : error instanceof Error ? error.message : String(error);
    throw new CliError(`--port: cannot listen on ${settings.host ?? '127.0.0.1'}:${settings.port}: ${why}`);
  }
  try {
    for (const m of loaded) {
      const version = await server.addModel(m.name, m.artifact, m.at, m.labels, m.numbers);
      if (m.labels !== undefined) say(`model ${m.name}: labels from ${m.writer.path}: ${Object.entries(m.labels.labels).map(([l, h]) => `${l} version ${h[h.length - 1]}`).join(', ') || 'none'}; serving version ${version.version}`);
    }
  } catch (error) {
    await server.close();
    throw new CliError(`--model: ${oneLine(error)}`, EXIT_USAGE, { cause: error });
  }
  for (const m of loaded) {
    const p = m.artifact.preprocessing;
    const what = [`${m.artifact.model.inputSize} inputs`, p?.features != null ? `features ${p.features.join(', ')}` : 'positional inputs', ...(p?.classes != null ? [`classes ${p.classes.join(', ')}`] : [])];
    say(`model ${m.name} (${m.file}): ${what.join('; ')}`);
  }
  say(`predictions at ${server.url}/predict (POST JSON or NDJSON; ?model=NAME&version=latest|N|stable), models at ${server.url}/models`);
  say(`websocket at ${server.wsUrl} (predict messages; promote and rollback ${settings.token !== undefined || (process.env.STREAMGRAD_TOKEN ?? '') !== '' ? 'with the token' : 'disabled: no --token or STREAMGRAD_TOKEN'})`);
  if (settings.watch) {
    for (const m of loaded) {
      // one reload at a time per file; a write seen mid-way fails to parse and the next change retries
      let reloading = Promise.resolve();
      watchFile(m.file, { interval: 1000 }, (now, before) => {
        if (now.mtimeMs === before.mtimeMs && now.size === before.size) return;
        reloading = reloading.then(async () => {
          try {
            const next = await readServed(m.name, m.file);
            const version = await server.updateModel(m.name, next.artifact, next.at);
            if (version !== null) say(`model ${m.name}: version ${version.version} from ${m.file} (step ${version.step})`);
          } catch (error) {
            say(`model ${m.name}: ${m.file} changed but cannot be served (${oneLine(error)}); still serving the versions before`);
          }
        });
      });
    }
  }
  // Ctrl-C, or the server thread failing (then nothing answers any more: exit 1)
  const stopped = await Promise.race([untilSignal(), server.failed]);
  for (const m of loaded) unwatchFile(m.file);
  if (stopped instanceof Error) {
    say(`the server failed: ${stopped.message}; stopping`);
    await Promise.all(loaded.map((m) => m.writer.flush()));
    throw new CliError(`the server failed: ${stopped.message}`, EXIT_FAILURE, { cause: stopped });
  }
  say(`${stopped}: stopping`);
  await server.close();
  await Promise.all(loaded.map((m) => m.writer.flush()));
  return EXIT_OK;
}
