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
  /**
   * For records merged from several files (features and a labels file): each file's own
   * identity at the same moment (its records pulled so far), so that a refused resume
   * names the file that changed, with its own count, not the merged one. Absent in
   * checkpoints written before; only used to word the refusal.
   */
  readonly parts?: readonly (SourceIdentity & { readonly where: string })[];
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
  /** The fingerprints of the files merged into these records (`part`), each named as a message names it. */
  private readonly parts: { readonly where: string; readonly fingerprint: SourceFingerprint }[] = [];

  /** `path`: the data file (absolute), or `-` for standard input. */
  constructor(readonly path: string) {}

  /**
   * A fingerprint of one of the files merged into these records (wrap that file's records
   * with it before the merge): its identity goes into this one's `parts`, so that a refused
   * resume can name the file that changed.
   *
   * @example reader = mergeLabelled(fingerprint.part('--data f.ndjson', fPath).wrap(features), fingerprint.part('--labels l.ndjson', lPath).wrap(labels));
   */
  part(where: string, path: string): SourceFingerprint {
    const fingerprint = new SourceFingerprint(path);
    this.parts.push({ where, fingerprint });
    return fingerprint;
  }

  /** The paths of the parts, in order. */
  partPaths(): string[] {
    return this.parts.map((p) => p.fingerprint.path);
  }

  /** Each part's identity now (the records it has given so far). */
  async partIdentities(): Promise<(SourceIdentity & { where: string })[]> {
    return Promise.all(this.parts.map(async ({ where, fingerprint }) => ({ where, ...(await fingerprint.identity(fingerprint.records))! })));
  }

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
    const parts = this.parts.length === 0 ? null : await this.partIdentities();
    return { size: now?.size ?? null, mtimeMs: now?.mtimeMs ?? null, records, sha256: this.hash.copy().digest('hex'), ...(parts !== null && { parts }) };
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
  const parts = Array.isArray(s.parts) ? s.parts.flatMap((p) => {
    const part = savedIdentity(p);
    return part !== null && typeof p?.where === 'string' ? [{ ...part, where: p.where }] : [];
  }) : [];
  return { size: typeof s.size === 'number' ? s.size : null, mtimeMs: typeof s.mtimeMs === 'number' ? s.mtimeMs : null, records: s.records!, sha256: s.sha256, ...(parts.length > 0 && { parts }) };
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
  const refuse = (why: string, named = where, several = false): never => {
    throw new ConfigError(`--resume: ${named} ${several ? 'are' : 'is'} not the data the checkpoint was written for: ${why}; resume on the same ${several ? 'files' : 'file'} (records may be appended to ${several ? 'them' : 'it'}), or start afresh without --resume`);
  };
  // records merged from several files (features and labels): the files that changed, each
  // with its own count, rather than the first one's name and the merged count
  const refuseParts = async (): Promise<void> => {
    if (identity?.parts === undefined) return;
    const now = await fingerprint.partIdentities();
    if (now.length !== identity.parts.length) return;
    const changed = identity.parts.flatMap((then, i) => {
      const part = now[i];
      if (part.records === then.records && part.sha256 === then.sha256) return [];
      const modified = part.mtimeMs != null && part.mtimeMs !== then.mtimeMs ? ` (modified ${when(part.mtimeMs)}, after the checkpoint's ${when(then.mtimeMs)})` : '';
      return [part.records === then.records
        ? `${then.where}: its first ${then.records} records differ from the ones the checkpoint read${modified}`
        : `${then.where}: the checkpoint had read ${then.records} of its records at this point, it gives ${part.records}${modified}`];
    });
    if (changed.length === 1) {
      const [named, why] = [changed[0].slice(0, changed[0].indexOf(': ')), changed[0].slice(changed[0].indexOf(': ') + 2)];
      refuse(why, named);
    }
    if (changed.length > 1) refuse(changed.join('; '), identity.parts.map((p) => p.where).join(' and '), true);
  };
  const shrunk = (then: SourceIdentity, path: string, named: string) => async (): Promise<void> => {
    if (then.size === null || path === '-') return;
    const now = await stat(path).catch(() => null);
    if (now !== null && now.size < then.size) refuse(`it was ${then.size} bytes (modified ${when(then.mtimeMs)}), it is ${now.size} bytes now (modified ${when(now.mtimeMs)})`, named);
  };
  if (identity !== null) {
    const partPaths = fingerprint.partPaths();
    if (identity.parts !== undefined && partPaths.length === identity.parts.length) {
      for (const [i, part] of identity.parts.entries()) await shrunk(part, partPaths[i], part.where)();
    } else await shrunk(identity, fingerprint.path, where)();
  }
  const iterator = records[Symbol.asyncIterator]();
  try {
    for (let skipped = 0; skipped < offset; skipped++) {
      if ((await iterator.next()).done === true) {
        await refuseParts();
        refuse(`it ends after ${skipped} records, the checkpoint had read ${offset}`);
      }
    }
    if (identity !== null && identity.records === offset) {
      const now = await fingerprint.identity(offset);
      if (now?.sha256 !== identity.sha256) {
        await refuseParts();
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
