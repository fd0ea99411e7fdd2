/** Counters of one server, for tests, benches and logs. */
export interface ServerStats {
  /** Open WebSocket connections. */
  readonly clients: number;
  /** Frames skipped because their client was over its buffer cap. */
  readonly droppedFrames: number;
  /** Handshakes refused (401, 403, 404, 503). */
  readonly refusedHandshakes: number;
  /** Clients terminated for being over their buffer cap too long. */
  readonly slowTerminations: number;
  /** Clients terminated for not answering the heartbeat. */
  readonly heartbeatTerminations: number;
  /** Warm-up handshakes the server has made to itself so far (`ServeOptions.warmUpHandshakes`; never counted as clients). */
  readonly warmUpHandshakes: number;
}
