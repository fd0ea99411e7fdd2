import type { Activation } from '../core/activations.ts';
import type { Loss } from '../core/losses.ts';
import type { OptimizerSettings } from '../core/optimizers.ts';
import type { Preprocessing } from '../pipeline/model-artifact.ts';
import type { IngestStats } from '../core/record.ts';
import type { RunEvent, RunState } from '../pipeline/run.ts';
import type { StepResult } from '../pipeline/train.ts';
import type { TrainerCounters } from '../core/trainer.ts';
import type { LabelsSnapshot, ModelData, SavedModelInfo, VersionInfo } from './model-versions.ts';
import type { WireRecord } from './ingest-relay.ts';
import type { NumberReservation } from './version-numbers.ts';
import type { WebSocketIngestOptions } from '../sources/websocket-ingest.ts';
import type { PredictionRingState } from './predictions.ts';
import type { ScalarBatch } from './scalar-history.ts';
import type { CommandMessage, Outcome } from './protocol.ts';
import type { ThreadedServeOptions } from './options.ts';
import type { ServerStats } from './server-stats.ts';

import type { CumulativeMetrics } from '../core/evaluation.ts';

/** What the server thread starts from (its first message, `listen`). */
export interface ServerThreadData {
  readonly options: Omit<ThreadedServeOptions, 'log' | 'onLabels' | 'ingest' | 'trainingNice' | 'trainingIdle' | 'cpuShare'>;
  /** `/ingest`: the options of the `WebSocketIngest` to make there. */
  readonly ingest?: WebSocketIngestOptions;
  /** Whether to post log lines back (to `options.log` on the training thread). */
  readonly log: boolean;
  /** How often the server thread posts its stats back, at most (ms). */
  readonly statsMs: number;
  /** A `CpuShare`'s memory: the server thread raises its demand there when it waits for a core (server/cpu-demand.ts). */
  readonly cpu?: SharedArrayBuffer;
}

/**
 * The messages between the thread that trains and the server thread (`serveInThread`).
 * Weights travel through shared memory (`SharedWeights`); everything else is small and
 * posted at most at the server's tick rate, never once per step.
 */

/** A run's state at one step boundary, besides its weights. */
export interface RunPublish {
  readonly run: string;
  readonly state: RunState;
  readonly counters: Readonly<TrainerCounters>;
  readonly latest: StepResult | null;
  readonly ingest: IngestStats | null;
  readonly learningRate: number;
  /** Metrics over the whole stream (every sample since the start). */
  readonly cumulative: CumulativeMetrics;
  /** The preprocessing of the run's stages at this step boundary (what predictions from these weights apply). */
  readonly preprocessing: Preprocessing | null;
  /** The prediction ring, when rows were recorded since the last publish. */
  readonly predictions?: PredictionRingState;
  /** The steps' scalars since the last publish (on the history's stride, and the newest), for the server thread's `ScalarHistory`. */
  readonly scalars?: ScalarBatch;
}

/** What the server thread needs to know of a run once: its shape, and where its weights are. */
export interface RunDescription {
  readonly id: string;
  readonly inputSize: number;
  readonly outputSize: number;
  readonly layers: readonly { readonly outputs: number; readonly activation: Activation }[];
  readonly loss: Loss;
  readonly optimizer: OptimizerSettings;
  /** A `SharedWeights` block. */
  readonly weights: SharedArrayBuffer;
  readonly publish: RunPublish;
}

/** A saved model as it crosses to the server thread (`ThreadedServer.addModel`): its shape, weights (copied) and preprocessing. */
export type SavedModelData = ModelData;

/** The server thread's answer to `add-model` and `update-model`: the version taken (null: nothing changed), or why not. */
export interface ModelReply {
  readonly version?: VersionInfo | null;
  readonly error?: { readonly message: string; readonly code?: string };
}

/** Training thread → server thread. */
export type ToServerThread =
  | { readonly type: 'listen'; readonly data: ServerThreadData }
  | { readonly type: 'add-run'; readonly run: RunDescription; readonly labels?: LabelsSnapshot; readonly numbers?: NumberReservation }
  | { readonly type: 'add-model'; readonly seq: number; readonly name: string; readonly model: SavedModelData; readonly at: SavedModelInfo; readonly labels?: LabelsSnapshot; readonly numbers?: NumberReservation }
  | { readonly type: 'update-model'; readonly seq: number; readonly name: string; readonly model: SavedModelData; readonly at: SavedModelInfo }
  | { readonly type: 'remove-model'; readonly name: string }
  /** The training thread consumed records of `/ingest`: `n` more may come. */
  | { readonly type: 'ingest-credit'; readonly n: number }
  | { readonly type: 'remove-run'; readonly run: string }
  | { readonly type: 'publish'; readonly publish: RunPublish }
  | { readonly type: 'event'; readonly event: RunEvent }
  | { readonly type: 'outcome'; readonly seq: number; readonly outcome: Outcome }
  | { readonly type: 'gauge'; readonly gauge: GaugeValues }
  | { readonly type: 'peers'; readonly peers: readonly PeerServer[] }
  | { readonly type: 'close' };

/** Another server with the same runs (a cluster gateway's fellow gateways): where a dashboard may move. */
export interface PeerServer {
  readonly id: string;
  /** `http://host:port`. */
  readonly url: string;
  /** `ws://host:port/ws`. */
  readonly wsUrl: string;
}

/**
 * A gauge of the host's own for `/metrics` (e.g. a cluster gateway's partitions that are
 * parked): its name, help, label names, and every labelled value it has now (the values
 * replace the previous ones).
 */
export interface GaugeValues {
  readonly name: string;
  readonly help: string;
  readonly labelNames: readonly string[];
  readonly values: readonly { readonly labels: Readonly<Record<string, string>>; readonly value: number }[];
}

/** Server thread → training thread. */
export type FromServerThread =
  | { readonly type: 'listening'; readonly url: string; readonly wsUrl: string; readonly port: number }
  | { readonly type: 'listen-failed'; readonly message: string; readonly code?: string }
  | { readonly type: 'command'; readonly seq: number; readonly run: string; readonly command: CommandMessage }
  | { readonly type: 'stats'; readonly stats: ServerStats }
  /** A run's scalar history thinned out: the training thread records only steps on this stride from now on. */
  | { readonly type: 'scalar-stride'; readonly run: string; readonly stride: number }
  | { readonly type: 'log'; readonly line: string }
  /** The answer to an `add-model` or `update-model` of the same `seq`. */
  | { readonly type: 'model-reply'; readonly seq: number; readonly reply: ModelReply }
  /** A `promote` or `rollback` was applied: the model's labels as they stand now (to persist them). */
  | { readonly type: 'labels'; readonly model: string; readonly labels: LabelsSnapshot }
  /** Records sensors sent to `/ingest`, within the credit granted. */
  | { readonly type: 'ingest'; readonly records: WireRecord[] }
  | { readonly type: 'closed' };
