import { defineConfig } from 'vitest/config';

export default defineConfig({
  test: {
    include: ['test/**/*.test.ts'],
    // builds the dashboard bundle the browser tests load
    globalSetup: ['test/dashboard/global-setup.ts'],
    testTimeout: 60_000,
    hookTimeout: 60_000,
    // 2-core machines: two workers, one file each
    maxWorkers: 2,
    // the last line, `vitest: N passed, M failed, K skipped`, is what CI reads
    reporters: ['default', './test/helpers/summary-reporter.ts'],
  },
});
