import { StreamgradError } from '../core/errors.ts';
import type { IngestRecord } from '../core/record.ts';

/**
 * A batch message is NDJSON: one record per line, exactly as it arrived at the producer
 * (a CSV row turned into a JSON object, an MQTT payload, a line of a file). Keeping the
 * text, not a parsed form, means a worker rejects a bad record with the same code and
 * the same raw text in its dead letter as a local run would.
 */
export function encodeBatch(lines: readonly string[]): Uint8Array {
  return new TextEncoder().encode(lines.join('\n'));
}

const decoder = new TextDecoder('utf-8', { fatal: true });

/**
 * The records of batch message `seq` on `subject`, in order: blank lines are skipped, a
 * line that is not JSON becomes an `SG_ERR_BAD_JSON` record and a message that is not
 * UTF-8 one such record for the whole message (the stream goes on; validation turns
 * them into dead letters). Each record's origin names the message and line
 * (`messageId` `SEQ:LINE`), so a dead letter points at the exact record.
 *
 * @example decodeBatch(msg.data, msg.subject, msg.seq)
 */
export function decodeBatch(payload: Uint8Array, subject: string, seq: number): IngestRecord[] {
  let text: string;
  try {
    text = decoder.decode(payload);
  } catch {
    const origin = { source: 'nats', topic: subject, messageId: `${seq}:1` };
    return [{ error: new StreamgradError('SG_ERR_BAD_JSON', `message ${seq}: not UTF-8 text`, 'line'), origin }];
  }
  const records: IngestRecord[] = [];
  const lines = text.split('\n');
  for (let i = 0; i < lines.length; i++) {
    const raw = lines[i]!;
    if (raw.trim() === '') continue;
    const origin = { source: 'nats', topic: subject, messageId: `${seq}:${i + 1}`, raw };
    try {
      records.push({ value: JSON.parse(raw), origin });
    } catch (error) {
      const detail = error instanceof Error ? error.message.split('\n', 1)[0] : String(error);
      records.push({ error: new StreamgradError('SG_ERR_BAD_JSON', `message ${seq} line ${i + 1}: ${detail}`, 'line', { cause: error }), origin });
    }
  }
  return records;
}
