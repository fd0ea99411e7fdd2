/**
 * `streamgrad/cluster`: training on many streams across processes and machines on NATS
 * JetStream (nats-server 2.9 or later): partitions with one owner each, leases in KV,
 * checkpoints in the Object Store committed by compare-and-swap, failover from the
 * committed checkpoint. Delivery is at-least-once, the effect on each model exactly-once,
 * and each partition's model is bitwise a single-process run over its samples. Node only.
 *
 * @example
 * import { connectNats, openCluster, ClusterWorker } from 'streamgrad/cluster';
 * const cluster = await openCluster(await connectNats('127.0.0.1:4222'), { name: 'sensors', partitions: 8 });
 * await new ClusterWorker({ cluster, model: (p) => ({ trainer: makeTrainer(), train: { batch: 16 } }) }).start();
 */
export { type Cluster, type ClusterSettings, connectNats, DEFAULT_DUPLICATE_WINDOW_MS, DEFAULT_LEASE_TTL_MS, openCluster } from './open.ts';
export { type ClusterNames, clusterNames, partitionKey } from './names.ts';
export { partitionOf } from './partition-of.ts';
export { batchLine, decodeBatch, encodeBatch, ENVELOPE } from './batch.ts';
export { ClusterPublisher, type PublisherOptions, type PublisherStats } from './publisher.ts';
export { type Lease, Leases, type RenewOutcome } from './leases.ts';
export { type CommitRecord, type Committed, fence, readCommit } from './commits.ts';
export { type PartitionModel, type PartitionModelFactory, PartitionRun, type PartitionRunOptions } from './partition-run.ts';
export { CUT_HEADER, type PartitionCuts, type PartitionPosition, PartitionSource, type PartitionStart } from './partition-source.ts';
export { ClusterDeadLetters } from './dead-letters.ts';
export { backoffDelay, backoffPolicy, type BackoffPolicy, clearFailureAt, clearFailures, DEFAULT_BACKOFF, type Failed, type FailureRecord, mayTake, readFailure, readFailures, recordFailure } from './failures.ts';
export { type ClusterStatus, clusterStatus, type PartitionStatus } from './status.ts';
export { ClusterWorker, type WorkerOptions } from './worker.ts';
export type { ClusterEvent } from './events.ts';
export { type Gateway, type GatewayOptions, startGateway } from './gateway.ts';
export { type Addressee, addressee, noOwnerMessage, type OwnerReading, sentTo } from './command-addressee.ts';
export { type GatewayInfo, listGateways } from './gateways.ts';
export { EPOCH_HEADER, OWNER_HEADER, PartitionTelemetry, type TelemetryClaim, type TelemetryState } from './telemetry.ts';
export { believed, PartitionOwners, runEvent, telemetryClaim, telemetryState } from './telemetry-owner.ts';
export { decodeWire, encodeWire } from './wire.ts';
