// Builds the console (admin and My Apps) with esbuild: one ES module bundle, its stylesheet,
// and the page that loads them, into dist/ui/ where control serves them. Run by `npm run build`.
import { build } from "esbuild";
import { copyFileSync, mkdirSync } from "node:fs";
import { dirname, join } from "node:path";
import { fileURLToPath } from "node:url";

const root = dirname(fileURLToPath(import.meta.url));
const out = join(root, "..", "dist", "ui");
mkdirSync(out, { recursive: true });
await build({
  entryPoints: { app: join(root, "src", "main.tsx") },
  bundle: true,
  format: "esm",
  target: "es2022",
  minify: true,
  sourcemap: true,
  jsx: "automatic",
  define: { "process.env.NODE_ENV": '"production"' },
  outdir: out,
  logLevel: "warning",
});
await build({ entryPoints: { app: join(root, "src", "app.css") }, bundle: true, minify: true, outdir: out, logLevel: "warning" });
copyFileSync(join(root, "index.html"), join(out, "index.html"));
