import { defineConfig } from 'vitest/config';

// Tests start real engine processes. Two projects: the suites, two files at a time (what the
// 2-core box fits), then the `*.solo.test.ts` files, one at a time with nothing beside them (the
// soak measures RSS drift, which neighbours' CPU would distort).
const shared = { testTimeout: 60_000, hookTimeout: 60_000 };

export default defineConfig({
  test: {
    reporters: ['default'],
    // The engine serves client/dist (the web page's library): built once before every run.
    globalSetup: ['test/build-client.ts'],
    projects: [
      {
        test: {
          ...shared,
          name: 'suites',
          include: ['test/**/*.test.ts', 'src/**/*.test.ts', 'workers/**/*.test.ts'],
          exclude: ['**/*.solo.test.ts', '**/node_modules/**'],
          fileParallelism: true,
          maxWorkers: 2,
          sequence: { groupOrder: 0 },
        },
      },
      {
        test: {
          ...shared,
          name: 'solo',
          include: ['test/**/*.solo.test.ts'],
          fileParallelism: false,
          sequence: { groupOrder: 1 },
        },
      },
    ],
  },
});
