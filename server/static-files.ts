import { createReadStream } from 'node:fs';
import { realpath, stat } from 'node:fs/promises';
import type { IncomingMessage, ServerResponse } from 'node:http';
import { extname, join, sep } from 'node:path';

/**
 * Headers on every HTTP response of the server: no inline script, no framing, no
 * MIME sniffing (RELIABILITY.md row 40). `'wasm-unsafe-eval'` lets the dashboard compile
 * its WebAssembly kernels (and nothing else: `eval` and friends stay refused). No
 * COOP/COEP: the page runs the kernels on a plain, fixed-size memory, so it needs no
 * cross-origin isolation (which only shared memory would).
 */
export const SECURITY_HEADERS: Readonly<Record<string, string>> = {
  'Content-Security-Policy': "default-src 'self'; script-src 'self' 'wasm-unsafe-eval'; object-src 'none'; base-uri 'none'; frame-ancestors 'none'",
  'X-Content-Type-Options': 'nosniff',
  'Referrer-Policy': 'no-referrer',
};

const CONTENT_TYPES: Readonly<Record<string, string>> = {
  '.html': 'text/html; charset=utf-8',
  '.js': 'text/javascript; charset=utf-8',
  '.mjs': 'text/javascript; charset=utf-8',
  '.css': 'text/css; charset=utf-8',
  '.json': 'application/json; charset=utf-8',
  '.map': 'application/json; charset=utf-8',
  '.svg': 'image/svg+xml',
  '.png': 'image/png',
  '.jpg': 'image/jpeg',
  '.ico': 'image/x-icon',
  '.webp': 'image/webp',
  '.woff2': 'font/woff2',
  '.wasm': 'application/wasm',
  '.txt': 'text/plain; charset=utf-8',
};

/** Writes a small plain-text response with the security headers. */
export function sendText(res: ServerResponse, status: number, text: string, headers: Readonly<Record<string, string>> = {}): void {
  const body = Buffer.from(`${text}\n`, 'utf8');
  res.writeHead(status, { ...SECURITY_HEADERS, 'Content-Type': 'text/plain; charset=utf-8', 'Content-Length': body.length, ...headers });
  res.end(res.req.method === 'HEAD' ? undefined : body);
}

/** What a request path maps to: a list of safe path segments, or the status that refuses it. */
export type StaticPath = { readonly ok: true; readonly segments: readonly string[] } | { readonly ok: false; readonly status: 400 | 403 | 404 };

/**
 * Checks a raw request target (as sent, never normalized by anyone before): the path is
 * percent-decoded exactly once; a bad escape or a NUL is 400, any `..` segment (with `/`
 * or `\` as separator) 403, any dotfile or dot-directory 404. `do..ts` is a fine name.
 */
export function parseStaticPath(target: string): StaticPath {
  const end = target.search(/[?#]/);
  const raw = end === -1 ? target : target.slice(0, end);
  if (!raw.startsWith('/')) return { ok: false, status: 400 };
  let path: string;
  try {
    path = decodeURIComponent(raw);
  } catch {
    return { ok: false, status: 400 };
  }
  if (path.includes('\0')) return { ok: false, status: 400 };
  const segments = path.split(/[/\\]/).filter((s) => s !== '');
  if (segments.some((s) => s === '..' || s === '.')) return { ok: false, status: 403 };
  if (segments.some((s) => s.startsWith('.'))) return { ok: false, status: 404 };
  return { ok: true, segments };
}

/**
 * Serves the files under `root` (GET and HEAD only; `/` and directories → their
 * `index.html`). The resolved real path must stay inside the real root, so a symlink
 * pointing out is 404 as well. Nothing outside `root` is ever read.
 */
export async function serveStatic(req: IncomingMessage, res: ServerResponse, root: string): Promise<void> {
  if (req.method !== 'GET' && req.method !== 'HEAD') {
    sendText(res, 405, 'method not allowed', { Allow: 'GET, HEAD' });
    return;
  }
  const parsed = parseStaticPath(req.url ?? '');
  if (!parsed.ok) {
    sendText(res, parsed.status, parsed.status === 400 ? 'bad request' : parsed.status === 403 ? 'forbidden' : 'not found');
    return;
  }
  const file = await resolveInside(root, parsed.segments);
  if (file === null) {
    sendText(res, 404, 'not found');
    return;
  }
  const type = CONTENT_TYPES[extname(file.path).toLowerCase()] ?? 'application/octet-stream';
  res.writeHead(200, {
    ...SECURITY_HEADERS,
    'Content-Type': type,
    'Content-Length': file.size,
    'Cache-Control': type.startsWith('text/html') ? 'no-cache' : 'public, max-age=300',
  });
  if (req.method === 'HEAD') {
    res.end();
    return;
  }
  const stream = createReadStream(file.path);
  stream.on('error', () => res.destroy());
  res.on('close', () => stream.destroy());
  stream.pipe(res);
}

async function resolveInside(root: string, segments: readonly string[]): Promise<{ path: string; size: number } | null> {
  let realRoot: string;
  try {
    realRoot = await realpath(root);
  } catch {
    return null; // no dashboard built: everything is 404
  }
  const inside = (p: string) => p === realRoot || p.startsWith(realRoot.endsWith(sep) ? realRoot : realRoot + sep);
  try {
    let path = await realpath(join(realRoot, ...segments));
    if (!inside(path)) return null;
    let info = await stat(path);
    if (info.isDirectory()) {
      path = await realpath(join(path, 'index.html'));
      if (!inside(path)) return null;
      info = await stat(path);
    }
    return info.isFile() ? { path, size: info.size } : null;
  } catch {
    return null;
  }
}
