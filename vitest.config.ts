import { BaseSequencer, type TestSpecification } from "vitest/node";
import { defineConfig } from "vitest/config";

/** Starts the real-time files (minutes of waiting, little CPU) first, so the rest runs beside them. */
class RealTimeFirst extends BaseSequencer {
  override async sort(files: TestSpecification[]): Promise<TestSpecification[]> {
    const sorted = await super.sort(files);
    const slow = (f: TestSpecification) => f.moduleId.endsWith("-realtime.test.ts");
    return [...sorted.filter(slow), ...sorted.filter((f) => !slow(f))];
  }
}

export default defineConfig({
  test: {
    include: ["test/**/*.test.ts"],
    // uWebSockets.js is a native addon: run test files in child processes, not worker threads.
    pool: "forks",
    // Two workers even on two cores: one spends minutes in the real-time timeout file, mostly asleep.
    maxWorkers: 2,
    testTimeout: 60_000,
    hookTimeout: 30_000,
    sequence: { sequencer: RealTimeFirst },
  },
});
