import type { IncomingMessage } from 'node:http';
import { CLOSE } from '../../server/protocol.ts';
import { ConnectionError } from './errors.ts';

/**
 * When a server turns a client away for good: a 4xx answer to the handshake (other than
 * 408 and 429, which mean "later"), or a close for something this client does. Another
 * attempt would be refused the same way, so the client stops instead of reconnecting.
 */

/** Close codes after which reconnecting would only repeat the offence. */
const REFUSING_CLOSE_CODES: ReadonlyMap<number, string> = new Map([
  [1002, 'protocol error'],
  [CLOSE.unsupportedData, 'unsupported data'],
  [CLOSE.invalidPayload, 'invalid payload'],
  [CLOSE.policy, 'policy violation'],
]);

const BODY_LIMIT = 512;
const BODY_WAIT_MS = 1000;

/** The error for a handshake answered with `status`, or null when a later attempt may succeed. */
export function handshakeRefusal(url: string, status: number, statusText: string, body: string): ConnectionError | null {
  if (status < 400 || status >= 500 || status === 408 || status === 429) return null;
  const hint =
    status === 401 ? 'the token was not accepted'
    : status === 403 ? 'the Origin is not on the server\'s list, or no token was given without an Origin'
    : 'the server refused the handshake';
  const said = printable(body);
  const message = `${url} refused the connection: ${status}${statusText ? ` ${printable(statusText)}` : ''} (${hint})${said && said !== statusText ? `: ${said}` : ''}`;
  const code = status === 401 ? 'SG_ERR_UNAUTHORIZED' : status === 403 ? 'SG_ERR_FORBIDDEN' : 'SG_ERR_REFUSED';
  return new ConnectionError(code, message, { status });
}

/** The error for a connection the server closed with `code`, or null when reconnecting makes sense. */
export function closeRefusal(url: string, code: number, reason: string): ConnectionError | null {
  const name = REFUSING_CLOSE_CODES.get(code);
  if (name === undefined) return null;
  const said = printable(reason);
  return new ConnectionError('SG_ERR_REFUSED', `${url} closed the connection: ${code} ${name}${said ? ` (${said})` : ''}`, { closeCode: code });
}

/**
 * Reads at most 512 bytes of a refused handshake's body, for the error message, then calls
 * `done` once: at its end, on an error, or after 1 s, whichever comes first.
 */
export function readRefusalBody(response: IncomingMessage, done: (body: string) => void): void {
  const chunks: Buffer[] = [];
  let size = 0;
  let finished = false;
  const finish = () => {
    if (finished) return;
    finished = true;
    clearTimeout(timer);
    done(Buffer.concat(chunks).subarray(0, BODY_LIMIT).toString('utf8'));
  };
  const timer = setTimeout(finish, BODY_WAIT_MS);
  response.on('data', (chunk: Buffer) => {
    if (size < BODY_LIMIT) chunks.push(chunk);
    size += chunk.length;
  });
  response.once('end', finish);
  response.once('error', finish);
  response.once('close', finish);
}

/** Server text made safe for one terminal line: no control characters, at most 200 characters. */
export function printable(text: string): string {
  return text.replace(/[\0-\x1f\x7f-\x9f]+/g, ' ').trim().slice(0, 200);
}
