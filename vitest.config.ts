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
    // a served run lowers its training thread's priority (server/training-priority.ts) and
    // cannot raise it again: not in a test worker, and not in the CLIs the tests spawn, which
    // share the machine with the other worker; test/server/cli-burst.test.ts tests the default
    env: { STREAMGRAD_TRAINING_NICE: '0' },
    // the last line, `vitest: N passed, M failed, K skipped`, is what CI reads
    reporters: ['default', './test/helpers/summary-reporter.ts'],
  },
});
