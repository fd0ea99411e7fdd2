/**
 * MQTT topic filters as a broker reads them (MQTT 5 §4.7, the same in 3.1.1): `+` matches one
 * level, `#` (last) the level it stands on and every level below, so `a/#` matches `a` too;
 * a topic that starts with `$` (`$SYS/…`) is not matched by a filter that starts with a
 * wildcard; and a shared subscription `$share/{group}/{filter}` matches what its filter does.
 *
 * @example
 * compileTopicFilter('lab/+/temp')('lab/a/temp'); // true
 * compileTopicFilter('#')('$SYS/broker/uptime');   // false
 * compileTopicFilters(['lab/+/hum', 'lab/#'])('lab/a/temp'); // 1: the first filter it matches
 * topicFiltersOverlap('plant/#', 'plant/labels/#'); // true
 */

/** The levels of the filter a subscription matches with: a shared subscription's without its `$share/{group}/`. */
function levelsOf(filter: string): string[] {
  const levels = filter.split('/');
  return levels[0] === '$share' && levels.length >= 3 ? levels.slice(2) : levels;
}

/** A first level that only a filter naming it matches (`$SYS`), against a first level that is a wildcard. */
function dollarApart(x: readonly string[], y: readonly string[]): boolean {
  const wild = (level: string) => level === '+' || level === '#';
  return (wild(x[0]) && y[0].startsWith('$')) || (wild(y[0]) && x[0].startsWith('$'));
}

/** Whether a topic's `levels` match a filter's `pattern` (both from `split('/')`; the pattern from `levelsOf`). */
function levelsMatch(pattern: readonly string[], levels: readonly string[]): boolean {
  if (levels[0].startsWith('$') && (pattern[0] === '+' || pattern[0] === '#')) return false;
  for (let i = 0; i < pattern.length; i++) {
    if (pattern[i] === '#') return true;
    if (i >= levels.length) return false;
    if (pattern[i] !== '+' && pattern[i] !== levels[i]) return false;
  }
  return pattern.length === levels.length;
}

/**
 * Which of `filters` a topic matches first: its index, or -1 when none does. The filters are
 * split once, here, and each topic once per call however many filters there are: the
 * predicate a source runs on every message to know which of its (possibly overlapping)
 * subscriptions a copy belongs to.
 *
 * @example
 * const first = compileTopicFilters(['lab/+/hum', 'lab/#', 'lab/+/temp']);
 * first('lab/a/temp'); // 1 (lab/# comes before lab/+/temp)
 * first('plant/a');    // -1
 */
export function compileTopicFilters(filters: readonly string[]): (topic: string) => number {
  const patterns = filters.map(levelsOf);
  return (topic) => {
    const levels = topic.split('/');
    return patterns.findIndex((pattern) => levelsMatch(pattern, levels));
  };
}

/**
 * Whether a topic matches `filter`: {@link compileTopicFilters} with one filter.
 *
 * @example compileTopicFilter('verdicts/#')('verdicts'); // true ('#' matches its parent level)
 */
export function compileTopicFilter(filter: string): (topic: string) => boolean {
  const first = compileTopicFilters([filter]);
  return (topic) => first(topic) === 0;
}

/**
 * Whether some topic matches both MQTT topic filters. A broker may deliver a message once per
 * subscription it matches (Mosquitto 2 does over MQTT 5), so overlapping filters bring copies
 * of one message: features and labels subscribed with `plant/#` and `plant/labels/#` are
 * refused at start, and one source's overlapping filters are told apart by Subscription
 * Identifier (MQTT 5) or refused (3.1.1).
 *
 * @example
 * topicFiltersOverlap('plant/#', 'plant/labels/#');  // true
 * topicFiltersOverlap('plant/+/features', 'plant/labels/#'); // false
 * topicFiltersOverlap('#', '$SYS/#'); // false: '#' does not match $SYS topics
 */
export function topicFiltersOverlap(a: string, b: string): boolean {
  const x = levelsOf(a), y = levelsOf(b);
  if (dollarApart(x, y)) return false;
  for (let i = 0; ; i++) {
    if (x[i] === '#' || y[i] === '#') return true; // '#' also matches its parent level ('a/#' matches 'a')
    if (i === x.length || i === y.length) return x.length === y.length || x[i] === '#' || y[i] === '#';
    if (x[i] !== '+' && y[i] !== '+' && x[i] !== y[i]) return false;
  }
}
