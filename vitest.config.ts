import { defineConfig } from 'vitest/config';

export default defineConfig({
  test: {
    include: ['test/**/*.test.ts'],
    globalSetup: ['test/support/tempRoot.ts'],
    // Native WebRTC and mediasoup workers live best in separate processes, one file at a time:
    // the machine has two cores and the media tests measure real packets.
    pool: 'forks',
    fileParallelism: false,
    testTimeout: 60_000,
    hookTimeout: 60_000,
  },
});
