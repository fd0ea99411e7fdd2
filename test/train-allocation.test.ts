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
    // Whether V8 pretenures the fixture's own literal depends on when its GCs fall: on a
    // loaded machine about one run in four ends without it, and such a run proves nothing
    // about train's objects. So run until the control shows the setting at work (at most
    // five runs), and require train's objects to start young in every run made.
    const controls: number[] = [];
    for (let run = 0; run < 5 && !controls.some((c) => c > 500); run++) {
      const r = spawnSync(process.execPath, ['--allow-natives-syntax', '--stress-incremental-marking', '--import', 'tsx/esm', fixture], { encoding: 'utf8' });
      expect(r.status, r.stderr).toBe(0);
      const { checked, old } = JSON.parse(r.stdout) as { checked: number; old: Record<string, number> };
      expect(checked).toBe(1000);
      // a few may be promoted by a GC between their making and the check: not pretenured
      for (const what of ['result', 'counters', 'metrics', 'batch']) expect(old[what], what).toBeLessThan(50);
      controls.push(old.control);
    }
    expect(Math.max(...controls), `control per run: ${controls.join(', ')}`).toBeGreaterThan(500);
  }, 120_000);
});
