import { connectAsync, type IClientOptions, type MqttClient } from 'mqtt';
import { defer, from, type Observable } from 'rxjs';
import { requireConfig, StreamgradError } from '../pipeline/errors.ts';
import type { IngestRecord } from '../pipeline/record.ts';
import { BoundedQueue, type BoundedQueueOptions, type QueueStats } from './bounded-queue.ts';

/** Options of the MQTT source: broker URL, topics, QoS, queue and payload limit. */
export interface MqttSourceOptions {
  /** Broker URL, e.g. `mqtt://127.0.0.1:1883`. */
  readonly url: string;
  /** Topic filters to subscribe to (`sensors/+/kinetics`, `lab/#`). */
  readonly topics: string | readonly string[];
  /** Subscription QoS (default 1: at least once). */
  readonly qos?: 0 | 1 | 2;
  /** The queue between the broker and training (default capacity 1024, `drop-oldest`). */
  readonly queue?: BoundedQueueOptions;
  /** Largest payload taken, in bytes (default 64 KiB); a larger one is rejected. */
  readonly maxPayload?: number;
  /** More client options (client id, credentials, `clean`, timeouts) passed to mqtt.js. */
  readonly client?: IClientOptions;
}

const utf8 = new TextDecoder('utf-8', { fatal: true });

/**
 * An MQTT subscription as a live source of records (mqtt.js client). Each message's
 * payload is one JSON value (a positional `{x, y}` sample or a named record for a
 * `FeatureMap`); its origin is the topic and a message id `topic#n` (n counts the
 * messages this source received, from 1). A payload that is not UTF-8 JSON becomes an
 * `SG_ERR_BAD_JSON` record, one over `maxPayload` an `SG_ERR_TYPE` record.
 *
 * Messages go through a `BoundedQueue` (RELIABILITY 29): training pulls from it as fast
 * as it trains, and the queue's policy decides what a burst does. With QoS 1 and the
 * `block` policy nothing is dropped: a full queue holds back the PUBACK of the message
 * in hand, mqtt.js reads no further packet until then, and the broker keeps the rest
 * (mind its `max_queued_messages`). Messages are acknowledged when queued, not when
 * trained: after a crash, queued messages are lost (at most once beyond the queue).
 *
 * @example
 * const mqtt = await MqttSource.connect({ url: 'mqtt://127.0.0.1:1883', topics: 'lab/#', queue: { policy: 'block' } });
 * new TrainingRun({ id: 'lab', trainer, source: mqtt, prepare: validateRecords({ shape, features }) });
 */
export class MqttSource implements AsyncIterable<IngestRecord> {
  /** Messages received. */
  received = 0;
  private closing: Promise<void> | null = null;

  private constructor(readonly client: MqttClient, readonly queue: BoundedQueue<IngestRecord>) {}

  /** Connects, subscribes to the topic filters and starts queueing; fails with `SG_ERR_SOURCE` when the broker cannot be reached or refuses. */
  static async connect(options: MqttSourceOptions): Promise<MqttSource> {
    const { url, qos = 1, maxPayload = 64 * 1024 } = options;
    const topics = typeof options.topics === 'string' ? [options.topics] : [...options.topics];
    requireConfig(typeof url === 'string' && url !== '', 'url', 'must be a broker URL such as mqtt://127.0.0.1:1883');
    requireConfig(topics.length > 0 && topics.every((t) => typeof t === 'string' && t !== ''), 'topics', 'must be one or more topic filters');
    requireConfig(qos === 0 || qos === 1 || qos === 2, 'qos', `must be 0, 1 or 2, got ${String(qos)}`);
    requireConfig(Number.isSafeInteger(maxPayload) && maxPayload >= 1, 'maxPayload', `must be an integer ≥ 1, got ${maxPayload}`);
    const queue = new BoundedQueue<IngestRecord>(options.queue);
    let client: MqttClient;
    try {
      client = await connectAsync(url, { connectTimeout: 10_000, reconnectPeriod: 1000, ...options.client });
    } catch (error) {
      throw new StreamgradError('SG_ERR_SOURCE', `mqtt ${url}: cannot connect: ${error instanceof Error ? error.message : String(error)}`, 'mqtt', { cause: error });
    }
    const source = new MqttSource(client, queue);
    client.on('error', (error) => {
      // refused credentials and protocol errors end the source; transient socket errors are retried by mqtt.js
      if ((error as { code?: unknown }).code !== undefined && typeof (error as { code?: unknown }).code === 'number') {
        queue.fail(new StreamgradError('SG_ERR_SOURCE', `mqtt ${url}: ${error.message}`, 'mqtt', { cause: error }));
      }
    });
    client.handleMessage = (packet, done) => {
      const n = ++source.received;
      const topic = packet.topic;
      const payload = typeof packet.payload === 'string' ? Buffer.from(packet.payload) : packet.payload;
      const record = toRecord(topic, n, payload, maxPayload);
      if (queue.policy === 'block' && queue.full) {
        // hold this message's PUBACK (and so every later packet) until training makes room
        queue.room().then(() => {
          queue.push(record);
          done();
        }, done);
        return;
      }
      queue.push(record);
      done();
    };
    try {
      const granted = await client.subscribeAsync(topics, { qos });
      const refused = granted.filter((g) => g.qos === 128);
      if (refused.length > 0) throw new Error(`subscription refused for ${refused.map((g) => g.topic).join(', ')}`);
    } catch (error) {
      await client.endAsync(true).catch(() => undefined);
      throw new StreamgradError('SG_ERR_SOURCE', `mqtt ${url}: cannot subscribe: ${error instanceof Error ? error.message : String(error)}`, 'mqtt', { cause: error });
    }
    return source;
  }

  get stats(): QueueStats & { readonly received: number } {
    return { ...this.queue.stats, received: this.received };
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

  /** Unsubscribes and disconnects; the iterator ends after the queued records. */
  close(): Promise<void> {
    this.closing ??= (async () => {
      this.queue.end();
      await this.client.endAsync().catch(() => undefined);
    })();
    return this.closing;
  }
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
