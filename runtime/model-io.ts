import { readFile } from 'node:fs/promises';
import { writeFileDurably } from '../pipeline/durable-file.ts';
import { StreamgradError } from '../core/errors.ts';
import type { Model } from '../core/model.ts';
import { modelFromJSON } from '../pipeline/model-file.ts';
import { type Checkpoint, decodeCheckpoint, modelFromCheckpoint } from '../pipeline/checkpoint.ts';
import { artifactFromCheckpoint, artifactFromJSON, artifactToJSON, type ModelArtifact, type Preprocessing, preprocessingFromIngestState } from '../pipeline/model-artifact.ts';
import { FileRefused, MODEL_FILE_LIMIT, readBounded } from './bounded-file.ts';
import { ConfigError, OutputError, oneLine } from './errors.ts';

/**
 * Reads a `streamgrad/model@1` file. Every failure is a usage error naming the option and
 * the file: unreadable, not JSON, or a document `modelFromJSON` rejects (its message names
 * the layer and both shapes).
 */
export async function loadModelFile(path: string, option = '--model'): Promise<Model> {
  return modelFromText(await readModelBytes(path, option), `${option} ${path}`);
}

/**
 * A model or checkpoint file's bytes, bounded (`MODEL_FILE_LIMIT`, 512 MiB): a larger
 * file, or a device or pipe that runs past the limit or does not start as a model
 * (`{`) or checkpoint (`SGCKPT01`) does, is a usage error naming the file.
 */
async function readModelBytes(path: string, option: string): Promise<Buffer> {
  try {
    return await readBounded(path, MODEL_FILE_LIMIT, modelStart);
  } catch (error) {
    const what = error instanceof FileRefused ? 'not read' : 'cannot read';
    throw new ConfigError(`${option} ${path}: ${what}: ${oneLine(error)}`, { cause: error });
  }
}

/** Whether the first bytes can begin a model document (JSON, `{` after blanks) or a checkpoint (`SGCKPT01`). */
function modelStart(head: Buffer): string | null {
  const magic = 'SGCKPT01';
  if (head.subarray(0, magic.length).toString('latin1') === magic.slice(0, Math.min(head.length, magic.length))) return null;
  const text = head.toString('latin1').trimStart();
  if (text === '' || text.startsWith('{')) return null;
  return `not a streamgrad model or checkpoint (it starts with byte 0x${head[0].toString(16).padStart(2, '0')})`;
}

/** A model document's bytes → the model; failures are usage errors starting with `where`. */
function modelFromText(bytes: Buffer, where: string): Model {
  return readDocument(bytes, where, modelFromJSON);
}

/** Parses JSON bytes and reads them with `read`; failures are usage errors starting with `where`. */
function readDocument<T>(bytes: Buffer, where: string, read: (doc: unknown) => T): T {
  let doc: unknown;
  try {
    doc = JSON.parse(bytes.toString('utf8'));
  } catch (error) {
    throw new ConfigError(`${where}: not valid JSON: ${oneLine(error)}`, { cause: error });
  }
  try {
    return read(doc);
  } catch (error) {
    if (!(error instanceof StreamgradError)) throw error;
    throw new ConfigError(`${where}: ${error.message}`, { cause: error });
  }
}

/** A model artifact read from a file, and where its preprocessing came from. */
export interface LoadedArtifact {
  readonly artifact: ModelArtifact;
  /** `section`: the model file's own; `side-file`: a legacy FILE.ingest.json beside it; `checkpoint`; `none`: no preprocessing recorded. */
  readonly preprocessingFrom: 'section' | 'side-file' | 'checkpoint' | 'none';
  /** The legacy side file read, when one was. */
  readonly sideFile?: string;
}

/**
 * Reads a model artifact: a `streamgrad/model@1` file with its `preprocessing` section,
 * or, for a file written before models carried it, with the legacy `FILE.ingest.json`
 * beside it; or a `streamgrad/checkpoint@1` file (its `preprocessing` section, or the
 * statistics older checkpoints held). Every failure is a usage error naming the file and
 * the field: a preprocessing that cannot be applied is refused, never ignored.
 */
export async function loadArtifact(path: string, option = '--model'): Promise<LoadedArtifact> {
  const where = `${option} ${path}`;
  const bytes = await readModelBytes(path, option);
  if (bytes.subarray(0, 8).toString('latin1') === 'SGCKPT01') {
    try {
      const artifact = artifactFromCheckpoint(decodeCheckpoint(bytes));
      return { artifact, preprocessingFrom: artifact.preprocessing === null ? 'none' : 'checkpoint' };
    } catch (error) {
      throw new ConfigError(`${where}: ${oneLine(error)}`, { cause: error });
    }
  }
  const artifact = readDocument(bytes, where, artifactFromJSON);
  if (artifact.preprocessing !== null) return { artifact, preprocessingFrom: 'section' };
  const sideFile = `${path}.ingest.json`;
  const side = await readFile(sideFile).catch((error: NodeJS.ErrnoException) => {
    if (error.code === 'ENOENT') return null;
    throw new ConfigError(`${where}: cannot read its ${sideFile}: ${oneLine(error)}`, { cause: error });
  });
  if (side === null) return { artifact, preprocessingFrom: 'none' };
  const preprocessing = readDocument(side, `${where}: its ${sideFile}`, (doc) => preprocessingFromIngestState(doc, artifact.model));
  return { artifact: { model: artifact.model, preprocessing }, preprocessingFrom: 'side-file', sideFile };
}

/** A model read from a `streamgrad/model@1` file or a `streamgrad/checkpoint@1` file (with its decoded checkpoint). */
export interface LoadedModel {
  readonly model: Model;
  readonly checkpoint?: Checkpoint;
}

/**
 * Reads a model file or a checkpoint (recognised by its first bytes, `SGCKPT01`). Every
 * failure is a usage error naming the option and the file: unreadable, corrupt
 * checkpoint, not JSON, or a model `modelFromJSON` rejects.
 */
export async function loadModelOrCheckpoint(path: string, option = '--model'): Promise<LoadedModel> {
  const where = `${option} ${path}`;
  const bytes = await readModelBytes(path, option);
  if (bytes.subarray(0, 8).toString('latin1') !== 'SGCKPT01') return { model: modelFromText(bytes, where) };
  try {
    const checkpoint = decodeCheckpoint(bytes);
    return { model: modelFromCheckpoint(checkpoint), checkpoint };
  } catch (error) {
    // a checksum-valid file with a malformed header can fail anywhere: still a bad input file
    throw new ConfigError(`${where}: ${oneLine(error)}`, { cause: error });
  }
}

/**
 * Writes `model` as a `streamgrad/model@1` file, atomically and verified
 * (`writeFileDurably`): the JSON (exact float64 values) goes to a temporary file in the
 * same directory, in full, is flushed to disk and read back, and is then renamed over
 * `path`, so a reader sees the old file or the new one, never half of one. A write cut
 * short (a full disk, a file size limit) fails with exit 1, naming the file.
 * With `preprocessing` (a run's, `preprocessingOf`) the file is the whole artifact: the
 * model and the preprocessing it was trained with, in its `preprocessing` section.
 */
export async function saveModelFile(path: string, model: Model, option = '--save', preprocessing: Preprocessing | null = null): Promise<void> {
  const broken = nonFiniteParameter(model);
  if (broken !== null) {
    // JSON would write NaN and ±Infinity as null: a file that no longer loads
    throw new OutputError(`${option} ${path}: not saved: ${broken} is not finite`);
  }
  try {
    await writeFileDurably(path, new TextEncoder().encode(`${JSON.stringify(artifactToJSON({ model, preprocessing }))}\n`));
  } catch (error) {
    throw new OutputError(`${option} ${path}: cannot write: ${oneLine(error)}`, { cause: error });
  }
}

/** Where the first NaN or ±Infinity parameter is (`layers[1].weights[0][2] = NaN`), or null when all are finite. */
function nonFiniteParameter(model: Model): string | null {
  for (const [l, layer] of model.layers.entries()) {
    const w = layer.weights.findIndex((v) => !Number.isFinite(v));
    if (w >= 0) return `layers[${l}].weights[${Math.floor(w / layer.inputs)}][${w % layer.inputs}] = ${layer.weights[w]}`;
    const b = layer.bias.findIndex((v) => !Number.isFinite(v));
    if (b >= 0) return `layers[${l}].bias[${b}] = ${layer.bias[b]}`;
  }
  return null;
}

/** ` with its feature names, normalisation statistics and classes`: what the saved artifact carries beyond the weights. */
export function preprocessingNote(stages: { readonly features?: { readonly classes: readonly string[] | null }; readonly normalizer?: unknown }): string {
  const parts = [stages.features === undefined ? '' : 'feature names', stages.normalizer === undefined ? '' : 'normalisation statistics', stages.features?.classes == null ? '' : 'class labels'].filter(Boolean);
  return parts.length === 0 ? '' : ` (with its ${parts.join(', ').replace(/, ([^,]*)$/, ' and $1')})`;
}
