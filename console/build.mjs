// Bundles the web console (console/app.ts with Preact, htm and uPlot, plus its CSS) into one
// script and one stylesheet next to index.html; the manager serves that folder at `/`.
// Usage: node console/build.mjs [outdir]   (default dist/console)
import { copyFile, mkdir, stat } from 'node:fs/promises';
import path from 'node:path';
import { fileURLToPath } from 'node:url';
import { build } from 'esbuild';

const here = path.dirname(fileURLToPath(import.meta.url));
const outdir = path.resolve(process.argv[2] ?? path.join(here, '..', 'dist', 'console'));

await mkdir(outdir, { recursive: true });
await build({
  entryPoints: { app: path.join(here, 'app.ts') },
  bundle: true,
  minify: true,
  format: 'esm',
  target: ['es2020', 'chrome100', 'firefox100', 'safari15'],
  outdir,
  legalComments: 'none',
  logLevel: 'warning',
});
await copyFile(path.join(here, 'index.html'), path.join(outdir, 'index.html'));
const sizes = await Promise.all(
  ['app.js', 'app.css'].map(async (f) => (await stat(path.join(outdir, f))).size),
);
console.log(`console bundle: ${outdir} (app.js ${sizes[0]} B, app.css ${sizes[1]} B)`);
