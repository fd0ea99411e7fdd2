import { isUtf8 } from 'node:buffer';
import { isErrorCode, StreamgradError } from '../core/errors.ts';
import type { IngestRecord } from '../core/record.ts';

/**
 * Starts a line that is not a record's JSON text but an envelope (RFC 7464's record
 * separator, which no JSON text starts with): `{"text": {...}, "raw": "..."}` for a
 * record of text cells (a CSV row), `{"rejected": {code, message, field}, "raw": "..."}`
 * for a record its source already turned away (a CSV row with a stray quote).
 */
export const ENVELOPE = '\u001e';

/**
 * The batch line of a record as a source read it: a JSON record's text as it arrived (an
 * NDJSON line, an MQTT payload: re-parsed by the worker, so a bad one gets the local
 * code), a CSV row as an envelope that keeps its cells text (parsed as locally), and a
 * record the source rejected as an envelope carrying the rejection, so that the worker
 * dead-letters it with the same code, field and raw text as a local run would.
 *
 * @example batchLine({ value: { a: '1', y: '2' }, text: true, origin: { raw: '1,2' } }) // '\u001e{"text":{"a":"1","y":"2"},"raw":"1,2"}'
 */
export function batchLine(record: IngestRecord): string {
  const raw = record.origin.raw;
  if (record.error !== undefined) {
    const { code, message, field } = record.error;
    return ENVELOPE + JSON.stringify({ rejected: { code, message, ...(field !== undefined && { field }) }, ...(raw !== undefined && { raw }) });
  }
  if (record.text === true) return ENVELOPE + JSON.stringify({ text: record.value, ...(raw !== undefined && { raw }) });
  return raw ?? JSON.stringify(record.value);
}

interface Envelope {
  readonly text?: unknown;
  /** What the producer says; checked before it is believed (`isErrorCode`, a string message). */
  readonly rejected?: { readonly code?: unknown; readonly message?: unknown; readonly field?: unknown } | null;
  readonly raw?: string;
}

/**
 * A batch message is NDJSON: one record per line, exactly as it arrived at the producer
 * (a line of a file, an MQTT payload), or an envelope (`ENVELOPE`, `batchLine`) for a CSV
 * row or a record the producer's source rejected. Keeping the text, not a parsed form,
 * means a worker rejects a bad record with the same code and the same raw text in its
 * dead letter as a local run would.
 */
export function encodeBatch(lines: readonly string[]): Uint8Array {
  return new TextEncoder().encode(lines.join('\n'));
}

/**
 * The records of batch message `seq` on `subject`, in order: blank lines are skipped, a
 * line that is not JSON becomes an `SG_ERR_BAD_JSON` record, and so does a line that is
 * not UTF-8 (checked line by line, as the local NDJSON reader does: a bad line costs only
 * itself, its `raw` decoded with U+FFFD for the bytes that are not UTF-8); the stream
 * goes on, validation turns them into dead letters. Each record's origin names the
 * message and line (`messageId` `SEQ:LINE`), so a dead letter points at the exact record.
 *
 * @example decodeBatch(msg.data, msg.subject, msg.seq)
 */
export function decodeBatch(payload: Uint8Array, subject: string, seq: number): IngestRecord[] {
  const bytes = Buffer.from(payload.buffer, payload.byteOffset, payload.byteLength);
  const records: IngestRecord[] = [];
  // an LF byte is never inside a multi-byte UTF-8 character: splitting the bytes is safe
  for (let start = 0, n = 1; start <= bytes.length; n++) {
    let end = bytes.indexOf(0x0a, start);
    if (end === -1) end = bytes.length;
    const line = bytes.subarray(start, end);
    start = end + 1;
    const raw = line.toString('utf8');
    if (raw.trim() === '') continue;
    const origin = { source: 'nats', topic: subject, messageId: `${seq}:${n}`, raw };
    if (!isUtf8(line)) {
      records.push({ error: new StreamgradError('SG_ERR_BAD_JSON', `message ${seq} line ${n}: not UTF-8 text`, 'line'), origin });
      continue;
    }
    if (raw.startsWith(ENVELOPE)) {
      records.push(fromEnvelope(raw, origin, seq, n));
      continue;
    }
    try {
      records.push({ value: JSON.parse(raw), origin });
    } catch (error) {
      const detail = error instanceof Error ? error.message.split('\n', 1)[0] : String(error);
      records.push({ error: new StreamgradError('SG_ERR_BAD_JSON', `message ${seq} line ${n}: ${detail}`, 'line', { cause: error }), origin });
    }
  }
  return records;
}

function fromEnvelope(line: string, origin: { source: string; topic: string; messageId: string; raw: string }, seq: number, n: number): IngestRecord {
  let envelope: Envelope;
  try {
    envelope = JSON.parse(line.slice(ENVELOPE.length)) as Envelope;
  } catch (error) {
    return { error: new StreamgradError('SG_ERR_BAD_JSON', `message ${seq} line ${n}: a broken envelope`, 'line', { cause: error }), origin };
  }
  const at = { ...origin, raw: typeof envelope.raw === 'string' ? envelope.raw : origin.raw };
  const rejected = envelope.rejected;
  if (rejected !== undefined) {
    // a producer's word, not ours: only a known code with a string message is taken as
    // it came; anything else is a fixed code naming the envelope's field at fault
    if (typeof rejected !== 'object' || rejected === null || !isErrorCode(rejected.code)) {
      const code = typeof rejected === 'object' && rejected !== null ? rejected.code : undefined;
      return { error: new StreamgradError('SG_ERR_SOURCE', `message ${seq} line ${n}: rejected.code: not a streamgrad error code (${JSON.stringify(code ?? null)?.slice(0, 64)})`, 'rejected.code'), origin: at };
    }
    if (typeof rejected.message !== 'string') {
      return { error: new StreamgradError('SG_ERR_SOURCE', `message ${seq} line ${n}: rejected.message: not a string`, 'rejected.message'), origin: at };
    }
    return { error: new StreamgradError(rejected.code, rejected.message, typeof rejected.field === 'string' ? rejected.field : undefined), origin: at };
  }
  return { value: envelope.text, text: true, origin: at };
}
