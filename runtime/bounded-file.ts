import { open } from 'node:fs/promises';
import { formatBytes } from '../sources/lines.ts';

/**
 * The largest model or checkpoint file the command line reads: 512 MiB. A model has at
 * most `MAX_PARAMETERS` (16,777,216) parameters, about 370 MB as JSON and 8 bytes each
 * (with the optimizer's moments, 24) in a checkpoint, so every file streamgrad writes fits.
 */
export const MODEL_FILE_LIMIT = 512 * 1024 * 1024;
/** The largest experiment config (`streamgrad run FILE`): 1 MiB of JSON is far more than any experiment needs. */
export const CONFIG_FILE_LIMIT = 1024 * 1024;

/** Why a file was refused: `exceeds` when it is larger than the limit, `unexpected` when its first bytes cannot start such a file. */
export class FileRefused extends Error {
  override readonly name = 'FileRefused';
}

/**
 * Reads a whole file into memory, but never more than `limit` bytes: a regular file
 * larger than that is refused from its size before anything is read; a device, FIFO or
 * pipe (`/dev/zero`, `<(…)`) is read in chunks and refused as soon as it passes the
 * limit, or at once when `starts` says its first bytes cannot begin the expected file.
 * Either way memory stays bounded by the limit, and the error says which bound it hit.
 *
 * @example
 * const bytes = await readBounded('model.json', MODEL_FILE_LIMIT, (b) => b[0] === 0x7b);
 */
export async function readBounded(path: string, limit: number, starts?: (head: Buffer) => string | null): Promise<Buffer> {
  const handle = await open(path, 'r');
  try {
    const stat = await handle.stat();
    if (stat.isDirectory()) throw new Error('is a directory');
    if (stat.isFile() && stat.size > limit) throw new FileRefused(`${stat.size} bytes, larger than the ${formatBytes(limit)} such a file may have`);
    const chunks: Buffer[] = [];
    let total = 0;
    for (;;) {
      const chunk = Buffer.allocUnsafe(Math.min(64 * 1024, limit + 1 - total));
      const { bytesRead } = await handle.read(chunk, 0, chunk.length, null);
      if (bytesRead === 0) break;
      chunks.push(chunk.subarray(0, bytesRead));
      if (total === 0 && !stat.isFile() && starts !== undefined) {
        const why = starts(chunks[0]);
        if (why !== null) throw new FileRefused(why);
      }
      total += bytesRead;
      if (total > limit) throw new FileRefused(`larger than the ${formatBytes(limit)} such a file may have (stopped reading there)`);
    }
    return Buffer.concat(chunks, total);
  } finally {
    await handle.close();
  }
}
