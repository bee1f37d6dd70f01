// @ts-check
import js from "@eslint/js";
import tseslint from "typescript-eslint";

export default tseslint.config(
  { ignores: ["dist/", "node_modules/", "coverage/", ".cache/", "charts/", "out/"] },
  js.configs.recommended,
  ...tseslint.configs.recommended,
  {
    files: ["**/*.ts"],
    rules: {
      "@typescript-eslint/no-unused-vars": ["error", { argsIgnorePattern: "^_", varsIgnorePattern: "^_" }],
      "@typescript-eslint/consistent-type-imports": "error",
      "no-console": "off",
    },
  },
  {
    // The pure decision core: no I/O, no clocks, no environment.
    files: ["src/domain/**/*.ts"],
    rules: {
      "no-restricted-imports": [
        "error",
        {
          patterns: [
            {
              group: ["node:*", "fs", "path", "http", "https", "child_process", "os"],
              message: "src/domain is pure: no I/O",
            },
            {
              group: [
                "@kubernetes/*",
                "pino",
                "prom-client",
                "**/runtime/**",
                "**/adapters/**",
                "**/controllers/**",
                "**/observability/**",
              ],
              message: "src/domain must not depend on plumbing",
            },
          ],
        },
      ],
      "no-restricted-globals": [
        "error",
        { name: "process", message: "src/domain is pure: pass values in" },
        { name: "setTimeout", message: "src/domain is pure: time comes in as nowMs" },
        { name: "setInterval", message: "src/domain is pure: time comes in as nowMs" },
        { name: "fetch", message: "src/domain is pure: no I/O" },
      ],
      "no-restricted-syntax": [
        "error",
        {
          selector: "NewExpression[callee.name='Date'][arguments.length=0]",
          message: "src/domain is pure: time comes in as nowMs",
        },
        {
          selector: "MemberExpression[object.name='Date'][property.name='now']",
          message: "src/domain is pure: time comes in as nowMs",
        },
        {
          selector: "MemberExpression[object.name='Math'][property.name='random']",
          message: "src/domain is deterministic: use a seeded RNG",
        },
      ],
    },
  },
  {
    // Size limits (issue 16, ADR 0015) for shipped code, benchmarks and scripts. Tests are
    // exempt: a describe() callback is long by nature. complexity counts every branch,
    // including `?.`, `??` and default values.
    files: ["src/**/*.ts", "bench/**/*.ts", "hack/**/*.ts"],
    ignores: ["**/*.test.ts"],
    rules: {
      "max-lines-per-function": ["error", { max: 100, skipBlankLines: true, skipComments: true }],
      complexity: ["error", 25],
    },
  },
);
