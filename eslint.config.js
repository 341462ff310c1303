// ESLint (flat config), run by `npm test`: typescript-eslint's recommended rules plus
// postern/layers (lint/layers.js), which keeps the dependency direction between the shared
// core, engine, connector, control and the CLI.
import js from "@eslint/js";
import tseslint from "typescript-eslint";
import postern from "./lint/layers.js";

export default tseslint.config(
  { ignores: ["dist/**", "node_modules/**", "coverage/**"] },
  js.configs.recommended,
  ...tseslint.configs.recommended,
  {
    files: ["**/*.ts", "**/*.tsx"],
    plugins: { postern },
    rules: {
      "postern/layers": "error",
      "@typescript-eslint/no-unused-vars": ["error", { argsIgnorePattern: "^_", varsIgnorePattern: "^_", destructuredArrayIgnorePattern: "^_" }],
      "@typescript-eslint/no-explicit-any": "error",
      "@typescript-eslint/consistent-type-imports": ["error", { fixStyle: "inline-type-imports", disallowTypeAnnotations: false }],
      "no-control-regex": "off", // header and path rules match control characters on purpose
    },
  },
  {
    // Contracts are typed end to end: production code never launders a type through unknown.
    files: ["engine/**/*.ts", "connector/**/*.ts", "control/**/*.ts", "cli/**/*.ts"],
    rules: {
      "no-restricted-syntax": ["error", {
        selector: "TSAsExpression > TSAsExpression.expression[typeAnnotation.type='TSUnknownKeyword']",
        message: "no `as unknown as` in production code: type the value (parse it, or narrow it) instead",
      }],
    },
  },
  {
    files: ["lint/**/*.js", "eslint.config.js", "ui/build.mjs"],
    languageOptions: { globals: { process: "readonly" } },
  },
);
