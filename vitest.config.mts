import { defineConfig } from 'vitest/config';

export default defineConfig({
  test: {
    // Native addons (tokenizers, the engine) are safest in separate processes.
    pool: 'forks',
    testTimeout: 120000,
  },
});
