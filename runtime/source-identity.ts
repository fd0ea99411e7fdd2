import { createHash } from 'node:crypto';
import { stat } from 'node:fs/promises';
import type { IngestRecord } from '../core/record.ts';
import { ConfigError } from './errors.ts';

/**
 * What a checkpoint records about the data a run read, beyond its path: the file's size
 * and modification time then, and a SHA-256 of the text of every record it had read. A
 * resume re-reads those records anyway (to skip them), hashes them again and compares:
 * another file at the same path, or the same file edited anywhere in the part already
 * trained on, is refused; a file that only grew (records appended, as a log does) is the
 * same data and resumes.
 */
export interface SourceIdentity {
  /** The file's size in bytes when the checkpoint was written (null for standard input). */
  readonly size: number | null;
  /** Its modification time then (ms since the epoch; null for standard input), for the message. */
  readonly mtimeMs: number | null;
  /** Records read (the checkpoint's source offset). */
  readonly records: number;
  /** SHA-256 (hex) of those records' text, each followed by a newline. */
  readonly sha256: string;
}

/**
 * Hashes the records a run reads as they pass (`wrap`), so that a checkpoint can say
 * which data it accounts for (`identity`), and a resume can check it (`resumeRecords`).
 * Cheap: one SHA-256 update per record, of text the source has in memory anyway.
 *
 * @example const fingerprint = new SourceFingerprint('/data/big.csv'); const source = fingerprint.wrap(records);
 */
export class SourceFingerprint {
  private readonly hash = createHash('sha256');
  private count = 0;

  /** `path`: the data file (absolute), or `-` for standard input. */
  constructor(readonly path: string) {}

  /** The same records, each hashed as it is pulled. */
  wrap(records: AsyncIterable<IngestRecord>): AsyncIterable<IngestRecord> {
    return {
      [Symbol.asyncIterator]: () => {
        const inner = records[Symbol.asyncIterator]();
        return {
          next: async () => {
            const next = await inner.next();
            if (next.done !== true) this.add(next.value);
            return next;
          },
          return: async (value?: unknown) => (await inner.return?.(value)) ?? { done: true as const, value: undefined },
        };
      },
    };
  }

  /** Records hashed so far. */
  get records(): number {
    return this.count;
  }

  /** The identity of the first `records` records, or null when a different number has been read (no clean cut to vouch for). */
  async identity(records: number): Promise<SourceIdentity | null> {
    if (records !== this.count) return null;
    const now = this.path === '-' ? null : await stat(this.path).catch(() => null);
    return { size: now?.size ?? null, mtimeMs: now?.mtimeMs ?? null, records, sha256: this.hash.copy().digest('hex') };
  }

  private add(record: IngestRecord): void {
    this.hash.update(record.origin.raw ?? JSON.stringify(record.value ?? null) ?? '');
    this.hash.update('\n');
    this.count++;
  }
}

/** The identity a checkpoint holds, or null for one written before identities were recorded. */
function savedIdentity(saved: unknown): SourceIdentity | null {
  const s = saved as Partial<SourceIdentity> | null | undefined;
  if (typeof s !== 'object' || s === null || typeof s.sha256 !== 'string' || !Number.isSafeInteger(s.records)) return null;
  return { size: typeof s.size === 'number' ? s.size : null, mtimeMs: typeof s.mtimeMs === 'number' ? s.mtimeMs : null, records: s.records!, sha256: s.sha256 };
}

const when = (ms: number | null | undefined) => (typeof ms === 'number' && Number.isFinite(ms) ? new Date(ms).toISOString() : 'unknown');

/**
 * Reads past the first `offset` records of `records` (the records `fingerprint` wraps),
 * where a resumed run continues, and checks that they are the ones its checkpoint read
 * (`saved`, its `SourceIdentity`): a file smaller than it was, one that ends before the
 * offset, or one whose first `offset` records hash differently is refused with exit 2,
 * naming it (`where`, e.g. `--data big.csv`), before anything is trained. Resolves with
 * the rest of the records.
 */
export async function resumeRecords(records: AsyncIterable<IngestRecord>, fingerprint: SourceFingerprint, offset: number, saved: unknown, where: string): Promise<AsyncIterable<IngestRecord>> {
  const identity = savedIdentity(saved);
  const refuse = (why: string): never => {
    throw new ConfigError(`--resume: ${where} is not the data the checkpoint was written for: ${why}; resume on the same file (records may be appended to it), or start afresh without --resume`);
  };
  if (identity !== null && identity.size !== null && fingerprint.path !== '-') {
    const now = await stat(fingerprint.path).catch(() => null);
    if (now !== null && now.size < identity.size) {
      refuse(`it was ${identity.size} bytes (modified ${when(identity.mtimeMs)}), it is ${now.size} bytes now (modified ${when(now.mtimeMs)})`);
    }
  }
  const iterator = records[Symbol.asyncIterator]();
  try {
    for (let skipped = 0; skipped < offset; skipped++) {
      if ((await iterator.next()).done === true) refuse(`it ends after ${skipped} records, the checkpoint had read ${offset}`);
    }
    if (identity !== null && identity.records === offset) {
      const now = await fingerprint.identity(offset);
      if (now?.sha256 !== identity.sha256) {
        const modified = now?.mtimeMs != null && now.mtimeMs !== identity.mtimeMs ? ` (modified ${when(now.mtimeMs)}, after the checkpoint's ${when(identity.mtimeMs)})` : '';
        refuse(`its first ${offset} records differ from the ones the checkpoint trained on${modified}`);
      }
    }
  } catch (error) {
    await iterator.return?.().catch(() => undefined);
    throw error;
  }
  return { [Symbol.asyncIterator]: () => iterator };
}
