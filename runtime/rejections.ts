import type { StreamgradError } from '../core/errors.ts';
import { printable } from './errors.ts';

/**
 * Keeps the tally of rejected input lines and shows the first few on stderr with their
 * line numbers, so that a bad file is noticed without flooding the terminal:
 * `streamgrad: rejected line 7 (SG_ERR_ARITY): x: has 2 values, the model takes 3`.
 */
export class RejectionLog {
  /** Lines that were not JSON. */
  badJson = 0;
  /** Lines that were JSON but not a sample the model takes (arity, non-finite, type, missing). */
  invalid = 0;

  constructor(private readonly write: (line: string) => void, private readonly show = 5) {}

  get total(): number {
    return this.badJson + this.invalid;
  }

  /** `where` is a line number, or a message id (MQTT, WebSocket ingest). */
  add(where: number | string, error: StreamgradError): void {
    if (error.code === 'SG_ERR_BAD_JSON') this.badJson++;
    else this.invalid++;
    if (this.total <= this.show) {
      const place = typeof where === 'number' ? `line ${where}` : `message ${where}`;
      const prefix = `${place}: `;
      const detail = error.message.startsWith(prefix) ? error.message.slice(prefix.length) : error.message;
      // printable: a message id, or the quoted text of the record, may hold control bytes
      this.write(printable(`rejected ${place} (${error.code}): ${detail}`));
    } else if (this.total === this.show + 1) {
      this.write(`more lines rejected; only the first ${this.show} are shown, the rest are counted`);
    }
  }

  /** `3 lines (1 not JSON, 2 invalid samples)`; `2 rows (2 invalid samples)` for CSV (see `rejectedSummary`). */
  summary(noun: RecordNoun = 'line'): string {
    return rejectedSummary(this.total, this.badJson, noun);
  }
}

/** What one record of a source is called in summaries: a line of NDJSON, a row of CSV, an MQTT message. */
export type RecordNoun = 'line' | 'row' | 'message';

/** The noun of a source's records (`format`: the data's, for a file or standard input). */
export function recordNoun(source: { readonly mqtt?: unknown; readonly format?: string }): RecordNoun {
  return source.mqtt !== undefined ? 'message' : source.format === 'csv' ? 'row' : 'line';
}

/** `1 row`, `3 messages`. */
export function countOf(n: number, noun: RecordNoun): string {
  return `${n} ${noun}${n === 1 ? '' : 's'}`;
}

/**
 * `0 lines`, `3 lines (1 not JSON, 2 invalid samples)`, `2 rows (2 invalid samples)`: CSV
 * rows are never "not JSON".
 */
export function rejectedSummary(total: number, badJson: number, noun: RecordNoun): string {
  if (total === 0) return countOf(0, noun);
  const invalid = total - badJson;
  const samples = `${invalid} invalid sample${invalid === 1 ? '' : 's'}`;
  return `${countOf(total, noun)} (${noun === 'row' ? samples : `${badJson} not JSON, ${samples}`})`;
}
