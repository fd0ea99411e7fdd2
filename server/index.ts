/**
 * `streamgrad/server` (Node): the live server. One HTTP port serves the dashboard,
 * `GET /healthz`, `GET /metrics` (Prometheus) and the protocol v1 WebSocket at `/ws`
 * (see PROTOCOL.md) that broadcasts the `TrainingRun`s you add and takes control commands.
 *
 * @example
 * import { serve } from 'streamgrad/server';
 * const server = await serve({ port: 0 });
 * server.addRun(run);                // a TrainingRun from 'streamgrad'
 * console.log(server.url);
 *
 * @packageDocumentation
 */
export { serve, type ServerStats, type StreamgradServer } from './server.ts';
export { DEFAULT_STATIC_DIR, DEFAULTS, type ServeOptions } from './options.ts';
