import type { Reporter, TestModule } from 'vitest/node';

/**
 * Ends a vitest run with one plain line, `vitest: N passed, M failed, K skipped`, that CI
 * reads to know how many tests ran (it does not parse vitest's own summary). Failed
 * modules (a file that would not load, or whose setup threw) and unhandled errors count as failures.
 */
export default class SummaryReporter implements Reporter {
  onTestRunEnd(testModules: ReadonlyArray<TestModule>, unhandledErrors: ReadonlyArray<unknown>): void {
    let passed = 0, failed = unhandledErrors.length, skipped = 0;
    for (const module of testModules) {
      let failedHere = 0;
      for (const test of module.children.allTests()) {
        const state = test.result().state;
        if (state === 'passed') passed++;
        else if (state === 'failed') failedHere++;
        else skipped++;
      }
      // a module can fail with no failed test: it would not load, or a beforeAll threw and
      // vitest marked its tests skipped (e.g. the browser would not start)
      failed += module.state() === 'failed' && failedHere === 0 ? 1 : failedHere;
    }
    process.stdout.write(`\nvitest: ${passed} passed, ${failed} failed, ${skipped} skipped\n`);
  }
}
