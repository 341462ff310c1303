import { defineConfig } from "vitest/config";

export default defineConfig({
  test: {
    include: ["test/**/*.test.ts"],
    // uWebSockets.js is a native addon: run test files in child processes, not worker threads.
    pool: "forks",
    testTimeout: 60_000,
    hookTimeout: 30_000,
  },
});
