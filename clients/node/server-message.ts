import type { ServerMessage } from '../../server/protocol.ts';

const TYPES = new Set<string>(['hello', 'run', 'run-removed', 'metrics', 'event', 'error', 'ack']);

/**
 * Parses one text frame from a server: a JSON object whose `type` is a protocol v1 server
 * message type, with the fields the client routes on (`run`, `id`, `code`) of the right
 * type. Returns null for anything else; never throws. The payload is otherwise trusted.
 */
export function parseServerMessage(text: string): ServerMessage | null {
  let value: unknown;
  try {
    value = JSON.parse(text);
  } catch {
    return null;
  }
  if (typeof value !== 'object' || value === null || Array.isArray(value)) return null;
  const m = value as Record<string, unknown>;
  if (typeof m.type !== 'string' || !TYPES.has(m.type)) return null;
  switch (m.type) {
    case 'hello':
      return typeof m.protocol === 'number' && Array.isArray(m.runs) && (m.access === 'control' || m.access === 'read-only') ? (m as unknown as ServerMessage) : null;
    case 'run':
      return isRecord(m.run) && typeof m.run.id === 'string' ? (m as unknown as ServerMessage) : null;
    case 'run-removed':
    case 'metrics':
    case 'event':
      return typeof m.run === 'string' ? (m as unknown as ServerMessage) : null;
    case 'ack':
      return typeof m.id === 'string' ? (m as unknown as ServerMessage) : null;
    default: // error
      return typeof m.code === 'string' && typeof m.message === 'string' && (m.id === undefined || typeof m.id === 'string') ? (m as unknown as ServerMessage) : null;
  }
}

function isRecord(v: unknown): v is Record<string, unknown> {
  return typeof v === 'object' && v !== null && !Array.isArray(v);
}
