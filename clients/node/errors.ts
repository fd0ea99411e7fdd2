import type { ProtocolErrorCode } from '../../server/protocol.ts';

/**
 * Codes of a failed request: the server's protocol codes, plus the client's own
 * - `SG_ERR_TIMEOUT`: no answer after every attempt (`1 + retries` sends);
 * - `SG_ERR_CLOSED`: the client was closed, or its connection failed for good, before the answer came.
 */
export type CommandErrorCode = ProtocolErrorCode | 'SG_ERR_TIMEOUT' | 'SG_ERR_CLOSED';

/** A request (command, subscribe, unsubscribe) the server refused or never answered. */
export class CommandError extends Error {
  override readonly name = 'CommandError';
  constructor(
    readonly code: CommandErrorCode,
    message: string,
    /** The request's type (`pause`, `subscribe`, …) and id. */
    readonly command: string,
    readonly id: string,
    options?: { cause?: unknown },
  ) {
    super(message, options);
  }
}

/**
 * Codes of a connection that ended for good (no reconnect follows):
 * - `SG_ERR_UNAUTHORIZED`: handshake refused with 401 (a wrong token);
 * - `SG_ERR_FORBIDDEN`: handshake refused with 403 (an origin not on the server's list, or no token without an origin);
 * - `SG_ERR_REFUSED`: another 4xx at the handshake, or a close for a policy violation (1002, 1003, 1007, 1008);
 * - `SG_ERR_PROTOCOL`: the server speaks another protocol version;
 * - `SG_ERR_CONNECTION`: the connection was lost and `reconnect` is off.
 */
export type ConnectionErrorCode = 'SG_ERR_UNAUTHORIZED' | 'SG_ERR_FORBIDDEN' | 'SG_ERR_REFUSED' | 'SG_ERR_PROTOCOL' | 'SG_ERR_CONNECTION';

/** Why a client stopped for good; every stream of the client errors with it. Never holds the token. */
export class ConnectionError extends Error {
  override readonly name = 'ConnectionError';
  constructor(
    readonly code: ConnectionErrorCode,
    message: string,
    readonly details: { readonly status?: number; readonly closeCode?: number } = {},
    options?: { cause?: unknown },
  ) {
    super(message, options);
  }
}
