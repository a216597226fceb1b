// The compiled engine: `npm run build` (scripts/build.mjs) makes a tree that runs on plain node,
// with no TypeScript loader and no dev dependency in the process or its worker threads. The tree
// is built once, into a temporary folder laid out as a deploy is (package.json, bin/, dist/, and a
// node_modules holding only the production packages, linked from this checkout's).

import { spawn } from 'node:child_process';
import { cpSync, existsSync, mkdirSync, readdirSync, readFileSync, statSync, symlinkSync } from 'node:fs';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { Client, getJson } from './support/client.ts';
import { ROOT, startEngine, tempDir, type EngineProc, type Launch } from './support/engine.ts';

function run(args: string[], cwd: string, env: Record<string, string> = {}): Promise<{ code: number | null; stdout: string; stderr: string }> {
  const proc = spawn(process.execPath, args, { cwd, env: { ...process.env, ...env } });
  let stdout = '';
  let stderr = '';
  proc.stdout.on('data', (d: Buffer) => { stdout += d.toString(); });
  proc.stderr.on('data', (d: Buffer) => { stderr += d.toString(); });
  return new Promise((res) => proc.once('exit', (code) => res({ code, stdout, stderr })));
}

/** Link the production packages of the lockfile (none marked dev) into `dir`/node_modules. */
function linkProductionPackages(dir: string): void {
  const lock = JSON.parse(readFileSync(join(ROOT, 'package-lock.json'), 'utf8')) as { packages: Record<string, { dev?: boolean }> };
  for (const [path, pkg] of Object.entries(lock.packages)) {
    // Top-level packages only (node_modules/x or node_modules/@scope/x): nested ones come with their parent.
    if (!/^node_modules\/(@[^/]+\/)?[^/@][^/]*$/.test(path) || pkg.dev === true) continue;
    if (!existsSync(join(ROOT, path))) continue; // an optional package of another platform
    mkdirSync(join(dir, path, '..'), { recursive: true });
    symlinkSync(join(ROOT, path), join(dir, path), 'dir');
  }
}

function filesUnder(dir: string): string[] {
  const out: string[] = [];
  for (const name of readdirSync(dir)) {
    const p = join(dir, name);
    if (statSync(p).isDirectory()) out.push(...filesUnder(p));
    else out.push(p);
  }
  return out;
}

describe('the compiled engine', () => {
  const tree = tempDir();
  const built = join(tree, 'dist');
  const launch: Launch = { node: [join(tree, 'bin', 'uchat.js'), 'start'], cwd: tree };
  let engine: EngineProc | null = null;

  beforeAll(async () => {
    const b = await run([join(ROOT, 'scripts', 'build.mjs'), '--out', built], ROOT);
    expect(b.code, b.stderr).toBe(0);
    cpSync(join(ROOT, 'package.json'), join(tree, 'package.json'));
    cpSync(join(ROOT, 'bin'), join(tree, 'bin'), { recursive: true });
    linkProductionPackages(tree);
  }, 180_000);

  afterAll(async () => { await engine?.stop(); });

  it('is JavaScript, pages and styles only: no TypeScript, no tsx bootstrap', () => {
    const files = filesUnder(built).map((f) => f.slice(built.length + 1));
    expect(files).toContain('src/cli.js');
    expect(files).toContain('workers/persistence/actor.js');
    expect(files).toContain('workers/readers/reader.js');
    expect(files).toContain('src/web/index.html');
    expect(files).toContain('src/web/dashboard.html');
    expect(files).toContain('client/dist/index.js');
    expect(files.filter((f) => !/\.(js|html|css)$/.test(f) && f !== '.built')).toEqual([]);
    const importsTsx = files.filter((f) => f.endsWith('.js') && /['"]tsx(\/[^'"]*)?['"]/.test(readFileSync(join(built, f), 'utf8')));
    expect(importsTsx).toEqual([]);
    // The linked tree holds the production packages, and neither the TypeScript loader nor the compiler.
    expect(existsSync(join(tree, 'node_modules', 'uWebSockets.js'))).toBe(true);
    expect(existsSync(join(tree, 'node_modules', 'tsx'))).toBe(false);
    expect(existsSync(join(tree, 'node_modules', 'typescript'))).toBe(false);
  });

  it('starts on plain node without dev packages, and a client joins, sends and gets its ack', async () => {
    engine = await startEngine({}, tempDir(), [], launch);
    expect(readFileSync(`/proc/${engine.proc.pid}/cmdline`, 'utf8').split('\0')).not.toContain('--import');
    const c = await Client.connect(engine.url, { user: 'ada', name: 'Ada' });
    const joined = await c.request({ op: 'join', room: 'lobby' });
    expect(joined.op).toBe('joined');
    c.send({ op: 'send', room: 'lobby', text: 'from the build', cid: 'b-1' });
    const ack = await c.op('ack', (f) => f.cid === 'b-1');
    const msg = c.frames.find((f) => f.op === 'msg' && f.cid === 'b-1');
    expect(msg?.text).toBe('from the build');
    expect(ack.seq).toBe(msg?.seq);
    // The persistence actor committed it (the ack), and a reader thread (the other compiled
    // worker entry) ran a checkpoint over that commit.
    const checkpoints = async (): Promise<number> => {
      const text = await (await fetch(`${engine!.http}/metrics`)).text();
      return Number(/^chat_sqlite_checkpoints_total (\d+)/m.exec(text)?.[1] ?? NaN);
    };
    const deadline = Date.now() + 20_000;
    let done = await checkpoints();
    while (done === 0 && Date.now() < deadline) done = await checkpoints();
    expect(done).toBeGreaterThan(0);
    expect((await getJson(`${engine.http}/healthz`)).body.store).toBe('ok');
    // The web page, its script and the client library it imports come from the build.
    for (const path of ['/', '/app.js', '/client/index.js']) expect((await fetch(`${engine.http}${path}`)).status, path).toBe(200);
    await c.close();
    expect(await engine.stop()).toBe(0);
    engine = null;
  });

  it('uchat version, uchat migrate, and a missing --env-file, on plain node', async () => {
    const uchat = join(tree, 'bin', 'uchat.js');
    const v = await run([uchat, 'version'], tree);
    expect(v.code, v.stderr).toBe(0);
    expect(v.stdout).toContain(`uchat ${(JSON.parse(readFileSync(join(ROOT, 'package.json'), 'utf8')) as { version: string }).version}`);
    expect(v.stdout).toMatch(/uWebSockets\.js 20\.30\.\S+ \(native: /);

    const db = join(tempDir(), 'sub', 'chat.db');
    const m = await run([uchat, 'migrate'], tree, { CHAT_STORE: `sqlite:${db}` });
    expect(m.code, m.stderr).toBe(0);
    expect(m.stdout).toMatch(new RegExp(`migrated sqlite:${db}: schema version \\d+`));
    expect(existsSync(db)).toBe(true);

    // Node 20 itself checks that a file after `--env-file` exists, anywhere on its command line,
    // and exits 9 before the engine runs; a later Node leaves it to the engine (exit 2).
    const missing = await run([uchat, 'start', '--env-file', join(tree, 'no-such.env')], tree);
    expect(process.versions.node.startsWith('20.') ? [9, 2] : [2]).toContain(missing.code);
    expect(missing.stderr).toContain('no-such.env');
  });
});
