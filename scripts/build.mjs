#!/usr/bin/env node
// `npm run build`: the engine's compiled tree, dist/, and the client library's package build,
// client/dist.
// - dist/: src/, workers/ and native/ compiled by tsc -p tsconfig.build.json (which rewrites the
//   relative `.ts` imports to `.js`), every other file the engine reads at run time copied beside
//   them (the pages of src/web/), and the client library's modules in dist/client/dist, which the
//   engine serves to its web page. workers/boot.mjs stays behind: it exists to load TypeScript in
//   a worker thread, and the compiled tree starts its workers at their `.js` entries. A complete
//   build ends by writing dist/.built, so a failed one is never taken for current.
// - client/dist: the library as its package.json publishes it (with declarations), for apps and
//   for the engine run from sources.
//
//   node scripts/build.mjs               both
//   node scripts/build.mjs --out DIR     the engine's tree only, into DIR instead of dist/
//   node scripts/build.mjs --if-stale    the engine's tree only, if dist/ is missing or older than
//                                        a source (`npm start` runs this first)
//   node scripts/build.mjs --client      client/dist only (`npm ci` runs this)
// A tree without sources (as deployed) is left as it is.

import { spawnSync } from 'node:child_process';
import { copyFileSync, existsSync, mkdirSync, readdirSync, rmSync, statSync, writeFileSync } from 'node:fs';
import { createRequire } from 'node:module';
import { dirname, join, relative, resolve } from 'node:path';
import { fileURLToPath } from 'node:url';

const ROOT = resolve(dirname(fileURLToPath(import.meta.url)), '..');
/** The folders compiled into the engine's tree; their other files are copied. */
const ENGINE_DIRS = ['src', 'workers', 'native'];
/** What the tree is built from: a change to any of it means a rebuild. */
const SOURCES = [...ENGINE_DIRS, 'client/src', 'client/tsconfig.json', 'tsconfig.json', 'tsconfig.build.json'];
/** Files under ENGINE_DIRS that are not part of the build. */
const LEFT_OUT = new Set(['workers/boot.mjs']);
const STAMP = '.built';
const CLIENT_CONFIG = join(ROOT, 'client', 'tsconfig.json');

/** Every file under `paths` (folders or files), relative to the root. */
function filesUnder(paths) {
  const out = [];
  const walk = (rel) => {
    if (!existsSync(join(ROOT, rel))) return;
    if (!statSync(join(ROOT, rel)).isDirectory()) return void out.push(rel);
    for (const name of readdirSync(join(ROOT, rel))) walk(join(rel, name));
  };
  for (const p of paths) walk(p);
  return out;
}

function tscPath() {
  try {
    return createRequire(import.meta.url).resolve('typescript/bin/tsc');
  } catch {
    return null;
  }
}

function tsc(args, what) {
  const bin = tscPath();
  if (bin === null) {
    console.error('build: TypeScript is not installed; run `npm ci` (with dev dependencies) first');
    process.exit(1);
  }
  const r = spawnSync(process.execPath, [bin, ...args], { stdio: 'inherit' });
  if (r.status !== 0) {
    console.error(`build: tsc failed on ${what} (exit ${r.status ?? r.signal})`);
    process.exit(1);
  }
}

function buildEngine(out) {
  rmSync(out, { recursive: true, force: true });
  tsc(['-p', join(ROOT, 'tsconfig.build.json'), '--outDir', out], 'the engine');
  // The library's modules as the engine serves them: JavaScript only.
  tsc(['-p', CLIENT_CONFIG, '--outDir', join(out, 'client', 'dist'), '--declaration', 'false', '--sourceMap', 'false'], 'the client library');
  for (const rel of filesUnder(ENGINE_DIRS)) {
    if (rel.endsWith('.ts') || LEFT_OUT.has(rel)) continue;
    mkdirSync(dirname(join(out, rel)), { recursive: true });
    copyFileSync(join(ROOT, rel), join(out, rel));
  }
  writeFileSync(join(out, STAMP), `${new Date().toISOString()}\n`);
}

function buildClient() {
  if (!existsSync(CLIENT_CONFIG)) return;
  if (tscPath() === null) {
    console.error('build: TypeScript is not installed (a production install): client/dist not built');
    return;
  }
  tsc(['-p', CLIENT_CONFIG], 'the client library');
}

/** Why the tree in `out` must be rebuilt, or null when it is current (or there are no sources). */
function staleness(out) {
  const sources = filesUnder(SOURCES).filter((f) => !f.endsWith('.test.ts'));
  if (!sources.some((f) => f.startsWith('src/'))) return null;
  const stamp = join(out, STAMP);
  if (!existsSync(stamp)) return `${relative(ROOT, out) || out}/ has no complete build`;
  const built = statSync(stamp).mtimeMs;
  const newer = sources.find((f) => statSync(join(ROOT, f)).mtimeMs > built);
  return newer === undefined ? null : `${newer} changed since the last build`;
}

const args = process.argv.slice(2);
const outAt = args.indexOf('--out');
const out = outAt >= 0 && args[outAt + 1] ? resolve(args[outAt + 1]) : join(ROOT, 'dist');
const modes = ['--if-stale', '--client'].filter((m) => args.includes(m));
const unknown = args.filter((a, i) => !modes.includes(a) && a !== '--out' && (outAt < 0 || i !== outAt + 1));
if (unknown.length > 0 || (outAt >= 0 && !args[outAt + 1]) || modes.length + (outAt >= 0 ? 1 : 0) > 1) {
  console.error('build: usage: node scripts/build.mjs [--out DIR | --if-stale | --client]');
  process.exit(2);
}
if (args.includes('--client')) {
  buildClient();
} else if (args.includes('--if-stale')) {
  const why = staleness(out);
  if (why !== null) {
    console.error(`build: ${why}; compiling`);
    buildEngine(out);
  }
} else {
  if (!existsSync(join(ROOT, 'src'))) {
    console.error('build: no sources here (src/ is missing): nothing to build');
    process.exit(1);
  }
  buildEngine(out);
  if (outAt < 0) buildClient();
}
