import { once } from 'node:events';
import { StreamgradError } from '../core/errors.ts';
import type { Sample } from '../core/sample.ts';
import { CliError, EXIT_OK, EXIT_USAGE, oneLine, usage } from './cli-error.ts';
import { generate, GENERATOR_NAMES, GENERATORS, type GeneratorName } from '../runtime/experiment-generators.ts';
import { flag, integer, type OptionSpec, parseOptions } from './options.ts';
import { nearest } from '../runtime/suggest.ts';

export const SAMPLE_HELP = `Usage: streamgrad sample GENERATOR [-n N] [--seed N] [--csv]

Writes samples of a simulated stream on stdout, one {"x": [...], "y": [...]} per line
(NDJSON), or with --csv a header row (x1, x2, ..., y; y1, y2, ... for several outputs)
and one row per sample: data to try train, predict and run on, e.g.

  streamgrad sample michaelis-menten -n 10000 > samples.ndjson
  streamgrad train --data samples.ndjson --layers 3,16:relu,1:linear --save model.json

Generators (the streams of config files' "simulated" sources, with their defaults):
${GENERATOR_NAMES.map((n) => `  ${n.padEnd(17)} ${GENERATORS[n].about}`).join('\n')}

Options:
  -n, --samples N  how many (default 1000)
  --seed N         the stream's seed (default 0): the same seed, the same samples
  --csv            CSV with a header row instead of NDJSON
  -h, --help       show this help
`;

const SPEC: OptionSpec = {
  samples: { type: 'string', short: 'n' },
  seed: { type: 'string' },
  csv: { type: 'boolean' },
  help: { type: 'boolean', short: 'h' },
};

/** `streamgrad sample GENERATOR`: seeded samples of a simulated stream on stdout. */
export async function sampleCommand(args: readonly string[]): Promise<number> {
  const positionals = args.filter((a, i) => !a.startsWith('-') && !(i > 0 && /^(-n|--samples|--seed)$/.test(args[i - 1])));
  const options = parseOptions(args.filter((a) => !positionals.includes(a)), SPEC, 'streamgrad sample');
  if (flag(options, 'help')) {
    process.stdout.write(SAMPLE_HELP);
    return EXIT_OK;
  }
  if (positionals.length !== 1) usage('sample', `takes one generator: ${GENERATOR_NAMES.join(', ')} (see streamgrad sample --help)`);
  const name = positionals[0];
  if (!(GENERATOR_NAMES as readonly string[]).includes(name)) {
    const near = nearest(name, GENERATOR_NAMES);
    throw new CliError(`unknown generator ${JSON.stringify(name)}; ${near !== undefined ? `did you mean ${near}? ` : ''}use ${GENERATOR_NAMES.join(', ')}`, EXIT_USAGE);
  }
  const n = integer(options, 'samples', 1, 1000);
  const seed = integer(options, 'seed', 0, 0);
  let samples: Iterable<Sample>;
  try {
    samples = generate(name as GeneratorName, {}, seed, n);
  } catch (error) {
    if (error instanceof StreamgradError) throw new CliError(`sample ${name}: ${oneLine(error)}`, EXIT_USAGE, { cause: error });
    throw error;
  }
  const csv = flag(options, 'csv');
  let chunk = '';
  let header = !csv;
  for (const s of samples) {
    const x = Array.from(s.x);
    const y = typeof s.y === 'number' ? [s.y] : Array.from(s.y);
    if (!header) {
      const ys = y.length === 1 ? ['y'] : y.map((_, i) => `y${i + 1}`);
      chunk += `${[...x.map((_, i) => `x${i + 1}`), ...ys].join(',')}\n`;
      header = true;
    }
    chunk += csv ? `${[...x, ...y].join(',')}\n` : `${JSON.stringify({ x, y })}\n`;
    // written in pieces, at the pace of the reader (a pipe into train, or head)
    if (chunk.length >= 64 * 1024) {
      if (!process.stdout.write(chunk)) await once(process.stdout, 'drain');
      chunk = '';
    }
  }
  if (chunk !== '' && !process.stdout.write(chunk)) await once(process.stdout, 'drain');
  return EXIT_OK;
}
