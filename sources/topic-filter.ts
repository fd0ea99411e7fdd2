/**
 * MQTT topic filters as a broker reads them (MQTT 5 §4.7, the same in 3.1.1): `+` matches one
 * level, `#` (last) the level it stands on and every level below, so `a/#` matches `a` too;
 * a topic that starts with `$` (`$SYS/…`) is not matched by a filter that starts with a
 * wildcard; and a shared subscription `$share/{group}/{filter}` matches what its filter does.
 *
 * @example
 * compileTopicFilter('lab/+/temp')('lab/a/temp'); // true
 * compileTopicFilter('#')('$SYS/broker/uptime');   // false
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

/**
 * Whether a topic matches `filter`, split once: the predicate a source runs on every message.
 *
 * @example compileTopicFilter('verdicts/#')('verdicts'); // true ('#' matches its parent level)
 */
export function compileTopicFilter(filter: string): (topic: string) => boolean {
  const pattern = levelsOf(filter);
  return (topic) => {
    const levels = topic.split('/');
    if (levels[0].startsWith('$') && (pattern[0] === '+' || pattern[0] === '#')) return false;
    for (let i = 0; i < pattern.length; i++) {
      if (pattern[i] === '#') return true;
      if (i >= levels.length) return false;
      if (pattern[i] !== '+' && pattern[i] !== levels[i]) return false;
    }
    return pattern.length === levels.length;
  };
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
