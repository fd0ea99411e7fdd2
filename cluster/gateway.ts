import { randomBytes } from 'node:crypto';
import { type ConsumerMessages, DeliverPolicy } from '@nats-io/jetstream';
import { StreamgradError } from '../core/errors.ts';
import type { Msg, Subscription } from '@nats-io/transport-node';
import type { Outcome } from '../server/commands.ts';
import { SharedWeights } from '../server/shared-weights.ts';
import { startServerThread, type ThreadedServeOptions } from '../server/threaded-server.ts';
import { addressee, noOwnerMessage, sentTo } from './command-addressee.ts';
import { type FailureRecord, parseFailureRecord } from './failures.ts';
import { type GatewayInfo, listGateways } from './gateways.ts';
import type { Cluster } from './open.ts';
import type { TelemetryClaim, TelemetryState } from './telemetry.ts';
import { PartitionOwners, runEvent, telemetryClaim, telemetryState } from './telemetry-owner.ts';
import { parseObject } from './wire.ts';

/** Options of `startGateway`: the cluster and the server's own options (port, host, token, origins...). */
export interface GatewayOptions extends ThreadedServeOptions {
  readonly cluster: Cluster;
  /** The gateway's id among the cluster run's gateways (default: random). */
  readonly id?: string;
  /**
   * The address dashboards reach this gateway at (`http://host:port`), announced in the
   * gateways bucket (default: the address it listens on; behind a proxy, the proxy's).
   */
  readonly advertise?: string;
  /** How long a control command waits for the partition's owner (ms, default 5000). */
  readonly commandTimeoutMs?: number;
}

/**
 * What a gateway reads from NATS and refuses (a rogue or broken peer), each counted, never
 * fatal: `control-not-holder`, `telemetry-not-holder` and `event-not-holder` are a control
 * reply, a state and an event of a worker that is not the partition's owner (it lost the
 * partition, or claims another's name), ignored; the others are not what they should be.
 */
export type UnreadableKind = 'control-reply' | 'control-not-holder' | 'telemetry' | 'telemetry-not-holder' | 'event' | 'event-not-holder' | 'failure-record';

/** A running gateway. */
export interface Gateway {
  readonly id: string;
  readonly url: string;
  readonly wsUrl: string;
  readonly port: number;
  /** The partitions (runs `p0`, `p1`, …) it has seen and serves. */
  runs(): string[];
  /** NATS messages and KV values it refused, by kind (also on `/metrics`, and announced in the gateways bucket for `cluster status`). */
  unreadable(): Readonly<Record<UnreadableKind, number>>;
  close(): Promise<void>;
}

/**
 * A stateless WebSocket gateway of a cluster run: today's server (dashboard, `/healthz`,
 * `/metrics`, protocol v1, on its own thread), serving every partition as a run, fed from
 * NATS instead of a local `TrainingRun`: the latest state of each partition (weights,
 * counters, latest result, predictions) from the telemetry stream, events as they come,
 * each only from the partition's owner (`PartitionOwners`).
 * A control command (pause, resume, step, learning rate, reset, checkpoint) goes to the
 * partition's current owner as a NATS request and its ack comes back the same way, only
 * from the owner, with the same tokens and codes as a local server (no owner answering:
 * `SG_ERR_STATE`; a partition no worker holds: `SG_ERR_STATE` at once, nothing sent). Any
 * number of gateways can run; none holds state a dashboard needs from another.
 *
 * @example const gateway = await startGateway({ cluster, port: 8080, token: process.env.STREAMGRAD_TOKEN });
 */
export async function startGateway(options: GatewayOptions): Promise<Gateway> {
  const { cluster, commandTimeoutMs = 5000, id = `g-${randomBytes(4).toString('hex')}`, advertise, ...serve } = options;
  if (!/^[A-Za-z0-9_-]{1,64}$/.test(id)) throw new StreamgradError('SG_ERR_CONFIG', `cluster.gateway.id: 1 to 64 of A-Z a-z 0-9 _ -, got ${JSON.stringify(id)}`, 'cluster.gateway.id');
  const { names, nc } = cluster;
  const weights = new Map<string, SharedWeights>();
  // refused messages, by kind: a hostile or broken peer on the server is seen on /metrics, never fatal
  const unreadable: Record<UnreadableKind, number> = { 'control-reply': 0, 'control-not-holder': 0, telemetry: 0, 'telemetry-not-holder': 0, event: 0, 'event-not-holder': 0, 'failure-record': 0 };
  let postUnreadable = () => undefined as void;
  const refuse = (kind: UnreadableKind) => {
    unreadable[kind]++;
    postUnreadable();
  };
  const thread = await startServerThread(serve, (seq, run, command) => {
    const match = /^p(\d+)$/.exec(run);
    const answer = (outcome: Outcome) => thread.post({ type: 'outcome', seq, outcome });
    if (match === null || !weights.has(run)) {
      answer({ ok: false, code: 'SG_ERR_UNKNOWN_RUN', message: `no run of that name (run) in cluster run ${names.name}` }); // never the client's text (server/PROTOCOL.md, "error")
      return;
    }
    void askOwner(Number(match[1]), command).then(answer);
  });
  /**
   * The outcome of `command` from partition `partition`'s owner. A partition that the
   * server says no worker holds is answered at once, the command not sent (`addressee`).
   * Anybody on the server can answer on its control subject (a worker that lost the
   * partition, a stray client) and a request takes the first reply, so every reply is
   * collected until one is the owner's or the time is up: the one the command was sent to
   * (the truth about that command, also after it lost the partition meanwhile), or one
   * believed as states are (`PartitionOwners`); the others are ignored and counted, and
   * never quoted to the client.
   */
  const askOwner = async (partition: number, command: unknown): Promise<Outcome> => {
    const subject = names.control(partition);
    let refused = 0; // replies that were not the owner's outcome (every one before it)
    try {
      const to = addressee(await owners.reading(partition));
      if (to.to === 'nobody') return { ok: false, code: 'SG_ERR_STATE', message: noOwnerMessage(partition, to) };
      const replies = await nc.requestMany(subject, JSON.stringify(command), { strategy: 'timer', maxWait: commandTimeoutMs });
      for await (const reply of replies) {
        let claim: TelemetryClaim;
        try {
          ({ claim } = telemetryClaim(cluster, subject, reply.headers, 'control'));
        } catch {
          refused++;
          refuse('control-reply'); // no claim: a stray responder or an older version
          continue;
        }
        if (!sentTo(to, claim) && !(await owners.believes(partition, claim))) {
          refused++;
          refuse('control-not-holder'); // a worker that lost the partition, or an impostor
          continue;
        }
        const outcome = readOutcome(reply.string());
        if (outcome !== null) return outcome; // the owner's own words (its message) go to the client; stops collecting
        refused++;
        refuse('control-reply'); // the owner's claim on what is no outcome
      }
    } catch (error) {
      return { ok: false, code: 'SG_ERR_STATE', message: `partition ${partition}: no owner answered (${error instanceof Error ? error.message : String(error)})` };
    }
    const ignored = refused === 0 ? '' : ` (${refused} other ${refused === 1 ? 'reply' : 'replies'} refused)`;
    return { ok: false, code: 'SG_ERR_STATE', message: `partition ${partition}: no answer from its owner within ${commandTimeoutMs} ms${ignored}; the command may or may not have been applied` };
  };
  const onState = (state: TelemetryState) => {
    const id = state.publish.run;
    let shared = weights.get(id);
    if (shared === undefined) {
      shared = new SharedWeights(state.params.length);
      shared.write(state.params, state.grads);
      weights.set(id, shared);
      thread.post({ type: 'add-run', run: { ...state.describe, weights: shared.buffer, publish: state.publish } });
      return;
    }
    shared.write(state.params, state.grads);
    thread.post({ type: 'publish', publish: state.publish });
  };
  // the latest state of every partition first, then each new one: only its owner's is served
  // (anybody can publish there), and only a state of the partition of its subject
  const owners = await PartitionOwners.watch(cluster);
  const consumer = await cluster.js.consumers.get(names.telemetryStream, { filter_subjects: names.telemetry('*'), deliver_policy: DeliverPolicy.LastPerSubject });
  const messages: ConsumerMessages = await consumer.consume();
  void (async () => {
    for await (const msg of messages) {
      try {
        const { partition, claim } = telemetryClaim(cluster, msg.subject, msg.headers);
        if (await owners.believes(partition, claim)) onState(telemetryState(msg.string(), partition, msg.subject));
        else refuse('telemetry-not-holder'); // a worker that lost the partition, or an impostor: ignored, counted
      } catch {
        refuse('telemetry'); // a message that is not telemetry (SG_ERR_SOURCE): skipped, counted
      }
    }
  })();
  // partitions that keep failing, for /metrics: the failure records as they change
  const failures = new Map<number, FailureRecord>();
  const postFailures = () => {
    const rows = [...failures.values()].sort((a, b) => a.partition - b.partition);
    thread.post({ type: 'gauge', gauge: { name: 'streamgrad_cluster_partition_failures', help: 'Failures in a row of a cluster partition\'s training (its failure record; 0 when it has none).', labelNames: ['partition'], values: rows.map((r) => ({ labels: { partition: String(r.partition) }, value: r.failures })) } });
    thread.post({ type: 'gauge', gauge: { name: 'streamgrad_cluster_partition_parked', help: 'Cluster partitions parked after too many failures in a row (1), trained by nobody until `streamgrad cluster unpark`.', labelNames: ['partition'], values: rows.map((r) => ({ labels: { partition: String(r.partition) }, value: r.parked ? 1 : 0 })) } });
  };
  postFailures();
  postUnreadable = () => thread.post({ type: 'gauge', gauge: { name: 'streamgrad_cluster_gateway_unreadable', help: 'NATS messages and KV values this gateway refused since it started (a control reply that is not an outcome or has no claim, telemetry or an event that is not one or of no partition of the cluster run, a control reply, telemetry or an event of a worker that is not the partition\'s owner, a damaged failure record).', labelNames: ['kind'], values: Object.entries(unreadable).map(([kind, value]) => ({ labels: { kind }, value })) } });
  postUnreadable();
  const watch = await cluster.failures.watch();
  void (async () => {
    for await (const entry of watch) {
      const partition = Number(entry.key.slice(1));
      if (!Number.isSafeInteger(partition)) continue;
      if (entry.operation === 'PUT') {
        const read = parseFailureRecord(entry.string(), partition);
        if (read === null) {
          refuse('failure-record'); // not a failure record: status names it (`cluster status`)
          continue;
        }
        failures.set(partition, read);
      } else failures.delete(partition);
      postFailures();
    }
  })();
  // announced in the gateways bucket while it runs (renewed every lease TTL, the bucket keeps it three)
  const base = (advertise ?? thread.url).replace(/\/$/, '');
  const info: GatewayInfo = { id, url: base, wsUrl: advertise === undefined ? thread.wsUrl : `${base.replace(/^http/, 'ws')}/ws`, since: Date.now() };
  const announce = () => cluster.gateways.put(id, JSON.stringify({ ...info, unreadable })).then(() => undefined, () => undefined);
  // and its fellow gateways told to the dashboards it serves (they move to one when it goes away)
  const tellPeers = () => listGateways(cluster).then((list) => thread.post({ type: 'peers', peers: list.map(({ id: peer, url, wsUrl }) => ({ id: peer, url, wsUrl })) }), () => undefined);
  await announce();
  void tellPeers();
  const announcing = setInterval(() => void announce().then(tellPeers), cluster.leaseTtlMs);
  announcing.unref?.();
  // events, judged as states are (only the partition's owner's are forwarded), one after
  // another in the order they came: a judgement that reads the buckets holds the later ones
  const onEvent = async (msg: Msg, came: number) => {
    try {
      const { partition, claim } = telemetryClaim(cluster, msg.subject, msg.headers, 'events');
      if (!(await owners.believes(partition, claim, came))) {
        refuse('event-not-holder'); // a worker that lost the partition, or an impostor: ignored, counted
        return;
      }
      const event = runEvent(msg.string(), partition, msg.subject);
      if (weights.has(event.run)) thread.post({ type: 'event', event }); // a partition not seen yet: its state comes first
    } catch {
      refuse('event'); // not an event of a partition (SG_ERR_SOURCE): skipped, counted
    }
  };
  let judging = Promise.resolve();
  const events: Subscription = nc.subscribe(names.events('*'), {
    callback: (error, msg) => {
      if (error !== null) return;
      const came = performance.now();
      judging = judging.then(() => onEvent(msg, came));
    },
  });
  return {
    id,
    url: thread.url,
    wsUrl: thread.wsUrl,
    port: thread.port,
    runs: () => [...weights.keys()].sort(),
    unreadable: () => ({ ...unreadable }),
    async close() {
      clearInterval(announcing);
      await cluster.gateways.delete(id).catch(() => undefined);
      messages.stop();
      owners.stop();
      watch.stop();
      events.unsubscribe();
      await thread.close();
    },
  };
}

/**
 * The outcome a partition's owner answered a command with, or null when the reply is not
 * one: not JSON, or not `{ok: true, result[, duplicate: true]}` / `{ok: false, code: "SG_ERR_…", message}`.
 *
 * @example readOutcome('garbage') // null
 */
export function readOutcome(text: string): Outcome | null {
  const o = parseObject(text);
  if (o === null) return null;
  // `duplicate`: the owner applied this id before (sent through another gateway), not now
  if (o.ok === true && 'result' in o) return { ok: true, result: o.result, ...(o.duplicate === true && { duplicate: true }) };
  if (o.ok === false && typeof o.code === 'string' && /^SG_ERR_[A-Z_]{1,40}$/.test(o.code) && typeof o.message === 'string') {
    return { ok: false, code: o.code as Extract<Outcome, { ok: false }>['code'], message: o.message };
  }
  return null;
}
