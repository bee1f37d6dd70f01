import { defineConfig } from "vitest/config";

// Three projects: `unit` is pure and fast; `integration` and `e2e` start real
// control planes (etcd, kube-apiserver, scheduler, controller-manager, kwok),
// one per test file, so they run with few workers on a 2-core machine.
export default defineConfig({
  test: {
    projects: [
      {
        test: {
          name: "unit",
          include: ["tests/unit/**/*.test.ts", "src/**/*.test.ts"],
          testTimeout: 60_000,
        },
      },
      {
        test: {
          name: "integration",
          include: ["tests/integration/**/*.test.ts"],
          testTimeout: 180_000,
          hookTimeout: 240_000,
          pool: "forks",
          maxWorkers: 1,
          fileParallelism: false,
        },
      },
      {
        test: {
          name: "e2e",
          include: ["tests/e2e/**/*.test.ts"],
          testTimeout: 600_000,
          hookTimeout: 300_000,
          pool: "forks",
          maxWorkers: 1,
          fileParallelism: false,
        },
      },
    ],
  },
});
