import { createHash, randomBytes } from 'node:crypto';
import { connect as connectClient, type IClientOptions, type IConnackPacket, type IPublishPacket, type MqttClient } from 'mqtt';
import { concat, defer, from, type Observable, Subject } from 'rxjs';
import { requireConfig, StreamgradError } from '../core/errors.ts';
import type { IngestRecord } from '../core/record.ts';
import type { SourceNotice } from '../pipeline/run.ts';
import { BoundedQueue, type BoundedQueueOptions, type QueueStats } from './bounded-queue.ts';
import { compileTopicFilters, topicFiltersOverlap } from './topic-filter.ts';

/** Options of the MQTT source: broker URL, topics, QoS, queue and payload limit. */
export interface MqttSourceOptions {
  /** Broker URL, e.g. `mqtt://127.0.0.1:1883`. */
  readonly url: string;
  /**
   * Topic filters to subscribe to (`sensors/+/kinetics`, `lab/#`). Filters may overlap
   * (`lab/#` and `lab/+/temp`): a message both match is taken once (MQTT 5), or they are
   * refused (`SG_ERR_CONFIG`) over MQTT 3.1.1 or by a broker whose CONNACK says it has no
   * Subscription Identifiers.
   */
  readonly topics: string | readonly string[];
  /** Subscription QoS (default 1: at least once). */
  readonly qos?: 0 | 1 | 2;
  /** The queue between the broker and training (default capacity 1024, `drop-oldest`). */
  readonly queue?: BoundedQueueOptions;
  /** Largest payload taken, in bytes (default 64 KiB); a larger one is rejected. */
  readonly maxPayload?: number;
  /**
   * The MQTT client id: the name of the session the broker keeps for this subscriber.
   * Give a stable one (the CLI derives it from the checkpoint folder) so that a restarted
   * trainer resumes its session and receives what was published while it was down. The
   * session keeps its subscriptions too: a restart with other `topics` skips and reports
   * what a filter of an earlier run still brings (`stale-subscription`, see `MqttSource`).
   * Default: a random `sg-…` id, whose session lives as long as this source (it is
   * ended on `close()`).
   */
  readonly clientId?: string;
  /**
   * Keep a persistent session (default true): MQTT 5, Clean Start off, a session expiry
   * of `sessionExpiry`. The broker then keeps the subscription and queues QoS ≥ 1
   * messages while this client is away (a broker restart with persistence on, a network
   * drop, a trainer restart with the same `clientId`). False: a clean session on every
   * connection (MQTT 5, Clean Start on, no session expiry), and whatever is published
   * while disconnected is lost; against a broker that refuses MQTT 5 it falls back to
   * MQTT 3.1.1 (a `protocol-fallback` notice), which a persistent session cannot.
   */
  readonly persistentSession?: boolean;
  /** Seconds the broker keeps a persistent session after a disconnect (default 3600). */
  readonly sessionExpiry?: number;
  /**
   * More client options (credentials, timeouts, `reconnectPeriod`) passed to mqtt.js. A
   * `protocolVersion` given here is kept as asked: no fallback from 5, and 3 or 4 (MQTT
   * 3.1/3.1.1) without the retained-copy and overlap rules (see `MqttSource`).
   */
  readonly client?: IClientOptions;
}

/**
 * A client id that stays the same for the same `seed` (a checkpoint folder and run name):
 * `sg-` and 20 hex digits of its SHA-256 (23 characters, what every broker must accept).
 * A trainer restarted on the same folder then resumes its session.
 */
export function stableClientId(seed: string): string {
  return `sg-${createHash('sha256').update(seed, 'utf8').digest('hex').slice(0, 20)}`;
}

/** Whether `id` can be an MQTT client id here: 1 to 128 printable ASCII characters, no spaces. */
export function isClientId(id: unknown): id is string {
  return typeof id === 'string' && /^[\x21-\x7e]{1,128}$/.test(id);
}

/** Counters of an MQTT source: the queue's, and what the connection went through. */
export interface MqttStats extends QueueStats {
  /** Messages received from the broker (duplicates included). */
  readonly received: number;
  /** Redelivered copies of messages already queued (QoS 1 after a reconnect): acknowledged, not queued again. */
  readonly duplicates: number;
  /** Retained messages sent again on a new subscription after the broker lost the session (or on a clean session's reconnection), each the one this source last took on its topic: acknowledged, not queued again. */
  readonly retainedCopies: number;
  /** Copies of a message that matched more than one of this source's topic filters (one per subscription): acknowledged, not queued again. */
  readonly overlapCopies: number;
  /** Messages on a topic none of this source's filters match (a subscription the session kept from an earlier run under the client id): acknowledged, not queued. */
  readonly unsubscribedMessages: number;
  /** Times the connection to the broker was lost. */
  readonly disconnects: number;
  /** Times it came back. */
  readonly reconnects: number;
  /** Reconnections on which the broker no longer had the session: what was published meanwhile is lost, uncounted. */
  readonly sessionsLost: number;
}

const utf8 = new TextDecoder('utf-8', { fatal: true });

/**
 * An MQTT subscription as a live source of records (mqtt.js client). Each message's
 * payload is one JSON value (a positional `{x, y}` sample or a named record for a
 * `FeatureMap`); its origin is the topic and a message id `topic#n` (n counts the
 * messages this source queued, from 1). A payload that is not UTF-8 JSON becomes an
 * `SG_ERR_BAD_JSON` record, one over `maxPayload` an `SG_ERR_TYPE` record.
 *
 * **Delivery** (QoS 1, the default): a message is acknowledged (PUBACK) only once it is
 * in the `BoundedQueue` (RELIABILITY 29), and the session is persistent (MQTT 5, Clean
 * Start off, `sessionExpiry`), so a broker restart (with its persistence on), a network
 * drop or a trainer restart with the same `clientId` loses nothing the broker holds:
 * unacknowledged and newly published messages are delivered on reconnection. With the
 * `block` policy a full queue holds back the PUBACK of the message in hand, mqtt.js
 * reads no further packet until then, and the broker keeps the rest — up to its own
 * limit (Mosquitto's `max_queued_messages`, 1000 by default), past which *the broker*
 * drops messages without telling the subscriber. A redelivered copy (DUP flag, the same
 * packet id, topic and payload as a message already queued) is acknowledged and counted
 * in `duplicates`, not trained twice.
 *
 * **Retained messages** are taken once, however they first came: a new subscription gets
 * each topic's retained message (the first run trains it), and a resumed session subscribes
 * with Retain Handling 1 (MQTT 5: retained messages only for a new subscription), so a
 * restart with the same `clientId` does not train them again. When the broker lost the
 * session, or on every reconnection of a clean session (`persistentSession: false`, or QoS
 * 0: MQTT 5 with Clean Start on, so each connection's subscriptions are new), mqtt.js
 * subscribes again and the broker sends each topic's retained message again, flagged
 * retained; the copy of one this source took already is acknowledged and counted in
 * `retainedCopies`. Which one that is, it knows from Retain As Published (MQTT 5,
 * subscription option `rap`): a message published with retain while we are subscribed keeps
 * its flag, so this source remembers, per topic, the last message it took that the broker
 * keeps as retained (the broker keeps one per topic), for up to 4,096 topics, the least
 * recently retained forgotten first. The rule: a message flagged retained
 * is a copy when the broker had no session on this connection (its subscriptions are new),
 * it is the first message flagged retained on its topic since, and its payload is that of
 * the retained message last taken on the topic. So a sensor that retains the same value
 * twice while we are subscribed is taken twice, and so is a retained message on a resumed
 * session (queued while we were away). What is taken for a copy although new: a retained
 * message that replaced the broker's while the session was lost with the very same payload
 * (no subscriber can tell them apart), and — when the broker no longer had the topic's
 * retained message (cleared or expired meanwhile, or a broker restarted without
 * persistence) — the first one retained on it after the new subscription if its payload is
 * the one last taken. Not covered: a restart whose session the broker lost (this memory is
 * the process's), and an MQTT 3.1.1 connection — a clean session's fallback when the broker
 * refuses MQTT 5 at CONNECT (CONNACK "unacceptable protocol version"; a `protocol-fallback`
 * notice says so), or `client.protocolVersion` 3 or 4 — which has no Retain As Published,
 * so there a retained message that came live is taken again on each reconnection.
 *
 * **Which subscription brought a message**: over MQTT 5 each filter is subscribed on its
 * own, with a Subscription Identifier made from its text (`subscriptionIdsOf`: the same in
 * every run; mqtt.js subscribes again with it when a session is lost), and every message
 * says which subscriptions brought it. With overlapping filters (`lab/#` and `lab/+/temp`)
 * a broker may deliver a message once per subscription it matches (Mosquitto 2 does): of
 * the copies only the one that carries the identifier of the first of `topics` that matches
 * its topic (`compileTopicFilters`: `+`, `#`, `$` topics) is taken; the others are
 * acknowledged and counted in `overlapCopies`. A message that carries no identifier (queued
 * under a subscription an older version made) is taken. Over MQTT 3.1.1, or with a broker
 * without Subscription Identifiers, copies cannot be told apart: overlapping filters are
 * refused at connect (`SG_ERR_CONFIG` naming both). The same filter given twice is
 * subscribed once.
 *
 * **Subscriptions the session kept**: the broker keeps a persistent session's subscriptions,
 * and MQTT has no request that lists them. A trainer restarted under the same `clientId` with
 * other `topics` (first `plant/+/temp`, then `plant/+/hum`) still has the old subscription,
 * and its messages still come. A message whose topic none of this source's filters match
 * (`compileTopicFilters`), or, over MQTT 5, that came only by a subscription with none of this
 * run's identifiers (an old `plant/#` brings a copy of what the new `plant/+/hum` brings), is
 * acknowledged, never queued, and counted in `unsubscribedMessages`;
 * the first one on each topic (the first 100 topics; the rest are only counted) is a
 * `stale-subscription` notice naming the topic and what to do: another `clientId`, or one
 * connection with `persistentSession: false` (a clean start ends the session and its
 * subscriptions), or unsubscribing the old filter under this id. The source does not
 * unsubscribe by itself: it knows the message's topic, not the filter that brought it.
 *
 * What it cannot promise, and reports: every lost connection and every reconnection
 * is a notice on `notices` (`disconnected`, `reconnected`); a reconnection on which the
 * broker no longer has the session (`session-lost`: broker restarted without
 * persistence, or the session expired) means messages published meanwhile are lost,
 * uncountably. Messages acknowledged but not yet trained (at most the queue) are lost
 * if the trainer dies; a resumed run also loses those trained after its last checkpoint.
 *
 * @example
 * const mqtt = await MqttSource.connect({ url: 'mqtt://127.0.0.1:1883', topics: 'lab/#', clientId: 'lab-trainer', queue: { policy: 'block' } });
 * mqtt.notices.subscribe((n) => console.warn(n.message));
 * new TrainingRun({ id: 'lab', trainer, source: mqtt, prepare: validateRecords({ shape, features }), notices: mqtt.notices });
 */
export class MqttSource implements AsyncIterable<IngestRecord> {
  /** Messages received (duplicates included). */
  received = 0;
  /** Redelivered copies recognised and not queued again. */
  duplicates = 0;
  disconnects = 0;
  reconnects = 0;
  sessionsLost = 0;
  /**
   * Connection notices: `disconnected`, `reconnected`, `session-lost` as they happen, and
   * first, to every subscriber, `protocol-fallback` when the broker refused MQTT 5 and
   * `resumed` when the first connection found a session; `stale-subscription` (with `topic`,
   * `clientId`, `filters`) at the first message on a topic none of the filters match.
   */
  readonly notices: Observable<SourceNotice>;
  private readonly noticeSubject = new Subject<SourceNotice>();
  private readonly initialNotices: SourceNotice[] = [];
  private closing: Promise<void> | null = null;
  private queued = 0;
  private connected = false;
  private downSince = 0;
  private lastError = '';
  private readonly redeliveries = new Redeliveries();
  /** The retained message last taken on each topic: its copy sent on a new subscription (the session was lost) is not taken twice. */
  private readonly retained = new RetainedSeen();
  /** Retained copies of messages taken already (the broker lost the session and sent them again): acknowledged, not queued. */
  retainedCopies = 0;
  /**
   * Each filter's MQTT 5 Subscription Identifier (`subscriptionIdsOf`), when the connection
   * has them: which subscription brought a message, so that a copy by another of our filters
   * or by a subscription the session kept from an earlier run is known (`copyKind`); null
   * over MQTT 3.1.1 or with a broker without them.
   */
  private subscriptionIds: readonly number[] | null = null;
  /** Copies of a message that matched several of this source's filters, beyond the one taken: acknowledged, not queued. */
  overlapCopies = 0;
  /** The index of the first of `topics` a topic matches, or -1 (that first one decides whose copy is taken: `copyKind`); the topic is split once a message. */
  private readonly firstFilter: (topic: string) => number;
  /** Messages on a topic none of the filters match (a subscription the session kept): acknowledged, not queued. */
  unsubscribedMessages = 0;
  /** Topics named in a `stale-subscription` notice so far (at most `STALE_TOPICS_NAMED`). */
  private readonly staleTopics = new Set<string>();
  /** Network connections so far, counted at their CONNACK: in order with the packets that follow (mqtt.js emits `connect` later). */
  private connection = 0;
  /** The broker had no session at this connection's CONNACK: its subscriptions are new, so each topic's retained message comes (again). */
  private subscribedAnew = false;
  /** The mqtt.js client of the connection attempt that succeeded (the MQTT 3.1.1 one after a fallback). */
  private mqtt!: MqttClient;

  private constructor(
    readonly queue: BoundedQueue<IngestRecord>,
    readonly url: string,
    /** The client id, the session's name at the broker. */
    readonly clientId: string,
    /** The topic filters this source subscribes to, each once. */
    readonly topics: readonly string[],
    private readonly persistent: boolean,
    /** The id was made up here: nobody will resume the session, so `close()` ends it. */
    private readonly ephemeral: boolean,
    private readonly maxPayload: number,
  ) {
    this.notices = defer(() => concat(from(this.initialNotices.slice()), this.noticeSubject));
    this.firstFilter = compileTopicFilters(topics);
  }

  /** The mqtt.js client (its `options.protocolVersion` says which MQTT it speaks). */
  get client(): MqttClient {
    return this.mqtt;
  }

  /** Connects, subscribes to the topic filters and starts queueing; fails with `SG_ERR_SOURCE` when the broker cannot be reached or refuses. */
  static async connect(options: MqttSourceOptions): Promise<MqttSource> {
    const { url, qos = 1, maxPayload = 64 * 1024, persistentSession = true, sessionExpiry = 3600 } = options;
    const given = typeof options.topics === 'string' ? [options.topics] : [...options.topics];
    requireConfig(typeof url === 'string' && url !== '', 'url', 'must be a broker URL such as mqtt://127.0.0.1:1883');
    requireConfig(given.length > 0 && given.every((t) => typeof t === 'string' && t !== ''), 'topics', 'must be one or more topic filters');
    requireConfig(qos === 0 || qos === 1 || qos === 2, 'qos', `must be 0, 1 or 2, got ${String(qos)}`);
    requireConfig(Number.isSafeInteger(maxPayload) && maxPayload >= 1, 'maxPayload', `must be an integer ≥ 1, got ${maxPayload}`);
    requireConfig(options.clientId === undefined || isClientId(options.clientId), 'clientId', `must be 1 to 128 printable ASCII characters without spaces, got ${JSON.stringify(options.clientId)}`);
    requireConfig(Number.isSafeInteger(sessionExpiry) && sessionExpiry >= 1 && sessionExpiry <= 0xffffffff, 'sessionExpiry', `must be a whole number of seconds ≥ 1, got ${String(sessionExpiry)}`);
    // the same filter twice would be one subscription, its identifier the second's
    const topics = [...new Set(given)];
    const overlapping = overlappingPair(topics);
    const asked = options.client?.protocolVersion;
    if (asked !== undefined && asked !== 5) refuseOverlap(overlapping, `MQTT ${asked === 4 ? '3.1.1' : '3.1'} (client.protocolVersion ${asked}) has no Subscription Identifiers`);
    const queue = new BoundedQueue<IngestRecord>(options.queue);
    const clientId = options.clientId ?? `sg-${randomBytes(10).toString('hex')}`;
    const persistent = persistentSession && qos > 0;
    // a clean session speaks MQTT 5 too, for Retain As Published and Subscription Identifiers;
    // without a Session Expiry Interval its session ends with the connection
    const session: IClientOptions = persistent
      ? { protocolVersion: 5, clean: false, properties: { sessionExpiryInterval: sessionExpiry } }
      : { protocolVersion: 5, clean: true };
    const clientOptions: IClientOptions = { connectTimeout: 10_000, reconnectPeriod: 500, ...session, ...options.client, clientId };
    const source = new MqttSource(queue, url, clientId, topics, persistent, options.clientId === undefined, maxPayload);
    let first: IConnackPacket;
    try {
      try {
        first = await source.dial(clientOptions);
      } catch (error) {
        // a broker that speaks MQTT 3.1.1 only answers a v5 CONNECT with "unacceptable protocol version"
        if (!refusedMqtt5(error) || asked !== undefined) throw error;
        if (persistent) throw new Error(`${error instanceof Error ? error.message : String(error)}: the broker speaks MQTT 3.1.1 only, and a persistent session needs MQTT 5 (session expiry, Retain Handling); a clean session (persistentSession: false, or QoS 0) falls back to 3.1.1`, { cause: error });
        refuseOverlap(overlapping, 'the broker refused MQTT 5, and MQTT 3.1.1 has no Subscription Identifiers');
        first = await source.dial({ ...clientOptions, protocolVersion: 4 });
        source.initialNotices.push({ kind: 'protocol-fallback', message: `mqtt ${url}: the broker refused MQTT 5; connected with MQTT 3.1.1, which has no Retain As Published: a retained message that comes live is taken again after each reconnection` });
      }
    } catch (error) {
      if (error instanceof StreamgradError) throw error;
      throw new StreamgradError('SG_ERR_SOURCE', `mqtt ${url}: cannot connect: ${error instanceof Error ? error.message : String(error)}`, 'mqtt', { cause: error });
    }
    const { client } = source;
    if (client.options.protocolVersion === 5 && first.properties?.subscriptionIdentifiersAvailable !== false) {
      source.subscriptionIds = subscriptionIdsOf(topics);
    } else if (overlapping !== null) {
      await client.endAsync(true).catch(() => undefined);
      refuseOverlap(overlapping, 'the broker has no Subscription Identifiers');
    }
    source.connected = true;
    source.watch();
    try {
      // retained messages: MQTT 5's Retain Handling 1 sends them only when the subscription
      // is new, so a resumed session (a restart with the same client id, `--resume`) does
      // not take the copies it trained on before again (they came on every subscribe).
      // Retain As Published keeps the retain flag on messages forwarded live, so that the
      // copy of one that came live is known when a new subscription (a lost session, a clean
      // session's reconnection) brings it again (mqtt.js subscribes again with these options,
      // and with each filter's Subscription Identifier; MQTT 3.1.1 has none and ignores them)
      const subscription = { qos, rap: true, ...(persistent && { rh: 1 as const }) };
      const ids = source.subscriptionIds;
      const granted = ids === null
        ? await client.subscribeAsync(topics, subscription)
        // the identifier is a property of the SUBSCRIBE packet: one packet per filter
        : (await Promise.all(topics.map((topic, i) => client.subscribeAsync(topic, { ...subscription, properties: { subscriptionIdentifier: ids[i] } })))).flat();
      const refused = granted.filter((g) => g.qos === 128 || g.qos > 2);
      if (refused.length > 0) throw new Error(`subscription refused for ${refused.map((g) => g.topic).join(', ')}`);
    } catch (error) {
      await client.endAsync(true).catch(() => undefined);
      throw new StreamgradError('SG_ERR_SOURCE', `mqtt ${url}: cannot subscribe: ${error instanceof Error ? error.message : String(error)}`, 'mqtt', { cause: error });
    }
    if (first.sessionPresent && persistent) {
      source.initialNotices.push({ kind: 'resumed', message: `mqtt ${url}: resumed session ${clientId}: messages the broker kept for it follow` });
    }
    return source;
  }

  /**
   * One connection attempt with `options`: a new mqtt.js client, which becomes `client`,
   * resolving with its first CONNACK; on failure the client is ended and the error thrown.
   */
  private async dial(options: IClientOptions): Promise<IConnackPacket> {
    // the message handler must be in place before the CONNACK: a resumed session delivers at once
    const client = connectClient(this.url, options);
    this.mqtt = client;
    client.handleMessage = (packet, done) => this.onMessage(packet, done);
    client.on('packetreceive', (packet) => {
      if (packet.cmd !== 'connack') return;
      this.connection++;
      this.subscribedAnew = packet.sessionPresent !== true;
    });
    try {
      return await new Promise<IConnackPacket>((resolve, reject) => {
        // a broker that closes the connection (or lets connectTimeout pass) before its CONNACK
        // makes mqtt.js reconnect forever without an error: the first connection fails instead
        const closed = () => reject(new Error(`the connection closed before the broker answered CONNECT (within connectTimeout, ${options.connectTimeout ?? 30_000} ms)`));
        client.once('connect', (connack) => {
          client.off('error', reject);
          client.off('close', closed);
          resolve(connack);
        });
        client.once('error', reject);
        client.once('close', closed);
      });
    } catch (error) {
      client.on('error', () => undefined); // a late socket error while ending must not go unheard
      await client.endAsync(true).catch(() => undefined);
      throw error;
    }
  }

  get stats(): MqttStats {
    return { ...this.queue.stats, received: this.received, duplicates: this.duplicates, retainedCopies: this.retainedCopies, overlapCopies: this.overlapCopies, unsubscribedMessages: this.unsubscribedMessages, disconnects: this.disconnects, reconnects: this.reconnects, sessionsLost: this.sessionsLost };
  }

  [Symbol.asyncIterator](): AsyncIterator<IngestRecord> {
    const inner = this.queue[Symbol.asyncIterator]();
    return {
      next: () => inner.next(),
      return: async () => {
        await this.close();
        return { done: true, value: undefined };
      },
    };
  }

  /**
   * Disconnects; the iterator ends after the queued records. Messages that arrive while
   * closing are left unacknowledged, so a persistent session keeps them for the next
   * connection under the same client id (a made-up id's session is ended instead).
   */
  close(): Promise<void> {
    this.closing ??= (async () => {
      this.queue.end();
      const ending = this.persistent && this.ephemeral ? { properties: { sessionExpiryInterval: 0 } } : {};
      await new Promise<void>((resolve) => {
        const timer = setTimeout(() => this.client.end(true, () => resolve()), 2000);
        this.client.end(false, ending, () => {
          clearTimeout(timer);
          resolve();
        });
      });
      this.noticeSubject.complete();
    })();
    return this.closing;
  }

  /** Follows the connection: every loss and return is a notice. */
  private watch(): void {
    const { client, url } = this;
    client.on('error', (error) => {
      this.lastError = error.message;
      // refused credentials and protocol errors end the source; transient socket errors are retried by mqtt.js
      if (typeof (error as { code?: unknown }).code === 'number') {
        this.queue.fail(new StreamgradError('SG_ERR_SOURCE', `mqtt ${url}: ${error.message}`, 'mqtt', { cause: error }));
      }
    });
    client.on('disconnect', (packet) => {
      this.lastError = `the broker disconnected${packet.reasonCode !== undefined ? ` (reason code ${packet.reasonCode})` : ''}`;
    });
    client.on('close', () => {
      if (!this.connected || this.closing !== null) return;
      this.connected = false;
      this.disconnects++;
      this.downSince = performance.now();
      const why = this.lastError === '' ? 'connection closed' : this.lastError;
      this.notify({ kind: 'disconnected', message: `mqtt ${url}: disconnected (${why}); reconnecting`, reason: why });
    });
    client.on('connect', (connack) => {
      if (this.connected) return;
      this.connected = true;
      this.reconnects++;
      this.lastError = '';
      const downMs = Math.round(performance.now() - this.downSince);
      if (this.persistent && !connack.sessionPresent) {
        this.sessionsLost++;
        this.notify({ kind: 'session-lost', message: `mqtt ${url}: reconnected after ${downMs} ms, but the broker no longer had session ${this.clientId}: messages published meanwhile are lost (broker persistence off, or the session expired)`, downMs, loss: true });
      } else {
        this.notify({ kind: 'reconnected', message: `mqtt ${url}: reconnected after ${downMs} ms${this.persistent ? ', session resumed' : ' (clean session: messages published meanwhile are lost)'}`, downMs, ...(!this.persistent && { loss: true }) });
      }
    });
  }

  private notify(notice: SourceNotice): void {
    this.noticeSubject.next(notice);
  }

  /**
   * The first message on `topic` that a subscription this run did not make brought (none of
   * the filters match it, or, `matched`, one does but the message came by another
   * subscription of the session) is a `stale-subscription` notice; the first
   * `STALE_TOPICS_NAMED` topics are named, a bounded memory.
   */
  private noticeStale(topic: string, matched: boolean): void {
    if (this.staleTopics.has(topic) || this.staleTopics.size >= STALE_TOPICS_NAMED) return;
    this.staleTopics.add(topic);
    const filters = this.topics.map((t) => JSON.stringify(t)).join(', ');
    const last = this.staleTopics.size === STALE_TOPICS_NAMED ? `; the first ${STALE_TOPICS_NAMED} topics are named, more are only counted` : '';
    this.notify({
      kind: 'stale-subscription',
      message: `mqtt ${this.url}: session ${this.clientId} still holds a subscription this run did not ask for: a message on ${topic}, ${matched ? `which came by that subscription (its copy by this run's filters is taken)` : `which none of its filters (${filters}) match`}, is skipped (counted in unsubscribedMessages; not noticed again for this topic${last}). The broker keeps a session's subscriptions across restarts; to be rid of it, start under another client id (clientId, --mqtt-client-id), or connect once with persistentSession: false (a clean start ends the session and its subscriptions), or unsubscribe the old filter under this client id`,
      topic, clientId: this.clientId, filters: this.topics,
    });
  }

  /**
   * One PUBLISH from the broker; `done` sends its PUBACK. Called by mqtt.js one packet at
   * a time: while `done` is held, no further packet of the connection is read.
   */
  private onMessage(packet: IPublishPacket, done: (error?: Error) => void): void {
    this.received++;
    const filter = this.firstFilter(packet.topic);
    if (filter < 0) {
      // a subscription the session kept from an earlier run under this id, with other filters:
      // the user no longer asks for it, so it is not trained (first, before any rule that takes)
      this.unsubscribedMessages++;
      this.noticeStale(packet.topic, false);
      done();
      return;
    }
    const copy = this.subscriptionIds === null ? null : copyKind(packet, this.subscriptionIds, filter);
    if (copy === 'overlap') {
      // the same message by another of our subscriptions: first, so that the rules below see one copy
      this.overlapCopies++;
      done();
      return;
    }
    if (copy === 'stale') {
      // a topic we ask for, but this copy came by a subscription the session kept from an
      // earlier run (one that overlaps ours): ours brings the message too
      this.unsubscribedMessages++;
      this.noticeStale(packet.topic, true);
      done();
      return;
    }
    const payload = typeof packet.payload === 'string' ? Buffer.from(packet.payload) : packet.payload;
    if (packet.qos > 0 && this.redeliveries.isCopy(packet, payload, this.connection)) {
      this.duplicates++;
      done();
      return;
    }
    if (packet.retain && this.retained.isCopy(packet.topic, payload, this.connection, this.subscribedAnew)) {
      // a retained message this source took already (as a retained copy or live), sent again
      // because the broker lost the session (a new subscription gets each topic's retained message)
      this.retainedCopies++;
      done();
      return;
    }
    const take = () => {
      // closing: leave it unacknowledged, so that the session keeps it for the next connection
      // under this id (a made-up id's session ends with us: then it is dropped and counted)
      if (this.closing !== null && this.persistent && !this.ephemeral && packet.qos > 0) return;
      this.queue.push(toRecord(packet.topic, ++this.queued, payload, this.maxPayload));
      done();
    };
    if (this.queue.policy === 'block' && this.queue.full) {
      // hold this message's PUBACK (and so every later packet) until training makes room
      this.queue.room().then(take, () => done());
      return;
    }
    take();
  }
}

/**
 * Recognises a QoS ≥ 1 message the broker sends again after a reconnect because our
 * PUBACK did not reach it: the DUP flag, and the same packet id, topic and payload as
 * one of the last `capacity` messages received, on an earlier connection (a broker
 * resends only on a new one). A broker reuses a packet id only once the message under
 * it was acknowledged, so such a copy is that message again — unless the broker gave
 * the id at once to a new message with the very same topic and payload and that one was
 * lost in the disconnection (a broker that reuses ids at once, two identical readings):
 * the one case where a message would be taken for a copy.
 */
class Redeliveries {
  private readonly seen = new Map<number, { readonly connection: number; readonly digest: string }>();

  constructor(private readonly capacity = 4096) {}

  /** `connection` numbers the network connection the packet came on. */
  isCopy(packet: IPublishPacket, payload: Buffer, connection: number): boolean {
    const id = packet.messageId;
    if (id === undefined) return false;
    const digest = createHash('sha256').update(packet.topic).update('\u0000').update(payload).digest('base64');
    const before = this.seen.get(id);
    const copy = packet.dup && before !== undefined && before.connection < connection && before.digest === digest;
    this.seen.delete(id);
    this.seen.set(id, { connection, digest });
    if (this.seen.size > this.capacity) this.seen.delete(this.seen.keys().next().value as number);
    return copy;
  }
}

/**
 * Each topic filter's Subscription Identifier, from its text (FNV-1a, 1 to 2^28 − 1, the
 * protocol's range): the same filter has the same identifier in every run, so a message a
 * resumed session queued under it is known as that filter's, and a subscription the session
 * kept from a run with other filters is known as not ours. Two filters of one list that
 * hash alike (1 in 2^28 a pair) take the next free identifier, in list order.
 *
 * @example subscriptionIdsOf(['lab/#', 'lab/+/temp']) // two distinct numbers, the same every run
 */
export function subscriptionIdsOf(topics: readonly string[]): number[] {
  const max = 0x0fffffff;
  const ids: number[] = [];
  for (const topic of topics) {
    let h = 0x811c9dc5;
    for (let i = 0; i < topic.length; i++) h = Math.imul(h ^ topic.charCodeAt(i), 0x01000193);
    let id = ((h >>> 0) % max) + 1;
    while (ids.includes(id)) id = (id % max) + 1;
    ids.push(id);
  }
  return ids;
}

/**
 * Which copy `packet` is, by the Subscription Identifiers it carries: a broker sends a message
 * once per subscription it matches (each copy with that subscription's identifier), or once
 * with all their identifiers ([MQTT-3.3.4-4], [MQTT-3.3.4-5]). The copy taken (null) is the
 * one that carries `ids[first]`, the identifier of the lowest-placed filter that matches its
 * topic, so exactly one copy qualifies; `overlap`, a copy by another of this run's filters;
 * `stale`, a copy by a subscription that is none of this run's (the session kept it from an
 * earlier run). A message with no identifier (queued under a subscription made by a version
 * that gave none) is taken.
 */
function copyKind(packet: IPublishPacket, ids: readonly number[], first: number): 'overlap' | 'stale' | null {
  const carried = packet.properties?.subscriptionIdentifier;
  if (carried === undefined) return null;
  const by = Array.isArray(carried) ? carried : [carried];
  if (by.includes(ids[first])) return null;
  return by.some((id) => ids.includes(id)) ? 'overlap' : 'stale';
}

/** The first two of `topics` that some topic matches both (as `[earlier, later]`), or null. */
function overlappingPair(topics: readonly string[]): readonly [string, string] | null {
  for (let j = 1; j < topics.length; j++) {
    for (let i = 0; i < j; i++) if (topicFiltersOverlap(topics[i], topics[j])) return [topics[i], topics[j]];
  }
  return null;
}

/** Throws `SG_ERR_CONFIG` at `topics` when two filters overlap and, `why`, their copies cannot be told apart. */
function refuseOverlap(pair: readonly [string, string] | null, why: string): void {
  if (pair === null) return;
  const [a, b] = pair;
  requireConfig(false, 'topics', `${JSON.stringify(b)} overlaps ${JSON.stringify(a)}: a message on a topic both match may come once per subscription, and ${why} to tell the copies apart; give filters no topic matches both (e.g. one of them alone), or use a broker that speaks MQTT 5`);
}

/** Whether `error` is a CONNACK that refused the protocol version: 1 in MQTT 3.1.1 (what a 3.1.1-only broker answers a v5 CONNECT), 0x84 in MQTT 5. */
function refusedMqtt5(error: unknown): boolean {
  const code = (error as { code?: unknown } | null)?.code;
  return code === 1 || code === 0x84;
}

function toRecord(topic: string, n: number, payload: Buffer, maxPayload: number): IngestRecord {
  const messageId = `${topic}#${n}`;
  if (payload.length > maxPayload) {
    const origin = { source: 'mqtt', topic, messageId, raw: payload.subarray(0, 256).toString('utf8') };
    return { error: new StreamgradError('SG_ERR_TYPE', `message ${messageId}: payload of ${payload.length} bytes is over the ${maxPayload}-byte limit`, 'payload'), origin };
  }
  let text: string;
  try {
    text = utf8.decode(payload);
  } catch {
    return { error: new StreamgradError('SG_ERR_BAD_JSON', `message ${messageId}: payload is not UTF-8 text`, 'payload'), origin: { source: 'mqtt', topic, messageId, raw: payload.toString('base64') } };
  }
  const origin = { source: 'mqtt', topic, messageId, raw: text };
  try {
    return { value: JSON.parse(text) as unknown, origin };
  } catch (error) {
    return { error: new StreamgradError('SG_ERR_BAD_JSON', `message ${messageId}: ${error instanceof Error ? error.message : String(error)}`, 'payload', { cause: error }), origin };
  }
}

/** Topics an MQTT source names in `stale-subscription` notices; messages on further ones are only counted. */
const STALE_TOPICS_NAMED = 100;

/** Topics whose retained message an MQTT source remembers, to know its copy after a lost session (the least recently retained forgotten first). */
const RETAINED_TOPICS = 4096;

/**
 * What a source knows of the broker's retained messages: for each topic, a digest of the
 * payload of the last message taken on it that was flagged retained — a copy sent on a
 * subscription, or (Retain As Published) one published with retain while we were
 * subscribed — and the connection it came on. The broker keeps one retained message per
 * topic, so that is the broker's, unless another replaced it while the session was lost.
 * An empty payload (which clears the broker's) is remembered too: a copy is never empty.
 *
 * A message flagged retained is a copy of the one taken when the broker had no session on
 * its connection (its subscriptions are new, so the broker sends each topic's retained
 * message, before anything published to the topic after), it is the first flagged retained
 * on its topic on that connection (any later one was published with retain since), and
 * its payload is the one last taken. Bounded: at most `capacity` topics, each a topic name
 * and a 44-character digest; the least recently retained topic is forgotten first, and the
 * copy of a forgotten topic's message is taken again.
 */
class RetainedSeen {
  private readonly seen = new Map<string, { readonly digest: string; readonly connection: number }>();

  constructor(private readonly capacity = RETAINED_TOPICS) {}

  /** A message flagged retained on network connection `connection`; `anew`: the broker had no session on it. */
  isCopy(topic: string, payload: Buffer, connection: number, anew: boolean): boolean {
    const digest = createHash('sha256').update(payload).digest('base64');
    const before = this.seen.get(topic);
    const copy = anew && before !== undefined && before.connection < connection && before.digest === digest;
    this.seen.delete(topic);
    this.seen.set(topic, { digest, connection });
    if (this.seen.size > this.capacity) this.seen.delete(this.seen.keys().next().value as string);
    return copy;
  }
}

/** Connects when iteration starts; the pull form of an MQTT subscription. */
export function mqttRecords(options: MqttSourceOptions): AsyncIterable<IngestRecord> {
  return {
    [Symbol.asyncIterator]() {
      let source: MqttSource | null = null;
      let inner: AsyncIterator<IngestRecord> | null = null;
      const connecting = MqttSource.connect(options).then((s) => {
        source = s;
        inner = s[Symbol.asyncIterator]();
        return inner;
      });
      connecting.catch(() => undefined);
      return {
        next: async () => (inner ?? (await connecting)).next(),
        return: async () => {
          await connecting.catch(() => undefined);
          await (source as MqttSource | null)?.close();
          return { done: true, value: undefined };
        },
      };
    },
  };
}

/** An MQTT subscription as an Observable of records; unsubscribing disconnects. */
export function mqtt(options: MqttSourceOptions): Observable<IngestRecord> {
  return defer(() => from(mqttRecords(options)));
}
