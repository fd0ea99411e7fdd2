import { mkdir, stat } from 'node:fs/promises';
import { dirname } from 'node:path';

/** The folder operation `makeFolder` needs (a checkpoint store's injected file system has it). */
export interface FolderFs {
  mkdir(path: string, options?: { recursive?: boolean }): Promise<unknown>;
}

/**
 * `mkdir -p path`, without Node's recursive mkdir alone: where the system says ENOENT
 * although the parent folder is there (`/proc`, `/sys`), that one makes the parent
 * (EEXIST) and tries the folder again, for ever (Node 20: `export --format tfjs --out
 * /proc/x`, `--checkpoint-dir /proc/x`, `serve --state /proc/x` never returned). The
 * folder is made on its own first; an ENOENT with its parent there is the system's
 * refusal, thrown; only a missing parent is made recursively. An existing folder is fine.
 *
 * @example await makeFolder('out/tfjs/model'); // made with its parents, or there already
 */
export async function makeFolder(path: string, fs: FolderFs = { mkdir }): Promise<void> {
  try {
    await fs.mkdir(path);
    return;
  } catch (error) {
    const code = (error as NodeJS.ErrnoException).code;
    if (code === 'EEXIST' && (await stat(path).catch(() => null))?.isDirectory() === true) return;
    if (code !== 'ENOENT' || (await stat(dirname(path)).catch(() => null)) !== null) throw error;
  }
  await fs.mkdir(path, { recursive: true });
}
