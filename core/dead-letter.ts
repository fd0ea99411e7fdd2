import type { ErrorCode, StreamgradError } from './errors.ts';
import type { Origin } from './record.ts';

/**
 * One rejected record, as written to a dead-letter file (one JSON object per line):
 * when, why (`code`, `field`, `message`), and where it came from (`line` or
 * `messageId`, `topic`, `source`) with the text as it arrived (`raw`, cut at
 * `MAX_RAW_CHARS` with `truncated: true`).
 */
export interface DeadLetter {
  /** ISO 8601 time of the rejection. */
  readonly time: string;
  readonly code: ErrorCode;
  /** The offending field (`x[2]`, `temp_max`, `line`), or null when the record as a whole is bad. */
  readonly field: string | null;
  readonly message: string;
  readonly source?: string;
  readonly line?: number;
  readonly messageId?: string;
  readonly topic?: string;
  readonly raw?: string;
  readonly truncated?: true;
}

/** Where dead letters go. `write` is synchronous and may throw (a full disk): the stage that calls it then fails loudly. */
export interface DeadLetterSink {
  write(letter: DeadLetter): void;
  /** Flushes and releases the sink; resolves once everything written is durable. */
  close(): Promise<void>;
}

/** Longest `raw` kept in a dead letter (characters); longer text is cut and marked `truncated`. */
export const MAX_RAW_CHARS = 4096;

/** The dead letter of `error` for a record from `origin`. */
export function deadLetter(error: StreamgradError, origin: Origin, now: Date = new Date()): DeadLetter {
  const raw = origin.raw;
  const cut = raw !== undefined && (raw.length > MAX_RAW_CHARS || origin.rawCut === true);
  return {
    time: now.toISOString(),
    code: error.code,
    field: error.field ?? null,
    message: error.message,
    ...(origin.source !== undefined && { source: origin.source }),
    ...(origin.line !== undefined && { line: origin.line }),
    ...(origin.messageId !== undefined && { messageId: origin.messageId }),
    ...(origin.topic !== undefined && { topic: origin.topic }),
    ...(raw !== undefined && { raw: cut ? raw.slice(0, MAX_RAW_CHARS) : raw }),
    ...(cut && { truncated: true as const }),
  };
}

/** Keeps dead letters in an array: for tests and for callers that report them themselves. */
export class MemoryDeadLetters implements DeadLetterSink {
  readonly letters: DeadLetter[] = [];
  closed = false;

  write(letter: DeadLetter): void {
    this.letters.push(letter);
  }

  close(): Promise<void> {
    this.closed = true;
    return Promise.resolve();
  }
}

/** Writes every letter to each of `sinks` in turn (e.g. a file and the terminal's summary). */
export function teeDeadLetters(...sinks: readonly DeadLetterSink[]): DeadLetterSink {
  return {
    write(letter) {
      for (const sink of sinks) sink.write(letter);
    },
    async close() {
      const results = await Promise.allSettled(sinks.map((s) => s.close()));
      const failed = results.find((r): r is PromiseRejectedResult => r.status === 'rejected');
      if (failed !== undefined) throw failed.reason;
    },
  };
}

/** Where a letter's record is in its stream: its line, or the number of its MQTT message (`topic#n`); null when unknown. */
export function letterPosition(letter: DeadLetter): number | null {
  if (letter.line !== undefined) return letter.line;
  const n = letter.messageId === undefined ? null : /#(\d+)$/.exec(letter.messageId);
  return n === null ? null : Number(n[1]);
}

/**
 * Passes on only letters past position `after`, each position once (positions only grow
 * along a stream): several models reading one stream reject the same records, and a
 * resumed run re-reads records whose letters are already written.
 */
export function afterPosition(sink: DeadLetterSink, after = -Infinity): DeadLetterSink {
  let last = after;
  return {
    write(letter) {
      const at = letterPosition(letter);
      if (at !== null) {
        if (at <= last) return;
        last = at;
      }
      sink.write(letter);
    },
    close: () => sink.close(),
  };
}

/**
 * Passes on the letters after the first `n`. A resumed run whose letters do not come in
 * line order (delayed labels: a time-out names a features line long past, a label another
 * file's line) skips by count instead of by position: its dead-letter file holds `n`
 * letters more than the checkpoint accounted for, and the resumed run, deterministic,
 * writes those same `n` first.
 */
export function skipLetters(sink: DeadLetterSink, n: number): DeadLetterSink {
  let skip = n;
  return {
    write(letter) {
      if (skip > 0) {
        skip--;
        return;
      }
      sink.write(letter);
    },
    close: () => sink.close(),
  };
}

