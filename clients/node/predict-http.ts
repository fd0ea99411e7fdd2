import type { PredictionMeta, ProtocolErrorCode } from '../../server/protocol.ts';
import type { PredictOptions } from './client.ts';
import { type BulkLineFailure, parseBulkLine, parsePredictionAnswer, parsePredictionMeta, type PredictionAnswer } from './server-message.ts';
import type { PredictionResult } from '../../server/protocol.ts';

/**
 * Codes of a failed `POST /predict`: the server's (`SG_ERR_ARITY`, `SG_ERR_UNKNOWN_VERSION`,
 * `SG_ERR_RATE_LIMIT`, …, server/PROTOCOL.md "Predictions"), plus the client's own:
 * - `SG_ERR_TIMEOUT`: no answer within `timeoutMs`;
 * - `SG_ERR_CONNECTION`: the server could not be reached, or the answer was cut off;
 * - `SG_ERR_PROTOCOL`: the answer is not what the protocol says (another server, a proxy's page).
 */
export type PredictErrorCode = ProtocolErrorCode | 'SG_ERR_TIMEOUT' | 'SG_ERR_CONNECTION' | 'SG_ERR_PROTOCOL';

/** A prediction request the server refused, or that got no usable answer. */
export class PredictError extends Error {
  override readonly name = 'PredictError';
  constructor(
    readonly code: PredictErrorCode,
    message: string,
    /** The HTTP status (null when there was no answer). */
    readonly status: number | null,
    /** The field the server named (`version`, a feature's name, …). */
    readonly field?: string,
    /** Which version was asked, when the server had resolved one before refusing. */
    readonly meta?: PredictionMeta,
    options?: { cause?: unknown },
  ) {
    super(message, options);
  }
}

/** Options of `predictHttp` and `predictBulk`: which model and version (as `client.predict`), and how long to wait. */
export interface HttpPredictOptions extends PredictOptions {
  /** Ms to wait for the answer's head (default 10,000; a bulk answer's lines may take longer). */
  readonly timeoutMs?: number;
  /** Aborts the request (the promise rejects with `SG_ERR_CONNECTION`, or the iteration ends with it). */
  readonly signal?: AbortSignal;
}

/** A bulk answer (`predictBulk`): the one version that answers every line, and one result per non-empty line, in order. */
export interface BulkAnswer extends PredictionMeta {
  /** A prediction per sample, or `{line, error}` for a sample the model could not answer (the next are answered). */
  readonly results: AsyncIterable<PredictionResult | BulkLineFailure>;
}

const DEFAULT_TIMEOUT_MS = 10_000;

/**
 * Asks a server for predictions over HTTP (`POST /predict`, JSON): `input` is one sample
 * (named values, an array of numbers, `{x: [...]}`) or an array of samples, as for the
 * WebSocket `client.predict`. Resolves with the answer, which names the model and the
 * version that answered (`answer.prediction` for one sample, `answer.predictions` for a
 * batch, where a bad sample's entry is `{error}`); rejects with a `PredictError` carrying
 * the server's code and HTTP status. Needs no token. `url` is the server's address
 * (`http://127.0.0.1:8080`; a `ws://…/ws` URL is taken as the same server).
 *
 * @example
 * const answer = await predictHttp('http://127.0.0.1:8080', { temp: 14, wind: 2.5 }, { model: 'weather', version: 'stable' });
 * console.log(answer.version, answer.prediction?.class);
 */
export async function predictHttp(url: string, input: unknown, options: HttpPredictOptions = {}): Promise<PredictionAnswer> {
  let body: string;
  try {
    body = JSON.stringify(input);
  } catch (error) {
    throw new TypeError(`predictHttp: input is not JSON (${error instanceof Error ? error.message : String(error)})`);
  }
  if (body === undefined) throw new TypeError('predictHttp: input is not JSON');
  const res = await send(url, options, 'application/json', body, true);
  const json = parseJson(await res.text());
  if (!res.ok) throw refusal(res.status, json);
  const answer = parsePredictionAnswer(json);
  if (answer === null) throw new PredictError('SG_ERR_PROTOCOL', `POST /predict answered ${res.status} with something that is not a prediction`, res.status);
  return answer;
}

/**
 * Asks for predictions of many samples in one streamed request (`POST /predict`, NDJSON):
 * the samples are sent as they come from `samples` (any iterable, sync or async), and the
 * answers can be read while the rest is still being sent; memory stays bounded on both
 * sides. Resolves once the server names the version that answers every line; rejects with a
 * `PredictError` when it refuses the request (an unknown model or version, the rate limit).
 * A sample the model cannot take is a `{line, error}` result and the next are answered.
 *
 * @example
 * const answer = await predictBulk('http://127.0.0.1:8080', readings(), { model: 'deep' });
 * for await (const r of answer.results) if ('error' in r) console.warn(r.line, r.error.code); else use(r.y);
 */
export async function predictBulk(url: string, samples: Iterable<unknown> | AsyncIterable<unknown>, options: HttpPredictOptions = {}): Promise<BulkAnswer> {
  const encoder = new TextEncoder();
  const iterator = Symbol.asyncIterator in samples ? samples[Symbol.asyncIterator]() : (samples as Iterable<unknown>)[Symbol.iterator]();
  const lines = new ReadableStream<Uint8Array>({
    async pull(controller) {
      // a few hundred samples per chunk: fewer, larger writes
      const parts: string[] = [];
      for (let i = 0; i < 256; i++) {
        const next = await iterator.next();
        if (next.done === true) {
          if (parts.length > 0) controller.enqueue(encoder.encode(parts.join('')));
          controller.close();
          return;
        }
        const line = JSON.stringify(next.value);
        if (line === undefined) throw new TypeError(`predictBulk: sample is not JSON`);
        parts.push(`${line}\n`);
      }
      controller.enqueue(encoder.encode(parts.join('')));
    },
    async cancel() {
      await iterator.return?.();
    },
  });
  const res = await send(url, options, 'application/x-ndjson', lines, false);
  if (!res.ok) throw refusal(res.status, parseJson(await res.text().catch(() => '')));
  const reader = res.body!.pipeThrough(new TextDecoderStream()).getReader();
  let buffer = '';
  let done = false;
  /** The next complete line of the answer, or null at its end. */
  const nextLine = async (): Promise<string | null> => {
    for (;;) {
      const end = buffer.indexOf('\n');
      if (end !== -1) {
        const line = buffer.slice(0, end);
        buffer = buffer.slice(end + 1);
        return line;
      }
      if (done) {
        if (buffer === '') return null;
        throw new PredictError('SG_ERR_CONNECTION', 'the answer of POST /predict ended in the middle of a line', res.status);
      }
      let chunk: Awaited<ReturnType<typeof reader.read>>;
      try {
        chunk = await reader.read();
      } catch (error) {
        throw new PredictError('SG_ERR_CONNECTION', `the answer of POST /predict was cut off: ${error instanceof Error ? error.message : String(error)}`, res.status, undefined, undefined, { cause: error });
      }
      if (chunk.done) done = true;
      else buffer += chunk.value;
    }
  };
  const first = await nextLine();
  const meta = first === null ? null : parsePredictionMeta(parseJson(first));
  if (meta === null) {
    await reader.cancel().catch(() => undefined);
    throw new PredictError('SG_ERR_PROTOCOL', 'POST /predict (NDJSON) did not start with the version that answers', res.status);
  }
  async function* results(): AsyncGenerator<PredictionResult | BulkLineFailure> {
    try {
      for (;;) {
        const line = await nextLine();
        if (line === null) return;
        const entry = parseBulkLine(parseJson(line));
        if (entry === null) throw new PredictError('SG_ERR_PROTOCOL', 'POST /predict (NDJSON) answered a line that is not a prediction', res.status, undefined, meta!);
        yield entry;
      }
    } finally {
      await reader.cancel().catch(() => undefined);
    }
  }
  return { model: meta.model, version: meta.version, step: meta.step, samples: meta.samples, time: meta.time, results: results() };
}

/** `http(s)://host:port/predict?model=…&version=…&unknown=…` for a server address. */
function predictUrl(url: string, options: PredictOptions): URL {
  let u: URL;
  try {
    u = new URL(url);
  } catch {
    throw new TypeError(`predict: ${JSON.stringify(url.slice(0, 200))} is not a URL (e.g. http://127.0.0.1:8080)`);
  }
  if (u.protocol === 'ws:' || u.protocol === 'wss:') u = new URL(`${u.protocol === 'ws:' ? 'http:' : 'https:'}//${u.host}`);
  if (u.protocol !== 'http:' && u.protocol !== 'https:') throw new TypeError(`predict: the server's URL must be http: or https:, got ${u.protocol}`);
  if (u.username !== '' || u.password !== '') throw new TypeError('predict: no credentials in the URL (predictions need no token)');
  const out = new URL('/predict', u);
  if (options.model !== undefined) out.searchParams.set('model', options.model);
  if (options.version !== undefined) out.searchParams.set('version', String(options.version));
  if (options.unknown !== undefined) out.searchParams.set('unknown', options.unknown);
  return out;
}

/**
 * Sends the request; resolves with the answer's head (or rejects with a `PredictError`).
 * The time-out covers the head, and with `wholeAnswer` the answer's body too (a bulk
 * answer streams for as long as its samples do).
 */
async function send(url: string, options: HttpPredictOptions, type: string, body: string | ReadableStream<Uint8Array>, wholeAnswer: boolean): Promise<Response> {
  const target = predictUrl(url, options);
  const timeoutMs = options.timeoutMs ?? DEFAULT_TIMEOUT_MS;
  if (!(timeoutMs > 0 && timeoutMs <= 2 ** 31 - 1)) throw new RangeError(`predict: timeoutMs must be > 0 (ms), got ${String(timeoutMs)}`);
  const abort = new AbortController();
  let timedOut = false;
  const timer = setTimeout(() => {
    timedOut = true;
    abort.abort(new Error(`no answer within ${timeoutMs} ms`));
  }, timeoutMs);
  const signal = options.signal === undefined ? abort.signal : AbortSignal.any([options.signal, abort.signal]);
  let res: Response;
  try {
    // duplex: a streamed body (undici needs it said; the answer streams back while it is sent)
    res = await fetch(target, { method: 'POST', headers: { 'Content-Type': type }, body, signal, ...(typeof body !== 'string' && { duplex: 'half' }) } as RequestInit);
  } catch (error) {
    clearTimeout(timer);
    if (timedOut) throw new PredictError('SG_ERR_TIMEOUT', `no answer from ${target.origin}/predict within ${timeoutMs} ms`, null, undefined, undefined, { cause: error });
    throw new PredictError('SG_ERR_CONNECTION', `POST ${target.origin}/predict failed: ${error instanceof Error ? error.message : String(error)}`, null, undefined, undefined, { cause: error });
  }
  if (!wholeAnswer) {
    clearTimeout(timer);
    return res;
  }
  // the body read within the same time
  const text = res.text().finally(() => clearTimeout(timer));
  return new Response(await text.catch((error: unknown) => {
    throw new PredictError(timedOut ? 'SG_ERR_TIMEOUT' : 'SG_ERR_CONNECTION', `the answer of POST /predict did not come whole: ${error instanceof Error ? error.message : String(error)}`, res.status, undefined, undefined, { cause: error });
  }), { status: res.status });
}

function parseJson(text: string): unknown {
  try {
    return JSON.parse(text);
  } catch {
    return undefined;
  }
}

/** A refusal's `{error: {code, message, field?}}` (with the version's meta when one was resolved) as a `PredictError`. */
function refusal(status: number, json: unknown): PredictError {
  const body = typeof json === 'object' && json !== null ? json as Record<string, unknown> : {};
  const e = typeof body.error === 'object' && body.error !== null ? body.error as Record<string, unknown> : null;
  if (e === null || typeof e.code !== 'string' || typeof e.message !== 'string') {
    return new PredictError('SG_ERR_PROTOCOL', `POST /predict answered ${status} without a protocol error`, status);
  }
  const meta = parsePredictionMeta(body);
  return new PredictError(e.code.slice(0, 64) as ProtocolErrorCode, e.message.slice(0, 4096), status, typeof e.field === 'string' ? e.field.slice(0, 256) : undefined, meta ?? undefined);
}
