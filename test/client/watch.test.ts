import { describe, expect, it } from 'vitest';
import { CliError } from '../../cli/cli-error.ts';
import { eventLine, LiveView, parseWatchArgs, runLine } from '../../cli/watch-command.ts';
import type { EventMessage, MetricsMessage, RunInfo } from '../../server/protocol.ts';
import { liveRun, liveServer, TOKEN, watchCli as watch } from './live.ts';

/** `streamgrad watch`: its arguments and views in-process, then the real command line against a live server. */


function cliError(f: () => unknown): CliError {
  try {
    f();
  } catch (error) {
    expect(error).toBeInstanceOf(CliError);
    return error as CliError;
  }
  throw new Error('expected a CliError');
}

describe('parseWatchArgs', () => {
  const URL = 'ws://127.0.0.1:8080/ws';

  it('takes one URL anywhere among the options', () => {
    expect(parseWatchArgs([URL], {})).toEqual({ help: false, url: URL, json: false });
    expect(parseWatchArgs(['--run', 'a', URL, '--rate', '2.5', '--json'], {})).toEqual({ help: false, url: URL, run: 'a', rateHz: 2.5, json: true });
    expect(parseWatchArgs(['--json', '--', URL], {})).toMatchObject({ url: URL, json: true });
    expect(parseWatchArgs(['--help'], {})).toMatchObject({ help: true });
  });

  it('takes the token from --token, else from STREAMGRAD_TOKEN', () => {
    expect(parseWatchArgs([URL, '--token', 't1'], { STREAMGRAD_TOKEN: 't2' }).token).toBe('t1');
    expect(parseWatchArgs([URL], { STREAMGRAD_TOKEN: 't2' }).token).toBe('t2');
    expect(parseWatchArgs([URL], { STREAMGRAD_TOKEN: '' }).token).toBeUndefined();
  });

  it.each([
    ['http://127.0.0.1:8080/', 'ws://127.0.0.1:8080/ws'],
    ['http://127.0.0.1:8080', 'ws://127.0.0.1:8080/ws'],
    ['http://127.0.0.1:8080/index.html', 'ws://127.0.0.1:8080/ws'],
    ['http://127.0.0.1:8080/ws', 'ws://127.0.0.1:8080/ws'],
    ['https://lab.example/streamgrad/', 'wss://lab.example/streamgrad/ws'],
    ['wss://lab.example/ws', 'wss://lab.example/ws'],
  ])('takes the dashboard\'s address %s as the socket %s', (given, socket) => {
    expect(parseWatchArgs([given], {}).url).toBe(socket);
  });

  it.each([
    [[], /needs the server's URL/],
    [['ftp://127.0.0.1:8080/ws'], /^URL "ftp:\/\/127\.0\.0\.1:8080\/ws": must be ws:\/\/, wss:\/\/ or the dashboard's http\(s\):\/\/ address/],
    [['nope'], /^URL "nope": not a URL/],
    [['ws://u:secret@127.0.0.1:1/ws'], /^URL: must not hold credentials/],
    [[URL, URL], /^unexpected argument .* takes one URL/],
    [[URL, '--rate', '0'], /^--rate: must be a number > 0/],
    [[URL, '--rate', 'fast'], /^--rate: must be a finite number/],
    [[URL, '--rate'], /^--rate: needs a value/],
    [[URL, '--run', ''], /^--run: must be a run id/],
    [[URL, '--token', 'a b'], /^--token: must be non-empty/],
    [[URL, '--verbose'], /^--verbose: unknown option for streamgrad watch/],
    [[URL, '--json', '--json'], /^--json: given more than once/],
  ])('refuses %j with a one-line usage error (exit 2)', (args, message) => {
    const error = cliError(() => parseWatchArgs(args, {}));
    expect(error.exitCode).toBe(2);
    expect(error.message).toMatch(message);
    expect(error.message).not.toContain('\n');
    expect(error.message).not.toContain('secret');
  });
});

const info: RunInfo = {
  id: 'a', state: 'running', topology: { inputSize: 3, layers: [{ units: 1, activation: 'linear' }] }, loss: 'mse',
  optimizer: { type: 'sgd', learningRate: 0.01 }, parameters: 4, step: 7,
};
const metrics: MetricsMessage = {
  type: 'metrics', run: 'a', step: 1200, size: 1, loss: 0.5, gradNorm: 1, learningRate: 0.003, updated: true,
  metrics: { window: 1000, count: 1000, loss: 0.0123, mae: 0.0456 }, samplesPerSecond: 45000.4, counters: {}, state: 'running',
};
const event = (e: EventMessage['event'], detail?: Record<string, unknown>): EventMessage => ({ type: 'event', run: 'a', event: e, step: 1200, time: Date.now(), ...(detail && { detail }) });

describe('watch views', () => {
  it('runLine: state, step, rolling metrics under the loss name, learning rate, speed', () => {
    expect(runLine('a', metrics, { info })).toBe('a  running  step 1200  mse 0.0123, mae 0.0456  lr 0.003  45000 samples/s');
    expect(runLine('a', { ...metrics, metrics: { window: 1000, count: 0, loss: null, mae: null }, samplesPerSecond: null })).toBe('a  running  step 1200  loss -, mae -  lr 0.003  - samples/s');
    expect(runLine('a', undefined, { info })).toBe('a  running  step 7  (no metrics yet)');
    expect(runLine('a', metrics, { info, state: 'paused' })).toMatch(/^a {2}paused {2}step 1200/);
  });

  it('eventLine: what happened, when, and its details; control characters from the server are neutralized', () => {
    expect(eventLine(event('paused'))).toMatch(/^\d\d:\d\d:\d\d {2}a {2}paused at step 1200$/);
    expect(eventLine(event('learning-rate', { from: 0.003, to: 0.001 }))).toMatch(/learning-rate at step 1200: 0\.003 → 0\.001$/);
    expect(eventLine(event('diverged', { code: 'SG_ERR_DIVERGED', message: 'loss is NaN' }))).toMatch(/diverged at step 1200: loss is NaN$/);
    const evil = eventLine({ ...event('failed', { message: 'x\x1b[2J\x1b]0;pwned\x07' }), run: 'a\x1b[31m' });
    expect(evil).not.toMatch(/[\x00-\x1f]/);
  });

  it('LiveView redraws its block in place and scrolls events above it', async () => {
    let screen = '';
    const view = new LiveView({ write: (t: string) => (screen += t), columns: 60 }, 'ws://h:1/ws', 5);
    expect(view.lines()).toEqual(['connecting to ws://h:1/ws', '(no runs yet)']);
    view.hello('read-only');
    view.runs([info, { ...info, id: 'b'.repeat(100) }]);
    view.metrics(metrics);
    await new Promise((r) => setTimeout(r, 20));
    const lines = view.lines();
    expect(lines[0]).toBe('connected to ws://h:1/ws (read-only)');
    expect(lines[1]).toMatch(/^a {2}running {2}step 1200 {2}mse 0\.0123/);
    expect(lines.every((l) => l.length <= 59)).toBe(true); // never wraps: the block's height stays known
    expect(screen).toContain('\x1b[2F'); // moved up over the first two-line block to redraw it
    screen = '';
    view.event(event('paused'));
    expect(screen).toMatch(/^\x1b\[3F\x1b\[J\d\d:\d\d:\d\d {2}a {2}paused at step 1200\n/);
    expect(view.lines()[1]).toMatch(/^a {2}paused/);
    view.state('reconnecting');
    view.close();
    expect(view.lines()[0]).toBe('connection to ws://h:1/ws lost; reconnecting');
    screen = '';
    view.metrics(metrics);
    await new Promise((r) => setTimeout(r, 20));
    expect(screen).toBe(''); // nothing after close
  });
});


const lines = (text: string) => text.split('\n').filter((l) => l !== '');

describe('streamgrad watch against a live server', () => {
  it('--json prints parseable metrics lines, plain output one line per message; Ctrl-C exits 0; bad input exits 2', async () => {
    const server = await liveServer({}, liveRun('a'), liveRun('b'));
    const [json, plain, badUrl, badToken, noRun] = await Promise.all([
      watch([server.wsUrl, '--json', '--rate', '20'], (out) => lines(out).length >= 4),
      watch(['--run', 'b', server.wsUrl, '--rate', '20'], (out) => lines(out).length >= 2),
      watch(['ftp://127.0.0.1:1/ws']),
      watch([server.wsUrl, '--token', 'not-the-token']),
      watch([server.wsUrl, '--run', 'zz'], () => false, { STREAMGRAD_TOKEN: TOKEN }),
    ]);

    expect(json.code).toBe(0);
    const messages = lines(json.stdout).map((l) => JSON.parse(l) as MetricsMessage);
    expect(messages.length).toBeGreaterThanOrEqual(4);
    for (const m of messages) {
      expect(m.type).toBe('metrics');
      expect(['a', 'b']).toContain(m.run);
      expect(m.step).toBeGreaterThan(0);
    }
    expect(json.stderr).toContain(`connected to ${server.wsUrl} (read-only)`);

    expect(plain.code).toBe(0);
    for (const l of lines(plain.stdout)) expect(l).toMatch(/^b {2}running {2}step \d+ {2}mse [-\d.e]+, mae [-\d.e]+ {2}lr 0\.01 {2}.* samples\/s {2}batch loss /);

    expect(badUrl.code).toBe(2);
    expect(badUrl.stderr).toMatch(/^streamgrad: URL "ftp:\/\/127\.0\.0\.1:1\/ws": must be ws:\/\/, wss:\/\/ or the dashboard's http\(s\):\/\/ address.*\n$/);

    expect(badToken.code).toBe(2);
    expect(badToken.stderr).toMatch(/streamgrad: .*refused the connection: 401.*check --token\n$/);
    expect(badToken.stderr).not.toContain('not-the-token');

    // with the token (here from the environment) the CLI sends no Origin: any server address works
    expect(noRun.code).toBe(2);
    expect(noRun.stderr).toMatch(/streamgrad: --run: no run "zz" on .* \(runs: a, b\)\n$/);
  });
});
