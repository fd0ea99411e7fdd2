import type { Msg, Subscription } from '@nats-io/transport-node';
import type { TrainingRun } from '../pipeline/run.ts';
import { RunPublisher } from '../server/run-publisher.ts';
import type { CommandMessage } from '../server/protocol.ts';
import type { RunDescription, RunPublish, ToServerThread } from '../server/thread-messages.ts';
import type { Cluster } from './open.ts';
import { encodeWire } from './wire.ts';

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
 */
export class PartitionTelemetry {
  private readonly publisher: RunPublisher;
  private readonly timer: ReturnType<typeof setInterval>;
  private readonly control: Subscription;
  private readonly waiting = new Map<number, Msg>();
  private seq = 0;
  private readonly describe: TelemetryState['describe'];

  constructor(private readonly cluster: Cluster, partition: number, run: TrainingRun, rateHz = 10) {
    const { names, nc } = cluster;
    const tm = names.telemetry(partition);
    const ev = names.events(partition);
    this.publisher = new RunPublisher(run, (message) => this.forward(message, tm, ev));
    const { weights: _weights, publish: _publish, ...describe } = this.publisher.describe();
    this.describe = describe;
    this.timer = setInterval(() => this.publisher.tick(), Math.max(10, Math.round(1000 / rateHz)));
    this.timer.unref?.();
    this.control = nc.subscribe(names.control(partition), {
      callback: (error, msg) => {
        if (error !== null) return;
        let command: CommandMessage;
        try {
          command = JSON.parse(msg.string()) as CommandMessage;
        } catch {
          msg.respond(JSON.stringify({ ok: false, code: 'SG_ERR_BAD_JSON', message: 'the command is not JSON' }));
          return;
        }
        const seq = ++this.seq;
        this.waiting.set(seq, msg);
        this.publisher.command(seq, command);
      },
    });
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
      nc.publish(tm, encodeWire(state));
    } else if (message.type === 'event') {
      nc.publish(ev, encodeWire(message.event));
    } else if (message.type === 'outcome') {
      const msg = this.waiting.get(message.seq);
      this.waiting.delete(message.seq);
      msg?.respond(JSON.stringify(message.outcome));
    }
  }

  /** Stops publishing and answering (the partition has another owner now, or none). */
  dispose(): void {
    clearInterval(this.timer);
    this.control.unsubscribe();
    this.publisher.dispose();
    for (const msg of this.waiting.values()) msg.respond(JSON.stringify({ ok: false, code: 'SG_ERR_STATE', message: 'the partition changed owner' }));
    this.waiting.clear();
  }
}
