#!/usr/bin/env node
// `npm run build`: compile src/, workers/ and native/ into dist/ (tsc -p tsconfig.build.json, which
// rewrites the relative `.ts` imports to `.js`) and copy beside them every other file the engine
// reads at run time (the pages of src/web/). workers/boot.mjs stays behind: it exists to load
// TypeScript in a worker thread, and the compiled tree starts its workers at their `.js` entries.
// A complete build ends by writing dist/.built, so a failed one is never taken for current.
//
//   node scripts/build.mjs               build into dist/
//   node scripts/build.mjs --out DIR     build into DIR instead
//   node scripts/build.mjs --if-stale    build only if dist/ is missing or older than a source
//                                        (`npm start` runs this first; a tree without sources,
//                                        as deployed, is left as it is)

import { spawnSync } from 'node:child_process';
import { copyFileSync, existsSync, mkdirSync, readdirSync, rmSync, statSync, writeFileSync } from 'node:fs';
import { createRequire } from 'node:module';
import { dirname, join, relative, resolve } from 'node:path';
import { fileURLToPath } from 'node:url';

const ROOT = resolve(dirname(fileURLToPath(import.meta.url)), '..');
/** The folders compiled into the build, and the files besides them whose change means a rebuild. */
const SOURCE_DIRS = ['src', 'workers', 'native'];
const SOURCE_FILES = ['tsconfig.json', 'tsconfig.build.json'];
/** Files under SOURCE_DIRS that are not part of the build. */
const LEFT_OUT = new Set(['workers/boot.mjs']);
const STAMP = '.built';

/** Every file under the source folders, relative to the root (tests included). */
function sourceFiles() {
  const out = [];
  const walk = (dir) => {
    for (const name of readdirSync(join(ROOT, dir))) {
      const rel = join(dir, name);
      if (statSync(join(ROOT, rel)).isDirectory()) walk(rel);
      else out.push(rel);
    }
  };
  for (const d of SOURCE_DIRS) if (existsSync(join(ROOT, d))) walk(d);
  return out;
}

function build(out) {
  let tsc;
  try {
    tsc = createRequire(import.meta.url).resolve('typescript/bin/tsc');
  } catch {
    console.error('build: TypeScript is not installed; run `npm ci` (with dev dependencies) first');
    process.exit(1);
  }
  rmSync(out, { recursive: true, force: true });
  const r = spawnSync(process.execPath, [tsc, '-p', join(ROOT, 'tsconfig.build.json'), '--outDir', out], { stdio: 'inherit' });
  if (r.status !== 0) {
    console.error(`build: tsc failed (exit ${r.status ?? r.signal}); nothing usable in ${out}`);
    process.exit(1);
  }
  for (const rel of sourceFiles()) {
    if (rel.endsWith('.ts') || LEFT_OUT.has(rel)) continue;
    mkdirSync(dirname(join(out, rel)), { recursive: true });
    copyFileSync(join(ROOT, rel), join(out, rel));
  }
  writeFileSync(join(out, STAMP), `${new Date().toISOString()}\n`);
}

/** Why dist/ must be rebuilt, or null when it is current (or there are no sources to build). */
function staleness(out) {
  const sources = sourceFiles().filter((f) => !f.endsWith('.test.ts'));
  if (sources.length === 0) return null;
  const stamp = join(out, STAMP);
  if (!existsSync(stamp)) return `${relative(ROOT, out) || out}/ has no complete build`;
  const built = statSync(stamp).mtimeMs;
  const newer = [...sources, ...SOURCE_FILES.filter((f) => existsSync(join(ROOT, f)))]
    .find((f) => statSync(join(ROOT, f)).mtimeMs > built);
  return newer === undefined ? null : `${newer} changed since the last build`;
}

const args = process.argv.slice(2);
const outAt = args.indexOf('--out');
const out = outAt >= 0 && args[outAt + 1] ? resolve(args[outAt + 1]) : join(ROOT, 'dist');
const unknown = args.filter((a, i) => a !== '--if-stale' && a !== '--out' && (outAt < 0 || i !== outAt + 1));
if (unknown.length > 0 || (outAt >= 0 && !args[outAt + 1])) {
  console.error(`build: usage: node scripts/build.mjs [--out DIR] [--if-stale]`);
  process.exit(2);
}
if (args.includes('--if-stale')) {
  const why = staleness(out);
  if (why === null) process.exit(0);
  console.error(`build: ${why}; compiling`);
}
build(out);
