import type { IncomingMessage, ServerResponse } from 'node:http';
import { setImmediate as nextTurn } from 'node:timers/promises';
import type { ModelVersion } from './model-versions.ts';
import { bodyShape, isFailure, PREDICT_CHUNK, predictBatch, type PredictionService, type PredictProblem } from './prediction-service.ts';
import type { PredictionFailure, ProtocolErrorCode } from './protocol.ts';
import { SECURITY_HEADERS } from './static-files.ts';

/** The limits of `POST /predict` (`ServeOptions`: `maxPredictBodyBytes`, `maxBulkBytes`, `maxPredictLineBytes`). */
export interface PredictHttpLimits {
  /** Largest JSON body (bytes). */
  readonly maxBodyBytes: number;
  /** Largest NDJSON body (bytes). */
  readonly maxBulkBytes: number;
  /** Longest NDJSON line (bytes); a longer one is answered with its own error and skipped. */
  readonly maxLineBytes: number;
}

/** The HTTP status of each problem code a prediction request can meet. */
const STATUS: Partial<Record<ProtocolErrorCode, number>> = {
  SG_ERR_BAD_JSON: 400,
  SG_ERR_SCHEMA: 400,
  SG_ERR_ARITY: 422,
  SG_ERR_TYPE: 422,
  SG_ERR_MISSING: 422,
  SG_ERR_NONFINITE_INPUT: 422,
  SG_ERR_UNKNOWN_FEATURE: 422,
  SG_ERR_NONFINITE_OUTPUT: 422,
  SG_ERR_UNKNOWN_MODEL: 404,
  SG_ERR_UNKNOWN_VERSION: 404,
  SG_ERR_METHOD: 405,
  SG_ERR_TOO_LARGE: 413,
  SG_ERR_MEDIA_TYPE: 415,
  SG_ERR_RATE_LIMIT: 429,
};

/** The status a problem is answered with (422 for a sample's own problem, 400 for anything else unnamed). */
export const statusOf = (code: ProtocolErrorCode): number => STATUS[code] ?? 400;

/** An NDJSON answer is written once this many UTF-16 units of it are ready (about 16 KB). */
const WRITE_AT = 16 * 1024;

const NDJSON_TYPES = new Set(['application/x-ndjson', 'application/ndjson', 'application/jsonl', 'application/x-jsonlines']);
const strictUtf8 = new TextDecoder('utf-8', { fatal: true });

/** Writes a JSON answer with the security headers. */
function sendJson(res: ServerResponse, status: number, body: unknown, headers: Readonly<Record<string, string>> = {}): void {
  const data = Buffer.from(JSON.stringify(body), 'utf8');
  res.writeHead(status, { ...SECURITY_HEADERS, 'Content-Type': 'application/json; charset=utf-8', 'Content-Length': String(data.length), 'Cache-Control': 'no-store', ...headers });
  res.end(data);
}

/** Answers a refused request: the problem's status and `{"error": {code, message, field?}}` (with the version's meta when one was resolved). */
export function sendProblem(res: ServerResponse, problem: PredictProblem, version: ModelVersion | null = null, headers: Readonly<Record<string, string>> = {}): void {
  sendJson(res, statusOf(problem.code), { ...(version !== null && version.info()), error: problem }, headers);
}

/** The version selector of a query string: `latest`, a number, or a label. */
function selector(raw: string | null): string | number | undefined {
  if (raw === null || raw === '') return undefined;
  return /^[0-9]{1,15}$/.test(raw) ? Number(raw) : raw;
}

/**
 * `POST /predict[?model=NAME][&version=latest|N|LABEL][&unknown=reject|ignore]`: a JSON
 * body (one sample, or an array of samples) is answered with one JSON object; an NDJSON
 * body (`Content-Type: application/x-ndjson`) is answered line by line as it is read
 * (a first line naming the version, then one line per non-empty input line, errors
 * per line without stopping the rest). Work is done in chunks of `PREDICT_CHUNK` samples
 * between which the event loop turns, and an NDJSON answer waits for the client to read
 * (backpressure), so a bulk request never holds the server. The caller checked the rate.
 */
export async function handlePredict(req: IncomingMessage, res: ServerResponse, service: PredictionService, limits: PredictHttpLimits, started: number): Promise<void> {
  const query = new URL(req.url ?? '/', 'http://localhost').searchParams;
  const model = query.get('model') ?? undefined;
  const unknownParam = query.get('unknown') ?? 'reject';
  const refuse = (problem: PredictProblem, version: ModelVersion | null = null, headers: Readonly<Record<string, string>> = {}) => {
    service.countRefused(problem, version, model);
    sendProblem(res, problem, version, headers);
  };
  if (unknownParam !== 'reject' && unknownParam !== 'ignore') return refuse({ code: 'SG_ERR_SCHEMA', message: 'unknown: must be "reject" or "ignore"', field: 'unknown' });
  const unknown = unknownParam;
  const found = service.resolve({ model, version: selector(query.get('version')) });
  if ('code' in found) return refuse(found);
  const version = found;
  const type = (req.headers['content-type'] ?? 'application/json').split(';', 1)[0].trim().toLowerCase();
  const bulk = NDJSON_TYPES.has(type);
  if (!bulk && type !== 'application/json') {
    return refuse({ code: 'SG_ERR_MEDIA_TYPE', message: `Content-Type must be application/json (one sample or an array) or application/x-ndjson (one sample per line), got ${JSON.stringify(type.slice(0, 64))}` }, version);
  }
  const limit = bulk ? limits.maxBulkBytes : limits.maxBodyBytes;
  const declared = Number(req.headers['content-length'] ?? NaN);
  if (declared > limit) {
    // refused before reading: the connection closes, so the rest of the body is never read
    return refuse({ code: 'SG_ERR_TOO_LARGE', message: `the body is ${declared} bytes; at most ${limit} (${bulk ? 'maxBulkBytes' : 'maxPredictBodyBytes'})` }, version, { Connection: 'close' });
  }
  if (bulk) return predictBulk(req, res, service, version, limits, unknown, started);

  const read = await readBody(req, limit);
  if (read === null) {
    refuse({ code: 'SG_ERR_TOO_LARGE', message: `the body is over ${limit} bytes (maxPredictBodyBytes); send bulk samples as NDJSON` }, version, { Connection: 'close' });
    // the rest is not read: the request goes, and the connection with it once the answer is out
    req.destroy();
    return;
  }
  let body: unknown;
  try {
    body = JSON.parse(strictUtf8.decode(read));
  } catch {
    return refuse({ code: 'SG_ERR_BAD_JSON', message: 'the body is not valid UTF-8 JSON' }, version);
  }
  const shape = bodyShape(body);
  if (shape === 'mixed') return refuse({ code: 'SG_ERR_SCHEMA', message: 'an array is one sample when it holds only numbers, or a batch when it holds only samples (objects or arrays); this one mixes both' }, version);
  if (shape === 'one') {
    const entry = service.predictOne(version, body, unknown);
    if (isFailure(entry)) {
      service.count(version, 0, [entry], performance.now() - started);
      return sendJson(res, statusOf(entry.error.code), { ...version.info(), error: entry.error });
    }
    service.count(version, 1, [], performance.now() - started);
    return sendJson(res, 200, { ...version.info(), prediction: entry });
  }
  const entries = await predictBatch(service, version, body as unknown[], unknown);
  const failures = entries.filter(isFailure);
  service.count(version, entries.length - failures.length, failures, performance.now() - started);
  sendJson(res, 200, { ...version.info(), predictions: entries });
}

/**
 * A JSON body, read whole with `data` events: its bytes, or null once it is over `limit`
 * bytes (reading stops there). It rejects as `for await` over the request did (an error,
 * or the request closed before its end). Not an async iterator: a single prediction's
 * body is one chunk, and the iterator's promises, closures and listeners were a good part
 * of what each request left for the garbage collector (issue 12).
 */
function readBody(req: IncomingMessage, limit: number): Promise<Buffer | null> {
  return new Promise((resolve, reject) => {
    let first: Buffer | null = null, more: Buffer[] | null = null, size = 0;
    const done = () => {
      req.off('data', onData);
      req.off('end', onEnd);
      req.off('error', onError);
      req.off('close', onClose);
    };
    const onData = (chunk: Buffer) => {
      size += chunk.length;
      if (size > limit) {
        done();
        req.pause();
        return resolve(null);
      }
      if (first === null) first = chunk;
      else (more ??= [first]).push(chunk);
    };
    const onEnd = () => {
      done();
      resolve(more !== null ? Buffer.concat(more, size) : first ?? Buffer.alloc(0));
    };
    const onError = (error: Error) => {
      done();
      reject(error);
    };
    const onClose = () => {
      done();
      reject(Object.assign(new Error('Premature close'), { code: 'ERR_STREAM_PREMATURE_CLOSE' }));
    };
    req.on('data', onData);
    req.on('end', onEnd);
    req.on('error', onError);
    req.on('close', onClose);
  });
}

/** One line's bytes as text, or null when they are not UTF-8. */
function decodeLine(bytes: Uint8Array): string | null {
  try {
    return strictUtf8.decode(bytes);
  } catch {
    return null;
  }
}

/**
 * The complete lines of `bytes` (which ends where a line ended), one at a time: decoded at
 * once and cut as they are asked for (not split into an array up front: the lines of a
 * 64 KB piece would all wait across the event-loop turns between chunks, long enough to be
 * promoted to the old generation; issue 12), or line by line when some line is not UTF-8
 * (null for such a line).
 */
function* linesIn(bytes: Buffer): Generator<string | null> {
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

/** An NDJSON request: read, predicted and answered line by line, as it streams. */
async function predictBulk(req: IncomingMessage, res: ServerResponse, service: PredictionService, version: ModelVersion, limits: PredictHttpLimits, unknown: 'reject' | 'ignore', started: number): Promise<void> {
  res.writeHead(200, { ...SECURITY_HEADERS, 'Content-Type': 'application/x-ndjson; charset=utf-8', 'Cache-Control': 'no-store' });
  res.write(`${JSON.stringify(version.info())}\n`);
  const failures: PredictionFailure[] = [];
  let predicted = 0, lineNo = 0, size = 0, sinceYield = 0;
  let carry: Buffer | null = null;
  /** Over the line limit: the rest of the line is skipped. */
  let skipping = false;
  let out: string[] = [];
  /**
   * Answered chunks not yet written, as bytes: a chunk's answer lines are joined and encoded
   * as soon as it is settled, so that hundreds of small strings do not wait across event-loop
   * turns (long enough to be promoted to the old generation, whose collections paused the
   * server thread for milliseconds: issue 12); the bytes are outside the JavaScript heap.
   */
  let ready: Buffer[] = [];
  /** UTF-16 units in `out` and `ready`: written once over `WRITE_AT`. */
  let unwritten = 0;
  let closed = false;
  res.once('close', () => { closed = true; });

  /** A line's error, counted, as its answer line. */
  const errorLine = (at: number, problem: PredictProblem) => {
    failures.push({ error: problem });
    return `{"line":${at},"error":${JSON.stringify(problem)}}\n`;
  };
  const fail = (problem: PredictProblem) => {
    const text = errorLine(lineNo, problem);
    out.push(text);
    unwritten += text.length;
  };
  /** The parsed samples of the chunk in hand, their lines' numbers and their places in `out`, predicted together by `settle`. */
  let batch: unknown[] = [], batchLines: number[] = [], slots: number[] = [];
  /** One line's text (`lineNo` already counts it): parsed now, predicted with the rest of its chunk. */
  const line = (text: string) => {
    // a string of n UTF-16 units is at most 3n bytes of UTF-8: count the bytes only when it could be over
    if (text.length * 3 > limits.maxLineBytes && Buffer.byteLength(text) > limits.maxLineBytes) {
      return fail({ code: 'SG_ERR_TOO_LARGE', message: `line ${lineNo} is over ${limits.maxLineBytes} bytes (maxPredictLineBytes); skipped` });
    }
    if (text.trim() === '') return;
    let record: unknown;
    try {
      record = JSON.parse(text);
    } catch {
      return fail({ code: 'SG_ERR_BAD_JSON', message: `line ${lineNo} is not valid JSON` });
    }
    batch.push(record);
    batchLines.push(lineNo);
    slots.push(out.length);
    out.push('');
  };
  /** The chunk's samples through the model in one forward pass, each answer (or error) into its line's place. */
  const settle = () => {
    if (batch.length === 0) return;
    const entries = service.predictManyText(version, batch, unknown);
    for (let j = 0; j < entries.length; j++) {
      const entry = entries[j];
      if (typeof entry !== 'string') {
        out[slots[j]] = errorLine(batchLines[j], { ...entry.error, message: `line ${batchLines[j]}: ${entry.error.message}` });
      } else {
        predicted++;
        out[slots[j]] = `${entry}\n`;
      }
      unwritten += out[slots[j]].length;
    }
    batch = [];
    batchLines = [];
    slots = [];
  };
  /**
   * After each chunk of lines: predicts it (`settle`) and lets the event loop turn, so that
   * single requests are answered between chunks; sends the answers once some 16 KB are
   * ready (fewer writes, fewer wake-ups of the client), and waits while the client is not
   * reading. `force`: the end, send what is left.
   */
  const flush = async (force: boolean) => {
    if (!force && sinceYield < PREDICT_CHUNK) return;
    sinceYield = 0;
    settle();
    if (out.length > 0) {
      ready.push(Buffer.from(out.join(''), 'utf8'));
      out = [];
    }
    if (force && ready.length === 0) return;
    if (!force && unwritten < WRITE_AT) return void (await nextTurn());
    const bytes = ready.length === 1 ? ready[0] : Buffer.concat(ready);
    ready = [];
    unwritten = 0;
    if (!res.write(bytes) && !closed) {
      // one waiter at a time: the listener that did not fire goes too (a long answer waits thousands of times)
      await new Promise<void>((resolve) => {
        const done = () => {
          res.off('drain', done);
          res.off('close', done);
          resolve();
        };
        res.once('drain', done);
        res.once('close', done);
      });
    }
    else await nextTurn();
  };
  /** A partial line held for the next chunk: over the line limit, it is refused now and its rest skipped. */
  const hold = (rest: Buffer) => {
    if (rest.length <= limits.maxLineBytes) {
      carry = Buffer.from(rest);
      return;
    }
    lineNo++;
    fail({ code: 'SG_ERR_TOO_LARGE', message: `line ${lineNo} is over ${limits.maxLineBytes} bytes (maxPredictLineBytes); skipped` });
    carry = null;
    skipping = true;
  };

  try {
    for await (const chunk of req as AsyncIterable<Buffer>) {
      if (closed) break;
      size += chunk.length;
      if (size > limits.maxBulkBytes) {
        lineNo++;
        fail({ code: 'SG_ERR_TOO_LARGE', message: `the body is over ${limits.maxBulkBytes} bytes (maxBulkBytes); lines from ${lineNo} on were not read` });
        await flush(true);
        // the rest is not read: close the connection once the answer is out
        const socket = req.socket;
        res.once('finish', () => socket?.destroySoon());
        res.end();
        service.count(version, predicted, failures, performance.now() - started);
        return;
      }
      let pending: Buffer = carry === null ? chunk : Buffer.concat([carry, chunk]);
      carry = null;
      if (skipping) {
        const end = pending.indexOf(10);
        if (end === -1) continue;
        skipping = false;
        pending = pending.subarray(end + 1);
      }
      const last = pending.lastIndexOf(10);
      if (last === -1) {
        hold(pending);
        continue;
      }
      const complete = pending.subarray(0, last);
      if (last + 1 < pending.length) hold(pending.subarray(last + 1));
      for (const text of linesIn(complete)) {
        lineNo++;
        if (text === null) fail({ code: 'SG_ERR_BAD_JSON', message: `line ${lineNo} is not valid UTF-8` });
        else line(text);
        sinceYield++;
        if (sinceYield >= PREDICT_CHUNK) await flush(false);
        if (closed) break;
      }
      // what this piece of the body asked is answered before the next is read: a client that
      // streams lines slowly gets its answers as they come, not when 16 KB of them are ready
      await flush(true);
    }
    if (carry !== null && !skipping) {
      lineNo++;
      const text = decodeLine(carry);
      if (text === null) fail({ code: 'SG_ERR_BAD_JSON', message: `line ${lineNo} is not valid UTF-8` });
      else line(text);
    }
  } catch (error) {
    // the client went away mid-body: nothing to answer
    if (!closed) res.destroy(error as Error);
    service.count(version, predicted, failures, performance.now() - started);
    return;
  }
  await flush(true);
  res.end();
  service.count(version, predicted, failures, performance.now() - started);
}

/** `GET /models`: the models served, their kept versions and labels. */
export function sendModels(res: ServerResponse, service: PredictionService): void {
  sendJson(res, 200, service.describe());
}
