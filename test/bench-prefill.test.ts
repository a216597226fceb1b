// --prefill's SQLite template (bench/lib/prefill.ts): the engine's schema, N messages with valid
// TSIDs in 1,000 rooms of their own, seqs from 1 per room, rooms' last_seq matching.

import Database from 'better-sqlite3';
import { existsSync, rmSync } from 'node:fs';
import { describe, expect, it } from 'vitest';
import { prefillTemplate } from '../bench/lib/prefill.ts';
import { tsidToString } from '../workers/ids.ts';
import { SCHEMA_VERSION } from '../workers/stores/sqlite/migrations.ts';

describe('bench: --prefill template', () => {
  it('holds N messages the engine can read: valid ids, per-room seqs, last_seq, one cid each', () => {
    const n = 2345;
    const file = prefillTemplate(n, () => {});
    try {
      const db = new Database(file, { readonly: true });
      expect(db.pragma('user_version', { simple: true })).toBe(SCHEMA_VERSION);
      const rows = db.prepare('SELECT tsid, id, room, seq, cid FROM messages ORDER BY tsid').safeIntegers().all() as { tsid: bigint; id: string; room: string; seq: bigint; cid: string }[];
      expect(rows.length).toBe(n);
      expect(rows.every((r) => tsidToString(r.tsid) === r.id)).toBe(true);
      expect(new Set(rows.map((r) => r.cid)).size).toBe(n);
      const perRoom = new Map<string, number[]>();
      for (const r of rows) perRoom.set(r.room, [...(perRoom.get(r.room) ?? []), Number(r.seq)]);
      expect(perRoom.size).toBe(1000);
      for (const seqs of perRoom.values()) expect(seqs).toEqual(seqs.map((_, i) => i + 1));
      const last = db.prepare('SELECT id, last_seq FROM rooms').all() as { id: string; last_seq: number }[];
      expect(last.every((r) => r.last_seq === perRoom.get(r.id)!.length)).toBe(true);
      db.close();
    } finally {
      rmSync(file, { force: true });
    }
    expect(existsSync(file)).toBe(false);
  });
});
