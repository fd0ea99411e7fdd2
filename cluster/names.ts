import { StreamgradError } from '../core/errors.ts';

/**
 * The NATS names of one cluster run, all derived from its name: the JetStream stream of
 * samples (one subject per partition), the stream of dead letters, the KV buckets of
 * leases, live workers and commit records, the Object Store of checkpoints and the
 * telemetry subjects. Two cluster runs with different names share a server without
 * touching each other's data.
 */
export interface ClusterNames {
  readonly name: string;
  /** JetStream stream holding every partition's samples. */
  readonly stream: string;
  /** Subject of partition `p`'s sample batches. */
  subject(partition: number | '*'): string;
  /** JetStream stream of dead letters (rejected records), one subject per partition. */
  readonly deadStream: string;
  deadSubject(partition: number | '*'): string;
  /** KV bucket of partition leases (key `p<N>`), bucket max-age = the lease TTL. */
  readonly leases: string;
  /** KV bucket of live workers (key = worker id), bucket max-age = the lease TTL. */
  readonly workers: string;
  /** KV bucket of commit records (key `p<N>`) and the cluster's settings (key `settings`). */
  readonly commits: string;
  /** KV bucket of live gateways (key = gateway id, value its URLs), bucket max-age = 3 lease TTLs. */
  readonly gateways: string;
  /** KV bucket of failure records (key `p<N>`): backoff and parking of partitions that keep failing. */
  readonly failures: string;
  /** Object Store bucket of checkpoints. */
  readonly checkpoints: string;
  /** JetStream stream of telemetry, the latest message per partition kept (for gateways). */
  readonly telemetryStream: string;
  /** Subject of partition `p`'s state (weights, counters, latest result) for gateways. */
  telemetry(partition: number | '*'): string;
  /** Subject of partition `p`'s run events (core NATS, live only). */
  events(partition: number | '*'): string;
  /** Subject a partition's current owner answers control requests on. */
  control(partition: number): string;
}

const NAME = /^[A-Za-z0-9_-]{1,32}$/;

/** KV key of partition `p`, in the leases and commits buckets. */
export function partitionKey(partition: number): string {
  return `p${partition}`;
}

/**
 * The NATS names of cluster run `name` (1–32 of `A-Z a-z 0-9 _ -`: they become subject
 * tokens and bucket names); anything else is `SG_ERR_CONFIG` naming `cluster.name`.
 *
 * @example clusterNames('sensors').subject(3) // 'sg.sensors.p.3'
 */
export function clusterNames(name: string): ClusterNames {
  if (typeof name !== 'string' || !NAME.test(name)) {
    throw new StreamgradError('SG_ERR_CONFIG', `cluster.name: 1 to 32 of A-Z a-z 0-9 _ -, got ${JSON.stringify(name)}`, 'cluster.name');
  }
  return {
    name,
    stream: `SG_${name}`,
    subject: (p) => `sg.${name}.p.${p}`,
    deadStream: `SG_${name}_DEAD`,
    deadSubject: (p) => `sg.${name}.dead.${p}`,
    leases: `sg_${name}_leases`,
    workers: `sg_${name}_workers`,
    commits: `sg_${name}_commits`,
    failures: `sg_${name}_failures`,
    gateways: `sg_${name}_gateways`,
    checkpoints: `sg_${name}_ckpt`,
    telemetryStream: `SG_${name}_TM`,
    telemetry: (p) => `sg.${name}.tm.${p}`,
    events: (p) => `sg.${name}.ev.${p}`,
    control: (p) => `sg.${name}.ctl.${p}`,
  };
}
