// MQTT topic filters read as a broker reads them: what an MQTT source matches a message's topic
// against to know which of its overlapping subscriptions a copy came by, and what the CLI uses to
// refuse features and labels filters that overlap.
import { describe, expect, it, vi } from 'vitest';
import { compileTopicFilter, compileTopicFilters, topicFiltersOverlap } from '../../sources/topic-filter.ts';

describe('compileTopicFilter', () => {
  it('+ matches one level, # the level it stands on and all below; a $ topic is not matched by a leading wildcard; $share/{group}/ is left out', () => {
    const cases: [string, string, boolean][] = [
      ['lab/+/temp', 'lab/a/temp', true], ['lab/+/temp', 'lab/a/b/temp', false], ['lab/+/temp', 'lab//temp', true],
      ['lab/#', 'lab', true], ['lab/#', 'lab/a/b', true], ['lab/#', 'labs/a', false], ['lab/+', 'lab', false],
      ['#', 'anything/at/all', true], ['#', '$SYS/broker/uptime', false], ['+/broker/uptime', '$SYS/broker/uptime', false],
      ['$SYS/#', '$SYS/broker/uptime', true], ['$share/g/lab/+/temp', 'lab/a/temp', true], ['$share/g/lab/+/temp', '$share/g/lab/a/temp', false],
      ['a', 'a', true], ['a', 'a/', false], ['a/', 'a/', true],
    ];
    for (const [filter, topic, expected] of cases) expect(compileTopicFilter(filter)(topic), `${filter} ∋ ${topic}`).toBe(expected);
  });
});

describe('compileTopicFilters', () => {
  it('gives the index of the first filter a topic matches (the one whose copy a source takes), or -1; $ topics, $share and # as compileTopicFilter reads them', () => {
    const first = compileTopicFilters(['lab/+/hum', 'lab/#', 'lab/+/temp', '#', '$SYS/#', '$share/g/other/+']);
    const cases: [string, number][] = [
      ['lab/a/hum', 0], ['lab/a/temp', 1], ['lab', 1], ['plant/a', 3], ['other/x', 3],
      ['$SYS/broker/uptime', 4], ['$share/g/other/x', -1], ['$other', -1],
    ];
    for (const [topic, expected] of cases) expect(first(topic), topic).toBe(expected);
    expect(compileTopicFilters(['a/+', '$share/g/b/#'])('b/c/d')).toBe(1);
    expect(compileTopicFilters([])('a')).toBe(-1);
  });

  it('splits the topic once, however many filters there are', () => {
    const first = compileTopicFilters(['a/+/x', 'a/+/y', 'a/+/z', 'b/#', 'c']);
    const split = vi.spyOn(String.prototype, 'split');
    try {
      expect(first('c')).toBe(4);
      expect(first('d/e')).toBe(-1);
      expect(split).toHaveBeenCalledTimes(2);
    } finally {
      split.mockRestore();
    }
  });
});

describe('topicFiltersOverlap', () => {
  it('is false when only a $ topic could match both, and reads a shared subscription by its filter', () => {
    const cases: [string, string, boolean][] = [
      ['#', '$SYS/#', false], ['+/x', '$SYS/x', false], ['#', '+/x', true], ['$SYS/#', '$SYS/+', true],
      ['$share/g/lab/#', 'lab/+/temp', true], ['$share/g/lab/#', 'other/#', false],
    ];
    for (const [a, b, expected] of cases) {
      expect(topicFiltersOverlap(a, b), `${a} ~ ${b}`).toBe(expected);
      expect(topicFiltersOverlap(b, a), `${b} ~ ${a}`).toBe(expected);
    }
  });
});
