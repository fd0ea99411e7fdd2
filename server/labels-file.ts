import { readFile, stat } from 'node:fs/promises';
import { StreamgradError } from '../core/errors.ts';
import type { Topology } from '../core/model.ts';
import { writeFileDurably } from '../pipeline/durable-file.ts';
import type { LabelsSnapshot } from './model-versions.ts';
import { labelsFromJSON, labelsToJSON } from './version-labels.ts';

/** Largest labels file read (a few versions of a model's weights as JSON; far above what one holds). */
const MAX_LABELS_FILE_BYTES = 1 << 30;

/** Where `streamgrad serve` keeps a saved model's labels: beside the model file, `FILE.labels.json`. */
export const labelsFileOf = (modelFile: string): string => `${modelFile}.labels.json`;

/**
 * Reads a labels file (`labelsToJSON`) for a model of `topology`; undefined when there is
 * none. A file that cannot be read or does not fit the model is `SG_ERR_CHECKPOINT`
 * naming it: serving `stable` from the wrong weights must not start silently.
 *
 * @example
 * const labels = await readLabelsFile('weather.json.labels.json', topologyOf(artifact.model));
 */
export async function readLabelsFile(path: string, topology: Topology): Promise<LabelsSnapshot | undefined> {
  let text: string;
  try {
    // checked before reading: a device (a link to /dev/zero) would be read forever, a FIFO waited on
    const info = await stat(path);
    if (!info.isFile()) throw new Error(info.isDirectory() ? 'is a directory' : 'not a regular file');
    if (info.size > MAX_LABELS_FILE_BYTES) throw new Error(`larger than ${MAX_LABELS_FILE_BYTES} bytes`);
    const bytes = await readFile(path);
    if (bytes.length > MAX_LABELS_FILE_BYTES) throw new Error(`larger than ${MAX_LABELS_FILE_BYTES} bytes`);
    text = bytes.toString('utf8');
  } catch (error) {
    if ((error as { code?: string }).code === 'ENOENT') return undefined;
    throw new StreamgradError('SG_ERR_CHECKPOINT', `${path}: cannot read the labels: ${error instanceof Error ? error.message : String(error)}`, path);
  }
  let doc: unknown;
  try {
    doc = JSON.parse(text);
  } catch {
    throw new StreamgradError('SG_ERR_CHECKPOINT', `${path}: not JSON (a labels file of streamgrad serve); remove it to start without labels`, path);
  }
  try {
    return labelsFromJSON(doc, topology, path);
  } catch (error) {
    throw new StreamgradError('SG_ERR_CHECKPOINT', `${error instanceof Error ? error.message : String(error)} (remove the file to start without labels)`, path);
  }
}

/**
 * Writes a model's labels to its file each time they change, one write at a time and the
 * newest state last (a write is whole or not at all: `writeFileDurably`). A failed write
 * is reported to `onError` and the next change tries again; serving goes on.
 *
 * @example
 * const file = new LabelsFileWriter('weather.json.labels.json', (e) => console.error(e.message));
 * server = await serveInThread({ onLabels: (model, labels) => file.write(labels) });
 */
export class LabelsFileWriter {
  private queue: Promise<void> = Promise.resolve();
  private newest: LabelsSnapshot | null = null;

  constructor(readonly path: string, private readonly onError: (error: Error) => void) {}

  /** Schedules a write of `labels` (a write still waiting is replaced: only the newest state matters). */
  write(labels: LabelsSnapshot): void {
    const waiting = this.newest !== null;
    this.newest = labels;
    if (waiting) return;
    this.queue = this.queue.then(async () => {
      const snapshot = this.newest!;
      this.newest = null;
      try {
        await writeFileDurably(this.path, new TextEncoder().encode(`${JSON.stringify(labelsToJSON(snapshot))}\n`));
      } catch (error) {
        this.onError(error instanceof Error ? error : new Error(String(error)));
      }
    });
  }

  /** Resolves when every scheduled write is done. */
  flush(): Promise<void> {
    return this.queue;
  }
}
