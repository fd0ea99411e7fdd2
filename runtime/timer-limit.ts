/**
 * The longest period a Node timer takes (2^31 − 1 ms, about 24.8 days), in seconds: a
 * longer one would fire at once, so every interval a config or option sets is at most this.
 *
 * @example if (everySeconds > MAX_TIMER_SECONDS) invalid('checkpoints.everySeconds', `must be at most ${MAX_TIMER_SECONDS}`);
 */
export const MAX_TIMER_SECONDS = 2_147_483;
