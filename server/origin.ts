import { createHash, timingSafeEqual } from 'node:crypto';
import type { IncomingMessage } from 'node:http';

/**
 * Who may open a WebSocket and who may steer (RELIABILITY.md rows 35–36), decided in
 * the HTTP `upgrade` handler before any WebSocket exists:
 *
 * - an `Origin` header must match one allowed origin exactly (no prefixes, no
 *   wildcards, `null` never) → else 403;
 * - no `Origin` (not a browser) is allowed only with a valid `Authorization: Bearer`
 *   token → else 403;
 * - an `Authorization` header with a wrong token → 401;
 * - a valid token gives `control` access, none `read-only`.
 */
export type Access = 'control' | 'read-only';

export type HandshakeVerdict =
  | { readonly ok: true; readonly access: Access }
  | { readonly ok: false; readonly status: 401 | 403; readonly reason: string };

/** The origins a browser page served by this server presents. */
export function ownOrigins(host: string, port: number): string[] {
  const origins = new Set([`http://127.0.0.1:${port}`, `http://localhost:${port}`]);
  if (host !== '0.0.0.0' && host !== '::') origins.add(`http://${host.includes(':') ? `[${host}]` : host}:${port}`);
  return [...origins];
}

const digest = (text: string) => createHash('sha256').update(text, 'utf8').digest();

/** Compares a presented token with the server's in constant time (equal-length digests). */
export function tokenMatches(expected: string | null, presented: string): boolean {
  if (expected === null) return false;
  return timingSafeEqual(digest(expected), digest(presented));
}

/** The token of an `Authorization: Bearer <token>` header, '' for another scheme, null for no header. */
export function bearerToken(req: IncomingMessage): string | null {
  const header = req.headers.authorization;
  if (header === undefined) return null;
  const match = /^Bearer +(\S+) *$/i.exec(header);
  return match === null ? '' : match[1];
}

export function checkHandshake(req: IncomingMessage, allowedOrigins: ReadonlySet<string>, token: string | null): HandshakeVerdict {
  const origin = req.headers.origin;
  const presented = bearerToken(req);
  if (origin !== undefined && !allowedOrigins.has(origin)) {
    return { ok: false, status: 403, reason: 'origin not allowed' };
  }
  if (presented !== null && !tokenMatches(token, presented)) {
    return { ok: false, status: 401, reason: 'invalid token' };
  }
  if (presented !== null) return { ok: true, access: 'control' };
  if (origin === undefined) return { ok: false, status: 403, reason: 'no Origin and no token' };
  return { ok: true, access: 'read-only' };
}
