import { spawnSync } from 'node:child_process';
import { fileURLToPath } from 'node:url';
import { describe, expect, it } from 'vitest';

/**
 * Regression (issue #15, session 10): V8 pretenures an object literal's allocation site for
 * good when the first GC that weighs it finds nearly all of its recent objects alive, as a
 * full GC that ends in a stream's first steps does; then every step's object of that site
 * is made in the old generation, and the W1 pipeline ran ~1.4× slower for the whole
 * process. The per-step objects of `train` (the counters copy, the metrics snapshot, the
 * batch array) are therefore built without an allocation site. `--stress-incremental-marking`
 * makes V8 mark all the time, which pretenures such a site every time: the fixture's own
 * per-step literal (`control`) is the proof that the check sees it.
 */
describe('train: per-step objects stay in the young generation', () => {
  it('under --stress-incremental-marking: the result, its counters and metrics, and the batch start young; a literal made per step does not', () => {
    const fixture = fileURLToPath(new URL('./fixtures/young/steps.ts', import.meta.url));
    const r = spawnSync(process.execPath, ['--allow-natives-syntax', '--stress-incremental-marking', '--import', 'tsx/esm', fixture], { encoding: 'utf8' });
    expect(r.status, r.stderr).toBe(0);
    const { checked, old } = JSON.parse(r.stdout) as { checked: number; old: Record<string, number> };
    expect(checked).toBe(1000);
    // a few may be promoted by a GC between their making and the check: not pretenured
    for (const what of ['result', 'counters', 'metrics', 'batch']) expect(old[what], what).toBeLessThan(50);
    expect(old.control).toBeGreaterThan(500);
  }, 60_000);
});
