import { headers, type Msg, type MsgHdrs, type Subscription } from '@nats-io/transport-node';
import type { TrainingRun } from '../pipeline/run.ts';
import { AppliedOnce, commandKey } from '../server/applied-once.ts';
import { RunPublisher } from '../server/run-publisher.ts';
import { SCALAR_HISTORY_POINTS } from '../server/scalar-history.ts';
import { type ClientMessage, COMMAND_TYPES, type CommandMessage, type Outcome, parseClientMessage } from '../server/protocol.ts';
import type { RunDescription, RunPublish, ToServerThread } from '../server/thread-messages.ts';
import type { Cluster } from './open.ts';
import { encodeWire } from './wire.ts';

/** Header of every state, event and control reply a partition's owner sends: its worker id. */
export const OWNER_HEADER = 'Sg-Owner';
/** Header of every state, event and control reply a partition's owner sends: the epoch of the commit record it fenced when it took the partition. */
export const EPOCH_HEADER = 'Sg-Epoch';

/** Whom a state, event or control reply of a partition says it is from: a worker and the epoch it fenced the partition with (`telemetry-owner.ts` judges it). */
export interface TelemetryClaim {
  readonly owner: string;
  readonly epoch: number;
}

/** What a partition's owner publishes at its telemetry rate (latest value kept per partition): its shape, state and weights. */
export interface TelemetryState {
  readonly describe: Omit<RunDescription, 'weights' | 'publish'>;
  readonly publish: RunPublish;
  readonly params: Float64Array;
  readonly grads: Float64Array;
}

/**
 * The owner's side of the gateways: the same `RunPublisher` that feeds a local server
 * thread, posting to NATS instead. State (weights included) goes to `sg.NAME.tm.P` at
 * most `rateHz` times a second (a stream keeping the latest message per subject, so a new
 * gateway sees every partition at once), events to `sg.NAME.ev.P` as they happen, and
 * control commands arrive as NATS requests on `sg.NAME.ctl.P`, answered with the same
 * outcome (`ok`, `code`, `message`) a local server gives, once applied at a step boundary.
 * The owner applies each command id at most once, like a local server's `CommandLog`:
 * a client that lost its gateway resends through another one, which never saw the id, so
 * only the owner can know; a repeat is answered with the first outcome plus
 * `duplicate: true`. It remembers the last 10,000 ids in `applied`, which its
 * `PartitionRun` saves with every commit and gives the next owner, filled from the commit
 * it continues from, before this subscribes (docs/cluster.md, "Gateways").
 * Each state, each event and each control reply carries `claim` (the owner and the epoch
 * it fenced) in its headers: readers believe it only while it is the partition's owner's
 * (`telemetry-owner.ts`).
 */
export class PartitionTelemetry {
  private readonly publisher: RunPublisher;
  private timer: ReturnType<typeof setTimeout> | undefined;
  private readonly periodMs: number;
  /** When the next state is due: a fixed cadence, not "a period after the last one". */
  private due: number;
  private disposed = false;
  private readonly control: Subscription;
  /** Commands handed to the run, by seq, each waiting for its outcome. */
  private readonly waiting = new Map<number, (outcome: Outcome) => void>();
  private seq = 0;
  private readonly describe: TelemetryState['describe'];
  private readonly claim: MsgHdrs = headers();

  /**
   * @param applied the outcomes of the command ids this partition's owners applied,
   *   whichever gateway sent them (the ones of the commit the run continues from included)
   */
  constructor(private readonly cluster: Cluster, partition: number, run: TrainingRun, claim: TelemetryClaim, rateHz = 10, private readonly applied = new AppliedOnce()) {
    this.claim.set(OWNER_HEADER, claim.owner);
    this.claim.set(EPOCH_HEADER, String(claim.epoch));
    const { names, nc } = cluster;
    const tm = names.telemetry(partition);
    const ev = names.events(partition);
    this.publisher = new RunPublisher(run, (message) => this.forward(message, tm, ev));
    const { weights: _weights, publish: _publish, ...describe } = this.publisher.describe();
    this.describe = describe;
    this.periodMs = Math.max(10, Math.round(1000 / rateHz));
    this.due = performance.now() + this.periodMs;
    this.schedule(run);
    this.control = nc.subscribe(names.control(partition), {
      callback: (error, msg) => {
        if (error !== null) return;
        // checked as a server checks a client's message: anybody on the server can send here
        // (before, any JSON went to the run: a request `5` was answered with result undefined)
        const parsed = parseClientMessage(msg.string());
        if (!parsed.ok || !isCommand(parsed.message)) {
          const refusal: Outcome = parsed.ok
            ? { ok: false, code: 'SG_ERR_SCHEMA', message: `a control request must be one of the commands ${COMMAND_TYPES.join(', ')}` }
            : { ok: false, code: parsed.error.code, message: parsed.error.message };
          this.reply(msg, refusal);
          return;
        }
        const command = parsed.message;
        const apply = () => new Promise<Outcome>((resolve) => {
          const seq = ++this.seq;
          this.waiting.set(seq, resolve);
          this.publisher.command(seq, command);
        });
        // an id is remembered per run, as by a server's CommandLog; a request without one (no gateway sends it) is not
        const once = typeof command.id === 'string' ? this.applied.outcome(commandKey(command.run, command.id), apply) : apply();
        void once.then((outcome) => this.reply(msg, outcome));
      },
    });
  }

  /**
   * The next state on a fixed cadence. A worker training flat out holds its event loop for
   * a slice of each of its partitions' runs in turn, so a timer fires late; `setInterval`
   * would count its period from there and publish at a fraction of the rate (11.7 states per
   * partition per second of 20 asked with 4 partitions, measured). Keeping the deadlines keeps the rate while
   * the lateness stays below a period; a state is never sent less than half a period after
   * the one before (no burst after a stall).
   */
  private schedule(run: TrainingRun): void {
    if (this.disposed) return;
    this.timer = setTimeout(() => {
      // no gateway keeps a finer curve than a whole-run history would: steps off its stride stay home
      this.publisher.scalars.stride = scalarStride(run.trainer.counters.steps);
      const now = performance.now();
      this.publisher.tick(now);
      this.due = Math.max(this.due + this.periodMs, now + this.periodMs / 2);
      this.schedule(run);
    }, Math.max(0, this.due - performance.now()));
    this.timer.unref?.();
  }

  private forward(message: ToServerThread, tm: string, ev: string): void {
    const { nc } = this.cluster;
    if (nc.isClosed()) return;
    if (message.type === 'publish') {
      const n = this.publisher.weights.length;
      const params = new Float64Array(n);
      const grads = new Float64Array(n);
      this.publisher.weights.read(params, grads);
      const state: TelemetryState = { describe: this.describe, publish: message.publish, params, grads };
      nc.publish(tm, encodeWire(state), { headers: this.claim });
    } else if (message.type === 'event') {
      nc.publish(ev, encodeWire(message.event), { headers: this.claim });
    } else if (message.type === 'outcome') {
      const resolve = this.waiting.get(message.seq);
      this.waiting.delete(message.seq);
      resolve?.(message.outcome);
    }
  }

  /** Answers a control request with `outcome` and this owner's claim. */
  private reply(msg: Msg, outcome: Outcome): void {
    // a worker that stops closes its connection: nobody is left to take the answer
    if (this.cluster.nc.isClosed()) return;
    try {
      msg.respond(JSON.stringify(outcome), { headers: this.claim });
    } catch {
      // draining: nobody is left to take it either
    }
  }

  /**
   * Stops publishing and answering (the partition has another owner now, or none). A command
   * still waiting gets its answer here, with this owner's claim: a gateway believes it from
   * the owner it sent the command to, also once another owner fenced the partition.
   */
  dispose(): void {
    this.disposed = true;
    clearTimeout(this.timer);
    this.control.unsubscribe();
    this.publisher.dispose();
    // the run is over: whatever the command would have changed, the next owner goes on from the last commit
    const outcome: Outcome = { ok: false, code: 'SG_ERR_STATE', message: 'the partition changed owner before the command was done: not applied; its next owner goes on from the last commit' };
    for (const resolve of this.waiting.values()) resolve(outcome);
    this.waiting.clear();
  }
}

/**
 * The stride of the steps whose scalars a partition's owner sends with its states, after
 * `steps` steps: the largest power of two ≤ steps ÷ `SCALAR_HISTORY_POINTS` (1 early on).
 * A gateway's `ScalarHistory` that saw the whole run keeps only multiples of a larger power
 * of two (it holds fewer than that many points), so nothing it would keep is left out —
 * while a partition training 10,000 steps a second no longer sends every step's row with
 * each state (1,800 rows, ~115 kB, in a state of 200 ms). A gateway that joined late
 * draws the curve at this stride instead of a finer one it could have afforded.
 *
 * @example scalarStride(100_000) // 64: 1,562 points for the whole run so far
 */
export function scalarStride(steps: number, capacity = SCALAR_HISTORY_POINTS): number {
  let stride = 1;
  while (stride * 2 * capacity <= steps) stride *= 2;
  return stride;
}

/** Whether a client message is a run's control command (the ones a partition's owner applies). */
const isCommand = (message: ClientMessage): message is CommandMessage => (COMMAND_TYPES as readonly string[]).includes(message.type);
