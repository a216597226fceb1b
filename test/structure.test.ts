// The structure the docs promise: the README's "one file answers each question" table names files
// that exist and that alone do what the row says; docs/protocol.md names every op, field, error
// code and close code the code has; no module imports itself back, type imports included; and the
// bench and the tests start engines and speak raw WebSocket through one module each.

import { readdirSync, readFileSync, statSync } from 'node:fs';
import { dirname, join, relative, resolve } from 'node:path';
import { describe, expect, it } from 'vitest';
import { CLOSE, ERRORS } from '../src/protocol/errors.ts';
import { ROOT } from './support/engine.ts';

const read = (p: string): string => readFileSync(join(ROOT, p), 'utf8');

/** Every .ts file under these folders (tests and dependencies left out), relative to the root. */
function sources(...dirs: string[]): string[] {
  const out: string[] = [];
  const walk = (d: string): void => {
    for (const name of readdirSync(join(ROOT, d))) {
      if (name === 'node_modules') continue;
      const p = join(d, name);
      if (statSync(join(ROOT, p)).isDirectory()) walk(p);
      else if (p.endsWith('.ts') && !p.endsWith('.test.ts')) out.push(p);
    }
  };
  for (const d of dirs) walk(d);
  return out;
}

/** Files whose code (comments stripped) matches `re`. */
function filesMatching(files: string[], re: RegExp): string[] {
  return files.filter((f) => re.test(read(f).replace(/\/\/.*$/gm, '').replace(/\/\*[\s\S]*?\*\//g, '')));
}

describe("README's one file per question", () => {
  const readme = read('README.md');
  const table = readme.slice(readme.indexOf('| question | file |'));
  const rows = new Map<string, string>();
  for (const line of table.split('\n').slice(2)) {
    const m = /^\| ([^|]+) \| `([^`]+)`/.exec(line);
    if (m === null) break;
    rows.set(m[1].trim(), m[2]);
  }
  const front = sources('src');

  it('names six questions, each with a file that exists', () => {
    expect([...rows.keys()]).toEqual([
      'where does a frame come in', 'where is it validated', 'where does it get its id and seq',
      'where is it written', 'where is it published', 'where is the ack sent',
    ]);
    for (const file of rows.values()) expect(() => statSync(join(ROOT, file.replace('<kind>', 'sqlite'))), file).not.toThrow();
  });

  it('a frame comes in only through the WebSocket behavior', () => {
    expect(filesMatching(front, /\bgetUserData\(\)/)).toEqual([rows.get('where does a frame come in')]);
  });

  it('client values are validated in one file: the decoders and the STOMP gateway call it', () => {
    const file = rows.get('where is it validated')!;
    expect(filesMatching(front, /\b(ROOM_RE|USER_RE|TSID_RE)\s*=/)).toEqual([file]);
    for (const caller of ['src/protocol/json.ts', 'src/protocol/msgpack.ts', 'src/protocol/stomp/gateway.ts', 'src/http/params.ts']) {
      expect(read(caller), caller).toMatch(/validate\.ts';/);
    }
  });

  it('every publish to a uWS topic is in one file', () => {
    const file = rows.get('where is it published')!;
    expect(filesMatching(front, /\b(app|ws)\.publish\(|this\.app\.publish\(/)).toEqual([file]);
  });

  it('the ack is encoded and sent in one file', () => {
    expect(filesMatching(front, /\.wire\.ack\(/)).toEqual([rows.get('where is the ack sent')]);
  });

  it('ids and seqs are assigned in one file, and messages written from one', () => {
    const workers = sources('workers');
    // Message ids and seqs: both modes' assignment is in one file (rooms get their ids elsewhere).
    expect(filesMatching(workers, /\.nextAbove\(|= \+\+\w+\.seq/)).toEqual([rows.get('where does it get its id and seq')]);
    // Batches reach the store from the group commit alone (through its mode's write).
    expect(filesMatching(workers, /\.seq\.write\(/)).toEqual([rows.get('where is it written')]);
  });
});

describe('docs/protocol.md covers the protocol the code speaks', () => {
  const doc = read('docs/protocol.md');
  const named = (word: string): boolean => doc.includes('`' + word + '`');

  it('every client op and every field of a client frame', () => {
    const frames = read('src/protocol/frames.ts');
    const union = frames.slice(frames.indexOf('export type ClientFrame'), frames.indexOf('export type Frame<'));
    const ops = [...union.matchAll(/op: '(\w+)'/g)].map((m) => m[1]);
    const fields = new Set([...union.matchAll(/(\w+): /g)].map((m) => m[1]));
    expect(ops.length).toBeGreaterThan(5);
    expect(ops.filter((op) => !named(op))).toEqual([]);
    expect([...fields].filter((f) => !named(f))).toEqual([]);
  });

  it('every server op', () => {
    const ops = new Set<string>();
    for (const f of sources('src/core', 'src/protocol', 'src/cluster')) {
      for (const m of read(f).matchAll(/(?<!request\()\{ op: '(\w+)'/g)) ops.add(m[1]);
    }
    ops.add('msg').add('ack').add('error');
    expect([...ops].filter((op) => !named(op))).toEqual([]);
  });

  it('every message type and every field of the Message object and of the server frames', () => {
    const wire = read('client/src/protocol.ts');
    const types = /export type MessageType = ([^;]+);/.exec(wire)![1];
    const names = [...types.matchAll(/'(\w+)'/g)].map((m) => m[1]);
    expect(names.length).toBeGreaterThan(4);
    expect(names.filter((t) => !named(t))).toEqual([]);
    const engine = wire.slice(wire.indexOf('// ---- engine -> client'), wire.indexOf('// ---- errors'));
    const message = wire.slice(wire.indexOf('export interface Message {'), wire.indexOf('export type IncomingMessage'));
    const fields = new Set([...`${message}\n${engine}`.matchAll(/^\s+(\w+)\??: /gm)].map((m) => m[1]));
    expect(fields.size).toBeGreaterThan(10);
    expect([...fields].filter((f) => !named(f))).toEqual([]);
  });

  it('every error code, with its HTTP status', () => {
    for (const [code, { status }] of Object.entries(ERRORS)) {
      expect(named(code), code).toBe(true);
      expect(doc, code).toMatch(new RegExp('`' + code + '`[^\\n]*' + status));
    }
  });

  it('every close code', () => {
    expect(Object.values(CLOSE).filter((c) => !named(String(c)))).toEqual([]);
  });
});

describe('one engine spawner and one raw WebSocket client, for the bench and the tests', () => {
  const harness = sources('bench', 'test', 'scripts');

  it("only the bench's spawner waits for the `listening on` line; the tests' engines come from it", () => {
    expect(filesMatching(harness, /\/listening on /)).toEqual(['bench/lib/proc.ts']);
    expect(read('test/support/engine.ts')).toMatch(/import \{ spawnListening \} from '\.\.\/\.\.\/bench\/lib\/proc\.ts';/);
  });

  it("only the bench's client writes a WebSocket handshake; the tests' raw client is built on it", () => {
    expect(filesMatching(harness, /Sec-WebSocket-Version: 13/)).toEqual(['bench/lib/wsclient.ts']);
    expect(read('test/support/raw-ws.ts')).toMatch(/from '\.\.\/\.\.\/bench\/lib\/wsclient\.ts';/);
  });

  it('the bench is a package of its own: nothing in it imports the tests', () => {
    expect(filesMatching(sources('bench'), /from '[./]*\/test\//)).toEqual([]);
  });
});

describe('imports', () => {
  it('no module imports itself back, type imports included', () => {
    const files = sources('src', 'workers', 'native', 'bench', 'test', 'scripts');
    const graph = new Map<string, string[]>();
    for (const f of files) {
      const deps: string[] = [];
      for (const m of read(f).matchAll(/^(?:import|export)\b[^;]*?from '(\.{1,2}\/[^']+)'/gms)) deps.push(relative(ROOT, resolve(ROOT, dirname(f), m[1])));
      graph.set(f, deps.filter((d) => graph.has(d) || files.includes(d)));
    }
    const cycles: string[] = [];
    const state = new Map<string, 'open' | 'done'>();
    const visit = (f: string, path: string[]): void => {
      if (state.get(f) === 'done') return;
      if (state.get(f) === 'open') {
        cycles.push([...path.slice(path.indexOf(f)), f].join(' -> '));
        return;
      }
      state.set(f, 'open');
      for (const d of graph.get(f) ?? []) visit(d, [...path, f]);
      state.set(f, 'done');
    };
    for (const f of files) visit(f, []);
    expect(cycles).toEqual([]);
  });
});
