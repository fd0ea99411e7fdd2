import { type Observable, Subject } from 'rxjs';
import type { RunEvent, RunState, TrainingRun } from '../pipeline/run.ts';
import type { StepResult } from '../pipeline/train.ts';
import type { TrainerCounters } from '../core/trainer.ts';
import { PredictionRing } from './predictions.ts';
import { ScalarHistory } from './scalar-history.ts';
import type { CommandMessage, Outcome } from './protocol.ts';
import { SharedWeights } from './shared-weights.ts';
import type { RunDescription, RunPublish } from './thread-messages.ts';

/** A run as the server sees it: in its own thread, or mirrored from the thread that trains it. */
export type ServedRun = TrainingRun | RunMirror;

/**
 * A `TrainingRun` that trains on another thread, as the server thread sees it: the same
 * fields the server reads (id, state, trainer shape and counters, latest result, events),
 * filled from what the training thread publishes at the server's tick rate. Its
 * parameters and gradients are this thread's own copy of the newest published version
 * (`SharedWeights`), so they stay still between two publishes; `results` emits once per
 * publish that saw new steps, with the latest result. Commands run on the training
 * thread (`control`), at its next step boundary.
 */
export class RunMirror {
  readonly id: string;
  readonly trainer: {
    readonly model: { readonly inputSize: number; readonly outputSize: number; readonly layers: RunDescription['layers']; readonly params: Float64Array };
    readonly loss: RunDescription['loss'];
    readonly optimizer: { readonly settings: RunDescription['optimizer']; learningRate: number };
    counters: Readonly<TrainerCounters>;
    readonly workspace: { readonly grads: Float64Array };
  };
  /** The last trained rows and their predictions, as the training thread recorded them. */
  readonly predictions: PredictionRing;
  /** The run's scalar history, kept on this (the server's) thread from the points the training thread posts. */
  readonly scalars = new ScalarHistory();
  readonly results: Observable<StepResult>;
  readonly events: Observable<RunEvent>;
  state: RunState;
  latest: StepResult | null = null;
  ingest: RunPublish['ingest'] = null;
  /** The whole-stream metrics as of the last publish (the same call as a `TrainingRun`'s evaluator). */
  readonly metrics: { cumulative(): RunPublish['cumulative'] };
  private cumulative: RunPublish['cumulative'];
  private preprocessingNow: RunPublish['preprocessing'] = null;
  private readonly weights: SharedWeights;
  private readonly resultSubject = new Subject<StepResult>();
  private readonly eventSubject = new Subject<RunEvent>();

  constructor(description: RunDescription, readonly control: (command: CommandMessage) => Promise<Outcome>) {
    this.id = description.id;
    this.weights = new SharedWeights(description.weights);
    const { publish } = description;
    this.cumulative = publish.cumulative;
    this.metrics = { cumulative: () => this.cumulative };
    this.trainer = {
      model: { inputSize: description.inputSize, outputSize: description.outputSize, layers: description.layers, params: new Float64Array(this.weights.length) },
      loss: description.loss,
      optimizer: { settings: description.optimizer, learningRate: publish.learningRate },
      counters: publish.counters,
      workspace: { grads: new Float64Array(this.weights.length) },
    };
    this.predictions = new PredictionRing(description.inputSize, description.outputSize);
    this.state = publish.state;
    this.results = this.resultSubject.asObservable();
    this.events = this.eventSubject.asObservable();
    this.update(publish);
  }

  /** Takes a publish: the newest weights, counters, state and predictions. */
  update(publish: RunPublish): void {
    const stepped = publish.counters.steps !== this.trainer.counters.steps;
    this.weights.read(this.trainer.model.params, this.trainer.workspace.grads);
    this.trainer.counters = publish.counters;
    this.trainer.optimizer.learningRate = publish.learningRate;
    this.state = publish.state;
    this.latest = publish.latest;
    this.ingest = publish.ingest;
    this.cumulative = publish.cumulative;
    this.preprocessingNow = publish.preprocessing;
    if (publish.predictions !== undefined) this.predictions.load(publish.predictions);
    if (publish.scalars !== undefined) this.scalars.append(publish.scalars);
    if (stepped && publish.latest !== null) this.resultSubject.next(publish.latest);
  }

  /** The run's preprocessing as of the last publish (a fresh object each publish: never changed in place). */
  preprocessing(): RunPublish['preprocessing'] {
    return this.preprocessingNow;
  }

  /** An event of the run (posted after the publish of the state it left). */
  event(event: RunEvent): void {
    this.eventSubject.next(event);
  }

  dispose(): void {
    this.resultSubject.complete();
    this.eventSubject.complete();
  }
}
