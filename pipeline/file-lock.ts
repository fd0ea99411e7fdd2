import { randomBytes } from 'node:crypto';
import { readFileSync, statSync, unlinkSync, writeFileSync } from 'node:fs';
import { hostname } from 'node:os';
import { StreamgradError } from '../core/errors.ts';

/** Who holds a lock, as its lock file says. */
export interface LockHolder {
  readonly pid: number;
  /** The holder's start time as the kernel counts it (Linux), so that a reused pid is not mistaken for the holder. */
  readonly started: string | null;
  readonly host: string;
  /** When it took the lock (ISO 8601). */
  readonly since: string;
  /** A random id of this taking of the lock. */
  readonly nonce: string;
}

/** Locks this process holds, released when it exits however it exits (short of SIGKILL, which `acquire` detects). */
const held = new Set<FileLock>();
let exitHookInstalled = false;

/**
 * An advisory lock for one writer of a file or folder: a lock file created exclusively
 * (`O_EXCL`) that names its holder's pid. A second writer finds it and is refused, naming
 * the holder. A lock left by a holder that died without releasing it (SIGKILL, a power
 * cut) does not block anyone: the pid is not alive any more, or is alive but is another
 * process (its start time differs), so the lock is stale and taken over. A lock file
 * written on another host cannot be checked and counts as held.
 *
 * @example const lock = FileLock.acquire('ckpt/train.lock', 'checkpoint folder ckpt'); … lock.release();
 */
export class FileLock {
  private constructor(readonly path: string, private readonly content: string) {}

  /**
   * Takes the lock at `path` (the lock file). Throws `SG_ERR_CONFIG` (field `field`) when
   * another live process holds it: `what` is in use by process PID since TIME.
   */
  static acquire(path: string, what: string, field = 'lock'): FileLock {
    const holder: LockHolder = { pid: process.pid, started: startTime(process.pid), host: hostname(), since: new Date().toISOString(), nonce: randomBytes(8).toString('hex') };
    const content = `${JSON.stringify(holder)}\n`;
    for (let attempt = 0; attempt < 5; attempt++) {
      try {
        writeFileSync(path, content, { flag: 'wx', mode: 0o644 });
        const lock = new FileLock(path, content);
        held.add(lock);
        installExitHook();
        return lock;
      } catch (error) {
        if ((error as NodeJS.ErrnoException).code !== 'EEXIST') {
          throw new StreamgradError('SG_ERR_CONFIG', `${what}: cannot lock (${path}): ${(error as Error).message}`, field, { cause: error });
        }
      }
      let existing: string;
      try {
        existing = readFileSync(path, 'utf8');
      } catch {
        continue; // released meanwhile: try again
      }
      const other = parseHolder(existing);
      if (other === null) {
        // being written this very moment, or left empty by a crash in that moment
        const age = Date.now() - (statSync(path, { throwIfNoEntry: false })?.mtimeMs ?? 0);
        if (age < 5000) throw new StreamgradError('SG_ERR_CONFIG', `${what}: in use by another process (its lock ${path} is being written); two writers would corrupt it`, field);
      } else if (alive(other)) {
        const remote = other.host === holder.host ? '' : ` on ${other.host}`;
        const advice = remote === '' ? 'wait for it to end, or choose another' : `wait for it to end, choose another, or remove ${path} if that process is gone`;
        throw new StreamgradError('SG_ERR_CONFIG', `${what}: in use by process ${other.pid}${remote} since ${other.since}; two writers would corrupt it (${advice})`, field);
      }
      // stale: remove it, unless another process took it over since we read it
      try {
        if (readFileSync(path, 'utf8') === existing) unlinkSync(path);
      } catch {
        // gone already
      }
    }
    throw new StreamgradError('SG_ERR_CONFIG', `${what}: cannot lock (${path}): other processes keep taking it`, field);
  }

  /** Releases the lock (removes the lock file if it is still this one). Idempotent. */
  release(): void {
    if (!held.delete(this)) return;
    try {
      if (readFileSync(this.path, 'utf8') === this.content) unlinkSync(this.path);
    } catch {
      // removed by hand, or the folder is gone: nothing to release
    }
  }
}

function installExitHook(): void {
  if (exitHookInstalled) return;
  exitHookInstalled = true;
  process.on('exit', () => {
    for (const lock of [...held]) lock.release();
  });
}

function parseHolder(text: string): LockHolder | null {
  try {
    const h = JSON.parse(text) as Partial<LockHolder>;
    if (!Number.isSafeInteger(h.pid) || (h.pid ?? 0) <= 0 || typeof h.host !== 'string' || typeof h.since !== 'string') return null;
    return { pid: h.pid!, started: typeof h.started === 'string' ? h.started : null, host: h.host, since: h.since, nonce: String(h.nonce ?? '') };
  } catch {
    return null;
  }
}

/** Whether the lock's holder is still running (another host's cannot be checked: yes). */
function alive(holder: LockHolder): boolean {
  if (holder.host !== hostname()) return true;
  try {
    process.kill(holder.pid, 0);
  } catch (error) {
    // EPERM: it exists, but belongs to someone else
    if ((error as NodeJS.ErrnoException).code !== 'EPERM') return false;
  }
  // the pid is taken; by the holder, or by a process that got its pid after it died?
  const now = startTime(holder.pid);
  return holder.started === null || now === null || now === holder.started;
}

/** A process's start time in clock ticks since boot (field 22 of /proc/PID/stat), or null where there is no /proc. */
function startTime(pid: number): string | null {
  try {
    const stat = readFileSync(`/proc/${pid}/stat`, 'utf8');
    // the command name (field 2) is in parentheses and may hold spaces: count from after it
    return stat.slice(stat.lastIndexOf(')') + 2).split(' ')[19] ?? null;
  } catch {
    return null;
  }
}
