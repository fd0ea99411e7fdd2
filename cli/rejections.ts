import type { StreamgradError } from '../core/errors.ts';

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
      this.write(`rejected ${place} (${error.code}): ${detail}`);
    } else if (this.total === this.show + 1) {
      this.write(`more lines rejected; only the first ${this.show} are shown, the rest are counted`);
    }
  }

  /** `3 lines (1 not JSON, 2 invalid samples)`. */
  summary(): string {
    if (this.total === 0) return '0 lines';
    return `${this.total} line${this.total === 1 ? '' : 's'} (${this.badJson} not JSON, ${this.invalid} invalid sample${this.invalid === 1 ? '' : 's'})`;
  }
}
