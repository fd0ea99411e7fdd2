import type { ServeSettings } from '../runtime/serving.ts';
import { usage } from './cli-error.ts';
import { type OptionSpec, type Options, text } from './options.ts';

/** The port `--serve auto` tries first. */
const DEFAULT_PORT = 8080;

/** The live-view options `train` and `start` share. */
export const SERVE_SPEC: OptionSpec = {
  serve: { type: 'string' },
  port: { type: 'string' },
  host: { type: 'string' },
  token: { type: 'string' },
};

export const SERVE_HELP = `Live view (protocol: server/PROTOCOL.md):
  --serve PORT         while training, serve the dashboard, /healthz, /metrics and the
                       WebSocket (/ws) on PORT (0: any free port; auto: $PORT, else 8080,
                       else any free port); after the run ends it keeps serving until Ctrl-C
  --port PORT          serve on PORT (0: any free port): --serve PORT, or the port of
                       --serve auto (npm start -- --port 0)
  --host ADDR          interface to listen on (default 127.0.0.1, this machine only)
  --token T            clients presenting it may pause, resume, step, reset... (default
                       $STREAMGRAD_TOKEN; prefer the variable: command lines are visible
                       to other users); without a token every client is read-only
`;


/**
 * `--serve PORT|auto`, `--port PORT`, `--host` and `--token`; undefined when nothing asks
 * for serving. `envPort` (e.g. `$PORT`) serves when no option says where, and is the port
 * of `auto`; `--port` wins over both (`npm start -- --port 0`).
 */
export function parseServeOptions(options: Options, envPort?: string): ServeSettings | undefined {
  const serve = text(options, 'serve');
  const fromEnv = envPort === undefined || envPort === '' ? undefined : portNumber(envPort, 'PORT');
  let port: number | undefined;
  let orFreePort = false;
  if (options.has('port')) {
    if (serve !== undefined && serve !== 'auto') usage('--port', `give the port once: --serve ${serve} already names one`);
    port = portNumber(text(options, 'port') ?? '', '--port');
  } else if (serve === 'auto') {
    port = fromEnv ?? DEFAULT_PORT;
    orFreePort = fromEnv === undefined;
  } else if (serve !== undefined) {
    port = portNumber(serve, '--serve');
  } else {
    port = fromEnv;
  }
  const host = text(options, 'host');
  const token = text(options, 'token');
  if (port === undefined) {
    for (const name of ['host', 'token']) if (options.has(name)) usage(`--${name}`, 'only applies with --serve PORT');
    return undefined;
  }
  if (host === '') usage('--host', 'must not be empty');
  if (token === '') usage('--token', 'must not be empty');
  return { port, ...(orFreePort && { orFreePort }), ...(host !== undefined && { host }), ...(token !== undefined && { token }) };
}

/** A TCP port number, 0 (any free port) to 65535. */
function portNumber(raw: string, option: string): number {
  const port = /^\d+$/.test(raw) ? Number(raw) : NaN;
  if (!(port <= 65535)) usage(option, `must be a port number (0 to 65535; 0: any free port), got ${JSON.stringify(raw)}`);
  return port;
}

