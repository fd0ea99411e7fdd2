import type { ModelVersion } from './model-versions.ts';
import { predictManyText, type PredictProblem } from './prediction-service.ts';
import type { PredictionFailure } from './protocol.ts';

/** What a block of NDJSON lines is answered with: the answer lines' text, how many were predicted, and the failures (counted by the caller). */
export interface BlockAnswer {
  /** One answer line per non-empty input line (empty: no byte but a CR before its LF), in order, each ending with `\n`. */
  readonly text: string;
  readonly predicted: number;
  readonly failures: PredictionFailure[];
}

const strictUtf8 = new TextDecoder('utf-8', { fatal: true });

/** One line's bytes as text, or null when they are not UTF-8. */
export function decodeLine(bytes: Uint8Array): string | null {
  try {
    return strictUtf8.decode(bytes);
  } catch {
    return null;
  }
}

/**
 * The lines of `bytes` (`\n` between them, none after the last), one at a time: decoded at
 * once and cut as they are asked for (not split into an array up front: issue 12's
 * garbage), or line by line when some line is not UTF-8 (null for such a line).
 */
function* linesIn(bytes: Uint8Array): Generator<string | null> {
  const whole = decodeLine(bytes);
  if (whole === null) {
    for (let start = 0; ;) {
      const end = bytes.indexOf(10, start);
      yield decodeLine(bytes.subarray(start, end === -1 ? bytes.length : end));
      if (end === -1) return;
      start = end + 1;
    }
  }
  for (let start = 0; ;) {
    const end = whole.indexOf('\n', start);
    yield end === -1 ? whole.slice(start) : whole.slice(start, end);
    if (end === -1) return;
    start = end + 1;
  }
}

/** A line's problem as its answer line (`{"line":N,"error":{…}}`). */
export const errorLine = (line: number, problem: PredictProblem): string => `{"line":${line},"error":${JSON.stringify(problem)}}\n`;

/**
 * Answers a block of NDJSON lines, the first of which is line `firstLine` of its request:
 * each line is decoded (`SG_ERR_BAD_JSON` when it is not UTF-8), checked against
 * `maxLineBytes` (`SG_ERR_TOO_LARGE`), parsed (`SG_ERR_BAD_JSON`), and the samples are
 * predicted together in one forward pass of `version` (`predictManyText`), each answer or
 * error in its line's place. An empty line (nothing, or a lone CR) is counted but not
 * answered; any other line gets one answer line (whitespace alone is `SG_ERR_BAD_JSON`). The pure step of a
 * bulk request, the same on the server thread and on the bulk thread (server/bulk-thread.ts).
 *
 * @example
 * const a = answerBlock(version, Buffer.from('[1,2]\nnot json'), 1, 'reject', 1 << 20);
 * // a.text: '{"y":[…]}\n{"line":2,"error":{"code":"SG_ERR_BAD_JSON",…}}\n', a.predicted: 1
 */
export function answerBlock(version: ModelVersion, block: Uint8Array, firstLine: number, unknown: 'reject' | 'ignore', maxLineBytes: number): BlockAnswer {
  const out: string[] = [];
  const failures: PredictionFailure[] = [];
  const records: unknown[] = [], lines: number[] = [], slots: number[] = [];
  const fail = (line: number, problem: PredictProblem) => {
    failures.push({ error: problem });
    out.push(errorLine(line, problem));
  };
  let lineNo = firstLine - 1;
  for (const text of linesIn(block)) {
    lineNo++;
    if (text === null) {
      fail(lineNo, { code: 'SG_ERR_BAD_JSON', message: `line ${lineNo} is not valid UTF-8` });
      continue;
    }
    // a string of n UTF-16 units is at most 3n bytes of UTF-8: count the bytes only when it could be over
    if (text.length * 3 > maxLineBytes && Buffer.byteLength(text) > maxLineBytes) {
      fail(lineNo, { code: 'SG_ERR_TOO_LARGE', message: `line ${lineNo} is over ${maxLineBytes} bytes (maxPredictLineBytes); skipped` });
      continue;
    }
    // an empty line (a lone CR too: lines end with LF, a CR before it is ignored) is skipped, and
    // only it: every other line gets exactly one answer line, so that a client can align the
    // answers with its non-empty lines. A line of whitespace is not empty: it is answered with
    // its error (it was skipped, silently shifting every answer after it)
    if (text === '' || text === '\r') continue;
    if (text.trim() === '') {
      fail(lineNo, { code: 'SG_ERR_BAD_JSON', message: `line ${lineNo} is blank (only whitespace), not a sample` });
      continue;
    }
    let record: unknown;
    try {
      record = JSON.parse(text);
    } catch {
      fail(lineNo, { code: 'SG_ERR_BAD_JSON', message: `line ${lineNo} is not valid JSON` });
      continue;
    }
    records.push(record);
    lines.push(lineNo);
    slots.push(out.length);
    out.push('');
  }
  let predicted = 0;
  if (records.length > 0) {
    const entries = predictManyText(version, records, unknown);
    for (let j = 0; j < entries.length; j++) {
      const entry = entries[j];
      if (typeof entry !== 'string') {
        const problem = { ...entry.error, message: `line ${lines[j]}: ${entry.error.message}` };
        failures.push({ error: problem });
        out[slots[j]] = errorLine(lines[j], problem);
      } else {
        predicted++;
        out[slots[j]] = `${entry}\n`;
      }
    }
  }
  return { text: out.join(''), predicted, failures };
}
