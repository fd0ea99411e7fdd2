import { randomBytes } from 'node:crypto';
import { StreamgradError } from '../core/errors.ts';
import type { TrainingRun } from '../pipeline/run.ts';
import type { ExperimentInfo } from '../server/protocol.ts';
import { serveInThread, type ThreadedServer } from '../server/threaded-server.ts';
import type { LabelsSnapshot } from '../server/model-versions.ts';
import type { SavedLabels } from '../server/saved-labels.ts';
import type { NumberReservation } from '../server/version-numbers.ts';
import type { IngestRelay } from '../server/ingest-relay.ts';
import type { AppliedOnce } from '../server/applied-once.ts';
import { ConfigError, OutputError, invalid, oneLine } from './errors.ts';

export interface ServeSettings {
  readonly port: number;
  /** Take any free port when `port` is in use (`--serve auto` without $PORT). */
  readonly orFreePort?: boolean;
  readonly host?: string;
  readonly token?: string;
  /** Browser origins allowed besides the server's own (exact match). */
  readonly allowedOrigins?: readonly string[];
  /**
   * Without a token (here or in $STREAMGRAD_TOKEN), make one for the session and show it,
   * so that the person who started the job can steer it from the page.
   */
  readonly sessionToken?: boolean;
  /** What the runs are about, for the dashboard's header. */
  readonly experiment?: ExperimentInfo;
  /** The runs' version labels, kept for their checkpoints and put back on a resume. */
  readonly labels?: SavedLabels;
  /** Per run id: its reservation of version numbers (runs with checkpoints), so that a resume never gives a number twice. */
  readonly numbers?: ReadonlyMap<string, NumberReservation>;
  /** Per run id: its own memory of the command ids applied to it, which its checkpoints keep (runs with checkpoints; `AddRunOptions.commands`). */
  readonly commands?: ReadonlyMap<string, AppliedOnce>;
  /** `/ingest` (with the token): where the records sensors send come out (`--labels ingest`). */
  readonly ingest?: IngestRelay;
}

/**
 * Handshakes the command line's server makes to itself as it starts (`ServeOptions.warmUpHandshakes`):
 * dashboards that reconnect all at once to a restarted server then meet compiled code, not cold
 * code at three times the CPU per handshake (issue 17 item 6; about a second of the server
 * thread's CPU, in the background). 2000 rather than 1000: V8 has not compiled the whole
 * handshake path after 1000 (the first burst of 500 still cost 170–245 µs a connection against
 * 145–215 after 2000, and its handshake p99 was 79–106 ms against 26–70: four idle pairs in turn,
 * docs/live-view.md, Session 10).
 */
export const WARM_UP_HANDSHAKES = 2000;

/**
 * Starts the server with `runs` and says where it is (and a session token it made);
 * a port that cannot be had is a usage error naming `option`.
 *
 * The server runs on a thread of its own (`serveInThread`), so that training at full
 * speed on this one never delays an answer. If that thread fails, it says so and calls
 * `onFailure` (by default: stops the job as Ctrl-C would; the command then ends with
 * `serverFailure`'s error).
 */
export async function startServing(settings: ServeSettings, runs: readonly TrainingRun[], say: (line: string) => void, option = '--serve', onFailure: () => void = () => process.kill(process.pid, 'SIGTERM')): Promise<ThreadedServer> {
  // a made token is shown here, never in a URL or the server's log
  const made = settings.sessionToken === true && settings.token === undefined && (process.env.STREAMGRAD_TOKEN ?? '') === '';
  const token = made ? randomBytes(18).toString('base64url') : settings.token;
  const { labels } = settings;
  // /ingest takes no sender without a token (--labels ingest checks there is one)
  const ingestToken = token ?? (process.env.STREAMGRAD_TOKEN || undefined);
  // a label set is saved at once by a checkpoint of its run (a run without checkpoints refuses, and keeps it in memory)
  const onLabels = labels === undefined ? undefined : (model: string, snapshot: LabelsSnapshot) => {
    labels.update(model, snapshot);
    runs.find((r) => r.id === model)?.checkpoint().catch(() => undefined);
  };
  const listen = (port: number) => serveInThread({ port, host: settings.host, token, warmUpHandshakes: WARM_UP_HANDSHAKES, ...(settings.experiment !== undefined && { experiment: settings.experiment }), ...(settings.allowedOrigins !== undefined && { allowedOrigins: [...settings.allowedOrigins] }), ...(onLabels !== undefined && { onLabels }), ...(settings.ingest !== undefined && ingestToken !== undefined && { ingest: { token: ingestToken, relay: settings.ingest } }) });
  let server: ThreadedServer;
  try {
    server = await listen(settings.port).catch((error: unknown) => {
      if (settings.orFreePort === true && (error as { code?: string }).code === 'EADDRINUSE') return listen(0);
      throw error;
    });
  } catch (error) {
    const code = (error as { code?: string }).code;
    const why = code === 'EADDRINUSE' ? 'the port is in use' : code === 'EACCES' ? 'permission denied' : error instanceof Error ? error.message : String(error);
    // a setting the server refused (STREAMGRAD_TRAINING_NICE) is not a failure to listen
    invalid(option, error instanceof StreamgradError ? error.message : `cannot listen on ${settings.host ?? '127.0.0.1'}:${settings.port}: ${why}`);
  }
  try {
    for (const run of runs) {
      const saved = labels?.restoreFor(run);
      const numbers = settings.numbers?.get(run.id);
      const commands = settings.commands?.get(run.id);
      server.addRun(run, { ...(saved !== undefined && { labels: saved }), ...(numbers !== undefined && { numbers }), ...(commands !== undefined && { commands }) });
    }
  } catch (error) {
    await server.close();
    throw new ConfigError(`--resume: ${oneLine(error)}`, { cause: error });
  }
  const control = token !== undefined || (process.env.STREAMGRAD_TOKEN ?? '') !== '';
  say(`dashboard at ${server.url}/`);
  say(`websocket at ${server.wsUrl} (${control ? 'control with the token, read-only without' : 'read-only: no --token or STREAMGRAD_TOKEN'})`);
  if (made) say(`control token for this session: ${token} (type it into the dashboard to pause, step, reset...)`);
  void server.failed.then((error) => {
    say(`the live view failed: ${error.message}; stopping`);
    onFailure();
  });
  return server;
}

/** The error a command ends with when its server thread failed while it ran (exit 1), else null. */
export function serverFailure(server: ThreadedServer | null): OutputError | null {
  const error = server?.error ?? null;
  return error === null ? null : new OutputError(`the live view failed: ${error.message}`, { cause: error });
}

/** Resolves on the first Ctrl-C (SIGINT) or SIGTERM. */
export function untilSignal(): Promise<NodeJS.Signals> {
  return new Promise((resolve) => {
    const on = (signal: NodeJS.Signals) => {
      process.off('SIGINT', on);
      process.off('SIGTERM', on);
      resolve(signal);
    };
    process.on('SIGINT', on);
    process.on('SIGTERM', on);
  });
}

/**
 * Calls `first` on the first SIGINT or SIGTERM (a graceful stop); a second one quits at
 * once with the shell's status for the signal (130, 143), for when the stop takes too long.
 */
export function onSignals(first: (signal: NodeJS.Signals) => void): { dispose(): void } {
  let seen = false;
  const on = (signal: NodeJS.Signals) => {
    if (seen) process.exit(128 + (signal === 'SIGINT' ? 2 : 15));
    seen = true;
    first(signal);
  };
  process.on('SIGINT', on);
  process.on('SIGTERM', on);
  return {
    dispose() {
      process.off('SIGINT', on);
      process.off('SIGTERM', on);
    },
  };
}
