import { createHash } from 'node:crypto';
import { restoreSkips } from '../core/divergence.ts';
import { StreamgradError } from '../core/errors.ts';
import { type Loss, LOSSES } from '../core/losses.ts';
import { checkTopology, createModel, type Model, type Topology, topologyOf } from '../core/model.ts';
import { checkLearningRate, type OptimizerConfig, optimizerSettings } from '../core/optimizers.ts';
import type { TrainerCounters, Trainer } from '../core/trainer.ts';

/**
 * The checkpoint file `streamgrad/checkpoint@1`: everything needed to continue training
 * exactly where it stopped, bit for bit.
 *
 * | bytes | what |
 * |---|---|
 * | 8  | magic `SGCKPT01` |
 * | 4  | header length H (u32, little-endian) |
 * | H  | header: UTF-8 JSON (`CheckpointHeader`) |
 * | 0–7 | zero padding to a multiple of 8 |
 * | B  | body: the float64 arrays the header lists, raw little-endian, back to back |
 * | 32 | SHA-256 of everything before it |
 *
 * Arrays travel as raw bytes, not JSON numbers, so −0, subnormals and every last bit
 * survive; a file cut short anywhere, or changed in any byte, fails the length or
 * checksum check and is refused with a clear error.
 */
export const CHECKPOINT_FORMAT = 'streamgrad/checkpoint@1';
const MAGIC = 'SGCKPT01';
const DIGEST_BYTES = 32;

/** The JSON header of a checkpoint: format, topology, loss, optimizer state, counters, source offset and extra state. */
export interface CheckpointHeader {
  readonly format: typeof CHECKPOINT_FORMAT;
  /** Wall-clock time of writing (ms since the epoch). */
  readonly created: number;
  readonly topology: Topology;
  readonly loss: Loss;
  readonly optimizer: { readonly config: OptimizerConfig; readonly learningRate: number; readonly t: number };
  readonly counters: TrainerCounters;
  /** Step indices of the skipped steps still inside the divergence window (absent in older files: none). */
  readonly recentSkips?: readonly number[];
  /** Records of the source fully accounted for (trained or rejected): where a resume starts reading. */
  readonly sourceOffset: number;
  /** Other state to restore (normaliser statistics, generator RNG states, …), as plain JSON. */
  readonly sections: Readonly<Record<string, unknown>>;
  /** The float64 arrays in the body, in order. */
  readonly arrays: readonly { readonly name: string; readonly length: number }[];
}

/** What a checkpoint holds, decoded. */
export interface Checkpoint {
  readonly header: CheckpointHeader;
  readonly arrays: ReadonlyMap<string, Float64Array>;
}

/** What `encodeCheckpoint` writes: a trainer, where its source stands, and extra state and arrays to restore. */
export interface CheckpointContent {
  readonly trainer: Trainer;
  readonly sourceOffset: number;
  readonly sections?: Readonly<Record<string, unknown>>;
  /** More float64 state to keep bit for bit (e.g. `metrics.loss`), after the trainer's own arrays. */
  readonly arrays?: Readonly<Record<string, Float64Array>>;
}

function fail(message: string, field = 'checkpoint'): never {
  throw new StreamgradError('SG_ERR_CHECKPOINT', message, field);
}

/** Encodes a trainer's complete state. Refuses non-finite parameters (RELIABILITY 19). */
export function encodeCheckpoint({ trainer, sourceOffset, sections = {}, arrays = {} }: CheckpointContent): Uint8Array {
  const { model, optimizer } = trainer;
  for (let q = 0; q < model.params.length; q++) {
    if (!Number.isFinite(model.params[q])) fail(`parameter ${q} is ${model.params[q]}: a diverged model is not checkpointed`, 'params');
  }
  const s = optimizer.settings;
  const config = { type: s.type, learningRate: optimizer.learningRate, momentum: s.momentum, beta1: s.beta1, beta2: s.beta2, alpha: s.alpha, epsilon: s.epsilon } as OptimizerConfig;
  const bodies: [string, Float64Array][] = [['params', model.params], ['optimizer.m', optimizer.m], ['optimizer.v', optimizer.v]];
  for (const [name, array] of Object.entries(arrays)) {
    if (bodies.some(([taken]) => taken === name)) fail(`array name ${JSON.stringify(name)} is taken`, 'arrays');
    bodies.push([name, array]);
  }
  const header: CheckpointHeader = {
    format: CHECKPOINT_FORMAT,
    created: Date.now(),
    topology: topologyOf(model),
    loss: trainer.loss,
    optimizer: { config, learningRate: optimizer.learningRate, t: optimizer.t },
    counters: { ...trainer.counters },
    recentSkips: [...trainer.divergence.recent],
    sourceOffset,
    sections,
    arrays: bodies.map(([name, a]) => ({ name, length: a.length })),
  };
  const json = new TextEncoder().encode(JSON.stringify(header));
  const headerEnd = 12 + json.length;
  const bodyStart = Math.ceil(headerEnd / 8) * 8;
  const bodyBytes = bodies.reduce((n, [, a]) => n + a.length * 8, 0);
  const out = new Uint8Array(bodyStart + bodyBytes + DIGEST_BYTES);
  out.set(new TextEncoder().encode(MAGIC), 0);
  new DataView(out.buffer).setUint32(8, json.length, true);
  out.set(json, 12);
  let at = bodyStart;
  for (const [, a] of bodies) {
    new Float64Array(out.buffer, at, a.length).set(a);
    at += a.length * 8;
  }
  out.set(createHash('sha256').update(out.subarray(0, at)).digest(), at);
  return out;
}

/** Decodes and verifies a checkpoint; throws `SG_ERR_CHECKPOINT` naming what is wrong. */
export function decodeCheckpoint(bytes: Uint8Array): Checkpoint {
  if (bytes.length < 12 + DIGEST_BYTES) fail(`file is ${bytes.length} bytes, too short to be a checkpoint (truncated?)`);
  if (new TextDecoder().decode(bytes.subarray(0, 8)) !== MAGIC) fail('not a streamgrad checkpoint (bad magic)', 'magic');
  const digestAt = bytes.length - DIGEST_BYTES;
  const digest = createHash('sha256').update(bytes.subarray(0, digestAt)).digest();
  if (!digest.equals(bytes.subarray(digestAt))) fail('checksum mismatch: the file is truncated or corrupt', 'checksum');
  const view = new DataView(bytes.buffer, bytes.byteOffset, bytes.byteLength);
  const headerLength = view.getUint32(8, true);
  if (12 + headerLength > digestAt) fail('header runs past the end of the file', 'header');
  let header: CheckpointHeader;
  try {
    header = JSON.parse(new TextDecoder('utf-8', { fatal: true }).decode(bytes.subarray(12, 12 + headerLength)));
  } catch {
    fail('header is not valid JSON', 'header');
  }
  if (header?.format !== CHECKPOINT_FORMAT) fail(`format ${JSON.stringify(header?.format)} is not ${CHECKPOINT_FORMAT}`, 'format');
  // the checksum vouches for the bytes, not for who wrote them: check the shape before trusting it
  const arraysOk = Array.isArray(header.arrays) && header.arrays.every((a) => typeof a?.name === 'string' && Number.isSafeInteger(a.length) && a.length >= 0);
  if (!arraysOk) fail('header.arrays is malformed', 'header');
  if (!Number.isSafeInteger(header.sourceOffset) || header.sourceOffset < 0) fail('header.sourceOffset must be an integer ≥ 0', 'header');
  const bodyStart = Math.ceil((12 + headerLength) / 8) * 8;
  const expected = header.arrays.reduce((n, a) => n + a.length * 8, 0);
  if (bodyStart + expected !== digestAt) fail(`body holds ${digestAt - bodyStart} bytes, the header lists ${expected}`, 'body');
  // copy out of the file buffer: aligned, and independent of it (not `slice`: on a Node
  // Buffer, as fs.readFile returns, slice is a view into a shared pool, not a copy)
  const body = new Uint8Array(digestAt - bodyStart);
  body.set(bytes.subarray(bodyStart, digestAt));
  const arrays = new Map<string, Float64Array>();
  let at = 0;
  for (const { name, length } of header.arrays) {
    arrays.set(name, new Float64Array(body.buffer, at, length));
    at += length * 8;
  }
  checkContents(header, arrays);
  return { header, arrays };
}

/** The trainer counters a checkpoint must hold, each an integer ≥ 0. */
const COUNTERS = ['steps', 'samples', 'skipped', 'consecutiveSkips', 'clipped', 'rejected'] as const;

/**
 * Checks what a checkpoint says, not only that its bytes are the ones written: a file
 * with a valid checksum can still hold state no training run can reach (written by a
 * bug, or by hand), and loading it would train on from nonsense. Each failure is
 * `SG_ERR_CHECKPOINT` naming the field, so a store falls back to the checkpoint before.
 */
function checkContents(header: CheckpointHeader, arrays: ReadonlyMap<string, Float64Array>): void {
  if (typeof header.created !== 'number' || !Number.isFinite(header.created)) fail(`created must be a time in ms, got ${String(header.created)}`, 'created');
  if (typeof header.topology !== 'object' || header.topology === null) fail('topology is missing', 'topology');
  try {
    checkTopology(header.topology);
  } catch (error) {
    if (!(error instanceof StreamgradError)) fail('topology is malformed', 'topology');
    fail(`topology.${error.message}`, `topology.${error.field ?? ''}`);
  }
  if (!LOSSES.includes(header.loss)) fail(`loss ${JSON.stringify(header.loss)} is not one of ${LOSSES.join(', ')}`, 'loss');
  const optimizer = header.optimizer as Partial<CheckpointHeader['optimizer']> | undefined;
  if (typeof optimizer !== 'object' || optimizer === null || typeof optimizer.config !== 'object' || optimizer.config === null) fail('optimizer is missing', 'optimizer');
  try {
    optimizerSettings(optimizer.config!);
  } catch (error) {
    if (!(error instanceof StreamgradError)) fail('optimizer.config is malformed', 'optimizer.config');
    fail(`optimizer.config.${error.message.replace(/^optimizer\./, '')}`, `optimizer.config.${(error.field ?? '').replace(/^optimizer\./, '')}`);
  }
  try {
    checkLearningRate(optimizer.learningRate, 'optimizer.learningRate');
  } catch (error) {
    fail((error as Error).message, 'optimizer.learningRate');
  }
  const counters = header.counters as unknown as Partial<Record<string, unknown>> | undefined;
  if (typeof counters !== 'object' || counters === null) fail('counters are missing', 'counters');
  const count = (name: string, value: unknown): number => {
    if (typeof value !== 'number' || !Number.isSafeInteger(value) || value < 0) fail(`${name} must be an integer ≥ 0, got ${JSON.stringify(value)}`, name);
    return value;
  };
  const c = Object.fromEntries(COUNTERS.map((name) => [name, count(`counters.${name}`, counters![name])])) as Record<(typeof COUNTERS)[number], number>;
  const t = count('optimizer.t', optimizer!.t);
  // every step trains at least one sample; skipped, clipped and applied steps are steps
  if (c.steps > c.samples) fail(`counters.steps (${c.steps}) exceeds counters.samples (${c.samples}): every step has at least one sample`, 'counters.steps');
  if (c.skipped > c.steps) fail(`counters.skipped (${c.skipped}) exceeds counters.steps (${c.steps})`, 'counters.skipped');
  if (c.clipped > c.steps) fail(`counters.clipped (${c.clipped}) exceeds counters.steps (${c.steps})`, 'counters.clipped');
  if (c.consecutiveSkips > c.skipped) fail(`counters.consecutiveSkips (${c.consecutiveSkips}) exceeds counters.skipped (${c.skipped})`, 'counters.consecutiveSkips');
  if (t > c.steps) fail(`optimizer.t (${t}) exceeds counters.steps (${c.steps}): more updates than steps`, 'optimizer.t');
  if (typeof header.sections !== 'object' || header.sections === null || Array.isArray(header.sections)) fail('sections must be an object', 'sections');

  let parameters = 0;
  let inputs = header.topology.inputSize;
  for (const layer of header.topology.layers) {
    parameters += layer.units * (inputs + 1);
    inputs = layer.units;
  }
  const params = arrays.get('params');
  if (params === undefined || params.length !== parameters) fail(`params has ${params?.length ?? 'no'} values, the topology needs ${parameters}`, 'params');
  for (const name of ['params', 'optimizer.m', 'optimizer.v']) {
    const array = arrays.get(name);
    if (array === undefined) fail(`${name} is missing`, name);
    if (array.length !== 0 && array.length !== parameters) fail(`${name} has ${array.length} values, the topology needs ${parameters}`, name);
    // second moments and Adagrad's accumulator are sums of squares: never negative
    const squares = name === 'optimizer.v' || (name === 'optimizer.m' && optimizer!.config!.type === 'adagrad');
    for (let i = 0; i < array.length; i++) {
      const value = array[i];
      if (!Number.isFinite(value)) fail(`${name}[${i}] is ${value}: a checkpoint holds finite values only`, name);
      if (squares && value < 0) fail(`${name}[${i}] is ${value}: it is a sum of squares, never negative`, name);
    }
  }
}

/**
 * Puts a checkpoint's state into a trainer of the same topology, loss and optimizer.
 * A mismatch is refused naming the field and both shapes; the trainer is untouched then.
 */
export function restoreCheckpoint(trainer: Trainer, checkpoint: Checkpoint): void {
  const { header, arrays } = checkpoint;
  const want = JSON.stringify(topologyOf(trainer.model));
  if (JSON.stringify(header.topology) !== want) fail(`topology ${describe(header.topology)} does not match the model's ${describe(topologyOf(trainer.model))}`, 'topology');
  if (header.loss !== trainer.loss) fail(`loss ${header.loss} does not match the trainer's ${trainer.loss}`, 'loss');
  if (header.optimizer.config.type !== trainer.optimizer.settings.type) {
    fail(`optimizer ${header.optimizer.config.type} does not match the trainer's ${trainer.optimizer.settings.type}`, 'optimizer');
  }
  const targets: [string, Float64Array][] = [['params', trainer.model.params], ['optimizer.m', trainer.optimizer.m], ['optimizer.v', trainer.optimizer.v]];
  for (const [name, target] of targets) {
    const source = arrays.get(name);
    if (source === undefined || source.length !== target.length) {
      fail(`${name} has ${source?.length ?? 'no'} values, the trainer needs ${target.length}`, name);
    }
  }
  for (const [name, target] of targets) target.set(arrays.get(name)!);
  trainer.optimizer.learningRate = header.optimizer.learningRate;
  trainer.optimizer.t = header.optimizer.t;
  Object.assign(trainer.counters, header.counters);
  restoreSkips(trainer.divergence, header.recentSkips, trainer.counters.steps);
}

/** A fresh model holding a checkpoint's parameters (for `predict`, `inspect`). */
export function modelFromCheckpoint(checkpoint: Checkpoint): Model {
  const model = createModel(checkpoint.header.topology);
  const params = checkpoint.arrays.get('params');
  if (params === undefined || params.length !== model.params.length) fail('params do not fit the topology', 'params');
  model.params.set(params);
  return model;
}

const describe = (t: Topology) => `${t.inputSize}→${t.layers.map((l) => `${l.units}:${l.activation}`).join('→')}`;
