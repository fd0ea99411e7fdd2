/**
 * Every type of event a {@link TrainingRun} emits (`RunEvent.type`), in the order
 * server/PROTOCOL.md documents them: the one list the run's events, the protocol's `event`
 * message, the clients' parser (`parseServerMessage`) and `streamgrad watch` take theirs
 * from. A type added here reaches the protocol and the parser at once, and is a compile
 * error wherever a client must decide what to do with it (`watch`'s run states);
 * test/run-event-types.test.ts holds PROTOCOL.md to it.
 *
 * @example
 * const known = new Set<string>(RUN_EVENT_TYPES);
 * if (!known.has(message.event)) return null; // an event this version does not know
 */
export const RUN_EVENT_TYPES = [
  'started', 'paused', 'resumed', 'learning-rate', 'reset', 'checkpoint', 'checkpoint-failed', 'non-finite', 'source',
  'drift-warning', 'drift', 'drift-reaction', 'stopped', 'diverged', 'completed', 'failed',
] as const;

/** One of {@link RUN_EVENT_TYPES}. */
export type RunEventType = (typeof RUN_EVENT_TYPES)[number];
