import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { defineConfig } from 'vitest/config';

export default defineConfig({
  test: {
    // Temporal's native bridge crashes the `threads` pool; forks is stable.
    pool: 'forks',
    // Two test files at a time: integration tests mostly wait on Temporal, MinIO and trainer processes, so
    // two overlap well on a 2-core machine and keep the whole suite near 20 minutes (one at a time: ~40).
    maxWorkers: 2,
    testTimeout: 120_000,
    hookTimeout: 300_000,
    // Lifeline targets Node 20; the AWS SDK's notice about its future Node 22 floor is noise in test output.
    env: {
      AWS_SDK_JS_NODE_VERSION_SUPPORT_WARNING_DISABLED: 'true',
      // Tests make many throwaway repositories: keep their index cache out of the user's ~/.cache.
      LIFELINE_CACHE_DIR: join(tmpdir(), `lifeline-test-cache-${process.pid}`),
    },
    projects: [
      {
        // Pure tests: no services, no Go tools (`vitest run test/unit` starts nothing).
        extends: true,
        test: { name: 'unit', include: ['test/unit/**/*.test.ts'] },
      },
      {
        // Everything else shares one Temporal dev server and one MinIO (test/global-setup.ts).
        extends: true,
        test: {
          name: 'integration',
          include: ['test/**/*.test.ts'],
          exclude: ['test/unit/**', '**/node_modules/**'],
          globalSetup: ['test/global-setup.ts'],
        },
      },
    ],
  },
});
