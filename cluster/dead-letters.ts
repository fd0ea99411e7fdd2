import type { DeadLetter, DeadLetterSink } from '../core/dead-letter.ts';
import { StreamgradError } from '../core/errors.ts';
import type { Cluster } from './open.ts';

/** A record's place in its partition: batch message `seq`, line `line` (a dead letter's `messageId` `SEQ:LINE`). */
interface Place {
  readonly seq: number;
  readonly line: number;
}

function placeOf(messageId: string | undefined): Place | null {
  const match = messageId === undefined ? null : /^(\d+):(\d+)$/.exec(messageId);
  return match === null ? null : { seq: Number(match[1]), line: Number(match[2]) };
}

/**
 * Dead letters of one partition, published to the cluster's dead-letter stream (subject
 * `sg.NAME.dead.P`), one JSON message each, in the local format (`DeadLetter`). `flush`
 * waits for every acknowledgement: a worker flushes before each commit, so a commit never
 * covers a rejection that is lost.
 *
 * **Once each, across failovers and restarts.** A new owner reads again the records after
 * the last commit and rejects the bad ones again. Their message id is the record's own
 * (`P:SEQ:LINE`), which JetStream de-duplicates within its window only; past it (a worker
 * restarted after 2 minutes) they were stored twice. So letters are published one after
 * another, in record order (the stream holds them in that order, with no gap before the
 * last), and `open` reads the partition's last stored letter: a letter of a record at or
 * before it is already stored and is skipped (`skipped`), whatever the window.
 *
 * @example const letters = await ClusterDeadLetters.open(cluster, 3);
 */
export class ClusterDeadLetters implements DeadLetterSink {
  /** Letters not written because an earlier owner stored them already. */
  skipped = 0;
  private chain: Promise<void> = Promise.resolve();
  private failure: unknown = null;
  private counter = 0;

  constructor(private readonly cluster: Cluster, private readonly partition: number, private readonly retryForMs = 30_000, private readonly stored: Place | null = null) {}

  /** The sink of `partition`, knowing its last stored letter (so that none is stored twice). */
  static async open(cluster: Cluster, partition: number, retryForMs = 30_000): Promise<ClusterDeadLetters> {
    let last: Place | null = null;
    try {
      const msg = await cluster.jsm.streams.getMessage(cluster.names.deadStream, { last_by_subj: cluster.names.deadSubject(partition) });
      if (msg !== null) last = placeOf((JSON.parse(msg.string()) as Partial<DeadLetter>).messageId);
    } catch {
      // none stored yet (or not a letter: then the message ids de-duplicate within the window, as before)
    }
    return new ClusterDeadLetters(cluster, partition, retryForMs, last);
  }

  write(letter: DeadLetter): void {
    if (this.failure !== null) throw this.failure;
    const place = placeOf(letter.messageId);
    const stored = this.stored;
    if (place !== null && stored !== null && (place.seq < stored.seq || (place.seq === stored.seq && place.line <= stored.line))) {
      this.skipped++;
      return;
    }
    const subject = this.cluster.names.deadSubject(this.partition);
    const msgID = `${this.partition}:${letter.messageId ?? `n${this.counter++}`}`;
    const data = JSON.stringify(letter);
    const publish = async (): Promise<void> => {
      if (this.failure !== null) return; // a letter before it was lost: the run fails at its next flush
      const deadline = Date.now() + this.retryForMs;
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
    // one after another: the stream holds them in record order, which `open` relies on
    this.chain = this.chain.then(publish);
  }

  /** Resolves once every letter written so far is stored; rejects when one could not be. */
  async flush(): Promise<void> {
    await this.chain;
    if (this.failure !== null) throw this.failure;
  }

  close(): Promise<void> {
    return this.flush();
  }
}
