import type { IncomingMessage, ServerResponse } from 'node:http';
import { setImmediate as nextTurn } from 'node:timers/promises';
import type { ModelVersion } from './model-versions.ts';
import { errorLine } from './bulk-lines.ts';
import { type AnsweredBlock, type BulkAnswerer, inlineBulk } from './bulk-thread.ts';
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

/** The query parameters of `POST /predict`. */
const QUERY_PARAMETERS = ['model', 'version', 'unknown'] as const;

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
export async function handlePredict(req: IncomingMessage, res: ServerResponse, service: PredictionService, limits: PredictHttpLimits, started: number, bulk: BulkAnswerer = inlineBulk): Promise<void> {
  const query = new URL(req.url ?? '/', 'http://localhost').searchParams;
  const model = query.get('model') ?? undefined;
  const unknownParam = query.get('unknown') ?? 'reject';
  const refuse = (problem: PredictProblem, version: ModelVersion | null = null, headers: Readonly<Record<string, string>> = {}) => {
    service.countRefused(problem, version, model, performance.now() - started);
    sendProblem(res, problem, version, headers);
  };
  // a parameter given twice is ambiguous (a proxy or a cache may read the last one, URLSearchParams
  // gives the first): refused, never one of them silently (`?version=stable&version=7` answered from stable)
  for (const name of QUERY_PARAMETERS) {
    if (query.getAll(name).length > 1) return refuse({ code: 'SG_ERR_SCHEMA', message: `${name}: given more than once`, field: name });
  }
  if (unknownParam !== 'reject' && unknownParam !== 'ignore') return refuse({ code: 'SG_ERR_SCHEMA', message: 'unknown: must be "reject" or "ignore"', field: 'unknown' });
  const unknown = unknownParam;
  const found = service.resolve({ model, version: selector(query.get('version')) });
  if ('code' in found) return refuse(found);
  const version = found;
  const type = (req.headers['content-type'] ?? 'application/json').split(';', 1)[0].trim().toLowerCase();
  const isBulk = NDJSON_TYPES.has(type);
  if (!isBulk && type !== 'application/json') {
    // the type sent is not echoed (the client's text): `field` says which header
    return refuse({ code: 'SG_ERR_MEDIA_TYPE', message: 'Content-Type must be application/json (one sample or an array) or application/x-ndjson (one sample per line)', field: 'Content-Type' }, version);
  }
  // the body is read as it comes: a compressed one would be read as text, a gzipped NDJSON
  // body as one line that is not UTF-8 (its samples lost in one error), a mislabelled plain
  // one answered as if it were not (415 is HTTP's answer to an unsupported content coding)
  const encoding = req.headers['content-encoding']?.trim().toLowerCase() || 'identity';
  if (encoding !== 'identity') {
    return refuse({ code: 'SG_ERR_MEDIA_TYPE', message: 'a Content-Encoding other than identity is not supported: send the body uncompressed', field: 'Content-Encoding' }, version);
  }
  const limit = isBulk ? limits.maxBulkBytes : limits.maxBodyBytes;
  const declared = Number(req.headers['content-length'] ?? NaN);
  if (declared > limit) {
    // refused before reading: the connection closes, so the rest of the body is never read
    return refuse({ code: 'SG_ERR_TOO_LARGE', message: `the body is ${declared} bytes; at most ${limit} (${isBulk ? 'maxBulkBytes' : 'maxPredictBodyBytes'})` }, version, { Connection: 'close' });
  }
  if (isBulk) return predictBulk(req, res, service, version, limits, unknown, started, bulk);

  let read: Buffer | null;
  try {
    read = await readBody(req, limit);
  } catch {
    // the client closed or reset the connection mid-body: nobody to answer, but counted
    // (it was only a "request failed" line in the log)
    service.countAborted(version);
    res.destroy();
    return;
  }
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

/**
 * An NDJSON request: read and answered piece by piece as it streams. Each piece of the
 * body is cut at its last newline into blocks of at most `PREDICT_CHUNK` lines (a partial
 * line waits for the next piece), the blocks are answered by `bulk` (server/bulk-lines.ts:
 * on this thread, with the event loop turning between blocks, or on the bulk thread), and
 * their answers are written in order, one write per piece, before the next piece is read:
 * a client that streams lines slowly gets its answers as they come, and one that does not
 * read its answers is not read either (backpressure).
 */
async function predictBulk(req: IncomingMessage, res: ServerResponse, service: PredictionService, version: ModelVersion, limits: PredictHttpLimits, unknown: 'reject' | 'ignore', started: number, bulk: BulkAnswerer): Promise<void> {
  res.writeHead(200, { ...SECURITY_HEADERS, 'Content-Type': 'application/x-ndjson; charset=utf-8', 'Cache-Control': 'no-store' });
  res.write(`${JSON.stringify(version.info())}\n`);
  const failures: PredictionFailure[] = [];
  let predicted = 0, lineNo = 0, size = 0;
  let carry: Buffer | null = null;
  /** Over the line limit: the rest of the line is skipped. */
  let skipping = false;
  let closed = false;
  res.once('close', () => { closed = true; });
  /** The answers of the piece in hand, in order: blocks (answered here or on the bulk thread) and lines refused here. */
  let answers: (AnsweredBlock | Promise<AnsweredBlock>)[] = [];

  /** Line `lineNo` refused here (over a limit). */
  const refuse = (problem: PredictProblem) => {
    failures.push({ error: problem });
    answers.push({ bytes: Buffer.from(errorLine(lineNo, problem), 'utf8'), predicted: 0, failures: [] });
  };
  /** Complete lines (`\n` between them, none after the last), in blocks of at most PREDICT_CHUNK lines. */
  const submit = async (lines: Uint8Array) => {
    for (let start = 0; ;) {
      // the newline that ends the block's last line, or -1: the block runs to the end
      let count = 1, newline = lines.indexOf(10, start);
      while (newline !== -1 && count < PREDICT_CHUNK) {
        count++;
        newline = lines.indexOf(10, newline + 1);
      }
      const answer = bulk.answer(version, lines.subarray(start, newline === -1 ? lines.length : newline), lineNo + 1, unknown, limits.maxLineBytes);
      lineNo += count;
      answers.push(answer);
      // answered here: let single requests in between blocks
      if (!(answer instanceof Promise)) await nextTurn();
      if (newline === -1 || closed) return;
      start = newline + 1;
    }
  };
  /** Writes the piece's answers in one write and waits while the client does not read them. */
  const flush = async () => {
    const parts: Uint8Array[] = [];
    for (const entry of answers) {
      const a = await entry;
      predicted += a.predicted;
      for (const f of a.failures) failures.push(f);
      parts.push(a.bytes);
    }
    answers = [];
    if (parts.length === 0 || closed) return;
    if (!res.write(parts.length === 1 ? parts[0] : Buffer.concat(parts))) {
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
  };
  /** A partial line held for the next piece: over the line limit, it is refused now and its rest skipped. */
  const hold = (rest: Buffer) => {
    if (rest.length <= limits.maxLineBytes) {
      carry = Buffer.from(rest);
      return;
    }
    lineNo++;
    refuse({ code: 'SG_ERR_TOO_LARGE', message: `line ${lineNo} is over ${limits.maxLineBytes} bytes (maxPredictLineBytes); skipped` });
    carry = null;
    skipping = true;
  };

  /** The body went over maxBulkBytes: the rest is not predicted. */
  let over = false;
  try {
    // not destroyed when the loop ends early: the rest of an over-long body is read and dropped below
    for await (const chunk of req.iterator({ destroyOnReturn: false }) as AsyncIterable<Buffer>) {
      if (closed) break;
      size += chunk.length;
      if (size > limits.maxBulkBytes) {
        lineNo++;
        refuse({ code: 'SG_ERR_TOO_LARGE', message: `the body is over ${limits.maxBulkBytes} bytes (maxBulkBytes); lines from ${lineNo} on were not read` });
        over = true;
        break;
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
      await submit(pending.subarray(0, last));
      if (last + 1 < pending.length) hold(pending.subarray(last + 1));
      await flush();
    }
    if (carry !== null && !skipping && !closed && !over) await submit(carry);
    await flush();
    if (over && !closed && !(await dropRest(req))) {
      const socket = req.socket;
      res.once('finish', () => socket?.destroySoon());
    }
  } catch (error) {
    // the client went away mid-body: nothing to answer, but counted as the JSON body's is
    if (!closed) res.destroy(error as Error);
    service.countAborted(version);
    service.count(version, predicted, failures, performance.now() - started);
    return;
  }
  res.end();
  service.count(version, predicted, failures, performance.now() - started);
}

/** How long, and how many bytes, the rest of a body over `maxBulkBytes` is read and dropped for (`dropRest`). */
export const LINGER = { ms: 2000, bytes: 16 * 1024 * 1024 } as const;

/**
 * Reads and drops the rest of a request body that is not predicted (over `maxBulkBytes`),
 * for `LINGER` at most, so that the connection can close without losing the answer:
 * closing a socket while bytes it was sent wait unread makes the kernel reset the
 * connection, and the client's kernel then drops what the client had not read yet — the
 * end of the answer, its error line with it (seen with a 360 KB answer, cut at 128 KB).
 * Web servers' lingering close does the same. Resolves with whether the body was read to
 * its end; one that goes on past `LINGER` is not, and its connection is closed once the
 * answer is out.
 */
function dropRest(req: IncomingMessage): Promise<boolean> {
  return new Promise((resolve) => {
    let dropped = 0;
    const done = (whole: boolean) => {
      clearTimeout(timer);
      req.off('data', onData);
      req.off('end', ended);
      req.off('close', ended);
      if (!whole) req.pause();
      resolve(whole);
    };
    const ended = () => done(true);
    const onData = (chunk: Buffer) => {
      dropped += chunk.length;
      if (dropped > LINGER.bytes) done(false);
    };
    const timer = setTimeout(() => done(false), LINGER.ms);
    req.on('data', onData);
    req.once('end', ended);
    req.once('close', ended);
    req.resume();
  });
}

/** `GET /models`: the models served, their kept versions and labels. */
export function sendModels(res: ServerResponse, service: PredictionService): void {
  sendJson(res, 200, service.describe());
}
