import { connect, type ConnectionState, type StreamgradClient } from '../clients/node/client.ts';
import { CommandError, ConnectionError } from '../clients/node/errors.ts';
import { printable } from '../runtime/errors.ts';
import type { EventMessage, MetricsMessage, RunInfo } from '../server/protocol.ts';
import { CliError, EXIT_FAILURE, EXIT_OK, EXIT_USAGE, oneLine, usage } from './cli-error.ts';
import { formatMetrics, formatNumber, formatRate } from './format.ts';
import { flag, number, type OptionSpec, parseOptions, text } from './options.ts';

export const WATCH_HELP = `Usage: streamgrad watch ws://HOST:PORT/ws|http://HOST:PORT/ [options]

Watches the training runs of a streamgrad server live: one line per run with its
state, step, rolling metrics, learning rate and speed, updated in place on a
terminal (one line per metrics message when stdout is not a terminal), the runs'
events (paused, learning-rate, diverged, ...) and the connection's state.
Reconnects by itself when the server goes away; Ctrl-C stops. The dashboard's address
(http://HOST:PORT/, as the server prints it) names the same server.

Options:
  --run ID      watch this run only (default: every run, present and future)
  --token T     the server's control token (default: $STREAMGRAD_TOKEN); needed
                when the server does not allow this URL's origin, e.g. from
                another host. Prefer the variable: options show up in ps.
  --rate HZ     metrics messages per second and run (default: the server's, 10)
  --json        print the metrics and event messages as NDJSON on stdout

Exit status: 0 stopped with Ctrl-C, 1 the connection failed for good,
2 bad option, URL or token, or no such run.
`;

const SPEC: OptionSpec = {
  run: { type: 'string' },
  token: { type: 'string' },
  rate: { type: 'string' },
  json: { type: 'boolean' },
  help: { type: 'boolean', short: 'h' },
};

export interface WatchArgs {
  readonly help: boolean;
  /** The server's WebSocket URL (absent only with --help). */
  readonly url: string;
  readonly run?: string;
  readonly token?: string;
  readonly rateHz?: number;
  readonly json: boolean;
}

/** Parses `streamgrad watch` arguments: one URL (anywhere among the options) and the options. */
export function parseWatchArgs(args: readonly string[], env: Readonly<Record<string, string | undefined>> = process.env): WatchArgs {
  const positionals: string[] = [];
  const rest: string[] = [];
  for (let i = 0; i < args.length; i++) {
    const arg = args[i];
    if (arg === '--') {
      positionals.push(...args.slice(i + 1));
      break;
    }
    if (!arg.startsWith('-') || arg === '-') {
      positionals.push(arg);
      continue;
    }
    rest.push(arg);
    // a valued option's value may look like anything (`--run x`, `--rate -1`): keep it with its option
    if (/^--[^=]+$/.test(arg) && SPEC[arg.slice(2)]?.type === 'string' && i + 1 < args.length) rest.push(args[++i]);
  }
  const options = parseOptions(rest, SPEC, 'streamgrad watch');
  const help = flag(options, 'help');
  if (positionals.length > 1) throw new CliError(`unexpected argument ${JSON.stringify(positionals[1])}: streamgrad watch takes one URL (see streamgrad watch --help)`);
  const url = positionals[0];
  if (url === undefined) {
    if (help) return { help, url: '', json: false };
    throw new CliError('streamgrad watch needs the server\'s URL, e.g. streamgrad watch ws://127.0.0.1:8080/ws');
  }
  const wsUrl = webSocketUrl(url);
  const run = text(options, 'run');
  if (run !== undefined && (run.length === 0 || run.length > 256)) usage('--run', `must be a run id of 1 to 256 characters, got ${JSON.stringify(run.slice(0, 40))}`);
  const rateHz = number(options, 'rate');
  if (rateHz !== undefined && !(rateHz > 0)) usage('--rate', `must be a number > 0, got ${text(options, 'rate')}`);
  const token = text(options, 'token') ?? (env.STREAMGRAD_TOKEN || undefined);
  if (token !== undefined && (token.length === 0 || /[\0-\x1f\x7f\s]/.test(token))) {
    usage(text(options, 'token') !== undefined ? '--token' : 'STREAMGRAD_TOKEN', 'must be non-empty, without spaces or control characters');
  }
  return { help, url: wsUrl, json: flag(options, 'json'), ...(run !== undefined && { run }), ...(token !== undefined && { token }), ...(rateHz !== undefined && { rateHz }) };
}

/**
 * The server's WebSocket URL from what was given: a ws:// or wss:// URL as it is, or the
 * dashboard's http(s):// address (as the server prints it, `http://127.0.0.1:8080/`),
 * whose socket is `/ws` below the page's path.
 */
export function webSocketUrl(url: string): string {
  let parsed: URL;
  try {
    parsed = new URL(url);
  } catch {
    throw new CliError(`URL ${JSON.stringify(printable(url).slice(0, 80))}: not a URL; expected ws://HOST:PORT/ws or the dashboard's http://HOST:PORT/`);
  }
  if (!['ws:', 'wss:', 'http:', 'https:'].includes(parsed.protocol)) {
    throw new CliError(`URL ${JSON.stringify(printable(url).slice(0, 80))}: must be ws://, wss:// or the dashboard's http(s):// address, e.g. ws://127.0.0.1:8080/ws`);
  }
  if (parsed.username !== '' || parsed.password !== '') throw new CliError('URL: must not hold credentials; use --token or STREAMGRAD_TOKEN');
  if (parsed.hash !== '') throw new CliError('URL: must not have a #fragment');
  if (parsed.protocol === 'ws:' || parsed.protocol === 'wss:') return url;
  const page = parsed.pathname.replace(/\/index\.html$/, '/');
  const path = page.endsWith('/ws') ? page : `${page.replace(/\/$/, '')}/ws`;
  return `${parsed.protocol === 'https:' ? 'wss:' : 'ws:'}//${parsed.host}${path}`;
}

/** `streamgrad watch`: resolves with the exit status when interrupted; rejects with a `CliError` when it cannot go on. */
export async function watchCommand(args: readonly string[]): Promise<number> {
  const options = parseWatchArgs(args);
  if (options.help) {
    process.stdout.write(WATCH_HELP);
    return EXIT_OK;
  }
  const out = process.stdout;
  const view: View = options.json ? new JsonView(out, options.url) : out.isTTY === true ? new LiveView(out, options.url) : new LineView(out, options.url);
  // A command-line tool is no browser: with a token it sends no Origin, so any server address works.
  const client = connect(options.url, options.token !== undefined ? { token: options.token, origin: null } : {});
  return watch(client, view, options);
}

function watch(client: StreamgradClient, view: View, options: WatchArgs): Promise<number> {
  return new Promise<number>((resolve, reject) => {
    const target = options.run ?? '*';
    const subscribeOptions = options.rateHz !== undefined ? { rateHz: options.rateHz } : {};
    let subscribed = false;
    let done = false;
    let knownRuns: readonly RunInfo[] = [];

    const subscribe = (first: boolean) => {
      subscribed = true;
      client.subscribe(target, ['metrics', 'events'], subscribeOptions).catch((error: unknown) => {
        if (done || !(error instanceof CommandError) || error.code === 'SG_ERR_CLOSED' || error.code === 'SG_ERR_TIMEOUT') return;
        subscribed = false;
        if (first && error.code === 'SG_ERR_UNKNOWN_RUN') {
          const runs = knownRuns.length === 0 ? 'none' : knownRuns.map((r) => printable(r.id)).join(', ');
          finish(new CliError(`--run: no run ${JSON.stringify(printable(target))} on ${options.url} (runs: ${runs})`, EXIT_USAGE));
        } else {
          view.notice(`subscription refused: ${oneLine(error)}`);
        }
      });
    };

    const subscriptions = [
      client.state$.subscribe({
        next: (state) => view.state(state),
        error: (error: unknown) => finish(asCliError(error, options)),
      }),
      client.hello$.subscribe({ next: (hello) => view.hello(hello.access), error: () => undefined }),
      client.runs$.subscribe({
        next: (runs) => {
          knownRuns = runs;
          view.runs(runs);
          // a watched run that left (its subscription with it) and came back, or reappeared after a restart
          if (!subscribed && options.run !== undefined && runs.some((r) => r.id === options.run)) subscribe(false);
        },
        error: () => undefined,
      }),
      client.metrics$(options.run).subscribe({ next: (m) => view.metrics(m), error: () => undefined }),
      client.events$(options.run).subscribe({ next: (e) => view.event(e), error: () => undefined }),
      client.errors$.subscribe({
        next: (e) => {
          if (e.code === 'SG_ERR_UNKNOWN_RUN' && options.run !== undefined) subscribed = false; // re-subscription after a restart: wait for the run
          view.notice(`server error ${e.code}: ${printable(e.message)}`);
        },
        error: () => undefined,
      }),
    ];
    subscribe(true);

    const onSignal = () => finish(EXIT_OK);
    const onOutputError = () => finish(EXIT_OK); // stdout closed (e.g. piped into head): nothing left to do
    process.once('SIGINT', onSignal);
    process.once('SIGTERM', onSignal);
    process.stdout.on('error', onOutputError);

    function finish(outcome: number | CliError): void {
      if (done) return;
      done = true;
      process.off('SIGINT', onSignal);
      process.off('SIGTERM', onSignal);
      process.stdout.off('error', onOutputError);
      for (const s of subscriptions) s.unsubscribe();
      view.close();
      void client.close().then(() => (typeof outcome === 'number' ? resolve(outcome) : reject(outcome)));
    }
  });
}

function asCliError(error: unknown, options: WatchArgs): CliError {
  if (error instanceof ConnectionError) {
    const hint =
      error.code === 'SG_ERR_UNAUTHORIZED' ? `; check ${options.token !== undefined && process.env.STREAMGRAD_TOKEN === options.token ? 'STREAMGRAD_TOKEN' : '--token'}`
      : error.code === 'SG_ERR_FORBIDDEN' ? '; give the server\'s token with --token or STREAMGRAD_TOKEN'
      : '';
    const bad = error.code === 'SG_ERR_UNAUTHORIZED' || error.code === 'SG_ERR_FORBIDDEN';
    return new CliError(`${oneLine(error)}${hint}`, bad ? EXIT_USAGE : EXIT_FAILURE, { cause: error });
  }
  return new CliError(oneLine(error), EXIT_FAILURE, { cause: error });
}

// ---------------------------------------------------------------------------------------
// views: what goes to the terminal, apart from the socket code

interface Output {
  write(text: string): unknown;
  readonly columns?: number;
}

interface View {
  state(state: ConnectionState): void;
  hello(access: 'control' | 'read-only'): void;
  runs(runs: readonly RunInfo[]): void;
  metrics(message: MetricsMessage): void;
  event(message: EventMessage): void;
  /** Something to tell the user once (a refused subscription, a server error). */
  notice(line: string): void;
  close(): void;
}

const say = (line: string) => process.stderr.write(`streamgrad: ${line}\n`);

function stateLine(state: ConnectionState, url: string, access: string | null): string {
  switch (state) {
    case 'open':
      return `connected to ${url}${access === null ? '' : ` (${access})`}`;
    case 'connecting':
      return `connecting to ${url}`;
    case 'reconnecting':
      return `connection to ${url} lost; reconnecting`;
    case 'closed':
      return `disconnected from ${url}`;
  }
}

/** `--json`: the server's metrics and event messages as they come, one JSON object a line; the rest on stderr. */
class JsonView implements View {
  constructor(private readonly out: Output, private readonly url: string) {}
  state(state: ConnectionState): void {
    if (state !== 'open' && state !== 'closed') say(stateLine(state, this.url, null));
  }
  hello(access: 'control' | 'read-only'): void {
    say(stateLine('open', this.url, access));
  }
  runs(): void {}
  metrics(message: MetricsMessage): void {
    this.out.write(`${JSON.stringify(message)}\n`);
  }
  event(message: EventMessage): void {
    this.out.write(`${JSON.stringify(message)}\n`);
  }
  notice(line: string): void {
    say(line);
  }
  close(): void {}
}

/** Not a terminal: one line per metrics message and per event on stdout, the connection on stderr. */
class LineView implements View {
  private readonly infos = new Map<string, RunInfo>();
  constructor(private readonly out: Output, private readonly url: string) {}
  state(state: ConnectionState): void {
    if (state !== 'open' && state !== 'closed') say(stateLine(state, this.url, null));
  }
  hello(access: 'control' | 'read-only'): void {
    say(stateLine('open', this.url, access));
  }
  runs(runs: readonly RunInfo[]): void {
    for (const r of runs) this.infos.set(r.id, r);
  }
  metrics(message: MetricsMessage): void {
    const info = this.infos.get(message.run);
    this.out.write(`${runLine(message.run, message, info === undefined ? {} : { info })}  batch loss ${formatNumber(message.loss ?? NaN)}\n`);
  }
  event(message: EventMessage): void {
    this.out.write(`${eventLine(message)}\n`);
  }
  notice(line: string): void {
    say(line);
  }
  close(): void {}
}

/**
 * A terminal: a block of lines redrawn in place (ANSI), at most 10 times a second: the
 * connection, then one line per run. Events and notices scroll above the block.
 */
export class LiveView implements View {
  private connection: string;
  private access: string | null = null;
  private readonly rows = new Map<string, { info?: RunInfo; metrics?: MetricsMessage; state?: string }>();
  private drawn = 0;
  private timer: ReturnType<typeof setTimeout> | null = null;
  private closed = false;

  constructor(private readonly out: Output, private readonly url: string, private readonly intervalMs = 100) {
    this.connection = stateLine('connecting', url, null);
    this.draw();
  }

  state(state: ConnectionState): void {
    this.connection = stateLine(state, this.url, this.access);
    this.schedule();
  }
  hello(access: 'control' | 'read-only'): void {
    this.access = access;
    this.connection = stateLine('open', this.url, access);
    this.schedule();
  }
  runs(runs: readonly RunInfo[]): void {
    const ids = new Set(runs.map((r) => r.id));
    for (const id of this.rows.keys()) if (!ids.has(id)) this.rows.delete(id);
    for (const info of runs) {
      const row = this.rows.get(info.id) ?? {};
      this.rows.set(info.id, { ...row, info });
    }
    this.schedule();
  }
  metrics(message: MetricsMessage): void {
    const row = this.rows.get(message.run) ?? {};
    this.rows.set(message.run, { ...row, metrics: message, state: message.state });
    this.schedule();
  }
  event(message: EventMessage): void {
    const row = this.rows.get(message.run);
    const state = Object.hasOwn(STATE_AFTER, message.event) ? STATE_AFTER[message.event] : null;
    if (row !== undefined && state !== null) row.state = state;
    this.above(eventLine(message));
  }
  notice(line: string): void {
    this.above(`streamgrad: ${line}`);
  }
  close(): void {
    if (this.closed) return;
    if (this.timer !== null) clearTimeout(this.timer);
    this.timer = null;
    this.draw();
    this.closed = true;
  }

  /** The block's lines, for tests. */
  lines(): string[] {
    const columns = this.out.columns;
    const width = columns !== undefined && columns > 0 ? Math.max(20, columns - 1) : 119; // one short: no wrap at the edge
    const runs = [...this.rows.entries()].map(([id, row]) => runLine(id, row.metrics, row));
    return [this.connection, ...(runs.length === 0 ? ['(no runs yet)'] : runs)].map((l) => (l.length > width ? `${l.slice(0, width - 1)}…` : l));
  }

  private above(line: string): void {
    if (this.closed) return;
    this.erase();
    this.out.write(`${line}\n`);
    this.draw();
  }

  private schedule(): void {
    if (this.closed || this.timer !== null) return;
    this.timer = setTimeout(() => {
      this.timer = null;
      this.draw();
    }, this.intervalMs);
  }

  private erase(): void {
    // to the start of the block, then clear to the end of the screen
    if (this.drawn > 0) this.out.write(`\x1b[${this.drawn}F\x1b[J`);
    this.drawn = 0;
  }

  private draw(): void {
    if (this.closed) return;
    const lines = this.lines();
    const up = this.drawn > 0 ? `\x1b[${this.drawn}F` : '';
    this.out.write(`${up}${lines.map((l) => `\x1b[2K${l}\n`).join('')}\x1b[J`);
    this.drawn = lines.length;
  }
}

/** A run's state after an event (null: unchanged), for lines between metrics (a paused run sends none). Exhaustive: a new event type must be placed here. */
const STATE_AFTER: Readonly<Record<EventMessage['event'], string | null>> = {
  started: 'running', paused: 'paused', resumed: 'running', stopped: 'stopped', completed: 'completed', failed: 'failed', diverged: 'diverged',
  'learning-rate': null, reset: null, checkpoint: null, 'checkpoint-failed': null, 'non-finite': null, source: null, 'drift-warning': null, drift: null, 'drift-reaction': null,
};

/**
 * `a  running  step 1234  mse 0.0123, mae 0.0456  lr 0.01  45000 samples/s`: the rolling
 * (prequential) metrics of the latest metrics message, or what the run list says before one.
 */
export function runLine(id: string, metrics: MetricsMessage | undefined, o: { readonly info?: RunInfo; readonly state?: string } = {}): string {
  const name = printable(id);
  if (metrics === undefined) return `${name}  ${o.state ?? o.info?.state ?? '?'}  step ${o.info?.step ?? 0}  (no metrics yet)`;
  const lossName = o.info?.loss ?? 'loss';
  return `${name}  ${o.state ?? metrics.state}  step ${metrics.step}  ${formatMetrics(rolling(metrics), lossName)}  lr ${formatNumber(metrics.learningRate)}  ${formatRate(metrics.samplesPerSecond ?? NaN)}`;
}

/** `12:00:01  a  paused at step 1234`, with what the event says (learning rate, checkpoint path, error). */
export function eventLine(message: EventMessage): string {
  const time = new Date(message.time).toTimeString().slice(0, 8);
  const d = message.detail ?? {};
  const extra =
    message.event === 'learning-rate' ? `: ${formatNumber(Number(d.from))} → ${formatNumber(Number(d.to))}`
    : message.event === 'checkpoint' && typeof d.path === 'string' ? `: ${d.path}`
    : typeof d.message === 'string' ? `: ${d.message}`
    : '';
  return printable(`${time}  ${message.run}  ${message.event} at step ${message.step}${extra}`);
}

/** The protocol's nullable metrics as the engine's (null → NaN, printed as `-`). */
function rolling(m: MetricsMessage) {
  const r = m.metrics;
  return { window: r.window, count: r.count, loss: r.loss ?? NaN, mae: r.mae ?? NaN, ...(r.accuracy != null && { accuracy: r.accuracy }) };
}

