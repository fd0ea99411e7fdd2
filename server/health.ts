import type { ServerResponse } from 'node:http';
import type { ServedRun } from './run-mirror.ts';
import type { ServerMetrics } from './metrics-registry.ts';
import { SECURITY_HEADERS } from './static-files.ts';

/** `GET /healthz`: `{status: "ok", runs, clients, uptime}` — runs is the number of runs, uptime in seconds. */
export function sendHealth(res: ServerResponse, runs: ReadonlyMap<string, ServedRun>, clients: number, startedAt: number): void {
  const body = Buffer.from(JSON.stringify({ status: 'ok', runs: runs.size, clients, uptime: Math.round((performance.now() - startedAt) / 100) / 10 }), 'utf8');
  res.writeHead(200, { ...SECURITY_HEADERS, 'Content-Type': 'application/json; charset=utf-8', 'Content-Length': body.length, 'Cache-Control': 'no-store' });
  res.end(res.req.method === 'HEAD' ? undefined : body);
}

/** `GET /metrics`: the server's Prometheus registry in the text exposition format. */
export async function sendMetrics(res: ServerResponse, metrics: ServerMetrics): Promise<void> {
  const body = Buffer.from(await metrics.registry.metrics(), 'utf8');
  res.writeHead(200, { ...SECURITY_HEADERS, 'Content-Type': metrics.registry.contentType, 'Content-Length': body.length, 'Cache-Control': 'no-store' });
  res.end(res.req.method === 'HEAD' ? undefined : body);
}
