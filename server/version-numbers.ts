import { readFile, stat } from 'node:fs/promises';
import { join } from 'node:path';
import { StreamgradError } from '../core/errors.ts';
import { writeFileDurably } from '../pipeline/durable-file.ts';
import type { VersionNumbers } from './model-versions.ts';

/**
 * Version numbers a run may hand out, reserved on disk before any of them is used, so that
 * a number is never given to two different sets of weights, across a kill -9 too.
 *
 * Why a reservation and not the checkpoint's count: a served run numbers a version at each
 * published change (30 Hz), far more often than it checkpoints, so the versions made after
 * the newest checkpoint are known to nobody after a crash; a resume that counted on from the
 * checkpoint gave their numbers again to other weights, and a caller pinned to one of them
 * got other answers under the same number. The numbers are reserved a block ahead instead,
 * as a database sequence caches values: a restart goes on after the whole reserved block
 * (skipping what the crash left unused, never reusing), and the file is written once per
 * block, in the background (`ReservedNumbers`), long before the numbers run out.
 */

/** Numbers reserved at a time: a write every ~17 s at 30 versions a second; the most a restart skips. */
export const NUMBER_BLOCK = 1000;

/** A run's reservation as plain data (posted to the server thread): its file, the first number it may give, and the last. */
export interface NumberReservation {
  readonly path: string;
  readonly first: number;
  readonly reserved: number;
}

const FORMAT = 'streamgrad-version-numbers';
/** Larger than any file of this kind (one line of JSON). */
const MAX_FILE_BYTES = 4096;

/** Where a run's reservation lives: beside its checkpoints, named after the run (or a saved model's in `serve --state DIR`). */
export const numbersFileOf = (dir: string, name: string): string => join(dir, `${name}.versions.json`);

/** Where a saved model's reservation lives by default: beside its file, as its labels do (`FILE.versions.json`). */
export const numbersFileBeside = (modelFile: string): string => `${modelFile}.versions.json`;

/**
 * Reserves the next block of version numbers for the run whose file is `path`: reads the
 * last reservation (none: 0), writes `last + block` whole (`writeFileDurably`), and returns
 * where numbering starts (`last + 1`). A file that is not a reservation is `SG_ERR_CHECKPOINT`
 * naming it: starting again from 1 would give old numbers to new weights.
 *
 * @example
 * const numbers = await reserveVersionNumbers('ck/train.versions.json');
 * server.addRun(run, { numbers });                       // versions numbered from numbers.first
 */
export async function reserveVersionNumbers(path: string, block = NUMBER_BLOCK): Promise<NumberReservation> {
  const last = await readReservation(path);
  const reserved = last + block;
  await writeReservation(path, reserved);
  return { path, first: last + 1, reserved };
}

/** The last number reserved in `path`; 0 when there is no such file. */
export async function readReservation(path: string): Promise<number> {
  let text: string;
  try {
    // checked before reading: a device (a link to /dev/zero) would be read forever
    const info = await stat(path);
    if (!info.isFile()) throw new Error(info.isDirectory() ? 'is a directory' : 'not a regular file');
    if (info.size > MAX_FILE_BYTES) throw new Error(`larger than ${MAX_FILE_BYTES} bytes`);
    text = (await readFile(path)).toString('utf8');
  } catch (error) {
    if ((error as { code?: string }).code === 'ENOENT') return 0;
    throw new StreamgradError('SG_ERR_CHECKPOINT', `${path}: cannot read the version numbers: ${error instanceof Error ? error.message : String(error)}`, path);
  }
  let doc: unknown;
  try {
    doc = JSON.parse(text);
  } catch {
    doc = null;
  }
  const reserved = (doc as { reserved?: unknown } | null)?.reserved;
  if ((doc as { format?: unknown } | null)?.format !== FORMAT || !Number.isSafeInteger(reserved) || (reserved as number) < 0) {
    throw new StreamgradError('SG_ERR_CHECKPOINT', `${path}: not a reservation of version numbers (${FORMAT}); it keeps a served run from giving a version number twice: restore it, or remove it and accept that numbers may repeat`, path);
  }
  return reserved as number;
}

function writeReservation(path: string, reserved: number): Promise<void> {
  return writeFileDurably(path, new TextEncoder().encode(`${JSON.stringify({ format: FORMAT, version: 1, reserved })}\n`));
}

/**
 * The server's side of a reservation: which numbers `ModelVersions` may give now, and the
 * next block reserved on disk when half of this one is used. Until that write is whole, no
 * number past the reservation is given (the store keeps answering from its newest version
 * and tries again at the next publish); a failed write is said through `log` and tried
 * again at most once a second.
 *
 * @example
 * const versions = new ModelVersions('train', topology, { numbers: new ReservedNumbers(reservation, log) });
 */
export class ReservedNumbers implements VersionNumbers {
  readonly first: number;
  private reserved: number;
  private writing = false;
  private failedAt = -Infinity;

  constructor(private readonly reservation: NumberReservation, private readonly log: (line: string) => void = () => undefined, private readonly block = NUMBER_BLOCK) {
    this.first = reservation.first;
    this.reserved = reservation.reserved;
  }

  /** The last number that may be given now. */
  get last(): number {
    return this.reserved;
  }

  allows(number: number): boolean {
    if (number > this.reserved - this.block / 2) this.extend();
    return number <= this.reserved;
  }

  /** Reserves the next block (one write at a time; after a failure, not again within a second). */
  private extend(): void {
    if (this.writing || performance.now() - this.failedAt < 1000) return;
    this.writing = true;
    const reserved = this.reserved + this.block;
    writeReservation(this.reservation.path, reserved).then(
      () => {
        this.reserved = Math.max(this.reserved, reserved);
        if (this.failedAt > -Infinity) this.log(`version numbers: reserved up to ${reserved} in ${this.reservation.path} again`);
        this.failedAt = -Infinity;
      },
      (error: unknown) => {
        if (this.failedAt === -Infinity) this.log(`version numbers: cannot reserve more in ${this.reservation.path} (${error instanceof Error ? error.message : String(error)}); no version past ${this.reserved} until a write succeeds`);
        this.failedAt = performance.now();
      },
    ).finally(() => {
      this.writing = false;
    });
  }
}
