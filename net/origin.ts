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

/**
 * The host names a request may name in its `Host` header, or null for any. A server on
 * a loopback address answers only to loopback names: a web page on another site cannot
 * then point its own domain name at 127.0.0.1 (DNS rebinding) and read /metrics, the
 * dashboard or the ingest endpoint through the victim's browser. A server on a wildcard
 * or a network address is reached under names it cannot know, so it takes any.
 */
export function ownHostnames(host: string): ReadonlySet<string> | null {
  const loopback = ['127.0.0.1', 'localhost', '::1', '[::1]'];
  if (!loopback.includes(host) && !/^127\./.test(host)) return null;
  return new Set([...loopback, host.includes(':') && !host.startsWith('[') ? `[${host}]` : host]);
}

/** Whether the request's `Host` header names one of `hostnames` (any port; no header: refused). */
export function hostAllowed(req: IncomingMessage, hostnames: ReadonlySet<string> | null): boolean {
  if (hostnames === null) return true;
  const header = req.headers.host;
  if (header === undefined) return false;
  // `127.0.0.1:8080`, `localhost`, `[::1]:8080`: the name is all before a port that follows the last `]`
  const name = /^(\[[^\]]*\]|[^:]*)(?::\d*)?$/.exec(header.trim().toLowerCase())?.[1];
  return name !== undefined && hostnames.has(name);
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

/**
 * Whether a browser page may open a socket: no `Origin` (not a browser), or one of the
 * allowed origins exactly. The first check of both `/ws` and `/ingest` (403 otherwise):
 * any page a user visits could otherwise open sockets to a server on their machine.
 */
export function originAllowed(req: IncomingMessage, allowedOrigins: ReadonlySet<string>): boolean {
  const origin = req.headers.origin;
  return origin === undefined || allowedOrigins.has(origin);
}

export function checkHandshake(req: IncomingMessage, allowedOrigins: ReadonlySet<string>, token: string | null): HandshakeVerdict {
  const origin = req.headers.origin;
  const presented = bearerToken(req);
  if (!originAllowed(req, allowedOrigins)) {
    return { ok: false, status: 403, reason: 'origin not allowed' };
  }
  if (presented !== null && !tokenMatches(token, presented)) {
    return { ok: false, status: 401, reason: 'invalid token' };
  }
  if (presented !== null) return { ok: true, access: 'control' };
  if (origin === undefined) return { ok: false, status: 403, reason: 'no Origin and no token' };
  return { ok: true, access: 'read-only' };
}
