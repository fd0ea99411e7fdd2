import type { DeadLetter, DeadLetterSink } from '../core/dead-letter.ts';
import { StreamgradError } from '../core/errors.ts';
import type { Cluster } from './open.ts';

/**
 * Dead letters of one partition, published to the cluster's dead-letter stream (subject
 * `sg.NAME.dead.P`), one JSON message each, in the local format (`DeadLetter`). The
 * message id is the rejected record's own (`SEQ:LINE`), so a record rejected again by a
 * new owner after a failover is stored once. `flush` waits for every acknowledgement: a
 * worker flushes before each commit, so a commit never covers a rejection that is lost.
 */
export class ClusterDeadLetters implements DeadLetterSink {
  private readonly pending = new Set<Promise<void>>();
  private failure: unknown = null;
  private counter = 0;

  constructor(private readonly cluster: Cluster, private readonly partition: number, private readonly retryForMs = 30_000) {}

  write(letter: DeadLetter): void {
    if (this.failure !== null) throw this.failure;
    const subject = this.cluster.names.deadSubject(this.partition);
    const msgID = `${this.partition}:${letter.messageId ?? `n${this.counter++}`}`;
    const data = JSON.stringify(letter);
    const deadline = Date.now() + this.retryForMs;
    const publish = async (): Promise<void> => {
      for (let attempt = 0; ; attempt++) {
        try {
          await this.cluster.js.publish(subject, data, { msgID, timeout: 5000 });
          return;
        } catch (error) {
          if (Date.now() >= deadline || this.cluster.nc.isClosed()) {
            this.failure ??= new StreamgradError('SG_ERR_SOURCE', `dead letter to ${subject}: ${error instanceof Error ? error.message : String(error)}`, 'deadLetters', { cause: error });
            return;
          }
          await new Promise((r) => setTimeout(r, Math.min(1000, 50 * 2 ** attempt)));
        }
      }
    };
    const p = publish().finally(() => this.pending.delete(p));
    this.pending.add(p);
  }

  /** Resolves once every letter written so far is stored; rejects when one could not be. */
  async flush(): Promise<void> {
    await Promise.all([...this.pending]);
    if (this.failure !== null) throw this.failure;
  }

  close(): Promise<void> {
    return this.flush();
  }
}
