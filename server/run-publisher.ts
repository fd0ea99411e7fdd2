import type { Subscription } from 'rxjs';
import type { TrainingRun } from '../pipeline/run.ts';
import { applyCommand } from './commands.ts';
import { type AppliedOnce, commandKey } from './applied-once.ts';
import { PredictionRing } from './predictions.ts';
import { ScalarRecorder } from './scalar-history.ts';
import type { CommandMessage } from './protocol.ts';
import { SharedWeights } from './shared-weights.ts';
import type { RunDescription, RunPublish, ToServerThread } from './thread-messages.ts';

/** Ms between two publishes of a run whose steps did not move (its ingestion counters may have). */
const IDLE_PUBLISH_MS = 500;

/**
 * The training thread's side of a run served from another thread (`serveInThread`): it
 * makes the run visible to the server thread, where a `RunMirror` stands for it.
 *
 * Nothing is posted per step: a step only records its rows in the prediction ring and
 * marks the run changed; `tick` (at the server's tick rate) then publishes the weights
 * into shared memory and posts the counters, latest result and predictions. Between two
 * steps the thread that trains is at a step boundary (a step is synchronous), so what is
 * published is always one consistent state. Events publish at once, before they are
 * posted, so that the server thread sees the state an event left when it sees the event.
 */
export class RunPublisher {
  readonly weights: SharedWeights;
  private readonly ring: PredictionRing;
  /** Each step's scalars until the next publish (the history itself lives on the server thread). */
  readonly scalars = new ScalarRecorder();
  private readonly subscriptions: Subscription[] = [];
  private dirty = true;
  private publishedRows = -1;
  private lastPublish = -Infinity;

  /**
   * @param commands the run's own memory of the command ids applied to it, when its
   *   checkpoints keep them (`AddRunOptions.commands`): a command is applied through it here,
   *   where its effect is, so that the memory and the effect are saved by the same
   *   checkpoint, on this thread, and a repeat comes back to the server thread marked
   *   `duplicate` (after a `--resume` its `CommandLog` knows none of the ids)
   */
  constructor(readonly run: TrainingRun, private readonly post: (message: ToServerThread) => void, private readonly commands?: AppliedOnce) {
    const { model } = run.trainer;
    this.weights = new SharedWeights(model.params.length);
    this.ring = new PredictionRing(model.inputSize, model.outputSize);
    this.subscriptions.push(
      run.results.subscribe((result) => {
        this.ring.recordStep(run.trainer, result.size);
        this.scalars.record(result, Date.now());
        this.dirty = true;
      }),
      run.events.subscribe((event) => {
        this.publish();
        this.post({ type: 'event', event });
      }),
    );
  }

  /** The run's shape and its current state, for the server thread to mirror it. */
  describe(): RunDescription {
    const { model, loss, optimizer } = this.run.trainer;
    return {
      id: this.run.id,
      inputSize: model.inputSize,
      outputSize: model.outputSize,
      layers: model.layers.map((l) => ({ outputs: l.outputs, activation: l.activation })),
      loss,
      optimizer: optimizer.settings,
      weights: this.weights.buffer,
      publish: this.capture(),
    };
  }

  /** Publishes when something changed since the last publish (or, idle, every half second). */
  tick(now = performance.now()): void {
    if (this.dirty || now - this.lastPublish >= IDLE_PUBLISH_MS) this.publish(now);
  }

  /** Applies a command from the server thread (at the run's next step boundary) and answers with its outcome. */
  command(seq: number, command: CommandMessage): void {
    const apply = () => applyCommand(this.run, command);
    const { commands } = this;
    void (commands !== undefined && typeof command.id === 'string' ? commands.outcome(commandKey(this.run.id, command.id), apply) : apply()).then((outcome) => {
      // the state the command left reaches the server before its ack
      this.publish();
      this.post({ type: 'outcome', seq, outcome });
    });
  }

  /** Writes the weights and posts the rest. */
  publish(now = performance.now()): void {
    this.post({ type: 'publish', publish: this.capture() });
    this.dirty = false;
    this.lastPublish = now;
  }

  dispose(): void {
    for (const s of this.subscriptions.splice(0)) s.unsubscribe();
  }

  private capture(): RunPublish {
    const { run } = this;
    const { trainer } = run;
    this.weights.write(trainer.model.params, trainer.workspace.grads);
    const rows = this.ring.recorded;
    const fresh = rows !== this.publishedRows;
    this.publishedRows = rows;
    const scalars = this.scalars.take();
    return {
      run: run.id,
      state: run.state,
      counters: { ...trainer.counters },
      latest: run.latest,
      ingest: run.ingest,
      learningRate: trainer.optimizer.learningRate,
      cumulative: run.metrics.cumulative(),
      preprocessing: run.preprocessing(),
      ...(fresh && { predictions: this.ring.state() }),
      ...(scalars !== null && { scalars }),
    };
  }
}
