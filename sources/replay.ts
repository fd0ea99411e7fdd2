import { setTimeout as sleep } from 'node:timers/promises';
import { defer, from, type Observable } from 'rxjs';
import { requireConfig } from '../core/errors.ts';
import type { IngestRecord } from '../core/record.ts';

/** Options of `replay`: which field holds the time, and how fast recorded records are played back. */
export interface ReplayOptions {
  /** The field holding each record's time: epoch milliseconds (or seconds, see `unit`) or an ISO 8601 date. */
  readonly timeField: string;
  /** 1 replays at the recorded pace, N at N× that pace, Infinity as fast as the consumer pulls (default 1). */
  readonly speed?: number;
  /** Unit of numeric times (default `ms`). */
  readonly unit?: 'ms' | 's';
  /** Longest single wait in ms (default: no limit); a gap in the recording is cut to it. */
  readonly maxGapMs?: number;
  /** Clock and sleep, for tests (default `performance.now` and timers). */
  readonly now?: () => number;
  readonly sleep?: (ms: number) => Promise<void>;
}

/** The time of a record in ms, or null when it has none that can be read. */
function timeOf(record: IngestRecord, field: string, unit: 'ms' | 's'): number | null {
  if (record.error !== undefined || typeof record.value !== 'object' || record.value === null) return null;
  const fields = record.value as Record<string, unknown>;
  if (!Object.hasOwn(fields, field)) return null;
  const raw = fields[field];
  let t: number;
  if (typeof raw === 'number') t = raw;
  else if (typeof raw === 'string' && raw.trim() !== '' && Number.isFinite(Number(raw))) t = Number(raw);
  else if (typeof raw === 'string') return Number.isFinite(Date.parse(raw)) ? Date.parse(raw) : null;
  else return null;
  if (!Number.isFinite(t)) return null;
  return unit === 's' ? t * 1000 : t;
}

/**
 * Replays a recorded, timestamped stream at its recorded pace or `speed`× faster: each
 * record is released when as much (scaled) time has passed since the first record as
 * passed between them in the recording. A pull source: nothing is read ahead, the
 * waiting happens between pulls. Records with no readable time (and errors) pass at
 * once; a time that goes backwards does not wait. The records keep their origins.
 *
 * @example replayRecords(csvRecords('co2-concentration.csv'), { timeField: 'Date', speed: 86400 * 30 })
 */
export async function* replayRecords(records: AsyncIterable<IngestRecord> | Iterable<IngestRecord>, options: ReplayOptions): AsyncGenerator<IngestRecord, void, undefined> {
  const { timeField, speed = 1, unit = 'ms', maxGapMs = Infinity } = options;
  requireConfig(typeof timeField === 'string' && timeField !== '', 'timeField', 'must name the field holding the time');
  requireConfig(speed > 0, 'speed', `must be > 0 (Infinity: no waiting), got ${speed}`);
  requireConfig(maxGapMs > 0, 'maxGapMs', `must be > 0, got ${maxGapMs}`);
  const now = options.now ?? (() => performance.now());
  const wait = options.sleep ?? ((ms: number) => sleep(ms));
  let start: { wall: number; recorded: number } | null = null;
  let shift = 0; // total cut from long gaps
  let previous = -Infinity;
  for await (const record of records) {
    const t = speed === Infinity ? null : timeOf(record, timeField, unit);
    if (t !== null) {
      if (start === null) start = { wall: now(), recorded: t };
      else {
        if (t - previous > maxGapMs * speed && previous > -Infinity) shift += t - previous - maxGapMs * speed;
        const due = start.wall + (t - start.recorded - shift) / speed;
        const ms = due - now();
        if (ms > 0) await wait(ms);
      }
      previous = Math.max(previous, t);
    }
    yield record;
  }
}

/** A replay as an Observable of records (built on the pull form). */
export function replay(records: AsyncIterable<IngestRecord> | Iterable<IngestRecord>, options: ReplayOptions): Observable<IngestRecord> {
  return defer(() => from(replayRecords(records, options)));
}
