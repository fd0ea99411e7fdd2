/**
 * "Did you mean": the nearest of `candidates` to a mistyped `word`, if one is near enough
 * (edit distance at most a quarter of its length, at least 1; case is ignored), else
 * undefined. Used for unknown commands, options and config-file keys.
 *
 * @example nearest('trian', ['train', 'start', 'run']) // 'train'
 */
export function nearest(word: string, candidates: readonly string[]): string | undefined {
  let best: string | undefined;
  let bestDistance = Infinity;
  for (const candidate of candidates) {
    const d = distance(word, candidate);
    if (d <= Math.max(1, Math.floor(candidate.length / 4)) && d < bestDistance) {
      best = candidate;
      bestDistance = d;
    }
  }
  return best;
}

/**
 * Edit distance counting insertions, deletions, substitutions and swaps of two adjacent
 * letters (`trian` → `train` is one edit, the commonest typo), ignoring case.
 */
export function distance(a: string, b: string): number {
  const x = a.toLowerCase(), y = b.toLowerCase();
  // d[i][j]: distance between the first i letters of x and the first j of y
  const d = Array.from({ length: x.length + 1 }, (_, i) => Array.from({ length: y.length + 1 }, (_, j) => (i === 0 ? j : j === 0 ? i : 0)));
  for (let i = 1; i <= x.length; i++) {
    for (let j = 1; j <= y.length; j++) {
      d[i][j] = Math.min(d[i - 1][j] + 1, d[i][j - 1] + 1, d[i - 1][j - 1] + (x[i - 1] === y[j - 1] ? 0 : 1));
      if (i > 1 && j > 1 && x[i - 1] === y[j - 2] && x[i - 2] === y[j - 1]) d[i][j] = Math.min(d[i][j], d[i - 2][j - 2] + 1);
    }
  }
  return d[x.length][y.length];
}
