import type { Activation } from '../core/activations.ts';
import type { Loss } from '../core/losses.ts';
import type { OptimizerSettings } from '../core/optimizers.ts';
import type { Preprocessing } from '../pipeline/model-artifact.ts';
import type { IngestStats } from '../core/record.ts';
import type { RunEvent, RunState } from '../pipeline/run.ts';
import type { StepResult } from '../pipeline/train.ts';
import type { TrainerCounters } from '../core/trainer.ts';
import type { Outcome } from './commands.ts';
import type { Topology } from '../core/model.ts';
import type { LabelsSnapshot, VersionInfo } from './model-versions.ts';
import type { SavedModelInfo } from './prediction-service.ts';
import type { WireRecord } from './ingest-relay.ts';
import type { PredictionRingState } from './predictions.ts';
import type { ScalarBatch } from './scalar-history.ts';
import type { CommandMessage } from './protocol.ts';
import type { ServerStats } from './server.ts';
import type { ServerThreadData } from './threaded-server.ts';

import type { CumulativeMetrics } from '../core/evaluation.ts';

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
export interface SavedModelData {
  readonly topology: Topology;
  readonly params: Float64Array;
  readonly preprocessing: Preprocessing | null;
}

/** The server thread's answer to `add-model` and `update-model`: the version taken (null: nothing changed), or why not. */
export interface ModelReply {
  readonly version?: VersionInfo | null;
  readonly error?: { readonly message: string; readonly code?: string };
}

/** Training thread → server thread. */
export type ToServerThread =
  | { readonly type: 'listen'; readonly data: ServerThreadData }
  | { readonly type: 'add-run'; readonly run: RunDescription; readonly labels?: LabelsSnapshot }
  | { readonly type: 'add-model'; readonly seq: number; readonly name: string; readonly model: SavedModelData; readonly at: SavedModelInfo; readonly labels?: LabelsSnapshot }
  | { readonly type: 'update-model'; readonly seq: number; readonly name: string; readonly model: SavedModelData; readonly at: SavedModelInfo }
  | { readonly type: 'remove-model'; readonly name: string }
  /** The training thread consumed records of `/ingest`: `n` more may come. */
  | { readonly type: 'ingest-credit'; readonly n: number }
  | { readonly type: 'remove-run'; readonly run: string }
  | { readonly type: 'publish'; readonly publish: RunPublish }
  | { readonly type: 'event'; readonly event: RunEvent }
  | { readonly type: 'outcome'; readonly seq: number; readonly outcome: Outcome }
  | { readonly type: 'close' };

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
