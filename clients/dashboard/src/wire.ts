import { parseServerMessage } from '../../node/server-message.ts';
import type {
  AckMessage, ErrorMessage, EventMessage, HelloMessage, HistoryResult, MetricsMessage, PredictionsMessage, RecentEventsMessage, RunInfo, RunMessage, RunRemovedMessage, ScalarsMessage,
} from '../../../server/protocol.ts';

/**
 * Checks what the server sends before the page uses it: the clients' one check of server
 * messages (`clients/node/server-message.ts`: every field a view reads has its type,
 * numbers finite or null where the protocol says so), plus what only the page needs:
 * protocol 1, and runs no larger than it draws. A malformed or unknown message is dropped
 * whole (and counted) instead of reaching a view. Nothing is trusted to be markup: text
 * fields end up in `textContent` only.
 */
export type WireMessage = HelloMessage | RunMessage | RunRemovedMessage | MetricsMessage | ScalarsMessage | RecentEventsMessage | PredictionsMessage | EventMessage | ErrorMessage | AckMessage;

type Obj = Record<string, unknown>;

const isObj = (v: unknown): v is Obj => typeof v === 'object' && v !== null && !Array.isArray(v);
const isStr = (v: unknown, max = 4096): v is string => typeof v === 'string' && v.length <= max;
const isNum = (v: unknown): v is number => typeof v === 'number' && Number.isFinite(v);
const isCount = (v: unknown): v is number => isNum(v) && v >= 0 && Number.isSafeInteger(v);

/** Largest model the page draws (layers, units): beyond it a run is ignored. */
const MAX_LAYERS = 64;
const MAX_UNITS = 1 << 16;

/** A well-formed run the page can draw. */
function isDrawable(run: RunInfo): boolean {
  const t = run.topology;
  return t.inputSize <= MAX_UNITS && t.layers.length <= MAX_LAYERS && t.layers.every((l) => l.units <= MAX_UNITS);
}

/** Parses one text frame; null for anything that is not a well-formed protocol v1 server message the page can show. */
export function parseWire(text: string): WireMessage | null {
  const message = parseServerMessage(text);
  if (message === null) return null;
  if (message.type === 'hello') return message.protocol === 1 && message.runs.every(isDrawable) ? message : null;
  if (message.type === 'run') return isDrawable(message.run) ? message : null;
  // answers to `predict`, which the page does not send
  if (message.type === 'prediction') return null;
  return message;
}

/** A `history` ack's result, checked; null when malformed. */
export function parseHistoryResult(v: unknown): HistoryResult | null {
  if (!isObj(v) || !isStr(v.run, 256) || !Array.isArray(v.steps) || !Array.isArray(v.sent)) return null;
  if (!v.steps.every(isCount) || !v.sent.every(isCount) || v.steps.length > 100_000 || !isNum(v.intervalMs) || !isCount(v.capacity)) return null;
  return v as unknown as HistoryResult;
}

/** A short, printable version of a server's error text (it never echoes input, but stay safe). */
export function printable(text: string, max = 200): string {
  // eslint-disable-next-line no-control-regex
  const clean = text.replace(/[\u0000-\u001f\u007f]/g, ' ');
  return clean.length > max ? `${clean.slice(0, max - 1)}…` : clean;
}
