import { createHash } from 'node:crypto';
import { JetStreamApiError } from '@nats-io/jetstream';
import { decodeCheckpoint } from '../pipeline/checkpoint.ts';
import type { DriftAdaptation } from '../pipeline/drift-adaptation.ts';
import { StreamgradError } from '../core/errors.ts';
import type { FeatureMap, FeatureMapState } from '../core/features.ts';
import { ingest } from '../pipeline/ingest.ts';
import type { Normalizer, NormalizerState } from '../core/normalizer.ts';
import { createIngestCounters, type IngestCounters, ingestStats } from '../core/record.ts';
import { encodeRunCheckpoint, type ResumePoint, restoreRun } from '../pipeline/run-checkpoint.ts';
import { type Checkpointer, TrainingRun } from '../pipeline/run.ts';
import type { TrainOptions } from '../pipeline/train.ts';
import type { Trainer } from '../core/trainer.ts';
import { APPLIED_SECTION, AppliedOnce } from '../server/applied-once.ts';
import { type CommitRecord, fence } from './commits.ts';
import { ClusterDeadLetters } from './dead-letters.ts';
import type { ClusterEvent } from './events.ts';
import { isConflict } from './leases.ts';
import { partitionKey } from './names.ts';
import type { Cluster } from './open.ts';
import { PartitionSource } from './partition-source.ts';
import { PartitionTelemetry } from './telemetry.ts';

/**
 * What one partition trains: a fresh trainer (same topology, loss, optimizer and seed in
 * every process, so that a partition's model does not depend on which worker made it)
 * and the stages around it, as a local run has them.
 */
export interface PartitionModel {
  readonly trainer: Trainer;
  /** Rolling metrics window (default 1000; a checkpoint restores only with the same). */
  readonly window?: number;
  /** Batching and the rest of `train`'s options (count batches: a batch by time depends on timing, not data). */
  readonly train?: Omit<TrainOptions, 'window' | 'onReject' | 'drift' | 'onStep'>;
  readonly features?: FeatureMap;
  readonly normalizer?: Normalizer;
  readonly drift?: DriftAdaptation;
}

/** Makes the model of `partition`: called each time a worker takes the partition. */
export type PartitionModelFactory = (partition: number) => PartitionModel;

/** Options of `PartitionRun.start`. */
export interface PartitionRunOptions {
  readonly cluster: Cluster;
  readonly partition: number;
  /** The worker's id (owner in the commit record). */
  readonly owner: string;
  readonly model: PartitionModelFactory;
  /** Commit at the first step boundary this long after the last commit (ms, default 1000), also while the stream is quiet. */
  readonly checkpointEveryMs?: number;
  /** And/or every this many steps. */
  readonly checkpointEverySteps?: number;
  /** Purge the partition's subject up to each committed sequence (default true): retention bounded by progress. */
  readonly purge?: boolean;
  readonly onEvent?: (event: ClusterEvent) => void;
  /**
   * State and events for gateways (`PartitionTelemetry`) at most this often (Hz, default
   * 20: twice the rate dashboards subscribe at, so that a 10 Hz subscriber finds a new
   * state in each of its periods; 0: none).
   */
  readonly telemetryHz?: number;
  /**
   * Commits the server refused in a row (e.g. the Object Store is full: `maximum bytes
   * exceeded`) after which the run fails with `SG_ERR_CHECKPOINT` (default 3), so that the
   * worker counts a failure of the partition instead of training on without ever
   * committing. A commit that got no answer (the server is restarting) does not count.
   */
  readonly maxCommitFailures?: number;
  /**
   * A partial batch is trained once the partition has been quiet this long (ms, default
   * 1000; 0: only full batches): the source marks the stream with a cut
   * (`PartitionSource`), so the place is in the data and every owner cuts there. A stream
   * slower than one message per `lingerMs` trains in batches smaller than configured.
   */
  readonly lingerMs?: number;
}

/** Longest synchronous stretch of a partition's training (ms): a worker holding P partitions holds its event loop about P times this between two turns. */
const SLICE_MS = 2;

/** The checkpoint section that ties a checkpoint to its place in the cluster. */
interface ClusterSection {
  readonly partition: number;
  readonly seq: number;
  readonly within: number;
}

/**
 * One partition trained by its owner: a fence on the commit record, the committed
 * checkpoint restored (`restoreRun`, the same exact resume as a local `--resume`), and a
 * `TrainingRun` over the partition's subject from the committed sequence on, with the
 * local ingestion stages (validation, dead letters, normalisation). Its checkpointer is
 * the commit: the checkpoint goes to the Object Store, then the commit record is
 * replaced by CAS on the revision this owner last wrote. A commit that finds another
 * revision (a successor fenced the partition while this worker was paused) is rejected:
 * `commit-rejected`, and the run fails with `SG_ERR_CHECKPOINT` without having changed
 * anything another worker sees. The command ids its owners applied (and their outcomes)
 * travel in the checkpoint too, beside the state those commands changed, so that a
 * command resent to the next owner is answered as a duplicate when its effect is in the
 * commit that owner continues from, and applied again when it is not (a `checkpoint`
 * command's own id goes with the commit after the one it wrote).
 */
export class PartitionRun {
  readonly partition: number;
  readonly run: TrainingRun;
  readonly source: PartitionSource;
  /** Settles when the run has ended (stopped, aborted, failed); never rejects. */
  readonly finished: Promise<void>;
  private commitRevision: number;
  private committed: CommitRecord;
  private objects = 0;
  private purgedTo = 0;
  /** Commits the server refused since the last one that went through. */
  private refused = 0;

  private constructor(
    private readonly options: PartitionRunOptions,
    fenced: { record: CommitRecord; revision: number },
    run: TrainingRun,
    source: PartitionSource,
    private readonly deadLetters: ClusterDeadLetters,
  ) {
    this.partition = options.partition;
    this.commitRevision = fenced.revision;
    this.committed = fenced.record;
    this.run = run;
    this.source = source;
    this.finished = run.start().then(() => undefined, () => undefined);
  }

  /** The last commit record this owner wrote or fenced. */
  get lastCommit(): CommitRecord {
    return this.committed;
  }

  /**
   * Fences the partition, restores its committed checkpoint and starts training it.
   * A checkpoint whose digest does not match, or that belongs to another model, fails
   * with `SG_ERR_CHECKPOINT` (the partition is then not trained: never a silent restart
   * from scratch over a committed history). The commit's command ids (its `commands`
   * section, absent in checkpoints of older versions: none) are remembered before the
   * partition answers its first command; a malformed section fails the same way.
   */
  static async start(options: PartitionRunOptions): Promise<PartitionRun> {
    const { cluster, partition, owner } = options;
    const fenced = await fence(cluster, partition, owner);
    const spec = options.model(partition);
    const window = spec.window ?? 1000;
    const counters = createIngestCounters();
    let resume: ResumePoint | null = null;
    const applied = new AppliedOnce();
    const record = fenced.record;
    if (record.object !== null) {
      const bytes = await cluster.checkpoints.getBlob(record.object);
      const where = `partition ${partition}: checkpoint ${record.object}`;
      if (bytes === null) throw new StreamgradError('SG_ERR_CHECKPOINT', `${where} is missing from ${cluster.names.checkpoints}`, 'checkpoint');
      if (sha256(bytes) !== record.digest) throw new StreamgradError('SG_ERR_CHECKPOINT', `${where}: digest does not match the commit record`, 'checkpoint');
      const checkpoint = decodeCheckpoint(bytes);
      const sections = checkpoint.header.sections;
      const saved = sections.cluster as ClusterSection | undefined;
      if (saved?.partition !== partition || saved.seq !== record.seq || saved.within !== record.within) {
        throw new StreamgradError('SG_ERR_CHECKPOINT', `${where} does not match its commit record`, 'checkpoint');
      }
      applied.restore(sections[APPLIED_SECTION]);
      resume = restoreRun(checkpoint, spec.trainer, window, spec.drift);
      if (spec.normalizer !== undefined) spec.normalizer.restore(sections.normalizer as NormalizerState);
      if (spec.features !== undefined) spec.features.restore(sections.features as FeatureMapState);
      Object.assign(counters, sections.ingest as IngestCounters);
      options.onEvent?.({ type: 'restored', worker: owner, partition, time: Date.now(), detail: { object: record.object, seq: record.seq, within: record.within, records: record.records, steps: record.steps } });
    }
    // orphans: objects of writers that died or were fenced between their write and their commit
    void removeOrphans(options, record.epoch, record.object);
    let self: PartitionRun | null = null;
    const lingerMs = options.lingerMs ?? 1000;
    if (!(Number.isSafeInteger(lingerMs) && lingerMs >= 0)) throw new StreamgradError('SG_ERR_CONFIG', `cluster.worker.lingerMs: an integer ≥ 0, got ${lingerMs}`, 'cluster.worker.lingerMs');
    const source = new PartitionSource(cluster, partition, { seq: record.seq, within: record.within, records: record.records }, {
      lingerMs,
      partial: () => self !== null && self.run.sourceOffset < self.source.yielded,
      onCut: (seq, records) => options.onEvent?.({ type: 'cut', worker: owner, partition, time: Date.now(), detail: { seq, records } }),
    });
    const deadLetters = await ClusterDeadLetters.open(cluster, partition);
    const checkpoint: Checkpointer = (run) => self!.commit(run);
    const run = new TrainingRun({
      id: partitionKey(partition),
      trainer: spec.trainer,
      source,
      prepare: ingest({ trainer: spec.trainer, features: spec.features, normalizer: spec.normalizer, deadLetters, counters }),
      ingest: ingestStats(counters),
      train: { ...spec.train, window: resume?.window ?? window },
      ...(spec.drift !== undefined && { drift: spec.drift }),
      sourceOffset: record.records,
      // a worker's partitions train their slices back to back in one turn of the event loop:
      // short slices keep its timers (telemetry, lease renewals) and I/O waiting little
      sliceMs: SLICE_MS,
      checkpoint,
      autoCheckpoint: {
        everyMs: options.checkpointEveryMs ?? 1000,
        ...(options.checkpointEverySteps !== undefined && { everySteps: options.checkpointEverySteps }),
      },
    });
    self = new PartitionRun(options, fenced, run, source, deadLetters);
    self.sections = () => ({
      ingest: { ...counters, rejectedByCode: { ...counters.rejectedByCode } },
      ...(spec.normalizer !== undefined && { normalizer: spec.normalizer.state() }),
      ...(spec.features !== undefined && { features: spec.features.state() }),
      [APPLIED_SECTION]: applied.save(),
    });
    const hz = options.telemetryHz ?? 20;
    if (hz > 0) {
      const telemetry = new PartitionTelemetry(cluster, partition, run, { owner, epoch: record.epoch }, hz, applied);
      void self.finished.then(() => telemetry.dispose());
    }
    options.onEvent?.({ type: 'acquired', worker: owner, partition, time: Date.now(), detail: { epoch: record.epoch, seq: record.seq, records: record.records } });
    return self;
  }

  private sections: () => Record<string, unknown> = () => ({});

  /** Stops consuming at once (a lost lease): the pull in progress throws; a clean cut still tries its last commit, which the CAS refuses if fenced. */
  abort(reason: string): void {
    this.source.abort(new StreamgradError('SG_ERR_STATE', `partition ${this.partition}: ${reason}`, 'lease'));
  }

  /**
   * Stops at the next step boundary and commits there (a hand-back or a shutdown). When
   * no boundary comes within `graceMs` (a partial batch waits for records that do not
   * arrive) it aborts: the partial batch is left to the next owner.
   */
  async stop(graceMs = 2000): Promise<void> {
    this.run.stop();
    const timer = setTimeout(() => this.abort('stopped'), graceMs);
    await this.finished;
    clearTimeout(timer);
  }

  private async commit(run: TrainingRun): Promise<string | { readonly failed: string }> {
    const { cluster, partition, owner } = this.options;
    const emit = (type: ClusterEvent['type'], detail: Record<string, unknown>) => this.options.onEvent?.({ type, worker: owner, partition, time: Date.now(), detail });
    const records = run.sourceOffset;
    const { seq, within } = this.source.position(records);
    await this.deadLetters.flush();
    // A command acts on the run at once (or, a `step`, at the boundary the run is held at
    // now), and its outcome reaches `applied` through promise callbacks only: after this
    // turn of the event loop, every command whose effect the checkpoint holds has its id
    // saved with it, and none that the checkpoint does not hold
    await new Promise((resolve) => setImmediate(resolve));
    const bytes = encodeRunCheckpoint(run, { sections: { ...this.sections(), cluster: { partition, seq, within } satisfies ClusterSection } });
    const object = `p${partition}/e${this.committed.epoch}.${++this.objects}`;
    const { steps, samples } = run.trainer.counters;
    const record: CommitRecord = { partition, epoch: this.committed.epoch, owner, seq, within, records, steps, samples, object, digest: sha256(bytes), time: Date.now() };
    try {
      await cluster.checkpoints.putBlob({ name: object }, bytes);
    } catch (error) {
      void cluster.checkpoints.delete(object).catch(() => undefined); // chunks of a partial upload
      return this.commitFailed(`checkpoint upload: ${message(error)}`, error);
    }
    try {
      this.commitRevision = await cluster.commits.update(partitionKey(partition), JSON.stringify(record), this.commitRevision);
    } catch (error) {
      void cluster.checkpoints.delete(object).catch(() => undefined);
      if (isConflict(error)) {
        emit('commit-rejected', { epoch: record.epoch, seq, records, steps });
        throw new StreamgradError('SG_ERR_CHECKPOINT', `partition ${partition}: commit rejected, another worker owns the partition now`, 'commit', { cause: error });
      }
      // no answer: the write may or may not have happened; if it did, the next commit
      // fails its CAS and this worker stops, and the partition continues from that commit
      return this.commitFailed(`commit: ${message(error)}`, error);
    }
    this.refused = 0;
    const previous = this.committed.object;
    this.committed = record;
    if (previous !== null && previous !== object) void cluster.checkpoints.delete(previous).catch(() => undefined);
    if (this.options.purge !== false && seq > this.purgedTo) {
      this.purgedTo = seq;
      // keep seq+1 and after: everything up to the committed message is in the model now
      void cluster.jsm.streams.purge(cluster.names.stream, { filter: cluster.names.subject(partition), seq: seq + 1 }).catch(() => undefined);
    }
    emit('committed', { epoch: record.epoch, seq, within, records, steps, samples, object });
    return `nats:${cluster.names.checkpoints}/${object}`;
  }

  /** Reports a failed commit; one the server refused `maxCommitFailures` times in a row fails the run (it throws). */
  private commitFailed(why: string, error: unknown): { readonly failed: string } {
    const { partition, owner } = this.options;
    const refused = error instanceof JetStreamApiError;
    if (refused) this.refused++;
    const max = this.options.maxCommitFailures ?? 3;
    this.options.onEvent?.({ type: 'commit-failed', worker: owner, partition, time: Date.now(), detail: { message: why, refused, inARow: this.refused } });
    if (this.refused >= max) {
      throw new StreamgradError('SG_ERR_CHECKPOINT', `partition ${partition}: ${this.refused} commits refused in a row, the last: ${why}`, 'checkpoint', { cause: error });
    }
    return { failed: why };
  }
}

function sha256(bytes: Uint8Array): string {
  return createHash('sha256').update(bytes).digest('hex');
}

function message(error: unknown): string {
  return error instanceof Error ? error.message : String(error);
}

/** Deletes the partition's objects of earlier epochs except the committed one (this epoch's are this owner's own, being written). */
async function removeOrphans(options: PartitionRunOptions, epoch: number, keep: string | null): Promise<void> {
  try {
    const pattern = new RegExp(`^p${options.partition}/e(\\d+)\\.`);
    for (const info of await options.cluster.checkpoints.list()) {
      const match = pattern.exec(info.name);
      if (match !== null && Number(match[1]) < epoch && info.name !== keep) await options.cluster.checkpoints.delete(info.name);
    }
  } catch {
    // best effort: an orphan costs space, never correctness
  }
}
