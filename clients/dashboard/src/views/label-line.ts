import { formatCount } from '../format.ts';

/**
 * A run's delayed-labels counters in one short line: joined and waiting always, the
 * troubles only when there are some (`labels 1 204 joined · 37 waiting · 3 expired · 1 duplicate`).
 */
export function labelLine(c: Readonly<Record<string, number>>): string {
  const n = (key: string) => c[key] ?? 0;
  const parts = [`labels ${formatCount(n('joined'))} joined`, `${formatCount(n('waiting'))} waiting`];
  if (n('holding') > 0) parts.push(`${formatCount(n('holding'))} early held`);
  const troubles: [number, string][] = [
    [n('expired'), 'expired'],
    [n('duplicateFeatures') + n('duplicateLabels'), 'duplicate'],
    [n('unknownLabels'), 'unknown id'],
    [n('late'), 'late'],
    // `invalid` by reason; a server from before the reasons were counted (or a join resumed
    // from an older checkpoint) has some in the total only
    [n('unusableId'), 'without id'],
    [n('refusedFeatures') + n('refusedLabels'), 'refused'],
    [n('unreadable'), 'unreadable'],
    [n('invalid') - n('unusableId') - n('refusedFeatures') - n('refusedLabels') - n('unreadable'), 'invalid'],
    [n('untimed'), 'without a time'],
  ];
  for (const [count, what] of troubles) if (count > 0) parts.push(`${formatCount(count)} ${what}`);
  return parts.join(' · ');
}
