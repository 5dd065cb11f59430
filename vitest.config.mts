import { defineConfig } from 'vitest/config';

export default defineConfig({
  test: {
    // Native addons (tokenizers, the engine) run in separate processes: a crash fails one file.
    pool: 'forks',
    // Two cores: one test file at a time keeps timings and thread counts sane.
    fileParallelism: false,
    testTimeout: 300000,
    hookTimeout: 300000,
    include: ['test/**/*.test.ts'],
    globalSetup: ['test/global-setup.ts'],
  },
});
