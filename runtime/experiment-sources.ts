import type { Readable } from 'node:stream';
import { countLetters, FileDeadLetters, resumeDeadLetterFile } from '../pipeline/dead-letter-file.ts';
import { afterPosition, type DeadLetter, type DeadLetterSink, teeDeadLetters } from '../core/dead-letter.ts';
import { StreamgradError } from '../core/errors.ts';
import { FeatureMap } from '../core/features.ts';
import { ingest } from '../pipeline/ingest.ts';
import type { Normalizer } from '../core/normalizer.ts';
import { createIngestCounters, type IngestCounters, type IngestRecord } from '../core/record.ts';
import type { Sample, TracedSample } from '../core/sample.ts';
import type { Trainer } from '../core/trainer.ts';
import { from, type OperatorFunction, pipe } from 'rxjs';
import type { LabelJoin } from '../core/label-join.ts';
import { normalize } from '../operators/normalize.ts';
import { BoundedQueue } from '../sources/bounded-queue.ts';
import { csvRecords } from '../sources/csv.ts';
import { MqttSource, stableClientId } from '../sources/mqtt.ts';
import { ndjsonRecords } from '../sources/ndjson.ts';
import { replayRecords } from '../sources/replay.ts';
import { stdinRecords } from '../sources/stdin.ts';
import { interruptible } from '../sources/interruptible.ts';
import { paced } from '../sources/paced.ts';
import { absolute } from './checkpointing.ts';
import type { CheckpointedState } from './checkpointed-state.ts';
import { ConfigError, oneLine } from './errors.ts';
import { generate } from './experiment-generators.ts';
import { mergeArrivals } from '../sources/arrival-merge.ts';
import { joinStage, lettersOnce, mergedReader, simulatedLabels, taggedLive, withLabelsState } from './experiment-labels.ts';
import { settingsNormalizer, stagesState } from './ingestion.ts';
import type { ExperimentPlan, RecordPlan, Shape, SourcePlan } from './experiment-plan.ts';
import { byteMeter, type ByteMeter, openData } from './ndjson.ts';
import type { RejectionLog } from './rejections.ts';
import { resumeRecords, SourceFingerprint } from './source-identity.ts';

/**
 * The samples of an experiment, one feed per model.
 *
 * Several models race on one stream. A file or a simulated stream can be read more than
 * once, so each model gets its own reader of the same data and pulls at its own pace
 * (as `streamgrad start --serve` does): a slow model never holds back a fast one, and
 * nothing is buffered. A live source (MQTT, standard input) is read once and fanned out
 * to every model through small bounded queues (`fanOut`): the fastest model runs at most
 * `FAN_OUT_QUEUE` records ahead of the slowest, and the live source's own queue and
 * overflow policy absorb what comes in faster than the slowest model trains.
 *
 * Every model validates and normalises with its own `FeatureMap` and `Normalizer` (the
 * imputation and scaling statistics are learned state, like weights); the rejections of
 * the one stream are reported and dead-lettered once, however many models read it.
 */

/** Records the fastest model may be ahead of the slowest on a live source. */
export const FAN_OUT_QUEUE = 64;

/** One model's samples: what its `TrainingRun` pulls and the stages in front of training. */
export interface Feed {
  readonly source: Iterable<unknown> | AsyncIterable<unknown>;
  // eslint-disable-next-line @typescript-eslint/no-explicit-any -- its input is whatever the source yields
  readonly prepare?: OperatorFunction<any, unknown>;
  /** Ingestion counters of a record source (read, accepted, rejected...). */
  readonly counters?: IngestCounters;
  readonly features?: FeatureMap;
  readonly normalizer?: Normalizer;
  /** The dead-letter file the feed writes to (shared by the models), synced before each checkpoint. */
  readonly deadLetterFile?: FileDeadLetters;
  /** What the records this model read are (a file source), for its checkpoints. */
  readonly fingerprint?: SourceFingerprint;
  /** Delayed labels: this model's join (its waiting features hold its own predictions). */
  readonly labels?: LabelJoin;
  /**
   * Delayed labels, at a stop without checkpoints: turns what waits in the join away
   * (`LabelJoin.abandon`) as dead letters, counted as validation counts a rejection, so that
   * a stop loses nothing silently.
   */
  readonly abandonWaiting?: () => void;
}

export interface Feeds {
  /** One per model, in the plan's order. */
  readonly feeds: readonly Feed[];
  /** A live source (MQTT, stdin): it ends on Ctrl-C (or its limit), not by itself. */
  readonly live: boolean;
  /** Records the live source's queue dropped. */
  readonly dropped: () => number;
  /** The MQTT subscription, when that is the source: its notices go to the first model's run, its counters to the summary. */
  readonly mqtt?: MqttSource;
  /** How much of a file (or of standard input) has been read: by the slowest model's reader. */
  readonly meter?: ByteMeter;
  /** Stops a live source: the runs see its end after what is queued. */
  stop(): Promise<void>;
  /** Flushes the dead letters and releases the source. */
  close(): Promise<void>;
}

/**
 * Opens the source for `trainers` (one per model, in the plan's order). `limit.samples`
 * ends the stream after that many records (each model reads the same ones); `limit.steps`
 * ends each model's stream once it has trained that many steps. Rejections go to
 * `rejections` (stderr) and the dead-letter file, once per record.
 *
 * A resumed model (`offsets[i]` > 0, its checkpoint's source offset) reads a file or a
 * simulated stream from the first record its checkpoint did not account for (a file's
 * skipped records are checked against `identities[i]`, the checkpoint's `SourceIdentity`:
 * other data at the same path is refused with exit 2 before training starts); a live
 * source goes on with what arrives. With `plan.resume` the dead-letter file of a file
 * source is kept and continued after its last complete letter, so that no rejected
 * record is written twice or lost.
 */
export async function openFeeds(plan: ExperimentPlan, trainers: readonly Trainer[], rejections: RejectionLog, offsets: readonly number[] = [], identities: readonly unknown[] = [], ingestLabels?: AsyncIterable<IngestRecord>): Promise<Feeds> {
  const { source, limit } = plan;
  const stopAt = (trainer: Trainer) => (limit.steps === undefined ? null : () => trainer.counters.steps >= limit.steps!);

  if (source.kind === 'simulated') {
    // delayed labels: every model turns the same labels away; each is reported once
    const simulatedLetters = lettersOnce(rejectionSink(rejections));
    const samples = Math.min(source.samples ?? Infinity, limit.samples ?? Infinity);
    const feeds = trainers.map((trainer, i): Feed => {
      const generated = generate(source.generator, source.options, source.seed, Number.isFinite(samples) ? samples : undefined);
      // delayed labels: features now, labels later, and a join in front of training
      const labelled = plan.labels === undefined ? null : simulatedLabels(plan.labels, generated, source.seed)[Symbol.iterator]();
      const samplesOf = (labelled ?? generated) as Iterator<unknown> & Iterable<unknown>;
      for (let skip = offsets[i] ?? 0; skip > 0; skip--) {
        if (samplesOf.next().done === true) throw new ConfigError(`--resume: the simulated stream ended before the ${offsets[i]} samples the checkpoint of ${plan.models[i].name} had read`);
      }
      const normalizer = settingsNormalizer(source, source.shape.inputs, source.shape.outputs);
      // `rate`: released at a human pace (each model's copy on its own clock: the same samples, the same pace)
      const stopped = stopWhen(samplesOf, stopAt(trainer));
      const pacedSource = source.rate === undefined ? stopped : paced(stopped, { samplesPerSecond: source.rate });
      if (plan.labels !== undefined) {
        const { join, stage } = joinStage(plan.labels, trainer, undefined, normalizer);
        const counters = createIngestCounters();
        const validation = ingest({ trainer, normalizer, counters, deadLetters: simulatedLetters(counters) });
        return { source: pacedSource, labels: join, counters, ...(normalizer !== undefined && { normalizer }), prepare: pipe(stage, validation), abandonWaiting: abandoner(join, validation) };
      }
      return {
        source: pacedSource,
        ...(normalizer !== undefined && { normalizer, prepare: normalize(normalizer) as OperatorFunction<Sample, unknown> }),
      };
    });
    return { feeds, live: false, dropped: () => 0, stop: async () => undefined, close: async () => undefined };
  }

  const { records } = source;
  const live = source.kind === 'mqtt' || source.kind === 'stdin';
  const deadLetterFile = openDeadLetters(records, plan.resume);
  // once the file is open, and so locked: another writer's file is not cut
  const resumed = plan.resume && !live && records.deadLetter !== undefined ? await resumeDeadLetterFile(records.deadLetter.path) : null;
  // every model rejects the same records: each is reported and written once
  const allLetters = teeDeadLetters(rejectionSink(rejections), ...(deadLetterFile === undefined ? [] : [deadLetterFile]));
  const letters = afterPosition(allLetters, resumed ?? -Infinity);
  // delayed labels write letters out of line order: once each by their number, not their position
  const labelLetters = plan.labels === undefined ? null : lettersOnce(allLetters, resumed === null ? 0 : await countLetters(records.deadLetter!.path));
  const stages = (trainer: Trainer, shape: Shape | null): Omit<Feed, 'source'> => {
    const counters = createIngestCounters();
    const features = records.targets === undefined ? undefined : new FeatureMap({
      features: records.features!, targets: records.targets,
      ...(records.classes !== undefined && { classes: records.classes }), missing: records.missing,
    });
    const outputs = shape?.outputs ?? trainer.shape.outputs;
    const normalizer = settingsNormalizer(records, trainer.shape.inputs, outputs);
    const validation = ingest({ trainer, features, normalizer, deadLetters: labelLetters === null ? letters : labelLetters(counters), counters });
    const made: Omit<Feed, 'source'> = {
      counters,
      ...(features !== undefined && { features }),
      ...(normalizer !== undefined && { normalizer }),
      ...(deadLetterFile !== undefined && { deadLetterFile }),
      prepare: validation,
    };
    if (plan.labels === undefined) return made;
    const { join, stage } = joinStage(plan.labels, trainer, features, normalizer);
    return { ...made, labels: join, prepare: pipe(stage, validation), abandonWaiting: abandoner(join, validation) };
  };
  const closeLetters = () => letters.close();

  if (source.kind === 'csv' || source.kind === 'ndjson') {
    const inputs: Readable[] = [];
    // opened by the name shown (relative to the working folder): a message names the file as the person wrote it
    for (let i = 0; i < trainers.length; i++) inputs.push(await openData(source.file.shown, `source.${source.kind}`));
    const meters = inputs.map((input) => byteMeter(input)).filter((m) => m !== undefined);
    const feeds: Feed[] = [];
    /** Gives up the pending read of labels on standard input (a stop must not wait for a line). */
    const interrupts: (() => void)[] = [];
    for (const [i, trainer] of trainers.entries()) {
      const input = inputs[i];
      let reader: AsyncIterable<IngestRecord> = source.kind === 'csv'
        ? csvRecords(input, { source: source.file.shown, require: [...records.features!, ...(plan.labels === undefined ? records.targets! : [plan.labels.join.idField])], ...(source.delimiter !== undefined && { delimiter: source.delimiter }), maxLineBytes: records.maxLineBytes })
        : { [Symbol.asyncIterator]: () => ndjsonRecords(input, { source: source.file.shown, maxLineBytes: records.maxLineBytes }) };
      const made = stages(trainer, records.shape);
      // each model's records are hashed as it reads them: a resume checks it reads the same data again
      const fingerprint = new SourceFingerprint(absolute(source.file.path));
      // delayed labels: each model reads the labels file beside the features file; labels
      // sent to /ingest (one model) are taken as they arrive, until no features wait for one
      if (plan.labels?.ingest === true) reader = mergeArrivals(reader, ingestLabels!, { waiting: () => made.labels!.stats().waiting });
      else if (plan.labels !== undefined) {
        // each file hashed on its own too: a refused resume names the one that changed
        const labelsFile = plan.labels.file!;
        reader = fingerprint.part(`source.${source.kind} ${source.file.shown}`, absolute(source.file.path)).wrap(reader);
        const labelsPart = fingerprint.part(`labels.${labelsFile.format} ${labelsFile.shown}`, labelsFile.path === '-' ? '-' : absolute(labelsFile.path));
        const merged = await mergedReader(plan.labels, reader, records.maxLineBytes, (labels) => labelsPart.wrap(labels));
        reader = merged.records;
        interrupts.push(merged.interrupt);
      }
      if (source.replay !== undefined) {
        const inner = reader;
        const replay = source.replay;
        reader = { [Symbol.asyncIterator]: () => replayRecords(inner, replay) };
      }
      const offset = offsets[i] ?? 0;
      const limited = fingerprint.wrap(limitRecords(reader, limit.samples, null));
      const from = offset > 0 ? await resumeRecords(limited, fingerprint, offset, identities[i], `source.${source.kind} ${source.file.shown}`) : limited;
      feeds.push({ source: limitRecords(from, undefined, stopAt(trainer)), fingerprint, ...made });
    }
    // a replay is paced by its timestamps, long after the bytes were read: no byte progress then
    const meter = meters.length === 0 || source.replay !== undefined ? undefined : {
      get bytesRead() {
        return Math.min(...meters.map((m) => m.bytesRead));
      },
      totalBytes: meters[0].totalBytes,
    };
    return { feeds, live: false, dropped: () => 0, ...(meter !== undefined && { meter }), stop: async () => { for (const interrupt of interrupts) interrupt(); }, close: closeLetters };
  }

  // live: one reader, fanned out
  let shared: AsyncIterable<IngestRecord>;
  let meter: ByteMeter | undefined;
  let dropped = () => 0;
  let stopSource: () => Promise<void> = async () => undefined;
  let mqttSource: MqttSource | undefined;
  if (source.kind === 'mqtt') {
    let mqtt: MqttSource;
    try {
      // a stable session name: the config's, or one derived from the checkpoint folder (a restarted experiment resumes its session)
      const clientId = source.clientId ?? (plan.checkpoints === undefined ? undefined : stableClientId(`${plan.checkpoints.dir.path}\u0000${plan.models.map((m) => m.name).join('\u0000')}`));
      mqtt = await MqttSource.connect({ url: source.url, topics: [...source.topics, ...(plan.labels?.topics ?? [])], qos: source.qos, queue: { capacity: source.capacity, policy: source.policy }, ...(clientId !== undefined && { clientId }), client: { connectTimeout: 5000 } });
    } catch (error) {
      await closeLetters().catch(() => undefined);
      throw new ConfigError(`source.mqtt.url: ${source.url}: ${oneLine(error).replace(/^mqtt \S+: /, '')}`, { cause: error });
    }
    shared = plan.labels === undefined ? mqtt : plan.labels.ingest === true ? mergeArrivals(mqtt, ingestLabels!) : taggedLive(plan.labels, mqtt);
    dropped = () => mqtt.queue.dropped;
    stopSource = () => mqtt.close();
    mqttSource = mqtt;
  } else {
    meter = byteMeter(await openData('-'));
    // a stop gives up the pending read of an idle standard input (see `interruptible`)
    const reading = interruptible(source.format === 'csv'
      ? stdinRecords({ format: 'csv', require: [...records.features!, ...(plan.labels === undefined ? records.targets! : [plan.labels.join.idField])], maxLineBytes: records.maxLineBytes })
      : stdinRecords({ maxLineBytes: records.maxLineBytes }), () => process.stdin.destroy());
    // labels at /ingest: taken with the features as they arrive
    shared = plan.labels?.ingest === true ? mergeArrivals(reading.records, ingestLabels!) : reading.records;
    stopSource = async () => reading.interrupt();
  }
  const fan = fanOut(limitRecords(shared, limit.samples, null), trainers.length, FAN_OUT_QUEUE);
  const feeds = trainers.map((trainer, i): Feed => ({ source: limitRecords(fan.outputs[i], undefined, stopAt(trainer)), ...stages(trainer, records.shape) }));
  return {
    feeds,
    live: true,
    dropped,
    ...(mqttSource !== undefined && { mqtt: mqttSource }),
    ...(meter !== undefined && { meter }),
    async stop() {
      await stopSource();
      fan.end(); // the models' queues end after what they hold
    },
    async close() {
      fan.end();
      await stopSource();
      if (source.kind === 'stdin') process.stdin.destroy();
      await closeLetters();
    },
  };
}

/** A short description of the source, for the start line and `--check`. */
export function describeSource(source: SourcePlan): string {
  switch (source.kind) {
    case 'simulated': {
      const options = Object.entries(source.options).map(([k, v]) => `${k} ${JSON.stringify(v)}`);
      return `simulated ${source.generator} stream (seed ${source.seed}${options.length > 0 ? `, ${options.join(', ')}` : ''})${source.samples === undefined ? '' : `, ${source.samples} samples`}${source.rate === undefined ? '' : ` at ${source.rate} samples/s`}`;
    }
    case 'csv':
    case 'ndjson':
      return `${source.kind === 'csv' ? 'CSV' : 'NDJSON'} file ${source.file.shown}${source.replay === undefined ? '' : ` replayed at ${source.replay.speed}× by ${JSON.stringify(source.replay.timeField)}`}`;
    case 'stdin':
      return `standard input (${source.format === 'csv' ? 'CSV' : 'NDJSON'})`;
    case 'mqtt':
      return `MQTT ${source.url} (${source.topics.join(', ')}; queue ${source.capacity}, ${source.policy})`;
  }
}

function openDeadLetters(records: RecordPlan, append: boolean): FileDeadLetters | undefined {
  if (records.deadLetter === undefined) return undefined;
  try {
    return FileDeadLetters.open(records.deadLetter.path, { append });
  } catch (error) {
    throw new ConfigError(`source.deadLetter ${records.deadLetter.shown}: cannot write: ${oneLine(error).replace(/^.*cannot open: /, '')}`, { cause: error });
  }
}

/** Rejections on stderr through the CLI's log (line numbers, or message ids for MQTT), as `streamgrad train` reports them. */
function rejectionSink(rejections: RejectionLog): DeadLetterSink {
  return {
    write: (letter: DeadLetter) => rejections.add(letter.line ?? letter.messageId ?? '?', new StreamgradError(letter.code, letter.message, letter.field ?? undefined)),
    close: () => Promise.resolve(),
  };
}

/** What a checkpoint says the data is: a resume on other data is refused. */
export function checkpointSource(source: SourcePlan): Record<string, unknown> {
  switch (source.kind) {
    case 'simulated':
      return { simulated: source.generator, seed: source.seed, options: source.options };
    case 'csv':
    case 'ndjson':
      return { [source.kind]: absolute(source.file.path), features: source.records.features ?? null, targets: source.records.targets ?? null, classes: source.records.classes ?? null };
    case 'stdin':
      return { stdin: source.format, features: source.records.features ?? null, targets: source.records.targets ?? null, classes: source.records.classes ?? null };
    case 'mqtt':
      return { mqtt: source.url, topics: source.topics };
  }
}

/** A model's state around its run, for its checkpoints: its stages' statistics and counters (the trainer, metrics and source offset are the run's own). */
export const feedState = (feed: Feed): CheckpointedState => withLabelsState(stagesState(feed), feed.labels);

/** A sync pull source that ends once `stop()` says so (checked before each pull). */
function stopWhen<T>(source: Iterator<T> & Iterable<T>, stop: (() => boolean) | null): Iterable<T> {
  if (stop === null) return source;
  return {
    [Symbol.iterator]: () => ({
      next: (): IteratorResult<T> => (stop() ? { done: true, value: undefined } : source.next()),
      return: (): IteratorResult<T> => {
        source.return?.();
        return { done: true, value: undefined };
      },
    }),
  };
}

/**
 * An async pull source that ends after `max` records, or once `stop()` says so (checked
 * before each pull, so the record after the last step is not even read); it closes the
 * reader when it ends.
 */
function limitRecords<T>(source: AsyncIterable<T>, max: number | undefined, stop: (() => boolean) | null): AsyncIterable<T> {
  if (max === undefined && stop === null) return source;
  return {
    async *[Symbol.asyncIterator]() {
      const iterator = source[Symbol.asyncIterator]();
      let n = 0;
      try {
        while ((max === undefined || n < max) && !(stop?.() ?? false)) {
          const next = await iterator.next();
          if (next.done === true) return;
          n++;
          yield next.value;
        }
      } finally {
        await iterator.return?.();
      }
    },
  };
}

/** One source read once, given to several consumers. */
export interface FanOut<T> {
  readonly outputs: readonly AsyncIterable<T>[];
  /** Ends every output now (after what each has queued). */
  end(): void;
}

/**
 * Reads `source` once and gives every record to each of `consumers` outputs, through a
 * `BoundedQueue` of `capacity` each (policy `block`): the next record is read only when
 * every output still being read has room, so memory is bounded and the slowest consumer
 * sets the pace. An output whose reader stops is dropped from the pace; when all have
 * stopped, the source is closed. A source error reaches every output.
 */
export function fanOut<T>(source: AsyncIterable<T>, consumers: number, capacity: number): FanOut<T> {
  const queues = Array.from({ length: consumers }, () => new BoundedQueue<T>({ capacity, policy: 'block' }));
  let pumping: Promise<void> | null = null;
  const pump = async () => {
    const iterator = source[Symbol.asyncIterator]();
    const open = () => queues.filter((q) => !q.closed);
    try {
      for (;;) {
        await Promise.all(open().map((q) => q.room()));
        if (open().length === 0) break;
        const next = await iterator.next();
        if (next.done === true) break;
        for (const q of open()) q.push(next.value);
      }
      for (const q of queues) q.end();
    } catch (error) {
      for (const q of queues) q.fail(error);
    } finally {
      await iterator.return?.();
    }
  };
  return {
    outputs: queues.map((queue) => ({
      [Symbol.asyncIterator]() {
        pumping ??= pump();
        return queue[Symbol.asyncIterator]();
      },
    })),
    end() {
      for (const q of queues) q.end();
    },
  };
}

/**
 * `Feed.abandonWaiting` of a model that joins labels: what `join` holds at a stop without
 * checkpoints, turned away (`LabelJoin.abandon`) and passed through the feed's own
 * `validation` (the stage after the join), which counts and dead-letters each as it does
 * any rejection, so that the summary's totals still add up and each record is somewhere the
 * user can find. Synchronous: nothing of it is a sample (abandon joins nothing).
 */
function abandoner(join: LabelJoin, validation: OperatorFunction<IngestRecord, TracedSample>): () => void {
  return () => {
    from(join.abandon()).pipe(validation).subscribe();
  };
}
