import type { ServedRun } from './run-mirror.ts';
import type { Connection, Cursor, Subscription } from './connection.ts';
import type { HistoryOptions } from './history.ts';
import { RunFeed } from './run-feed.ts';

/**
 * Delivers every run's metrics and snapshots to the subscribed connections, latest
 * wins. One timer for the whole server ticks at the highest allowed rate while anyone
 * is subscribed; at each tick a subscription whose period has elapsed gets, per run,
 * the newest metrics (if a step happened since) and the newest parameters/gradients
 * frame (if they changed since). Each frame is encoded once per (run, kind, dtype,
 * version) and the same buffer goes to every client due. Events go out immediately, and
 * are never dropped.
 */
export class Broadcaster {
  readonly feeds = new Map<string, RunFeed>();
  private readonly subscribers = new Set<Connection>();
  private timer: NodeJS.Timeout | null = null;
  private readonly tickMs: number;

  constructor(maxRateHz: number, private readonly history?: HistoryOptions) {
    this.tickMs = Math.max(1, Math.floor(1000 / maxRateHz));
  }

  /** Starts feeding a run's updates to its subscribers. */
  addRun(run: ServedRun): void {
    this.feeds.set(run.id, new RunFeed(run, (feed, data) => this.onEvent(feed, data), this.history));
  }

  removeRun(id: string): void {
    this.feeds.get(id)?.dispose();
    this.feeds.delete(id);
    for (const connection of this.subscribers) {
      connection.subscriptions.delete(id);
      for (const s of connection.subscriptions.values()) s.cursors.delete(id);
      if (connection.subscriptions.size === 0) this.setSubscribed(connection, false);
    }
  }

  /** Adds or removes a connection from the tick's round; the timer runs only while someone is subscribed. */
  setSubscribed(connection: Connection, subscribed: boolean): void {
    if (subscribed) this.subscribers.add(connection);
    else this.subscribers.delete(connection);
    if (this.subscribers.size > 0 && this.timer === null) {
      this.timer = setInterval(() => this.tick(), this.tickMs);
    } else if (this.subscribers.size === 0 && this.timer !== null) {
      clearInterval(this.timer);
      this.timer = null;
    }
  }

  get subscriberCount(): number {
    return this.subscribers.size;
  }

  close(): void {
    for (const feed of this.feeds.values()) feed.dispose();
    this.feeds.clear();
    this.subscribers.clear();
    if (this.timer !== null) clearInterval(this.timer);
    this.timer = null;
  }

  /** One round: every subscription whose period has elapsed gets what changed. Public for tests. */
  tick(now = performance.now()): void {
    for (const connection of this.subscribers) {
      if (connection.checkSlow(now)) continue;
      for (const subscription of connection.subscriptions.values()) {
        // half a tick of slack, so a 10 Hz subscription on a 30 Hz tick does not slip to 7.5 Hz
        if (now + this.tickMs / 2 < subscription.nextDue) continue;
        // keep the cadence, but never owe a burst: a first delivery or one after a stall is followed by a full period
        const next = subscription.nextDue + subscription.periodMs;
        subscription.nextDue = next < now ? now + subscription.periodMs : next;
        connection.corked(() => {
          if (subscription.run === '*') {
            for (const feed of this.feeds.values()) {
              if (!connection.subscriptions.has(feed.id)) this.deliver(connection, subscription, feed);
            }
          } else {
            const feed = this.feeds.get(subscription.run);
            if (feed !== undefined) this.deliver(connection, subscription, feed);
          }
        });
      }
    }
  }

  private deliver(connection: Connection, subscription: Subscription, feed: RunFeed): void {
    let cursor = subscription.cursors.get(feed.id);
    if (cursor === undefined) {
      cursor = { params: -1, grads: -1, metricsStep: -1, predictionsStep: -1, scalars: false } satisfies Cursor;
      subscription.cursors.set(feed.id, cursor);
    }
    const { channels, dtype } = subscription;
    if (channels.has('metrics') && !cursor.scalars) {
      // the whole curve so far, once, before the first metrics (bounded: SCALAR_HISTORY_POINTS);
      // over the buffer cap it is tried again at the next tick, and no metrics go before it
      const scalars = feed.scalarsMessage();
      if (scalars === null || connection.send(scalars, false)) cursor.scalars = true;
    }
    if (channels.has('metrics') && cursor.scalars) {
      const metrics = feed.latestMetrics();
      if (metrics !== null && metrics.step !== cursor.metricsStep && connection.send(metrics.data, false)) cursor.metricsStep = metrics.step;
    }
    if (channels.has('predictions')) {
      const predictions = feed.latestPredictions();
      if (predictions !== null && predictions.step !== cursor.predictionsStep && (predictions.data === null || connection.send(predictions.data, false))) cursor.predictionsStep = predictions.step;
    }
    const version = feed.version;
    if (channels.has('snapshots') && cursor.params !== version) {
      const frame = feed.frame('parameters', dtype);
      // non-finite parameters: the `diverged` event instead, once per version
      if (connection.send(frame ?? feed.divergedEvent(), frame !== null)) cursor.params = version;
    }
    if (channels.has('gradients') && cursor.grads !== version && feed.run.trainer.counters.steps > 0) {
      const frame = feed.frame('gradients', dtype);
      if (frame === null) cursor.grads = version; // a skipped step's gradient: nothing to show
      else if (connection.send(frame, true)) cursor.grads = version;
    }
  }

  private onEvent(feed: RunFeed, data: Buffer): void {
    for (const connection of this.subscribers) {
      const subscription = connection.subscriptions.get(feed.id) ?? connection.subscriptions.get('*');
      if (subscription?.channels.has('events') === true) connection.sendAlways(data);
    }
  }
}
