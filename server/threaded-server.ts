import type { NumberReservation } from './version-numbers.ts';
import type { TrainingRun } from '../pipeline/run.ts';
import type { ThreadedServeOptions } from './options.ts';
import { RunPublisher } from './run-publisher.ts';
import { takeServerThread } from './server-thread-start.ts';
import { checkTrainingNice, cpuShareFromEnv, DEFAULT_TRAINING_NICE, trainBehindServer, type TrainingPriority, trainingIdleFromEnv, trainingNiceFromEnv } from './training-priority.ts';
import type { ServerStats } from './server-stats.ts';
import type { CommandMessage } from './protocol.ts';
import type { FromServerThread, ServerThreadData, ToServerThread } from './thread-messages.ts';
import type { ModelArtifact } from '../pipeline/model-artifact.ts';
import { type LabelsSnapshot, modelData, type SavedModelInfo, type VersionInfo } from './model-versions.ts';
import type { AddRunOptions } from './server.ts';
import { CpuShare, type CpuShareStats } from '../pipeline/cpu-share.ts';

export type { ThreadedServeOptions } from './options.ts';
export type { ServerThreadData } from './thread-messages.ts';


/** The server of `serveInThread`, as the thread that trains holds it. */
export interface ThreadedServer {
  readonly url: string;
  readonly wsUrl: string;
  readonly port: number;
  /**
   * Starts serving a run of this thread (announced with a `run` message). The caller starts
   * and stops the run. `options.labels`: its version labels saved before a restart;
   * `options.numbers`: its reservation of version numbers.
   */
  addRun(run: TrainingRun, options?: AddRunOptions): void;
  /**
   * Serves predictions of a saved model under `name`, on the server thread (as `serve()`'s
   * `addModel`: one version, with the step, samples and time `at` gives; `labels`: its
   * version labels saved before a restart). Resolves with that version once the server
   * thread serves it; rejects when it cannot (a name taken, labels of another model).
   */
  addModel(name: string, artifact: ModelArtifact, at?: SavedModelInfo, labels?: LabelsSnapshot, numbers?: NumberReservation): Promise<VersionInfo>;
  /** A new version of a saved model (same shape, else `SG_ERR_MODEL`); resolves with it, or null when nothing changed. */
  updateModel(name: string, artifact: ModelArtifact, at?: SavedModelInfo): Promise<VersionInfo | null>;
  /** Stops serving a saved model. */
  removeModel(name: string): void;
  /** Stops serving a run (announced with `run-removed`). */
  removeRun(id: string): void;
  readonly runs: ReadonlyMap<string, TrainingRun>;
  /** What lowering this thread's priority did (see `trainingNice`, `trainingIdle`); null when it was left alone. */
  readonly trainingPriority: TrainingPriority | null;
  /** The server thread's counters, as it last posted them (a few times a second while they change). */
  readonly stats: ServerStats;
  /** How often the server thread asked this thread for the CPU, and how long the runs slept for it (pipeline/cpu-share.ts). */
  readonly cpu: CpuShareStats;
  /** Why the server thread failed, once it has (it serves nothing any more); null while it is fine. */
  readonly error: Error | null;
  /** Resolves with the server thread's failure, if it ever fails (never after a `close`). */
  readonly failed: Promise<Error>;
  /** Closes every socket (1001), the HTTP server and the thread. */
  close(): Promise<void>;
}

/** Ms the server thread has to close before it is terminated. */
const CLOSE_TIMEOUT_MS = 5000;

/**
 * Starts the live broadcast server (`serve()`: dashboard, /healthz, /metrics, `/ws`) on
 * a worker thread of its own, and serves runs that train on this thread. An answer no
 * longer waits for a training slice (a connection burst while training runs at full
 * speed), and serving no longer takes the training thread's time: the two threads share
 * only the runs' published state —
 * weights in shared memory, counters, results and events posted at the server's tick
 * rate — and commands, which run here at the run's next step boundary.
 *
 * Resolves once the server listens; rejects like `serve()` (with the same `code`,
 * e.g. EADDRINUSE). A failure of the thread later is in `error` and `failed`.
 *
 * @example
 * const server = await serveInThread({ port: 8080, token: process.env.STREAMGRAD_TOKEN });
 * server.addRun(run);
 * void run.start();
 * server.failed.then((error) => console.error(`live view failed: ${error.message}`));
 */
export async function serveInThread(options: ThreadedServeOptions = {}): Promise<ThreadedServer> {
  const tickMs = Math.max(1, Math.floor(1000 / (options.maxRateHz ?? 30)));
  const nice = checkTrainingNice(options.trainingNice === undefined ? trainingNiceFromEnv(DEFAULT_TRAINING_NICE) : options.trainingNice ?? 0);
  const idle = options.trainingIdle ?? trainingIdleFromEnv();
  const runs = new Map<string, TrainingRun>();
  const publishers = new Map<string, RunPublisher>();
  let timer: NodeJS.Timeout | null = null;
  // where the server thread asks for the CPU while it waits for a core; the runs here give it between slices
  const cpu = new CpuShare();
  const sharing = options.cpuShare ?? cpuShareFromEnv();
  const thread = await startServerThread({ ...options, ...(sharing && { cpu: cpu.buffer }) }, (seq, run, command) => {
    const publisher = publishers.get(run);
    if (publisher === undefined) thread.post({ type: 'outcome', seq, outcome: { ok: false, code: 'SG_ERR_UNKNOWN_RUN', message: 'no run of that name (run) on this server' } }); // never the client's text (server/PROTOCOL.md, "error")
    else publisher.command(seq, command);
  }, () => {
    if (timer !== null) clearInterval(timer);
  }, (run, stride) => {
    // the server thread thinned the run's scalar history: send only the points it keeps
    const publisher = publishers.get(run);
    if (publisher !== undefined) publisher.scalars.stride = stride;
  });
  const { post } = thread;
  // the thread that trains yields to the server thread when the cores are short (issue 17, item 6)
  const priority = trainBehindServer(nice, idle);
  /** Saved models served, and their shapes (checked here, so that a name clash is an error at once). */
  const models = new Set<string>();

  timer = setInterval(() => {
    const now = performance.now();
    for (const publisher of publishers.values()) publisher.tick(now);
  }, tickMs);
  return {
    url: thread.url,
    wsUrl: thread.wsUrl,
    port: thread.port,
    runs,
    trainingPriority: priority,
    get stats() {
      return thread.stats;
    },
    get cpu() {
      return cpu.stats();
    },
    get error() {
      return thread.error;
    },
    failed: thread.failed,
    addRun(run: TrainingRun, addOptions: AddRunOptions = {}) {
      if (runs.has(run.id)) throw new Error(`serve: a run with id ${JSON.stringify(run.id)} is already served`);
      if (models.has(run.id)) throw new Error(`serve: a model named ${JSON.stringify(run.id)} is served already`);
      if (run.id === '*' || run.id.length === 0 || run.id.length > 256) throw new Error(`serve: run id ${JSON.stringify(run.id)} is not usable (1 to 256 characters, not "*")`);
      const publisher = new RunPublisher(run, post, addOptions.commands);
      runs.set(run.id, run);
      publishers.set(run.id, publisher);
      if (sharing) run.shareCpu(cpu);
      post({ type: 'add-run', run: publisher.describe(), ...(addOptions.labels !== undefined && { labels: addOptions.labels }), ...(addOptions.numbers !== undefined && { numbers: addOptions.numbers }) });
    },
    async addModel(name: string, artifact: ModelArtifact, at: SavedModelInfo = {}, labels?: LabelsSnapshot, numbers?: NumberReservation) {
      if (runs.has(name)) throw new Error(`serve: a run named ${JSON.stringify(name)} is served already`);
      if (models.has(name)) throw new Error(`serve: a model named ${JSON.stringify(name)} is already served`);
      models.add(name);
      const version = await thread.ask((seq) => ({ type: 'add-model', seq, name, model: modelData(artifact), at, ...(labels !== undefined && { labels }), ...(numbers !== undefined && { numbers }) })).catch((error: unknown) => {
        models.delete(name);
        throw error;
      });
      return version!;
    },
    updateModel(name: string, artifact: ModelArtifact, at: SavedModelInfo = {}) {
      if (!models.has(name)) return Promise.reject(new Error(`serve: no saved model named ${JSON.stringify(name)}`));
      return thread.ask((seq) => ({ type: 'update-model', seq, name, model: modelData(artifact), at }));
    },
    removeModel(name: string) {
      if (models.delete(name)) post({ type: 'remove-model', name });
    },
    removeRun(id: string) {
      const publisher = publishers.get(id);
      if (publisher === undefined) return;
      publisher.dispose();
      publishers.delete(id);
      runs.get(id)?.shareCpu(null);
      runs.delete(id);
      post({ type: 'remove-run', run: id });
    },
    close() {
      if (timer !== null) clearInterval(timer);
      for (const publisher of publishers.values()) publisher.dispose();
      publishers.clear();
      for (const run of runs.values()) run.shareCpu(null);
      return thread.close();
    },
  };
}

/** The server thread as a message port: what `serveInThread` and a cluster gateway (cluster/gateway.ts) build on. */
export interface ServerThreadHandle {
  readonly url: string;
  readonly wsUrl: string;
  readonly port: number;
  /** Sends a message to the server thread (runs added, published, events, command outcomes). */
  post(message: ToServerThread): void;
  /** Sends an `add-model` or `update-model` (built with its `seq`) and resolves with the version the thread took; rejects with its error. */
  ask(make: (seq: number) => Extract<ToServerThread, { type: 'add-model' | 'update-model' }>): Promise<VersionInfo | null>;
  readonly stats: ServerStats;
  readonly error: Error | null;
  readonly failed: Promise<Error>;
  close(): Promise<void>;
}

/**
 * Starts the server thread and resolves once it listens. `onCommand` receives each command
 * a client sent to a run (answer it with an `outcome` message of the same `seq`);
 * `onFail` is told once when the thread fails; `onStride` when the thread thinned a run's
 * scalar history (publish only every `stride`-th step from then on). The runs it serves are whatever is posted
 * to it: `serveInThread` posts local runs, a cluster gateway runs it trains elsewhere.
 */
export async function startServerThread(options: ThreadedServeOptions & { readonly cpu?: SharedArrayBuffer }, onCommand: (seq: number, run: string, command: CommandMessage) => void, onFail: (why: Error) => void = () => undefined, onStride: (run: string, stride: number) => void = () => undefined): Promise<ServerThreadHandle> {
  const { log, onLabels, ingest, trainingNice: _, trainingIdle: _idle, cpuShare: _share, cpu, ...rest } = options;
  const relay = ingest?.relay;
  const ingestOptions = ingest === undefined ? undefined : (({ relay: _relay, ...plain }) => plain)(ingest);
  const data: ServerThreadData = { options: rest, log: log !== undefined, statsMs: 250, ...(ingestOptions !== undefined && { ingest: ingestOptions }), ...(cpu !== undefined && { cpu }) };
  // the thread the command line prestarted (bin/streamgrad.mjs), or a new one
  const worker = takeServerThread();
  const post = (message: ToServerThread) => worker.postMessage(message);
  post({ type: 'listen', data });
  let stats: ServerStats = { clients: 0, droppedFrames: 0, refusedHandshakes: 0, slowTerminations: 0, heartbeatTerminations: 0, warmUpHandshakes: 0 };
  let error: Error | null = null;
  let closing = false;
  let reportFailure: (error: Error) => void = () => undefined;
  const failed = new Promise<Error>((resolve) => { reportFailure = resolve; });
  const replies = new Map<number, { resolve: (version: VersionInfo | null) => void; reject: (error: Error) => void }>();
  let nextSeq = 1;
  let onClosed: () => void = () => undefined;
  const closedByThread = new Promise<void>((resolve) => { onClosed = resolve; });
  const exited = new Promise<void>((resolve) => worker.once('exit', () => resolve()));

  const fail = (why: Error) => {
    if (closing || error !== null) return;
    error = why;
    for (const waiting of replies.values()) waiting.reject(why);
    replies.clear();
    onFail(why);
    log?.(`server thread failed: ${why.message}`);
    reportFailure(why);
  };

  const listening = new Promise<Extract<FromServerThread, { type: 'listening' }>>((resolve, reject) => {
    worker.on('message', (message: FromServerThread) => {
      switch (message.type) {
        case 'listening':
          resolve(message);
          return;
        case 'listen-failed':
          reject(Object.assign(new Error(message.message), message.code !== undefined && { code: message.code }));
          return;
        case 'command':
          onCommand(message.seq, message.run, message.command);
          return;
        case 'stats':
          stats = message.stats;
          return;
        case 'scalar-stride':
          onStride(message.run, message.stride);
          return;
        case 'log':
          log?.(message.line);
          return;
        case 'model-reply': {
          const waiting = replies.get(message.seq);
          replies.delete(message.seq);
          const { error: failure, version } = message.reply;
          if (failure !== undefined) waiting?.reject(Object.assign(new Error(failure.message), failure.code !== undefined && { code: failure.code }));
          else waiting?.resolve(version ?? null);
          return;
        }
        case 'labels':
          onLabels?.(message.model, message.labels);
          return;
        case 'ingest':
          relay?.deliver(message.records);
          return;
        case 'closed':
          onClosed();
      }
    });
    worker.on('error', (why) => {
      reject(why);
      fail(why);
    });
    worker.on('exit', (code) => {
      const why = new Error(`the server thread exited (code ${code}) while serving`);
      reject(why);
      fail(why);
    });
  });
  let address: Extract<FromServerThread, { type: 'listening' }>;
  try {
    address = await listening;
  } catch (why) {
    closing = true;
    await worker.terminate();
    throw why;
  }
  relay?.attach((n) => post({ type: 'ingest-credit', n }));
  // no more records once the thread is gone
  void exited.then(() => relay?.end());
  let closed: Promise<void> | null = null;
  return {
    url: address.url,
    wsUrl: address.wsUrl,
    port: address.port,
    post,
    ask(make) {
      if (error !== null) return Promise.reject(error);
      if (closing) return Promise.reject(new Error('the server is closing'));
      const seq = nextSeq++;
      return new Promise<VersionInfo | null>((resolve, reject) => {
        replies.set(seq, { resolve, reject });
        post(make(seq));
      });
    },
    get stats() {
      return stats;
    },
    get error() {
      return error;
    },
    failed,
    close() {
      closed ??= (async () => {
        const wasFine = error === null;
        closing = true;
        if (wasFine) {
          post({ type: 'close' });
          const timeout = new Promise<'timeout'>((resolve) => setTimeout(resolve, CLOSE_TIMEOUT_MS, 'timeout').unref());
          if (await Promise.race([closedByThread.then(() => exited), exited, timeout]) === 'timeout') await worker.terminate();
        }
        await exited;
        for (const waiting of replies.values()) waiting.reject(new Error('the server closed before it answered'));
        replies.clear();
      })();
      return closed;
    },
  };
}
